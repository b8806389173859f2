package org.qvlm4j.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qvlm4j.data.Scene;
import org.qvlm4j.data.ScienceQaProblem;
import org.qvlm4j.data.SynthBenchmark;
import org.qvlm4j.io.config.LlamaTextConfig;
import org.qvlm4j.io.config.LlavaConfig;
import org.qvlm4j.io.text.LlavaTokenizer;
import org.qvlm4j.tensor.Ops;
import org.qvlm4j.tensor.Tape;
import org.qvlm4j.tensor.Tensor;

/**
 * Slot attention targets on encoded benchmark problems (against the solutions' own text), the
 * attention loss against a scalar twin of the first layer's head and a finite difference, and a
 * short training run that teaches a head its targets.
 */
class SlotAttentionTest {
    private static final int IMAGE_SIZE = 32;

    @TempDir
    static Path dir;
    static List<ScienceQaProblem> problems;
    static LlavaTokenizer tok;
    static LlavaConfig cfg;
    static QcmExampleEncoder encoder;

    @BeforeAll
    static void benchmark() {
        BenchmarkModelDir b = BenchmarkModelDir.write(dir, new SynthBenchmark.Options(5, 600, 0, 0,
                SynthBenchmark.MIN_IMAGE_SIZE, SynthBenchmark.Solutions.COORDINATES), IMAGE_SIZE);
        problems = b.problems();
        tok = b.tok();
        cfg = b.cfg();
        encoder = new QcmExampleEncoder(tok, cfg, b.images(),
                QcmExampleEncoder.AnswerStyle.STEPWISE).supervisePrompt(true);
    }

    @AfterAll
    static void close() {
        tok.close();
    }

    @Test
    void mapSolutionsGetOneTargetPerColourAndNumber() {
        SlotAttention slots = new SlotAttention(tok, cfg.imageTokenIndex());
        Pattern named = Pattern.compile("\\b(red|blue|green|yellow|purple|orange) ([1-8])\\b");
        int maps = 0;
        int others = 0;
        for (ScienceQaProblem p : problems) {
            TrainingExample ex = encoder.encode(p);
            TrainingExample annotated = slots.annotate(ex);
            Matcher m = named.matcher(p.solution() == null ? "" : p.solution());
            int expected = 0;
            while (m.find()) {
                expected++;
            }
            if (!p.skill().startsWith("Read a map")) {
                assertSame(ex, annotated, p.pid() + " (" + p.skill() + ") gets no targets");
                others++;
                continue;
            }
            maps++;
            assertTrue(expected > 0, p.pid() + ": a coordinates map solution names squares: " + p.solution());
            assertEquals(expected, annotated.attentionTargets(), p.pid() + ": " + p.solution());
            int firstImage = -1;
            for (int t = 0; t < ex.length(); t++) {
                if (ex.inputIds()[t] == cfg.imageTokenIndex()) {
                    firstImage = t;
                    break;
                }
            }
            for (int t = 0; t < ex.length(); t++) {
                int target = annotated.attend()[t];
                if (target == TrainingExample.NO_TARGET) {
                    continue;
                }
                Scene.Colour c = Scene.Colour.valueOf(tok.idToToken(ex.inputIds()[t]).toUpperCase(java.util.Locale.ROOT));
                assertEquals(firstImage + c.ordinal(), target, p.pid() + " position " + t);
                assertTrue(tok.idToToken(ex.inputIds()[t + 1]).matches("[1-8]"), p.pid() + " position " + t);
            }
            assertEquals(ex.withAttend(annotated.attend()), annotated);
        }
        assertTrue(maps > 20 && others > 200, maps + " maps, " + others + " others");
    }

