package org.qvlm4j.quant;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.HashMap;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.qvlm4j.io.safetensors.SafeTensors;
import org.qvlm4j.kernels.WeightMatrix;
import org.qvlm4j.model.ActivationTap;
import org.qvlm4j.model.Linear;
import org.qvlm4j.model.LlavaModel;

/** Fake-quantized evaluation of plans on the tiny LLaVA fixture. */
class FakeQuantModelTest {
    /** Relative L2 error of W8A8 logits vs FP that the tiny model must stay under. */
    static final double W8A8_MAX_REL_ERR = 0.05;
    /**
     * The runtime's vector reductions change their summation order when the JIT recompiles them, so
     * two FP forwards agree bit for bit only if no recompilation fell between them: bit-identity is
     * checked inside a window (FP, tested, FP) whose two FP runs agree, retried this many times.
     */
    static final int MAX_WINDOWS = 50;

    static LlavaModel model;
    static int[] ids;
    static float[] pixels;
    static float[] fpLogits;
    /** Per-input-channel min/max of every linear input in an FP forward: static calibration for the test. */
    static Map<String, Ranges> channelRanges;

    @BeforeAll
    static void load() {
        model = LlavaModel.load(QuantPlanTest.TINY);
        try (SafeTensors ref = SafeTensors.open(QuantPlanTest.TINY.resolve("reference_forward.safetensors"))) {
            long[] l = ref.get("input_ids").toLongArray();
            ids = new int[l.length];
            for (int i = 0; i < l.length; i++) {
                ids[i] = Math.toIntExact(l[i]);
            }
            pixels = ref.get("pixel_values").toFloatArray();
        }
        fpLogits = model.forward(ids, pixels);
        Map<String, float[][]> acc = new HashMap<>();
        model.setActivationTap((site, data, rows, cols) -> {
            if (!site.endsWith(".in") || TensorCategory.find(site.substring(0, site.length() - 3)).isEmpty()) {
                return;
            }
            float[][] lohi = acc.computeIfAbsent(site, k -> {
                float[][] a = new float[2][cols];
                java.util.Arrays.fill(a[0], Float.POSITIVE_INFINITY);
                java.util.Arrays.fill(a[1], Float.NEGATIVE_INFINITY);
                return a;
            });
            for (int r = 0; r < rows; r++) {
                for (int c = 0; c < cols; c++) {
                    lohi[0][c] = Math.min(lohi[0][c], data[r * cols + c]);
                    lohi[1][c] = Math.max(lohi[1][c], data[r * cols + c]);
                }
            }
        });
        model.forward(ids, pixels);
        model.setActivationTap(null);
        channelRanges = new HashMap<>();
        acc.forEach((site, a) -> channelRanges.put(site, new Ranges(a[0], a[1])));
    }

    @AfterAll
    static void close() {
        model.close();
    }

    private Map<String, WeightMatrix> originals = Map.of();

    @AfterEach
    void restore() {
        model.setActivationTap(null);
        WeightFakeQuantizer.restore(model, originals);
        originals = Map.of();
    }

    float[] run(QuantPlan plan, ActivationTap next) {
        originals = WeightFakeQuantizer.apply(model, plan);
        model.setActivationTap(new FakeQuantTap(plan, channelRanges, next));
        float[] logits = model.forward(ids, pixels);
        model.setActivationTap(null);
        WeightFakeQuantizer.restore(model, originals);
        originals = Map.of();
        return logits;
    }

    static double relErr(float[] a, float[] ref) {
        double num = 0;
        double den = 0;
        for (int i = 0; i < a.length; i++) {
            num += ((double) a[i] - ref[i]) * ((double) a[i] - ref[i]);
            den += (double) ref[i] * ref[i];
        }
        return Math.sqrt(num / den);
    }

    @Test
    void emptyPlanGivesBitIdenticalLogits() {
        int stableWindows = 0;
        for (int w = 0; w < MAX_WINDOWS; w++) {
            float[] before = model.forward(ids, pixels);
            float[] tested = run(QuantPlan.none(), null);
            float[] after = model.forward(ids, pixels);
            if (java.util.Arrays.equals(before, after)) {
                stableWindows++;
                assertArrayEquals(before, tested, "empty plan changed the logits");
                if (stableWindows == 2) {
                    return;
                }
            }
        }
        throw new AssertionError("the FP forward never repeated bit for bit in " + MAX_WINDOWS + " windows");
    }

