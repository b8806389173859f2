package org.qvlm4j.quant.methods;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qvlm4j.model.Linear;
import org.qvlm4j.model.LlavaModel;
import org.qvlm4j.quant.Nf4Quantizer;
import org.qvlm4j.quant.QuantPlan;
import org.qvlm4j.quant.QuantPreset;
import org.qvlm4j.quant.QuantSpec;
import org.qvlm4j.quant.calib.CalibrationStats;

/** LoRC's low-rank compensation properties; NF4 weights against the NF4 quantizer. */
class ZeroQuantNf4Test {
    static final int N = 24;
    static final int K = 40;
    /** Full-rank LoRC must give W back to this relative Frobenius error (float rounding). */
    static final double FULL_RANK_TOL = 1e-6;

    static float[] randomWeight(long seed) {
        SplittableRandom rnd = new SplittableRandom(seed);
        float[] w = new float[N * K];
        for (int i = 0; i < w.length; i++) {
            w[i] = (float) (0.1 * rnd.nextGaussian());
        }
        return w;
    }

    static double sq(float[] a, float[] b) {
        return MethodSupport.meanSquaredDiff(a, b) * a.length;
    }

    @Test
    void lorcErrorFallsWithRankAndFullRankRecoversW() {
        float[] w = randomWeight(3);
        QuantSpec spec = QuantSpec.parse("w3-asym-g8");
        float[] q = MethodSupport.fakeQuant(w, N, K, spec);
        double e0 = sq(q, w);
        double prev = e0;
        for (int r = 1; r <= Math.min(N, K); r++) {
            double e = sq(ZeroQuantV2.lorc(w, q, N, K, r), w);
            assertTrue(e <= prev * (1 + 1e-6) + 1e-12, "rank " + r + ": " + e + " > " + prev);
            prev = e;
        }
        // σ1² ≥ ||E||² / min(N, K): the best rank-1 term removes at least that share
        double e1 = sq(ZeroQuantV2.lorc(w, q, N, K, 1), w);
        assertTrue(e1 <= e0 * (1 - 1.0 / Math.min(N, K)) * (1 + 1e-6), e1 + " vs " + e0);
        assertTrue(sq(ZeroQuantV2.lorc(w, q, N, K, 8), w) < 0.8 * e0);
        float[] full = ZeroQuantV2.lorc(w, q, N, K, Math.min(N, K));
        assertTrue(Math.sqrt(sq(full, w) / sq(w, new float[w.length])) < FULL_RANK_TOL);
        assertArrayEquals(q, ZeroQuantV2.lorc(w, q, N, K, 0));
        assertThrows(IllegalArgumentException.class, () -> ZeroQuantV2.lorc(w, q, N, K, Math.min(N, K) + 1));
    }

    @Test
    void lorcOfRankOneErrorIsExactAtRankOne() {
        // E = a bᵀ has rank one: rank-1 compensation must recover W exactly (to float precision)
        SplittableRandom rnd = new SplittableRandom(9);
        float[] q = randomWeight(4);
        float[] w = new float[N * K];
        double[] a = rnd.doubles(N).toArray();
        double[] b = rnd.doubles(K).toArray();
        for (int r = 0; r < N; r++) {
            for (int c = 0; c < K; c++) {
                w[r * K + c] = (float) (q[r * K + c] + 0.01 * a[r] * b[c]);
            }
        }
        assertTrue(Math.sqrt(sq(ZeroQuantV2.lorc(w, q, N, K, 1), w) / sq(w, q)) < 1e-4);
    }

    @Test
    void zeroQuantOnModelReducesWeightErrorAndNf4MatchesQuantizer(@TempDir Path tmp) {
        MethodFixture fx = new MethodFixture();
        QuantPlan plan = QuantPlan.preset(QuantPreset.W4A16);
        try (CalibrationStats stats = fx.stats(tmp.resolve("stats"))) {
            Map<String, Double> rtn = new HashMap<>();
            try (LlavaModel m = MethodFixture.model()) {
                new Rtn().apply(m, plan, stats).report().forEach(r -> rtn.put(r.linear(), r.weightMse()));
            }
            try (LlavaModel m = MethodFixture.model()) {
                QuantResult r = new ZeroQuantV2(ZeroQuantV2.Config.DEFAULT).apply(m, plan, stats);
                assertEquals(rtn.keySet().size(), r.report().size());
                for (LayerReport row : r.report()) {
                    assertTrue(row.weightMse() < rtn.get(row.linear()), row.linear());
                }
            }
            try (LlavaModel m = MethodFixture.model()) {
                Map<String, float[]> orig = new HashMap<>();
                m.linears().forEach(l -> orig.put(l.name(), l.weight().toFloatArray()));
                QuantResult r = new Nf4Weights(Nf4Weights.Config.DEFAULT).apply(m, plan, stats);
                assertEquals(rtn.keySet(), r.weights().keySet());
                Nf4Quantizer nf4 = new Nf4Quantizer(QuantSpec.nf4(true));
                for (Linear l : m.linears()) {
                    if (!r.weights().containsKey(l.name())) {
                        continue;
                    }
                    Nf4Quantizer.Nf4Tensor t = nf4.quantize(orig.get(l.name()), l.outFeatures(), l.inFeatures());
                    assertArrayEquals(nf4.dequantize(t), l.weight().toFloatArray(), l.name());
                }
            }
        }
    }
}