    /**
     * With object slots, on count solutions: a colour word followed by a count (0 to 9) or a shape
     * word gets the colour's slot wherever the next word is supervised, map coordinates still do, and
     * nothing else does; the counting solutions' own pairs are among the targets.
     */
    @Test
    void objectSlotsAlsoTargetCountsAndShapesAfterAColour(@TempDir Path countsDir) {
        BenchmarkModelDir b = BenchmarkModelDir.write(countsDir, new SynthBenchmark.Options(5, 600, 0, 0,
                SynthBenchmark.MIN_IMAGE_SIZE, SynthBenchmark.Solutions.COUNTS), IMAGE_SIZE);
        try (LlavaTokenizer t = b.tok()) {
            QcmExampleEncoder enc = new QcmExampleEncoder(t, b.cfg(), b.images(), QcmExampleEncoder.AnswerStyle.STEPWISE)
                    .supervisePrompt(true);
            SlotAttention slots = new SlotAttention(t, b.cfg().imageTokenIndex(), true);
            java.util.Set<String> read = new java.util.HashSet<>(List.of("0", "1", "2", "3", "4", "5", "6", "7", "8", "9"));
            for (Scene.Shape s : Scene.Shape.values()) {
                read.add(s.singular);
                read.add(s.plural);
            }
            Pattern pair = Pattern.compile("\\b(red|blue|green|yellow|purple|orange) (\\d|[a-z]+)\\.");
            int counting = 0;
            for (ScienceQaProblem p : b.problems()) {
                TrainingExample ex = enc.encode(p);
                TrainingExample annotated = slots.annotate(ex);
                int[] ids = ex.inputIds();
                int firstImage = -1;
                for (int i = 0; i < ids.length && firstImage < 0; i++) {
                    firstImage = ids[i] == b.cfg().imageTokenIndex() ? i : -1;
                }
                int expected = 0;
                for (int i = 0; i + 1 < ids.length; i++) {
                    String w = t.idToToken(ids[i]);
                    boolean colour = Arrays.stream(Scene.Colour.values()).anyMatch(c -> c.word.equals(w));
                    boolean want = ex.pixels() != null && colour && read.contains(t.idToToken(ids[i + 1]))
                            && ex.labels()[i + 1] != Ops.IGNORE_INDEX;
                    int target = annotated.attend() == null ? TrainingExample.NO_TARGET : annotated.attend()[i];
                    if (want) {
                        expected++;
                        assertEquals(firstImage + Scene.Colour.valueOf(w.toUpperCase(java.util.Locale.ROOT)).ordinal(), target,
                                p.pid() + " position " + i);
                    } else {
                        assertEquals(TrainingExample.NO_TARGET, target, p.pid() + " position " + i);
                    }
                }
                assertEquals(expected, annotated.attentionTargets(), p.pid());
                if (p.skill().equals("Compare the numbers of two colors") || p.skill().equals("Name the shape of one color")) {
                    Matcher m = pair.matcher(p.solution());
                    int inSolution = 0;
                    while (m.find()) {
                        inSolution++;
                    }
                    assertTrue(inSolution >= 1 && annotated.attentionTargets() >= inSolution, p.pid() + ": " + p.solution());
                    counting++;
                }
            }
            assertTrue(counting > 5, counting + " counting problems");
        }
    }

    @Test
    void noTargetsWithoutAnImageOrWhereTheNumberIsNotSupervised() {
        SlotAttention slots = new SlotAttention(tok, cfg.imageTokenIndex());
        ScienceQaProblem map = problems.stream().filter(p -> p.skill().startsWith("Read a map")).findFirst().orElseThrow();
        TrainingExample ex = encoder.encode(map);
        assertTrue(slots.annotate(ex).attentionTargets() > 0);
        TrainingExample noImage = new TrainingExample(null, ex.inputIds(), ex.labels());
        assertSame(noImage, slots.annotate(noImage));
        int[] unsupervised = ex.labels().clone();
        Arrays.fill(unsupervised, Ops.IGNORE_INDEX);
        TrainingExample hidden = new TrainingExample(ex.pixels(), ex.inputIds(), unsupervised);
        assertSame(hidden, slots.annotate(hidden));
    }

    @Test
    void refusesTargetsOutsideTheCausalPrefix() {
        int[] ids = {1, 5, 6};
        int[] labels = {Ops.IGNORE_INDEX, 5, 6};
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> new TrainingExample(null, ids, labels, new int[] {-1, 2, -1}));
        assertTrue(e.getMessage().contains("position 1") && e.getMessage().contains("got 2"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> new TrainingExample(null, ids, labels, new int[] {-1, -1}));
        assertThrows(IllegalArgumentException.class, () -> new SlotAttention.Settings(0, 0, 0));
    }

