package org.qvlm4j.quant.methods;

import java.util.Comparator;
import java.util.stream.IntStream;
import org.ejml.data.DMatrixRMaj;
import org.ejml.dense.row.CommonOps_DDRM;
import org.ejml.dense.row.factory.DecompositionFactory_DDRM;
import org.ejml.interfaces.decomposition.CholeskyDecomposition_F64;
import org.qvlm4j.model.Linear;
import org.qvlm4j.model.LlavaModel;
import org.qvlm4j.quant.QuantParams;
import org.qvlm4j.quant.QuantPlan;
import org.qvlm4j.quant.QuantSpec;
import org.qvlm4j.quant.UniformQuantizer;
import org.qvlm4j.quant.WeightFakeQuantizer;
import org.qvlm4j.quant.export.QuantizedExport;
import org.qvlm4j.quant.calib.CalibrationStats;

/**
 * GPTQ (Frantar et al. 2023, "GPTQ: Accurate Post-Training Quantization for Generative
 * Pre-trained Transformers"), following the reference {@code gptq.py fasterquant}: with
 * H = Σ xᵀx of the linear's calibration inputs (from the statistics), dead inputs (H_ii = 0) get
 * H_ii = 1 and a zero weight column; H += λI with λ = dampFraction · mean(diag H); U = the upper
 * Cholesky factor of H⁻¹. Columns are quantized one at a time in blocks of {@code blockSize}; each
 * column's rounding error, divided by U_ii, is spread over the block's remaining columns through
 * row i of U, and a finished block's errors update all later columns at once (lazy batch update).
 *
 * <p>Quantization grid: the plan's uniform weight spec. Per-channel / per-tensor parameters come
 * from the original weight before any update (reference: {@code find_params(W)} up front); with
 * PER_GROUP the parameters of a group are computed from the current, partially updated, weight when
 * the group's first column comes up (reference: {@code find_params(W[:, i:i+groupsize])}), with the
 * same range rules (clip included) as {@link UniformQuantizer}. With act-order columns go by
 * decreasing H_ii; combined with groups this uses the reference's {@code static_groups} variant
 * (group parameters from the original weight, groups kept contiguous in the original order) so the
 * result is still a plain per-group tensor of the plan's spec.
 *
 * <p>Inputs are quantized per the plan (static ranges from the statistics) — GPTQ itself does not
 * model input quantization. NF4 weight specs are rejected. Needs the Hessian of every quantized
 * linear in the statistics.
 */
public final class Gptq implements QuantMethod {
    /**
     * @param dampFraction λ / mean(diag H); default 0.01 (reference {@code percdamp})
     * @param blockSize    lazy-batch block width; default 128
     * @param actOrder     quantize columns by decreasing H_ii; default false
     */
    public record Config(double dampFraction, int blockSize, boolean actOrder) {
        public static final Config DEFAULT = new Config(0.01, 128, false);

        public Config {
            if (!(dampFraction >= 0) || blockSize < 1) {
                throw new IllegalArgumentException("GPTQ config: dampFraction must be >= 0 and blockSize >= 1, got "
                        + dampFraction + " and " + blockSize);
            }
        }
    }

    private final Config cfg;

    public Gptq(Config cfg) {
        this.cfg = cfg;
    }

    @Override
    public String name() {
        return "gptq";
    }

    @Override
    public QuantResult apply(LlavaModel model, QuantPlan plan, CalibrationStats stats) {
        MethodSupport.Outcome out = new MethodSupport.Outcome(name());
        for (Linear l : model.linears()) {
            QuantSpec spec = plan.forLinear(l.name()).weight();
            if (spec == null) {
                continue;
            }
            out.put(l, image(model, l, spec, stats, name(), cfg), null, "none", spec + (cfg.actOrder() ? " act-order" : ""));
        }
        return out.finish(model, plan, stats);
    }

