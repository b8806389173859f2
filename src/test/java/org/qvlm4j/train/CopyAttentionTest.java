package org.qvlm4j.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qvlm4j.data.ScienceQaProblem;
import org.qvlm4j.data.SynthBenchmark;
import org.qvlm4j.io.text.LlavaTokenizer;
import org.qvlm4j.tensor.Ops;
import org.qvlm4j.tensor.Tape;
import org.qvlm4j.tensor.Tensor;

/**
 * Copy attention targets on encoded benchmark problems, checked against the facts read from the
 * problems' own text (the hint's "The cup is 4 degrees." and "Belmar sells 4 apples.", the options'
 * "(A) 4"), and the two supervised heads' losses together.
 */
class CopyAttentionTest {
    private static final Pattern FACT = Pattern.compile("(?:The )?(\\w+) (?:is|sells) (\\d) ");
    private static final Pattern PAIR = Pattern.compile("\\b([A-Za-z]+) (?:is |sells )?(\\d)\\b");

    @TempDir
    static Path dir;
    static List<ScienceQaProblem> problems;
    static LlavaTokenizer tok;
    static BenchmarkModelDir bench;
    static QcmExampleEncoder encoder;

    @BeforeAll
    static void benchmark() {
        bench = BenchmarkModelDir.write(dir, new SynthBenchmark.Options(9, 800, 0, 0, SynthBenchmark.MIN_IMAGE_SIZE,
                SynthBenchmark.Solutions.COORDINATES), 32);
        problems = bench.problems();
        tok = bench.tok();
        encoder = new QcmExampleEncoder(tok, bench.cfg(), bench.images(), QcmExampleEncoder.AnswerStyle.STEPWISE)
                .supervisePrompt(true);
    }

    @AfterAll
    static void close() {
        tok.close();
    }

    /** The item -> number facts a problem states: its hint's sentences and its options' letters. */
    private static Map<String, String> facts(ScienceQaProblem p) {
        Map<String, String> f = new HashMap<>();
        Matcher m = FACT.matcher(p.hint() + " ");
        while (m.find()) {
            f.merge(m.group(1), m.group(2), (a, b) -> "ambiguous");
        }
        for (int i = 0; i < p.choices().size(); i++) {
            if (p.choices().get(i).matches("\\d")) {
                f.put(String.valueOf((char) ('A' + i)), p.choices().get(i));
            }
        }
        return f;
    }

    @Test
    void answerNumbersCopiedFromAStatedFactTargetThatFactsNumber() {
        CopyAttention copy = new CopyAttention(tok);
        int textFamilies = 0;
        int targets = 0;
        for (ScienceQaProblem p : problems) {
            TrainingExample ex = encoder.encode(p);
            TrainingExample annotated = copy.annotate(ex);
            int[] ids = ex.inputIds();
            int start = copy.answerStart(ids);
            assertTrue(start > 0, p.pid());
            Map<String, String> facts = facts(p);
            int[] t2 = annotated.copy() == null ? new int[ids.length] : annotated.copy();
            if (annotated.copy() == null) {
                assertSame(ex, annotated);
                Arrays.fill(t2, TrainingExample.NO_TARGET);
            }
            for (int t = 0; t < ids.length; t++) {
                if (t2[t] == TrainingExample.NO_TARGET) {
                    continue;
                }
                targets++;
                String number = tok.idToToken(ids[t + 1]);
                assertTrue(t >= start && t2[t] < start, p.pid() + ": an answer position reads the prompt");
                assertEquals(number, tok.idToToken(ids[t2[t]]), p.pid() + " position " + t);
                boolean cued = false;
                for (int c = t; c > t - CopyAttention.CUES && c >= start; c--) {
                    String cue = tok.idToToken(ids[c]);
                    if (number.equals(facts.get(cue))) {
                        cued = true;
                        // the target is the number right after that item's own prompt statement
                        boolean after = false;
                        for (int k = 1; k <= CopyAttention.WINDOW; k++) {
                            after |= tok.idToToken(ids[t2[t] - k]).equals(cue);
                        }
                        assertTrue(after, p.pid() + ": target " + t2[t] + " follows " + cue);
                    }
                }
                assertTrue(cued, p.pid() + " position " + t + ": the number is a stated fact of an item just named");
            }
            if (p.skill().equals("Compare temperatures from a text") || p.skill().equals("Compare amounts from a text")) {
                // every "item N" the solution copies from an unambiguous fact has its target
                Matcher m = PAIR.matcher(p.solution());
                int expected = 0;
                while (m.find()) {
                    expected += m.group(2).equals(facts.get(m.group(1))) ? 1 : 0;
                }
                assertTrue(expected > 0, p.pid() + ": " + p.solution());
                int inSolution = 0; // targets not of an option's letter ("A . 4")
                for (int t = start; t < ids.length; t++) {
                    inSolution += t2[t] != TrainingExample.NO_TARGET && !tok.idToToken(ids[t]).equals(".") ? 1 : 0;
                }
                assertTrue(inSolution >= expected, p.pid() + ": " + inSolution + " targets for " + expected + " copies in "
                        + p.solution());
                textFamilies++;
            }
        }
        assertTrue(textFamilies > 20 && targets > 200, textFamilies + " text comparisons, " + targets + " targets");
    }

