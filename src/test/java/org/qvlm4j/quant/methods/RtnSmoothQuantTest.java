package org.qvlm4j.quant.methods;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qvlm4j.model.Linear;
import org.qvlm4j.model.LlavaModel;
import org.qvlm4j.quant.FakeQuantTap;
import org.qvlm4j.quant.QuantPlan;
import org.qvlm4j.quant.QuantPreset;
import org.qvlm4j.quant.QuantSpec;
import org.qvlm4j.quant.Ranges;
import org.qvlm4j.quant.WeightFakeQuantizer;
import org.qvlm4j.quant.calib.CalibrationStats;

/** RTN against the existing fake quantizers; SmoothQuant's balance and equivalence properties. */
class RtnSmoothQuantTest {
    /** Relative tolerance for products and logits that must agree up to float rounding. */
    static final double FLOAT_REL_TOL = 1e-5;
    static final double LOGIT_REL_TOL = 1e-5;

    @TempDir
    static Path tmp;
    static MethodFixture fx;
    static CalibrationStats stats;

    @BeforeAll
    static void setUp() {
        fx = new MethodFixture();
        stats = fx.stats(tmp.resolve("stats"));
    }

    @AfterAll
    static void tearDown() {
        stats.close();
    }

    @Test
    void rtnMatchesWeightFakeQuantizerAndStaticTapFromIndependentRanges() {
        QuantPlan plan = QuantPlan.preset(QuantPreset.W8A8);
        float[] expected;
        try (LlavaModel ref = MethodFixture.model()) {
            // channel min/max of every linear input over the calibration prompts, measured here
            Map<String, float[][]> acc = new HashMap<>();
            ref.setActivationTap((site, data, rows, cols) -> {
                if (!site.endsWith(".in") || ref.linears().stream().noneMatch(l -> site.equals(l.name() + ".in"))) {
                    return;
                }
                float[][] a = acc.computeIfAbsent(site, k -> {
                    float[][] x = new float[2][cols];
                    java.util.Arrays.fill(x[0], Float.POSITIVE_INFINITY);
                    java.util.Arrays.fill(x[1], Float.NEGATIVE_INFINITY);
                    return x;
                });
                for (int i = 0; i < rows * cols; i++) {
                    a[0][i % cols] = Math.min(a[0][i % cols], data[i]);
                    a[1][i % cols] = Math.max(a[1][i % cols], data[i]);
                }
            });
            for (int s = 0; s < fx.calibIds.size(); s++) {
                ref.forward(fx.calibIds.get(s), fx.calibPixels.get(s));
            }
            Map<String, Ranges> ranges = new HashMap<>();
            acc.forEach((k, v) -> ranges.put(k, new Ranges(v[0], v[1])));
            WeightFakeQuantizer.apply(ref, plan);
            ref.setActivationTap(new FakeQuantTap(plan, ranges));
            expected = ref.forward(fx.ids, fx.pixels);
        }
        try (LlavaModel m = MethodFixture.model()) {
            Map<String, float[]> originals = new HashMap<>();
            m.linears().forEach(l -> originals.put(l.name(), l.weight().toFloatArray()));
            QuantResult r = new Rtn().apply(m, plan, stats);
            for (Linear l : m.linears()) {
                QuantSpec spec = plan.forLinear(l.name()).weight();
                if (spec == null) {
                    assertFalse(r.weights().containsKey(l.name()), l.name());
                    continue;
                }
                float[] want = MethodSupport.fakeQuant(originals.get(l.name()), l.outFeatures(), l.inFeatures(), spec);
                assertArrayEquals(want, l.weight().toFloatArray(), l.name());
                LayerReport row = r.layer(l.name());
                assertEquals(MethodSupport.meanSquaredDiff(want, originals.get(l.name())), row.weightMse(), 1e-12);
                assertTrue(row.outputMse() >= 0, l.name());
            }
            r.installTap(m);
            float[] got = m.forward(fx.ids, fx.pixels);
            assertTrue(MethodFixture.relErr(got, expected) < LOGIT_REL_TOL, "rel " + MethodFixture.relErr(got, expected));
        }
    }

    /** X (T, K) with a few outlier channels, W (N, K). */
    static float[][] seededLayer(long seed, int t, int k, int n) {
        SplittableRandom rnd = new SplittableRandom(seed);
        float[] x = new float[t * k];
        float[] w = new float[n * k];
        for (int i = 0; i < t; i++) {
            for (int j = 0; j < k; j++) {
                double mag = j % 7 == 3 ? 40 : 1; // outlier channels, as in LLM activations
                x[i * k + j] = (float) (mag * (2 * rnd.nextDouble() - 1));
            }
        }
        for (int i = 0; i < w.length; i++) {
            w[i] = (float) (0.2 * (2 * rnd.nextDouble() - 1));
        }
        return new float[][] {x, w};
    }