    /**
     * The GPTQ image (N, K) of linear l of model under spec, on its input Hessian from the statistics
     * (method names the caller in errors). A vision layer the forward never reaches has no calibration
     * inputs and gets its RTN image; any other linear without a Hessian is an error naming the tensor.
     */
    public static float[] image(LlavaModel model, Linear l, QuantSpec spec, CalibrationStats stats, String method,
                                Config cfg) {
        boolean runs = !QuantizedExport.neverRun(l.name(), model.config().visionFeatureLayerIndex());
        MethodSupport.Hessian h = MethodSupport.hessian(stats, l.name(), method, runs);
        if (h == null) {
            return WeightFakeQuantizer.fakeQuantized(l.weight(), spec);
        }
        return quantize(l.name(), l.weight().toFloatArray(), l.outFeatures(), l.inFeatures(), h.h(), spec, cfg);
    }

    /**
     * The GPTQ image (N, K) of w (N, K) for input Hessian h (K, K), under a uniform weight spec;
     * name labels errors.
     */
    public static float[] quantize(String name, float[] w, int n, int k, double[] h, QuantSpec spec, Config cfg) {
        if (spec.format() != QuantSpec.Format.UNIFORM || spec.target() != QuantSpec.Target.WEIGHT) {
            throw new IllegalArgumentException(name + ": GPTQ needs a uniform weight spec, got " + spec);
        }
        if (h.length != k * k || w.length < n * k) {
            throw new IllegalArgumentException(name + ": Hessian has " + h.length + " values and weight " + w.length
                    + ", expected " + k * k + " and " + n * k);
        }
        boolean grouped = spec.granularity() == QuantSpec.Granularity.PER_GROUP;
        int g = grouped ? spec.groupSize() : 0;
        UniformQuantizer uq = new UniformQuantizer(spec);
        QuantSpec rowSpec = QuantSpec.weight(spec.bits(), spec.symmetric(), QuantSpec.Granularity.PER_CHANNEL, 0)
                .withClip(spec.clip());
        UniformQuantizer rowQ = new UniformQuantizer(rowSpec);
        int slots = QuantParams.slots(spec, n, k);
        float[] scale = new float[slots];
        int[] zp = new int[slots];
        if (!grouped) {
            QuantParams p = uq.params(w, n, k);
            System.arraycopy(p.scale(), 0, scale, 0, slots);
            System.arraycopy(p.zeroPoint(), 0, zp, 0, slots);
        } else if (cfg.actOrder()) {
            for (int c0 = 0; c0 < k; c0 += g) {
                setGroupParams(rowQ, w, n, k, c0, g, scale, zp);
            }
        }

        double[] H = h.clone(); // (K, K)
        double[] W = new double[n * k]; // (N, K), in processing order
        for (int i = 0; i < n * k; i++) {
            W[i] = w[i];
        }
        for (int i = 0; i < k; i++) {
            if (H[i * k + i] == 0) {
                H[i * k + i] = 1;
                for (int r = 0; r < n; r++) {
                    W[r * k + i] = 0;
                }
            }
        }
        int[] perm = IntStream.range(0, k).toArray();
        if (cfg.actOrder()) {
            double[] d = new double[k];
            for (int i = 0; i < k; i++) {
                d[i] = H[i * k + i];
            }
            perm = IntStream.range(0, k).boxed().sorted(Comparator.comparingDouble((Integer i) -> -d[i])
                    .thenComparingInt(i -> i)).mapToInt(Integer::intValue).toArray();
            W = permuteColumns(W, n, k, perm);
            double[] hp = new double[k * k];
            for (int a = 0; a < k; a++) {
                for (int b = 0; b < k; b++) {
                    hp[a * k + b] = H[perm[a] * k + perm[b]];
                }
            }
            H = hp;
        }
        double mean = 0;
        for (int i = 0; i < k; i++) {
            mean += H[i * k + i];
        }
        double damp = cfg.dampFraction() * mean / k;
        for (int i = 0; i < k; i++) {
            H[i * k + i] += damp;
        }
        double[] U = upperCholeskyOfInverse(name, H, k); // (K, K)

        float[] Q = new float[n * k]; // (N, K), processing order
        int qmin = spec.qmin();
        int qmax = spec.qmax();
        int B = cfg.blockSize();
        double[] err = new double[n * B]; // (N, B)
        for (int i1 = 0; i1 < k; i1 += B) {
            int i2 = Math.min(i1 + B, k);
            int count = i2 - i1;
            double[] W1 = new double[n * count]; // (N, count)
            for (int r = 0; r < n; r++) {
                System.arraycopy(W, r * k + i1, W1, r * count, count);
            }
            for (int i = 0; i < count; i++) {
                int col = i1 + i;
                int oc = perm[col];
                if (grouped && !cfg.actOrder() && col % g == 0) {
                    float[] cur = new float[n * k];
                    for (int t = 0; t < n * k; t++) {
                        cur[t] = (float) W[t];
                    }
                    setGroupParams(rowQ, cur, n, k, col, g, scale, zp);
                }
                double d = U[col * k + col];
                for (int r = 0; r < n; r++) {
                    int s = QuantParams.slot(spec, r, oc, k);
                    float x = (float) W1[r * count + i];
                    float qv = fakeQuant(x, scale[s], zp[s], qmin, qmax);
                    Q[r * k + col] = qv;
                    double e = (W1[r * count + i] - qv) / d;
                    for (int j = i; j < count; j++) {
                        W1[r * count + j] -= e * U[col * k + i1 + j];
                    }
                    err[r * B + i] = e;
                }
            }
            for (int r = 0; r < n; r++) {
                for (int j = i2; j < k; j++) {
                    double acc = 0;
                    for (int i = 0; i < count; i++) {
                        acc += err[r * B + i] * U[(i1 + i) * k + j];
                    }
                    W[r * k + j] -= acc;
                }
            }
        }
        if (!cfg.actOrder()) {
            return Q;
        }
        float[] out = new float[n * k];
        for (int r = 0; r < n; r++) {
            for (int c = 0; c < k; c++) {
                out[r * k + perm[c]] = Q[r * k + c];
            }
        }
        return out;
    }

