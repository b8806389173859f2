package org.qvlm4j.quant;

import java.util.Arrays;

/**
 * Uniform (integer-grid) quantizer on float[] tensors with explicit (rows, cols) shapes, the
 * quantizer form of Q-VLM (§3.2, "uniform quantization … nearest rounding point") and of the RTN,
 * SmoothQuant, AWQ, GPTQ and ZeroQuant-V2 baselines.
 *
 * <p><b>Asymmetric</b> (range [lo, hi] widened to include 0, so that 0 is exact):
 * Δ = max(hi − lo, ε) / (2^b − 1), zp = clamp(round(−lo / Δ), 0, 2^b − 1),
 * u = clamp(round(x / Δ) + zp, 0, 2^b − 1), x̂ = (u − zp) · Δ.
 *
 * <p><b>Symmetric</b>: Δ = max(absmax, ε) / (2^(b−1) − 1), q = clamp(round(x / Δ), −(2^(b−1) − 1),
 * 2^(b−1) − 1), x̂ = q · Δ. The grid is kept symmetric (it drops the code −2^(b−1) a two's-complement
 * int could hold) so that x and −x quantize to opposite values and absmax maps exactly to a code,
 * as in SmoothQuant / LLM.int8 ("absmax" quantization, 127 for 8 bit). At 2 bits this leaves the
 * three levels {−Δ, 0, Δ}.
 *
 * <p><b>Rounding</b> is round-half-to-even ({@link Math#rint}) everywhere, like torch.round and
 * {@code org.qvlm4j.tensor.Ops.fakeQuantize}, so a fake-quant forward here and a training-time one
 * agree. x / Δ and (u − zp) · Δ are computed in float, as the fp32 PyTorch reference would.
 *
 * <p><b>Ranges</b> come from the data (min/max per slot, or percentiles with
 * {@link QuantSpec.ClipKind#PERCENTILE}) or from given {@link Ranges} (static calibration). A clip
 * ratio r scales the range to [r·lo, r·hi] in both cases; a percentile clip applies only when
 * ranges are computed from data here: static ranges are taken to be already percentile-clipped by
 * the observer that produced them. ε = {@value #RANGE_EPS} guards constant tensors.
 *
 * <p>Left out: stochastic rounding, learned (LSQ) steps, which live in the autograd Ops.
 */
public final class UniformQuantizer implements Quantizer {
    /** Smallest range width (hi − lo or absmax) a scale is computed from. */
    public static final double RANGE_EPS = 1e-8;

    private final QuantSpec spec;

    public UniformQuantizer(QuantSpec spec) {
        if (spec.format() != QuantSpec.Format.UNIFORM) {
            throw new IllegalArgumentException("UniformQuantizer needs a UNIFORM spec, got " + spec);
        }
        this.spec = spec;
    }

    @Override
    public QuantSpec spec() {
        return spec;
    }

    /** Per-slot [lo, hi] of x from the data, with the spec's clipping (ratio or percentile) applied. */
    public Ranges ranges(float[] x, int rows, int cols) {
        checkShape(x, rows, cols);
        int n = QuantParams.slots(spec, rows, cols);
        float[] lo = new float[n];
        float[] hi = new float[n];
        if (spec.clip().kind() == QuantSpec.ClipKind.PERCENTILE) {
            percentileRanges(x, rows, cols, spec.clip().value(), lo, hi);
        } else {
            Arrays.fill(lo, Float.POSITIVE_INFINITY);
            Arrays.fill(hi, Float.NEGATIVE_INFINITY);
            for (int r = 0; r < rows; r++) {
                for (int c = 0; c < cols; c++) {
                    float v = x[r * cols + c];
                    int s = QuantParams.slot(spec, r, c, cols);
                    lo[s] = Math.min(lo[s], v);
                    hi[s] = Math.max(hi[s], v);
                }
            }
            if (spec.clip().kind() == QuantSpec.ClipKind.RATIO) {
                scale(lo, hi, spec.clip().value());
            }
        }
        return new Ranges(lo, hi);
    }

