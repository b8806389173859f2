package org.qvlm4j.model;

import org.qvlm4j.kernels.Gemm;
import org.qvlm4j.kernels.PackedMatrix;
import org.qvlm4j.kernels.QuantGemm;
import org.qvlm4j.kernels.WeightMatrix;

/**
 * A linear layer y = x W^T + b as torch.nn.Linear, with its weight kept in the stored dtype and
 * read in place by {@link Gemm#matmul}, or held as a low-bit {@link PackedMatrix} (a quantized
 * checkpoint) and read by the weight-only {@link QuantGemm#matmul}. The weight can be swapped (for
 * example for a quantized one) as long as the shape stays the same.
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
    private float[] tapCopy = new float[0];

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

    /** The weight; for a packed linear a freshly dequantized F32 copy (the forward does not use it). */
    public WeightMatrix weight() {
        return packed != null ? WeightMatrix.ofFloats(packed.dequantize(), rows, cols) : weight;
    }

    /** The packed weight, or null when the weight is a floating-point matrix. */
    public PackedMatrix packed() {
        return packed;
    }

    /** Replaces the weight with a packed matrix of the same shape; the forward then runs the low-bit kernel. */
    public void replaceWeight(PackedMatrix w) {
        checkShape(w.rows(), w.cols());
        packed = w;
        weight = null;
    }

    /** The bias (N), or null; callers must not change it. */
    public float[] bias() {
        return bias;
    }

    /** Replaces the weight with one of the same shape (any dtype {@link WeightMatrix} allows). */
    public void replaceWeight(WeightMatrix w) {
        checkShape(w.rows(), w.cols());
        weight = w;
        packed = null;
    }

    private void checkShape(int r, int c) {
        if (r != rows || c != cols) {
            throw new IllegalArgumentException(name + ": replacement weight has shape (" + r + ", " + c
                    + "), expected (" + rows + ", " + cols + ")");
        }
    }

    /** out (T, N) = x (T, K) W^T + b; x is not modified. */
    public void forward(float[] x, int T, float[] out, ActivationTap tap) {
        int K = cols;
        int N = rows;
        float[] in = x;
        if (tap != null) {
            int n = T * K;
            if (tapCopy.length < n) {
                tapCopy = new float[n];
            }
            System.arraycopy(x, 0, tapCopy, 0, n);
            tap.onActivation(inSite, tapCopy, T, K);
            in = tapCopy;
        }
        if (packed != null) {
            QuantGemm.matmul(in, T, packed, out);
        } else {
            Gemm.matmul(in, T, weight, out);
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
}