    @Test
    void errorGrowsAsBitsShrink() {
        Map<String, WeightMatrix> before = new HashMap<>();
        for (Linear l : model.linears()) {
            before.put(l.name(), l.weight());
        }
        double e8 = relErr(run(QuantPlan.preset(QuantPreset.W8A8), null), fpLogits);
        double e6 = relErr(run(QuantPlan.preset(QuantPreset.W6A6), null), fpLogits);
        double e4 = relErr(run(QuantPlan.preset(QuantPreset.W4A4), null), fpLogits);
        assertTrue(e8 > 0 && e8 < W8A8_MAX_REL_ERR, "W8A8 relative error " + e8);
        assertTrue(e6 > e8, "W6A6 " + e6 + " vs W8A8 " + e8);
        assertTrue(e4 > e6, "W4A4 " + e4 + " vs W6A6 " + e6);
        double w4a16 = relErr(run(QuantPlan.preset(QuantPreset.W4A16), null), fpLogits);
        double w8a16 = relErr(run(QuantPlan.preset(QuantPreset.W8A16), null), fpLogits);
        assertTrue(w8a16 > 0 && w8a16 < w4a16, "W8A16 " + w8a16 + " vs W4A16 " + w4a16);
        double nf4 = relErr(run(QuantPlan.builder().override("all=nf4-b64-dq256").build(), null), fpLogits);
        assertTrue(nf4 > w8a16, "NF4 weights " + nf4 + " vs 8-bit weights " + w8a16);
        for (Linear l : model.linears()) {
            assertTrue(before.get(l.name()) == l.weight(), "restore puts back the original weight of " + l.name());
        }
    }

    @Test
    void plannedInputsLandOnTheQuantizationGridAndOthersAreUntouched() {
        QuantPlan plan = QuantPlan.builder().preset(QuantPreset.W4A4).override("llm.up=fp").build();
        Map<String, Set<Float>> distinctPerColumn0 = new HashMap<>();
        Map<String, Integer> distinctPerRow0 = new HashMap<>();
        Set<String> seen = new HashSet<>();
        run(plan, (site, data, rows, cols) -> {
            seen.add(site);
            Set<Float> col = new HashSet<>();
            for (int r = 0; r < rows; r++) {
                col.add(data[r * cols]);
            }
            distinctPerColumn0.put(site, col);
            Set<Float> row = new HashSet<>();
            for (int c = 0; c < cols; c++) {
                row.add(data[c]);
            }
            distinctPerRow0.put(site, row.size());
        });
        int levels = 1 << 4;
        for (String site : seen) {
            if (!site.endsWith(".in")) {
                continue;
            }
            String name = site.substring(0, site.length() - 3);
            if (TensorCategory.find(name).isEmpty()) {
                continue;
            }
            if (name.startsWith("llm.layers.") && !name.endsWith("up_proj")) {
                assertTrue(distinctPerColumn0.get(site).size() <= levels, site + ": per-channel 4-bit column holds "
                        + distinctPerColumn0.get(site).size() + " values");
            } else if (name.startsWith("vision.layers.") || name.startsWith("projector.")) {
                assertTrue(distinctPerRow0.get(site) <= levels, site + ": per-token 4-bit row holds "
                        + distinctPerRow0.get(site) + " values");
            }
        }
        String up = "llm.layers.0.mlp.up_proj.in";
        assertTrue(distinctPerColumn0.get(up).size() > levels || distinctPerRow0.get(up) > levels,
                "llm.up is FP in this plan, its input should not be on a 4-bit grid");
    }

    @Test
    void weightsAreReplacedByTheirPerRowImage() {
        QuantPlan plan = QuantPlan.preset(QuantPreset.W4A16);
        Linear down = model.linears().stream().filter(l -> l.name().equals("llm.layers.1.mlp.down_proj")).findFirst()
                .orElseThrow();
        float[] w = down.weight().toFloatArray();
        originals = WeightFakeQuantizer.apply(model, plan);
        float[] expected = w.clone();
        new UniformQuantizer(plan.entry(TensorCategory.LLM_DOWN).weight()).fakeQuantize(expected, down.outFeatures(),
                down.inFeatures());
        assertArrayEquals(expected, down.weight().toFloatArray());
        assertEquals(model.linears().size() - 2, originals.size(), "all but patch embedding and lm_head");
        assertFalse(originals.containsKey("lm_head"));
    }

    @Test
    void missingStaticRangesNameTheSite() {
        QuantPlan plan = QuantPlan.preset(QuantPreset.W8A8);
        model.setActivationTap(new FakeQuantTap(plan, Map.of()));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> model.forward(ids, pixels));
        assertTrue(e.getMessage().contains("llm.layers.0.self_attn.q_proj.in"), e.getMessage());
    }

    @Test
    void quantizedEmbeddingsAreRejected() {
        QuantPlan plan = QuantPlan.builder().weight(TensorCategory.EMBEDDINGS, QuantSpec.parse("w8-asym-channel"))
                .build();
        assertThrows(IllegalArgumentException.class, () -> WeightFakeQuantizer.apply(model, plan));
    }
}
