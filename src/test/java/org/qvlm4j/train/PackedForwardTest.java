package org.qvlm4j.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.qvlm4j.io.config.LlavaConfig;
import org.qvlm4j.tensor.Ops;
import org.qvlm4j.tensor.Tape;
import org.qvlm4j.tensor.Tensor;

/**
 * Several examples in one packed forward against each example's own forward (the independent
 * reference): every example's logits rows, the token-averaged loss, and every parameter's gradient
 * (against the supervised-token-weighted sum of the examples' own gradients), for the architecture
 * variants of {@link TrainableLlavaTest}, with sequences of different lengths, with and without images.
 */
class PackedForwardTest {
    /** Difference allowed relative to the largest entry: the same sums in another order. */
    private static final double REL_TOL = 2e-5;

    static java.util.stream.Stream<org.junit.jupiter.params.provider.Arguments> variants() {
        return TrainableLlavaTest.variants();
    }

    /** Examples of lengths 11, 7 + F, 4, 13 + F and 9 (images on the second and fourth), random ids and labels. */
    private static List<TrainingExample> examples(LlavaConfig cfg, long seed) {
        SplittableRandom rng = new SplittableRandom(seed);
        int F = cfg.imageSeqLength();
        int vocab = cfg.textConfig().vocabSize();
        int[][] shapes = {{11, 0}, {7, 1}, {4, 0}, {13, 1}, {9, 0}};
        List<TrainingExample> out = new ArrayList<>();
        for (int[] s : shapes) {
            boolean image = s[1] == 1;
            int T = s[0] + (image ? F : 0);
            int[] ids = new int[T];
            int[] labels = new int[T];
            for (int t = 0; t < T; t++) {
                ids[t] = 5 + rng.nextInt(vocab - 5);
                labels[t] = t > 0 && rng.nextInt(3) > 0 ? 5 + rng.nextInt(vocab - 5) : Ops.IGNORE_INDEX;
            }
            if (image) {
                for (int f = 0; f < F; f++) {
                    ids[2 + f] = cfg.imageTokenIndex();
                }
            }
            out.add(new TrainingExample(image ? TinyModels.pixels(cfg, rng) : null, ids, labels));
        }
        return out;
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("variants")
    void packedLogitsAreEachExamplesOwnLogits(String name, LlavaConfig cfg, int pad) {
        TrainableLlava m = TrainableLlava.initialize(cfg, pad, 7);
        TinyModels.randomise(m, 11, TrainableLlavaTest.WEIGHT_AMP);
        List<TrainingExample> pack = examples(cfg, 5);
        List<int[]> ids = new ArrayList<>();
        List<float[]> images = new ArrayList<>();
        for (TrainingExample ex : pack) {
            ids.add(ex.inputIds());
            images.add(ex.pixels());
        }
        float[] packed = m.logits(Tape.disabled(), ids, images, TrainableLlava.Hook.NONE).data();
        int V = cfg.textConfig().vocabSize();
        int row = 0;
        for (int e = 0; e < pack.size(); e++) {
            float[] own = m.logits(Tape.disabled(), pack.get(e).inputIds(), pack.get(e).pixels()).data();
            assertClose(own, Arrays.copyOfRange(packed, row * V, row * V + own.length), "logits of example " + e);
            row += pack.get(e).length();
        }
        assertEquals(row * V, packed.length);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("variants")
    void packedGradientIsTheTokenWeightedSumOfTheExamplesGradients(String name, LlavaConfig cfg, int pad) {
        TrainableLlava m = TrainableLlava.initialize(cfg, pad, 7);
        TinyModels.randomise(m, 13, TrainableLlavaTest.WEIGHT_AMP);
        List<TrainingExample> pack = examples(cfg, 6);
        long total = pack.stream().mapToLong(TrainingExample::supervisedTokens).sum();

        Map<String, double[]> expected = new HashMap<>();
        double expectedLoss = 0;
        for (TrainingExample ex : pack) {
            zeroGrads(m);
            Tape tape = new Tape();
            Tensor l = m.loss(tape, ex);
            float w = (float) ((double) ex.supervisedTokens() / total);
            tape.backward(l, new float[] {w});
            expectedLoss += w * l.item();
            for (Map.Entry<String, Tensor> p : m.parameters().entrySet()) {
                float[] g = p.getValue().grad();
                double[] acc = expected.computeIfAbsent(p.getKey(), k -> new double[p.getValue().data().length]);
                if (g != null) {
                    for (int i = 0; i < g.length; i++) {
                        acc[i] += g[i];
                    }
                }
            }
        }

        zeroGrads(m);
        Tape tape = new Tape();
        Tensor l = m.loss(tape, pack);
        tape.backward(l, new float[] {1f});
        assertEquals(expectedLoss, l.item(), 1e-5 * Math.abs(expectedLoss), "packed loss");
        int compared = 0;
        for (Map.Entry<String, Tensor> p : m.parameters().entrySet()) {
            double[] want = expected.get(p.getKey());
            float[] got = p.getValue().grad();
            double max = Arrays.stream(want).map(Math::abs).max().orElse(0);
            if (max == 0) {
                assertTrue(got == null || Arrays.stream(toDouble(got)).allMatch(x -> x == 0), p.getKey() + " has no gradient");
                continue;
            }
            // Plus an absolute floor: some gradients are zero in exact arithmetic (a key bias shifts
            // every score of a query alike) and are rounding noise of order 1e-12 here.
            for (int i = 0; i < want.length; i++) {
                assertEquals(want[i], got[i], REL_TOL * max + 1e-9, p.getKey() + "[" + i + "]");
            }
            compared++;
        }
        assertTrue(compared > m.parameters().size() / 2, "most parameters receive gradients: " + compared);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("variants")
    void mismatchedListsAndMissingImagesAreRefused(String name, LlavaConfig cfg, int pad) {
        TrainableLlava m = TrainableLlava.initialize(cfg, pad, 7);
        List<TrainingExample> pack = examples(cfg, 5);
        List<int[]> ids = pack.stream().map(TrainingExample::inputIds).toList();
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> m.logits(Tape.disabled(), ids, Arrays.asList(null, null), TrainableLlava.Hook.NONE));
        assertTrue(e.getMessage().contains("5 sequences and 2 image entries"), e.getMessage());
        List<float[]> noImages = Arrays.asList(new float[5][]);
        e = assertThrows(IllegalArgumentException.class,
                () -> m.logits(Tape.disabled(), ids, noImages, TrainableLlava.Hook.NONE));
        assertTrue(e.getMessage().contains("of sequence 1") && e.getMessage().contains("no pixel values"), e.getMessage());
    }

    private static void zeroGrads(TrainableLlava m) {
        for (Tensor p : m.parameters().values()) {
            p.zeroGrad();
        }
    }

    private static double[] toDouble(float[] f) {
        double[] d = new double[f.length];
        for (int i = 0; i < f.length; i++) {
            d[i] = f[i];
        }
        return d;
    }

    private static void assertClose(float[] expected, float[] actual, String what) {
        assertEquals(expected.length, actual.length, what);
        double max = 0;
        for (float e : expected) {
            max = Math.max(max, Math.abs(e));
        }
        assertTrue(max > 0.1, what + " should be far from zero, max " + max);
        for (int i = 0; i < expected.length; i++) {
            assertEquals(expected[i], actual[i], REL_TOL * max, what + " [" + i + "]");
        }
    }
}