    private void percentileRanges(float[] x, int rows, int cols, double p, float[] lo, float[] hi) {
        int n = lo.length;
        int[] count = new int[n + 1];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                count[QuantParams.slot(spec, r, c, cols) + 1]++;
            }
        }
        for (int s = 0; s < n; s++) {
            count[s + 1] += count[s];
        }
        float[] grouped = new float[rows * cols]; // values ordered by slot
        int[] fill = Arrays.copyOf(count, n);
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                grouped[fill[QuantParams.slot(spec, r, c, cols)]++] = x[r * cols + c];
            }
        }
        for (int s = 0; s < n; s++) {
            Arrays.sort(grouped, count[s], count[s + 1]);
            lo[s] = quantile(grouped, count[s], count[s + 1], 1 - p);
            hi[s] = quantile(grouped, count[s], count[s + 1], p);
        }
    }

    /** torch.quantile's default "linear" interpolation over sorted a[from, to). */
    static float quantile(float[] a, int from, int to, double q) {
        double pos = q * (to - from - 1);
        int i = (int) Math.floor(pos);
        double f = pos - i;
        if (i + 1 >= to - from) {
            return a[to - 1];
        }
        return (float) (a[from + i] + f * ((double) a[from + i + 1] - a[from + i]));
    }

    private static void scale(float[] lo, float[] hi, double ratio) {
        for (int i = 0; i < lo.length; i++) {
            lo[i] = (float) (lo[i] * ratio);
            hi[i] = (float) (hi[i] * ratio);
        }
    }

    /** Parameters from the data of x (min/max or percentile per slot, clip ratio applied). */
    public QuantParams params(float[] x, int rows, int cols) {
        return fromRanges(ranges(x, rows, cols));
    }

    /**
     * Parameters from given per-slot ranges (static calibration); a clip ratio in the spec scales
     * them, a percentile clip is assumed already applied by whoever measured them.
     */
    public QuantParams params(Ranges given) {
        if (spec.clip().kind() == QuantSpec.ClipKind.RATIO) {
            float[] lo = given.lo().clone();
            float[] hi = given.hi().clone();
            scale(lo, hi, spec.clip().value());
            return fromRanges(new Ranges(lo, hi));
        }
        return fromRanges(given);
    }

    private QuantParams fromRanges(Ranges rg) {
        int n = rg.size();
        float[] scale = new float[n];
        int[] zp = new int[n];
        int qmax = spec.qmax();
        for (int s = 0; s < n; s++) {
            float lo = Math.min(rg.lo()[s], 0f);
            float hi = Math.max(rg.hi()[s], 0f);
            if (spec.symmetric()) {
                double absmax = Math.max(-(double) lo, hi);
                scale[s] = (float) (Math.max(absmax, RANGE_EPS) / qmax);
            } else {
                scale[s] = (float) (Math.max((double) hi - lo, RANGE_EPS) / qmax);
                zp[s] = (int) clamp(Math.rint(-lo / scale[s]), 0, qmax);
            }
        }
        return new QuantParams(spec, scale, zp);
    }

    /** Integer codes of x under p. */
    public QuantizedTensor quantize(float[] x, int rows, int cols, QuantParams p) {
        checkShape(x, rows, cols);
        checkParams(p, rows, cols);
        int[] codes = new int[rows * cols];
        int qmin = spec.qmin();
        int qmax = spec.qmax();
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                int s = QuantParams.slot(spec, r, c, cols);
                codes[r * cols + c] = code(x[r * cols + c], p.scale()[s], p.zeroPoint()[s], qmin, qmax);
            }
        }
        return new QuantizedTensor(rows, cols, codes, p);
    }

    /** Codes with parameters from the data. */
    public QuantizedTensor quantize(float[] x, int rows, int cols) {
        return quantize(x, rows, cols, params(x, rows, cols));
    }

    /** x̂ (rows, cols) = (code − zp) · Δ. */
    public float[] dequantize(QuantizedTensor q) {
        QuantParams p = q.params();
        if (!p.spec().equals(spec)) {
            throw new IllegalArgumentException("codes were made by " + p.spec() + ", this quantizer is " + spec);
        }
        int rows = q.rows();
        int cols = q.cols();
        float[] out = new float[rows * cols];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                int s = QuantParams.slot(spec, r, c, cols);
                out[r * cols + c] = (q.codes()[r * cols + c] - p.zeroPoint()[s]) * p.scale()[s];
            }
        }
        return out;
    }

    /** Replaces x by its quantize-dequantize image under p. */
    public void fakeQuantize(float[] x, int rows, int cols, QuantParams p) {
        checkShape(x, rows, cols);
        checkParams(p, rows, cols);
        int qmin = spec.qmin();
        int qmax = spec.qmax();
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                int i = r * cols + c;
                int s = QuantParams.slot(spec, r, c, cols);
                int zp = p.zeroPoint()[s];
                x[i] = (code(x[i], p.scale()[s], zp, qmin, qmax) - zp) * p.scale()[s];
            }
        }
    }

    /** Fake quantization with parameters from the data of x itself. */
    @Override
    public void fakeQuantize(float[] x, int rows, int cols) {
        fakeQuantize(x, rows, cols, params(x, rows, cols));
    }

    private static int code(float x, float scale, int zp, int qmin, int qmax) {
        return (int) clamp(Math.rint(x / scale) + zp, qmin, qmax);
    }

    private static double clamp(double v, double lo, double hi) {
        return v < lo ? lo : (v > hi ? hi : v);
    }

    private void checkParams(QuantParams p, int rows, int cols) {
        if (!p.spec().equals(spec)) {
            throw new IllegalArgumentException("params were made for " + p.spec() + ", this quantizer is " + spec);
        }
        p.requireShape(rows, cols);
    }

    static void checkShape(float[] x, int rows, int cols) {
        if (rows <= 0 || cols <= 0 || (long) rows * cols > x.length) {
            throw new IllegalArgumentException("tensor shape (" + rows + ", " + cols + ") does not fit "
                    + x.length + " values");
        }
    }
}
