package org.qvlm4j.quant.methods;

import org.ejml.data.DMatrixRMaj;
import org.ejml.dense.row.SingularOps_DDRM;
import org.ejml.dense.row.factory.DecompositionFactory_DDRM;
import org.ejml.interfaces.decomposition.SingularValueDecomposition_F64;
import org.qvlm4j.model.Linear;
import org.qvlm4j.model.LlavaModel;
import org.qvlm4j.quant.QuantPlan;
import org.qvlm4j.quant.QuantSpec;
import org.qvlm4j.quant.calib.CalibrationStats;

/**
 * ZeroQuant-V2 (Yao et al. 2023, "ZeroQuant-V2: Exploring Post-training Quantization in LLMs from
 * Comprehensive Study to Low Rank Compensation"): fine-grained (group-wise) round-to-nearest weight
 * quantization plus LoRC, low-rank compensation of the quantization error. With Q = Q(W) and
 * E = W − Q (N, K), the SVD E = U Σ Vᵀ is truncated to the rank largest singular values and added
 * back: W' = Q + U_r Σ_r V_rᵀ. The factors are kept in float (the paper also studies storing them
 * at 8 bit; not done here), so the fake-quantized weight is the F32 sum.
 *
 * <p>Groups: with {@link Config#groupSize} 0 the plan's weight spec is used as is (the W4A16
 * preset already has groups of 128); a positive value replaces a uniform spec's granularity by
 * groups of that size (same bits, symmetry, clip). Inputs are quantized per the plan. SVD by EJML.
 */
public final class ZeroQuantV2 implements QuantMethod {
    /**
     * @param rank      LoRC rank r; default 8 (0 = no compensation); capped at min(N, K)
     * @param groupSize 0 = the plan's spec; else the weight group size; default 0
     */
    public record Config(int rank, int groupSize) {
        public static final Config DEFAULT = new Config(8, 0);

        public Config {
            if (rank < 0 || groupSize < 0) {
                throw new IllegalArgumentException("ZeroQuant-V2 config: rank and groupSize must be >= 0, got " + rank
                        + " and " + groupSize);
            }
        }
    }

    private final Config cfg;

    public ZeroQuantV2(Config cfg) {
        this.cfg = cfg;
    }

    @Override
    public String name() {
        return "zeroquant-v2";
    }

    @Override
    public QuantResult apply(LlavaModel model, QuantPlan plan, CalibrationStats stats) {
        MethodSupport.Outcome out = new MethodSupport.Outcome(name());
        for (Linear l : model.linears()) {
            QuantSpec spec = plan.forLinear(l.name()).weight();
            if (spec == null) {
                continue;
            }
            if (cfg.groupSize() > 0 && spec.format() == QuantSpec.Format.UNIFORM) {
                spec = QuantSpec.weight(spec.bits(), spec.symmetric(), QuantSpec.Granularity.PER_GROUP, cfg.groupSize())
                        .withClip(spec.clip());
            }
            int n = l.outFeatures();
            int k = l.inFeatures();
            float[] w = l.weight().toFloatArray(); // (N, K)
            float[] q = MethodSupport.fakeQuant(w, n, k, spec);
            int r = Math.min(cfg.rank(), Math.min(n, k));
            out.put(l, lorc(w, q, n, k, r), null, "none", spec + " lorc-rank=" + r);
        }
        return out.finish(model, plan, stats);
    }

    /** Q + the rank-r truncated SVD of W − Q, for w and q (N, K). */
    public static float[] lorc(float[] w, float[] q, int n, int k, int rank) {
        if (rank == 0) {
            return q.clone();
        }
        if (rank > Math.min(n, k)) {
            throw new IllegalArgumentException("LoRC rank " + rank + " exceeds min(N, K) = " + Math.min(n, k));
        }
        DMatrixRMaj e = new DMatrixRMaj(n, k); // (N, K)
        for (int i = 0; i < n * k; i++) {
            e.data[i] = (double) w[i] - q[i];
        }
        SingularValueDecomposition_F64<DMatrixRMaj> svd = DecompositionFactory_DDRM.svd(n, k, true, true, true);
        if (!svd.decompose(e)) {
            throw new IllegalArgumentException("LoRC: SVD of the (" + n + ", " + k + ") quantization error failed");
        }
        DMatrixRMaj u = svd.getU(null, false); // (N, m)
        DMatrixRMaj sigma = svd.getW(null); // (m, m)
        DMatrixRMaj v = svd.getV(null, false); // (K, m)
        SingularOps_DDRM.descendingOrder(u, false, sigma, v, false);
        float[] out = new float[n * k];
        for (int r = 0; r < n; r++) {
            for (int c = 0; c < k; c++) {
                double acc = 0;
                for (int t = 0; t < rank; t++) {
                    acc += u.get(r, t) * sigma.get(t, t) * v.get(c, t);
                }
                out[r * k + c] = (float) (q[r * k + c] + acc);
            }
        }
        return out;
    }
}
