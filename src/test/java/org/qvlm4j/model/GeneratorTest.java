package org.qvlm4j.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qvlm4j.io.safetensors.SafeTensors;
import org.qvlm4j.kernels.DType;

/** Sampling rules (HF temperature and top-p) and generation stopping. */
class GeneratorTest {
    static final int DRAWS = 40_000;
    /** About 5 standard errors of a frequency estimate at DRAWS draws. */
    static final double FREQ_TOL = 0.013;

    static double[] frequencies(GenerationConfig cfg, float[] logits) {
        Sampler s = new Sampler(cfg);
        double[] f = new double[logits.length];
        for (int i = 0; i < DRAWS; i++) {
            f[s.sample(logits, logits.length)] += 1.0 / DRAWS;
        }
        return f;
    }

    static float[] logitsOf(double... probs) {
        float[] l = new float[probs.length];
        for (int i = 0; i < probs.length; i++) {
            l[i] = (float) Math.log(probs[i]);
        }
        return l;
    }

    @Test
    void greedyIsArgmaxWithFirstTie() {
        Sampler s = new Sampler(GenerationConfig.greedy(1));
        assertEquals(2, s.sample(new float[] {0.1f, 0.5f, 0.9f, 0.9f, -1f}, 5));
        assertEquals(0, s.sample(new float[] {3f, 3f}, 2));
    }

    @Test
    void fullDistributionSamplingFollowsSoftmax() {
        double[] p = {0.5, 0.3, 0.15, 0.05};
        double[] f = frequencies(new GenerationConfig(1, 1.0, 1.0, 42), logitsOf(p));
        assertArrayEquals(p, f, FREQ_TOL);
    }

    @Test
    void topPKeepsTheSmallestSetReachingP() {
        // 0.5 < 0.7, 0.5 + 0.3 >= 0.7: tokens 0 and 1 survive, renormalized to 5/8 and 3/8.
        double[] f = frequencies(new GenerationConfig(1, 1.0, 0.7, 3), logitsOf(0.5, 0.3, 0.15, 0.05));
        assertArrayEquals(new double[] {0.625, 0.375, 0, 0}, f, FREQ_TOL);
        assertEquals(0.0, f[2]);
        assertEquals(0.0, f[3]);
        // A tiny top_p still keeps one token: the most likely.
        double[] one = frequencies(new GenerationConfig(1, 1.0, 1e-6, 3), logitsOf(0.2, 0.5, 0.3));
        assertArrayEquals(new double[] {0, 1, 0}, one, 1e-9);
    }

    @Test
    void temperatureDividesTheLogits() {
        float[] logits = {1.0f, -0.5f, 2.0f, 0.25f, 0f};
        float[] halved = new float[logits.length];
        for (int i = 0; i < logits.length; i++) {
            halved[i] = logits[i] / 2;
        }
        Sampler hot = new Sampler(new GenerationConfig(1, 2.0, 0.9, 11));
        Sampler plain = new Sampler(new GenerationConfig(1, 1.0, 0.9, 11));
        for (int i = 0; i < 1000; i++) {
            assertEquals(plain.sample(halved, 5), hot.sample(logits, 5));
        }
    }

    @Test
    void seededSamplingIsReproducibleAndStreamsEveryToken() {
        try (LlavaModel m = LlavaModel.load(FixtureParityTest.DIR)) {
            int[] ids = {1, 5, 6, 7};
            GenerationConfig cfg = new GenerationConfig(12, 1.5, 0.95, 1234);
            List<Integer> streamed = new ArrayList<>();
            int[] a = new Generator(m).generate(ids, null, cfg, (token, index) -> streamed.add(token));
            int[] b = new Generator(m).generate(ids, null, cfg, null);
            assertArrayEquals(a, b);
            assertArrayEquals(a, streamed.stream().mapToInt(Integer::intValue).toArray());
            int[] c = new Generator(m).generate(ids, null, new GenerationConfig(12, 1.5, 0.95, 99), null);
            assertNotEquals(java.util.Arrays.toString(a), java.util.Arrays.toString(c));
        }
    }

    @Test
    void stopsAfterEndOfSequence(@TempDir Path tmp) {
        int[] ids;
        float[] pixels;
        int[] greedy;
        try (SafeTensors ref = SafeTensors.open(FixtureParityTest.DIR.resolve("reference_forward.safetensors"))) {
            ids = TestArrays.toInts(ref.get("input_ids").toLongArray());
            pixels = ref.get("pixel_values").toFloatArray();
            greedy = TestArrays.toInts(ref.get("greedy_new_tokens").toLongArray());
        }
        // HF's greedy output is 54 x7 then 75; with 75 as an eos id generation ends there, eos included.
        ObjectNode cfg = TestCheckpoints.fixtureConfig();
        VariantParityTest.text(cfg).putArray("eos_token_id").add(2).add(greedy[7]);
        Path dir = TestCheckpoints.modelDir(tmp, cfg.toString(), TestCheckpoints.fixtureTensors(), DType.F32);
        try (LlavaModel m = LlavaModel.load(dir)) {
            int[] out = new Generator(m).generate(ids, pixels, GenerationConfig.greedy(20), null);
            assertArrayEquals(greedy, out);
        }
    }

    @Test
    void rejectsBadSettings() {
        assertThrows(IllegalArgumentException.class, () -> new GenerationConfig(-1, 0, 1, 0));
        assertThrows(IllegalArgumentException.class, () -> new GenerationConfig(1, -0.1, 1, 0));
        assertThrows(IllegalArgumentException.class, () -> new GenerationConfig(1, 1, 0, 0));
        assertThrows(IllegalArgumentException.class, () -> new GenerationConfig(1, 1, 1.5, 0));
    }
}