    static float[] matmulT(float[] x, int t, float[] w, int n, int k) {
        float[] y = new float[t * n];
        for (int i = 0; i < t; i++) {
            for (int r = 0; r < n; r++) {
                double s = 0;
                for (int j = 0; j < k; j++) {
                    s += (double) x[i * k + j] * w[r * k + j];
                }
                y[i * n + r] = (float) s;
            }
        }
        return y;
    }

    @Test
    void smoothingKeepsProductAndBalancesChannelMaximaAtHalfAlpha() {
        int t = 64;
        int k = 24;
        int n = 16;
        float[][] xw = seededLayer(17, t, k, n);
        float[] x = xw[0];
        float[] w = xw[1];
        float[] actMax = new float[k];
        for (int i = 0; i < t * k; i++) {
            actMax[i % k] = Math.max(actMax[i % k], Math.abs(x[i]));
        }
        float[] s = SmoothQuant.scales(actMax, SmoothQuant.columnAbsMax(w, n, k), 0.5);
        float[] xs = MethodSupport.unscaleColumns(x, t, k, s);
        float[] ws = MethodSupport.scaleColumns(w, n, k, s);
        assertTrue(MethodFixture.relErr(matmulT(xs, t, ws, n, k), matmulT(x, t, w, n, k)) < FLOAT_REL_TOL);
        // α = 0.5 equalises the per-channel maxima of X' and W': both become sqrt(max|X_j| · max|W_j|)
        float[] wsMax = SmoothQuant.columnAbsMax(ws, n, k);
        for (int j = 0; j < k; j++) {
            float xsMax = 0;
            for (int i = 0; i < t; i++) {
                xsMax = Math.max(xsMax, Math.abs(xs[i * k + j]));
            }
            assertEquals(xsMax, wsMax[j], FLOAT_REL_TOL * xsMax, "channel " + j);
        }
        // α = 1 moves everything into the weights: X' has unit channel maxima
        float[] s1 = SmoothQuant.scales(actMax, SmoothQuant.columnAbsMax(w, n, k), 1.0);
        for (int j = 0; j < k; j++) {
            assertEquals(actMax[j], s1[j], 0f);
        }
    }

    @Test
    void smoothingWithoutRoundingLeavesModelLogitsUnchanged() {
        QuantPlan plan = QuantPlan.preset(QuantPreset.W8A8);
        try (LlavaModel m = MethodFixture.model()) {
            float[] fp = m.forward(fx.ids, fx.pixels);
            float[] normBefore = m.normVector("llm.layers.0.input_layernorm.weight").clone();
            float[] biasBefore = m.normVector("vision.layers.1.layer_norm2.bias").clone();
            QuantResult r = new SmoothQuant(new SmoothQuant.Config(0.5, true)).smoothOnly(m, plan, stats);
            float[] s = r.scales().get("llm.layers.0.self_attn.q_proj");
            assertNotNull(s);
            assertArrayEquals(s, r.scales().get("llm.layers.0.self_attn.v_proj"));
            float[] norm = m.normVector("llm.layers.0.input_layernorm.weight");
            for (int j = 0; j < s.length; j++) {
                assertEquals(normBefore[j] / s[j], norm[j], 0f);
            }
            float[] sFc1 = r.scales().get("vision.layers.1.mlp.fc1");
            float[] bias = m.normVector("vision.layers.1.layer_norm2.bias");
            for (int j = 0; j < sFc1.length; j++) {
                assertEquals(biasBefore[j] / sFc1[j], bias[j], 0f);
            }
            assertEquals("norm:llm.layers.0.post_attention_layernorm.weight",
                    r.layer("llm.layers.0.mlp.up_proj").scalePlacement());
            assertEquals("activation", r.layer("llm.layers.0.mlp.down_proj").scalePlacement());
            assertNotNull(r.tap());
            r.installTap(m);
            float[] smoothed = m.forward(fx.ids, fx.pixels);
            assertTrue(MethodFixture.relErr(smoothed, fp) < LOGIT_REL_TOL, "rel " + MethodFixture.relErr(smoothed, fp));
            assertFalse(java.util.Arrays.equals(normBefore, norm));
        }
    }

    @Test
    void smoothQuantDefaultSmoothsOnlyNormFedLinears() {
        try (LlavaModel m = MethodFixture.model()) {
            QuantResult r = new SmoothQuant(SmoothQuant.Config.DEFAULT).apply(m, QuantPlan.preset(QuantPreset.W8A8), stats);
            assertEquals("none", r.layer("llm.layers.1.mlp.down_proj").scalePlacement());
            assertEquals("norm:vision.layers.0.layer_norm1.weight",
                    r.layer("vision.layers.0.self_attn.k_proj").scalePlacement());
            assertFalse(r.scales().containsKey("projector.linear_1"));
        }
        assertThrows(IllegalArgumentException.class, () -> new SmoothQuant.Config(1.5, false));
    }
}
