package org.qvlm4j.model;

import org.qvlm4j.kernels.Gemm;
import org.qvlm4j.kernels.PackedMatrix;
import org.qvlm4j.kernels.QuantGemm;
import org.qvlm4j.kernels.QuantizedActivations;
import org.qvlm4j.kernels.WeightMatrix;

/**
 * A linear layer y = x W^T + b as torch.nn.Linear, with its weight kept in the stored dtype and
 * read in place by {@link Gemm#matmul}, or held as a low-bit {@link PackedMatrix} (a quantized
 * checkpoint) and read by the weight-only {@link QuantGemm#matmul}. The weight can be swapped (for
 * example for a quantized one) as long as the shape stays the same.
 *
 * <p>A quantized checkpoint may add, in this order: an input scale s (K), the input becoming
 * x·diag(1/s) (a smoothing scale that could not be folded into a norm); an {@link InputQuantizer}
 * (fake quantization, or integer codes times packed weights with {@link QuantGemm#matmulInt}); and
 * a low-rank term U (N, r), V (r, K) added to the product, y = Q(W) x̂ + U (V x̂) (ZeroQuant-V2's
 * LoRC). An activation tap sees the input before these transforms, as it arrives.
 */
public final class Linear {
    private final String name;
    private final String inSite;
    private final String outSite;
    private final int rows;
    private final int cols;
    private WeightMatrix weight; // (N, K), null while packed is set
    private PackedMatrix packed; // (N, K), or null
    private final float[] bias; // (N) or null
    private float[] inputScale; // (K) or null
    private InputQuantizer inputQuantizer; // or null
    private WeightMatrix lowRankU; // (N, r) or null
    private WeightMatrix lowRankV; // (r, K) or null
    // One copy buffer per thread: evaluation workers share the model, each with its own session.
    private final ThreadLocal<float[]> inCopy = ThreadLocal.withInitial(() -> new float[0]);
    // per thread: sessions on several threads run the same layer at once
    private final ThreadLocal<float[]> lowRankMid = ThreadLocal.withInitial(() -> new float[0]);
    private final ThreadLocal<float[]> lowRankOut = ThreadLocal.withInitial(() -> new float[0]);

    public Linear(String name, WeightMatrix weight, float[] bias) {
        if (bias != null && bias.length != weight.rows()) {
            throw new IllegalArgumentException(name + ": bias has " + bias.length + " values, weight has "
                    + weight.rows() + " rows");
        }
        this.name = name;
        this.inSite = name + ".in";
        this.outSite = name + ".out";
        this.rows = weight.rows();
        this.cols = weight.cols();
        this.weight = weight;
        this.bias = bias;
    }

    /** A linear whose weight is a packed low-bit matrix (N, K). */
    public Linear(String name, PackedMatrix packed, float[] bias) {
        if (bias != null && bias.length != packed.rows()) {
            throw new IllegalArgumentException(name + ": bias has " + bias.length + " values, packed weight has "
                    + packed.rows() + " rows");
        }
        this.name = name;
        this.inSite = name + ".in";
        this.outSite = name + ".out";
        this.rows = packed.rows();
        this.cols = packed.cols();
        this.packed = packed;
        this.bias = bias;
    }

    /** Site prefix, e.g. {@code llm.layers.0.mlp.down_proj}. */
    public String name() {
        return name;
    }

    public int inFeatures() {
        return cols;
    }

    public int outFeatures() {
        return rows;
    }

    /**
     * The matrix applied to the (transformed) input: the weight; for a packed linear a freshly
     * dequantized F32 copy, plus U·V when a low-rank term is set (the forward uses neither copy).
     */
    public WeightMatrix weight() {
        if (packed == null && lowRankU == null) {
            return weight;
        }
        float[] w = packed != null ? packed.dequantize() : weight.toFloatArray(); // (N, K)
        if (lowRankU != null) {
            float[] u = lowRankU.toFloatArray(); // (N, r)
            float[] v = lowRankV.toFloatArray(); // (r, K)
            int r = lowRankU.cols();
            for (int n = 0; n < rows; n++) {
                for (int k = 0; k < cols; k++) {
                    double acc = 0;
                    for (int j = 0; j < r; j++) {
                        acc += (double) u[n * r + j] * v[j * cols + k];
                    }
                    w[n * cols + k] = (float) (w[n * cols + k] + acc);
                }
            }
        }
        return WeightMatrix.ofFloats(w, rows, cols);
    }

    /** The packed weight, or null when the weight is a floating-point matrix. */
    public PackedMatrix packed() {
        return packed;
    }

    /** Replaces the weight with a packed matrix of the same shape and drops any low-rank term. */
    public void replaceWeight(PackedMatrix w) {
        checkShape(w.rows(), w.cols());
        packed = w;
        weight = null;
        lowRankU = null;
        lowRankV = null;
    }

    /** The bias (N), or null; callers must not change it. */
    public float[] bias() {
        return bias;
    }