    /** Text-only example of the tiny config with targets at two positions. */
    private static TrainingExample tinyExample(long seed) {
        SplittableRandom rng = new SplittableRandom(seed);
        int T = 9;
        int[] ids = new int[T];
        int[] labels = new int[T];
        ids[0] = TinyModels.BOS;
        labels[0] = Ops.IGNORE_INDEX;
        for (int t = 1; t < T; t++) {
            ids[t] = TinyModels.FIRST_WORD + rng.nextInt(TinyModels.VOCAB - TinyModels.FIRST_WORD);
            labels[t] = ids[t];
        }
        int[] attend = new int[T];
        Arrays.fill(attend, TrainingExample.NO_TARGET);
        attend[5] = 2;
        attend[8] = 0;
        return new TrainingExample(null, ids, labels, attend);
    }

    /**
     * -log softmax(q k^T / sqrt(Hd))[target] of query head h in layer 0, averaged over the targets,
     * from the parameters by plain loops: RMS norm of the token embeddings, the head's rows of
     * q_proj and of its key/value head's k_proj, RoPE in the rotate-half layout, causal softmax.
     */
    private static double scalarAttentionLoss(TrainableLlava m, TrainingExample ex, int h) {
        LlamaTextConfig t = m.config().textConfig();
        int d = t.hiddenSize();
        int hd = t.headDim();
        int kvh = h / (t.numAttentionHeads() / t.numKeyValueHeads());
        float[] emb = m.parameters().get(TrainableLlava.EMBED_TOKENS).data();
        float[] norm = m.parameters().get("language_model.model.layers.0.input_layernorm.weight").data();
        float[] wq = m.parameters().get("language_model.model.layers.0.self_attn.q_proj.weight").data();
        float[] wk = m.parameters().get("language_model.model.layers.0.self_attn.k_proj.weight").data();
        int T = ex.length();
        double[][] q = new double[T][hd];
        double[][] k = new double[T][hd];
        for (int pos = 0; pos < T; pos++) {
            int id = ex.inputIds()[pos];
            double ms = 0;
            for (int i = 0; i < d; i++) {
                ms += (double) emb[id * d + i] * emb[id * d + i];
            }
            double inv = 1 / Math.sqrt(ms / d + t.rmsNormEps());
            double[] x = new double[d];
            for (int i = 0; i < d; i++) {
                x[i] = emb[id * d + i] * inv * norm[i];
            }
            double[] qr = new double[hd];
            double[] kr = new double[hd];
            for (int o = 0; o < hd; o++) {
                for (int i = 0; i < d; i++) {
                    qr[o] += wq[(h * hd + o) * d + i] * x[i];
                    kr[o] += wk[(kvh * hd + o) * d + i] * x[i];
                }
            }
            for (int i = 0; i < hd / 2; i++) {
                double angle = pos * Math.pow(t.ropeTheta(), -2.0 * i / hd);
                double c = Math.cos(angle);
                double s = Math.sin(angle);
                q[pos][i] = qr[i] * c - qr[i + hd / 2] * s;
                q[pos][i + hd / 2] = qr[i + hd / 2] * c + qr[i] * s;
                k[pos][i] = kr[i] * c - kr[i + hd / 2] * s;
                k[pos][i + hd / 2] = kr[i + hd / 2] * c + kr[i] * s;
            }
        }
        double sum = 0;
        int n = 0;
        for (int pos = 0; pos < T; pos++) {
            int target = ex.attend()[pos];
            if (target == TrainingExample.NO_TARGET) {
                continue;
            }
            double[] s = new double[pos + 1];
            double max = Double.NEGATIVE_INFINITY;
            for (int j = 0; j <= pos; j++) {
                for (int i = 0; i < hd; i++) {
                    s[j] += q[pos][i] * k[j][i];
                }
                s[j] /= Math.sqrt(hd);
                max = Math.max(max, s[j]);
            }
            double z = 0;
            for (double v : s) {
                z += Math.exp(v - max);
            }
            sum += Math.log(z) + max - s[target];
            n++;
        }
        return sum / n;
    }