    @Test
    void unsupervisedNumbersAndSequencesWithoutAnAnswerGetNoTargets() {
        CopyAttention copy = new CopyAttention(tok);
        ScienceQaProblem temps = problems.stream().filter(p -> p.skill().equals("Compare temperatures from a text"))
                .findFirst().orElseThrow();
        TrainingExample ex = encoder.encode(temps);
        assertTrue(copy.annotate(ex).copyTargets() > 0);
        int[] hidden = ex.labels().clone();
        Arrays.fill(hidden, Ops.IGNORE_INDEX);
        TrainingExample unsupervised = new TrainingExample(ex.pixels(), ex.inputIds(), hidden);
        assertSame(unsupervised, copy.annotate(unsupervised));
        int start = copy.answerStart(ex.inputIds());
        int[] promptOnly = Arrays.copyOf(ex.inputIds(), start - 2);
        TrainingExample noAnswer = new TrainingExample(null, promptOnly, Arrays.copyOf(ex.labels(), start - 2));
        assertSame(noAnswer, copy.annotate(noAnswer));
    }

    /**
     * Both lessons at once: the total is the next-token loss plus each weight times its own head's
     * loss, and each equals that lesson given alone.
     */
    @Test
    void slotAndCopyLessonsAddTheirWeightedLosses() {
        SlotAttention slots = new SlotAttention(tok, bench.cfg().imageTokenIndex());
        CopyAttention copy = new CopyAttention(tok);
        List<TrainingExample> pack = java.util.stream.Stream.concat(
                problems.stream().filter(p -> p.skill().startsWith("Read a map")).limit(2),
                problems.stream().filter(p -> p.skill().equals("Compare amounts from a text")).limit(2))
                .map(p -> copy.annotate(slots.annotate(encoder.encode(p)))).toList();
        assertTrue(pack.stream().mapToInt(TrainingExample::attentionTargets).sum() > 0);
        assertTrue(pack.stream().mapToInt(TrainingExample::copyTargets).sum() > 0);
        TrainableLlava model = TrainableLlava.initialize(bench.cfg(), TinyModels.PAD, 4);
        SlotAttention.Settings s = new SlotAttention.Settings(0, 0, 0.5);
        SlotAttention.Settings c = new SlotAttention.Settings(0, 1, 2.0);
        Tensor[] both = model.lossParts(new Tape(), pack, s, c);
        Tensor[] slotOnly = model.lossParts(new Tape(), pack, s, null);
        Tensor[] copyOnly = model.lossParts(new Tape(), pack, null, c);
        Tensor plain = model.loss(new Tape(), pack);
        assertEquals(plain.item(), both[1].item(), 1e-6);
        assertEquals(slotOnly[2].item(), both[2].item(), 1e-6);
        assertEquals(copyOnly[3].item(), both[3].item(), 1e-6);
        assertEquals(both[1].item() + 0.5 * both[2].item() + 2.0 * both[3].item(), both[0].item(), 1e-5);
        assertTrue(both[3].item() > 0.5, "an untrained head does not look at the copied number: " + both[3].item());
    }
}