    /** Replaces the weight with one of the same shape (any dtype {@link WeightMatrix} allows) and drops any low-rank term. */
    public void replaceWeight(WeightMatrix w) {
        checkShape(w.rows(), w.cols());
        weight = w;
        packed = null;
        lowRankU = null;
        lowRankV = null;
    }

    private void checkShape(int r, int c) {
        if (r != rows || c != cols) {
            throw new IllegalArgumentException(name + ": replacement weight has shape (" + r + ", " + c
                    + "), expected (" + rows + ", " + cols + ")");
        }
    }

    /** The per-input-channel scale s (K) the input is divided by, or null; callers must not change it. */
    public float[] inputScale() {
        return inputScale;
    }

    /** Sets (or, with null, removes) the input scale s (K): the input becomes x·diag(1/s). */
    public void setInputScale(float[] s) {
        if (s != null && s.length != cols) {
            throw new IllegalArgumentException(name + ": input scale has " + s.length + " values, expected K = " + cols);
        }
        inputScale = s;
    }

    /** The input quantizer, or null when the input stays floating point. */
    public InputQuantizer inputQuantizer() {
        return inputQuantizer;
    }

    /** Sets (or, with null, removes) the input quantizer. */
    public void setInputQuantizer(InputQuantizer q) {
        inputQuantizer = q;
    }

    /** Whether the next forward multiplies integer input codes by the packed weight. */
    public boolean integerInputs() {
        return inputQuantizer != null && inputQuantizer.execution() == InputQuantizer.Execution.INTEGER
                && packed != null && InputQuantizer.integerUnsupported(inputQuantizer.spec(), packed.format(),
                        packed.groupSize(), cols) == null;
    }

    /** Rank of the low-rank term, 0 when there is none. */
    public int lowRank() {
        return lowRankU == null ? 0 : lowRankU.cols();
    }

    /** Sets (or, with both null, removes) the low-rank term U (N, r), V (r, K) added to the product. */
    public void setLowRank(WeightMatrix u, WeightMatrix v) {
        if (u == null && v == null) {
            lowRankU = null;
            lowRankV = null;
            return;
        }
        if (u == null || v == null || u.rows() != rows || v.cols() != cols || u.cols() != v.rows() || u.cols() < 1) {
            throw new IllegalArgumentException(name + ": low-rank factors must be (" + rows + ", r) and (r, " + cols
                    + ") with r >= 1, got " + (u == null ? "none" : "(" + u.rows() + ", " + u.cols() + ")") + " and "
                    + (v == null ? "none" : "(" + v.rows() + ", " + v.cols() + ")"));
        }
        lowRankU = u;
        lowRankV = v;
    }

    /** out (T, N) = x (T, K) W^T + b; x is not modified. */
    public void forward(float[] x, int T, float[] out, ActivationTap tap) {
        int K = cols;
        int N = rows;
        float[] in = x;
        if (tap != null || inputScale != null || inputQuantizer != null) {
            int n = T * K;
            in = inCopy.get();
            if (in.length < n) {
                in = new float[n];
                inCopy.set(in);
            }
            System.arraycopy(x, 0, in, 0, n);
        }
        if (tap != null) {
            tap.onActivation(inSite, in, T, K);
        }
        if (inputScale != null) {
            for (int t = 0; t < T; t++) {
                for (int k = 0; k < K; k++) {
                    in[t * K + k] /= inputScale[k];
                }
            }
        }
        QuantizedActivations codes = null;
        if (inputQuantizer != null) {
            if (T > 0 && integerInputs()) {
                codes = inputQuantizer.quantizeInt(in, T, K, lowRankU != null ? in : null);
            } else {
                inputQuantizer.fakeQuantize(in, T, K);
            }
        }
        if (codes != null) {
            QuantGemm.matmulInt(codes, packed, out);
        } else if (packed != null) {
            QuantGemm.matmul(in, T, packed, out);
        } else {
            Gemm.matmul(in, T, weight, out);
        }
        if (lowRankU != null) {
            addLowRank(in, T, out);
        }
        if (bias != null) {
            for (int t = 0; t < T; t++) {
                int o = t * N;
                for (int n = 0; n < N; n++) {
                    out[o + n] += bias[n];
                }
            }
        }
        if (tap != null) {
            tap.onActivation(outSite, out, T, N);
        }
    }

    /** out (T, N) += (in (T, K) V^T) U^T. */
    private void addLowRank(float[] in, int T, float[] out) {
        int r = lowRankU.cols();
        int N = rows;
        float[] mid = lowRankMid.get();
        if (mid.length < T * r) {
            mid = new float[T * r];
            lowRankMid.set(mid);
        }
        float[] low = lowRankOut.get();
        if (low.length < T * N) {
            low = new float[T * N];
            lowRankOut.set(low);
        }
        Gemm.matmul(in, T, lowRankV, mid); // (T, r)
        Gemm.matmul(mid, T, lowRankU, low); // (T, N)
        for (int i = 0; i < T * N; i++) {
            out[i] += low[i];
        }
    }
}
