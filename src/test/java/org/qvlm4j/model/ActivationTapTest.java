package org.qvlm4j.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.qvlm4j.io.safetensors.SafeTensors;
import org.qvlm4j.kernels.WeightMatrix;

/** Site names, observed values and in-place rewriting of activations. */
class ActivationTapTest {
    static LlavaModel model;
    static SafeTensors ref;
    static int[] ids;
    static float[] pixels;

    @BeforeAll
    static void load() {
        model = LlavaModel.load(FixtureParityTest.DIR);
        ref = SafeTensors.open(FixtureParityTest.DIR.resolve("reference_forward.safetensors"));
        ids = TestArrays.toInts(ref.get("input_ids").toLongArray());
        pixels = ref.get("pixel_values").toFloatArray();
    }

    @AfterAll
    static void close() {
        model.setActivationTap(null);
        model.close();
        ref.close();
    }

    @Test
    void everyLinearAndLayerIsTappedOnceWithItsShape() {
        List<String> sites = new ArrayList<>();
        Map<String, float[]> values = new HashMap<>();
        Map<String, int[]> shapes = new HashMap<>();
        model.setActivationTap((site, data, rows, cols) -> {
            sites.add(site);
            values.put(site, java.util.Arrays.copyOf(data, rows * cols));
            shapes.put(site, new int[] {rows, cols});
        });
        try {
            model.forward(ids, pixels);
        } finally {
            model.setActivationTap(null);
        }
        List<String> expected = new ArrayList<>();
        for (Linear l : model.linears()) {
            expected.add(l.name() + ".in");
            expected.add(l.name() + ".out");
        }
        for (int i = 0; i < 2; i++) {
            expected.add("vision.layers." + i + ".in");
            expected.add("vision.layers." + i + ".out");
            expected.add("llm.layers." + i + ".in");
            expected.add("llm.layers." + i + ".out");
        }
        assertEquals(new java.util.TreeSet<>(expected), new java.util.TreeSet<>(sites));
        assertEquals(expected.size(), sites.size(), "each site once");
        assertEquals("vision.embeddings.patch_embedding.in", sites.get(0));
        assertEquals("lm_head.out", sites.get(sites.size() - 1));
        assertTrue(sites.contains("vision.layers.1.self_attn.q_proj.in"));
        assertTrue(sites.contains("llm.layers.0.mlp.down_proj.out"));
        assertArrayEquals(new int[] {21, 37}, shapes.get("llm.layers.0.mlp.down_proj.in"));
        assertArrayEquals(new int[] {16, 12}, shapes.get("vision.embeddings.patch_embedding.in"));
        TestArrays.assertClose(ref.get("vision_hidden_states_last").toFloatArray(), values.get("vision.layers.1.out"),
                FixtureParityTest.TOL, "vision.layers.1.out");
        TestArrays.assertClose(ref.get("image_features").toFloatArray(), values.get("projector.linear_2.out"),
                FixtureParityTest.TOL, "projector.linear_2.out");
        TestArrays.assertClose(ref.get("logits").toFloatArray(), values.get("lm_head.out"), FixtureParityTest.TOL,
                "lm_head.out");
    }

    @Test
    void decodeStepsTapOneRow() {
        List<Integer> rows = new ArrayList<>();
        LlavaModel.Session s = model.newSession(ids.length + 1);
        s.prefill(ids, pixels);
        model.setActivationTap((site, data, r, c) -> rows.add(r));
        try {
            s.decode(9);
        } finally {
            model.setActivationTap(null);
        }
        assertEquals(2 * (2 * 7 + 2) + 2, rows.size());
        assertTrue(rows.stream().allMatch(r -> r == 1));
    }

    /**
     * Doubling the input of one linear in a tap equals doubling its weight: the rewritten input
     * is what the linear uses, and only that linear (q_proj shares its input with k_proj and v_proj).
     */
    @Test
    void rewritingALinearInputEqualsScalingItsWeight() {
        String target = "llm.layers.0.self_attn.q_proj";
        Linear q = model.linears().stream().filter(l -> l.name().equals(target)).findFirst().orElseThrow();
        model.setActivationTap((site, data, rows, cols) -> {
            if (site.equals(target + ".in")) {
                for (int i = 0; i < rows * cols; i++) {
                    data[i] *= 2;
                }
            }
        });
        float[] viaTap;
        try {
            viaTap = model.forward(ids, pixels);
        } finally {
            model.setActivationTap(null);
        }
        WeightMatrix original = q.weight();
        float[] w = original.toFloatArray();
        for (int i = 0; i < w.length; i++) {
            w[i] *= 2;
        }
        q.replaceWeight(WeightMatrix.ofFloats(w, original.rows(), original.cols()));
        float[] viaWeight;
        try {
            viaWeight = model.forward(ids, pixels);
        } finally {
            q.replaceWeight(original);
        }
        assertArrayEquals(viaWeight, viaTap);
        TestArrays.assertClose(ref.get("logits").toFloatArray(), model.forward(ids, pixels), FixtureParityTest.TOL,
                "restored");
        boolean changed = false;
        float[] base = ref.get("logits").toFloatArray();
        for (int i = 0; i < base.length; i++) {
            changed |= Math.abs(base[i] - viaTap[i]) > 1e-3;
        }
        assertTrue(changed, "doubling q must change the logits");
    }

    @Test
    void rewritingALayerOutputFlowsForward() {
        model.setActivationTap((site, data, rows, cols) -> {
            if (site.equals("llm.layers.1.out")) {
                java.util.Arrays.fill(data, 0, rows * cols, 1f);
            }
        });
        float[] logits;
        try {
            logits = model.forward(ids, pixels);
        } finally {
            model.setActivationTap(null);
        }
        int V = model.config().textConfig().vocabSize();
        for (int t = 1; t < ids.length; t++) {
            assertArrayEquals(TestArrays.row(logits, 0, V), TestArrays.row(logits, t, V),
                    "identical hidden rows give identical logits");
        }
    }
}