    /** Parameters of the group starting at column c0, from w's columns [c0, c0 + g), into the slots r · G + c0 / g. */
    private static void setGroupParams(UniformQuantizer rowQ, float[] w, int n, int k, int c0, int g, float[] scale,
                                       int[] zp) {
        int width = Math.min(g, k - c0);
        float[] slice = new float[n * width];
        for (int r = 0; r < n; r++) {
            System.arraycopy(w, r * k + c0, slice, r * width, width);
        }
        QuantParams p = rowQ.params(slice, n, width);
        int groups = (k + g - 1) / g;
        for (int r = 0; r < n; r++) {
            scale[r * groups + c0 / g] = p.scale()[r];
            zp[r * groups + c0 / g] = p.zeroPoint()[r];
        }
    }

    /** The uniform quantizer's rounding of one value: (clamp(rint(x / Δ) + zp) − zp) · Δ, in float. */
    static float fakeQuant(float x, float scale, int zp, int qmin, int qmax) {
        double c = Math.rint(x / scale) + zp;
        int code = (int) (c < qmin ? qmin : (c > qmax ? qmax : c));
        return (code - zp) * scale;
    }

    private static double[] permuteColumns(double[] w, int n, int k, int[] perm) {
        double[] out = new double[n * k];
        for (int r = 0; r < n; r++) {
            for (int c = 0; c < k; c++) {
                out[r * k + c] = w[r * k + perm[c]];
            }
        }
        return out;
    }

    /** U (K, K) upper triangular with H⁻¹ = Uᵀ U, row-major; an error names the linear if H is not positive definite. */
    static double[] upperCholeskyOfInverse(String name, double[] h, int k) {
        DMatrixRMaj hm = new DMatrixRMaj(k, k, true, h.clone());
        DMatrixRMaj inv = new DMatrixRMaj(k, k);
        if (!CommonOps_DDRM.invertSPD(hm, inv)) {
            throw new IllegalArgumentException(name + ": damped input Hessian is not positive definite (K = " + k
                    + "); raise dampFraction or calibrate on more tokens");
        }
        CholeskyDecomposition_F64<DMatrixRMaj> chol = DecompositionFactory_DDRM.chol(k, false);
        if (!chol.decompose(inv)) {
            throw new IllegalArgumentException(name + ": inverse Hessian is not positive definite (K = " + k + ")");
        }
        DMatrixRMaj u = chol.getT(null);
        double[] out = new double[k * k];
        for (int i = 0; i < k; i++) {
            for (int j = i; j < k; j++) {
                out[i * k + j] = u.get(i, j);
            }
        }
        return out;
    }
}