    @Test
    void attentionLossMatchesAScalarTwinAndItsGradientAFiniteDifference() {
        TrainableLlava m = TrainableLlava.initialize(TinyModels.config(), TinyModels.PAD, 3);
        TinyModels.randomise(m, 11, 0.5);
        List<TrainingExample> pack = List.of(tinyExample(1), tinyExample(2));
        for (int head = 0; head < 2; head++) {
            SlotAttention.Settings s = new SlotAttention.Settings(0, head, 0.5);
            Tensor[] parts = m.replica().lossParts(new Tape(), pack, s);
            double expected = (scalarAttentionLoss(m, pack.get(0), head) + scalarAttentionLoss(m, pack.get(1), head)) / 2;
            assertEquals(expected, parts[2].item(), 1e-4 * Math.max(1, expected), "head " + head);
            assertEquals(parts[1].item() + 0.5 * parts[2].item(), parts[0].item(), 1e-5);
            assertEquals(m.replica().loss(new Tape(), pack).item(), parts[1].item(), 1e-5, "the next-token part is unchanged");
        }
        // d(attention loss)/d(q_proj weight) of head 1 by the tape against a central difference
        SlotAttention.Settings s = new SlotAttention.Settings(0, 1, 1);
        TrainableLlava r = m.replica();
        Tape tape = new Tape();
        Tensor loss = r.lossParts(tape, pack, s)[2];
        tape.backward(loss, new float[] {1f});
        Tensor wq = r.parameters().get("language_model.model.layers.0.self_attn.q_proj.weight");
        int hd = m.config().textConfig().headDim();
        int d = m.config().textConfig().hiddenSize();
        for (int idx : new int[] {hd * d + 3, hd * d + 5 * d + 7, (2 * hd - 1) * d}) {
            float keep = wq.data()[idx];
            double eps = 1e-3;
            wq.data()[idx] = (float) (keep + eps);
            double up = r.lossParts(new Tape(), pack, s)[2].item();
            wq.data()[idx] = (float) (keep - eps);
            double down = r.lossParts(new Tape(), pack, s)[2].item();
            wq.data()[idx] = keep;
            double fd = (up - down) / (2 * eps);
            assertEquals(fd, wq.grad()[idx], 2e-3 * Math.max(1, Math.abs(fd)), "q_proj entry " + idx);
        }
        assertEquals(0f, wq.grad()[3], "head 0's rows get no gradient from head 1's attention loss");
    }

    @Test
    void trainingTeachesTheHeadItsTargets() {
        LlavaConfig c = TinyModels.config();
        List<TrainingExample> data = new ArrayList<>();
        for (TrainingExample ex : TinyModels.task(c, 24, 9, true)) {
            int[] attend = null;
            if (ex.pixels() != null) {
                attend = new int[ex.length()];
                Arrays.fill(attend, TrainingExample.NO_TARGET);
                int answer = ex.length() - 3; // the position that predicts the answer word
                attend[answer] = 1 + (ex.inputIds()[answer] % c.imageSeqLength()); // an image token the word picks
            }
            data.add(ex.withAttend(attend));
        }
        SlotAttention.Settings s = new SlotAttention.Settings(0, 0, 1);
        TrainableLlava m = TrainableLlava.initialize(c, TinyModels.PAD, 1);
        double before = m.replica().lossParts(new Tape(), data, s)[2].item();
        new Trainer(m, data, new Trainer.Options(12, 4, 1e-2, 0.1, 0.1, 0.01, 1.0, 42, 0, 1, 0, 1), null)
                .superviseAttention(s).train(false, null);
        double after = m.replica().lossParts(new Tape(), data, s)[2].item();
        assertTrue(before > 1.5, "at the start attention is spread: " + before);
        assertTrue(after < 0.5 * before, "attention loss " + before + " -> " + after);
        assertNull(m.replica().lossParts(new Tape(), TinyModels.task(c, 4, 9, false), s)[2]);
    }
}
