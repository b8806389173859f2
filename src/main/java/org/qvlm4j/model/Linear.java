package org.qvlm4j.model;

import org.qvlm4j.kernels.Gemm;
import org.qvlm4j.kernels.WeightMatrix;

/**
 * A linear layer y = x W^T + b as torch.nn.Linear, with its weight kept in the stored dtype and
 * read in place by {@link Gemm#matmul}. The weight can be swapped (for example for a quantized
 * one) as long as the shape stays the same.
 */
public final class Linear {
    private final String name;
    private final String inSite;
    private final String outSite;
    private WeightMatrix weight; // (N, K)
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
        this.weight = weight;
        this.bias = bias;
    }

    /** Site prefix, e.g. {@code llm.layers.0.mlp.down_proj}. */
    public String name() {
        return name;
    }

    public int inFeatures() {
        return weight.cols();
    }

    public int outFeatures() {
        return weight.rows();
    }

    public WeightMatrix weight() {
        return weight;
    }

    /** The bias (N), or null; callers must not change it. */
    public float[] bias() {
        return bias;
    }

    /** Replaces the weight with one of the same shape (any dtype {@link WeightMatrix} allows). */
    public void replaceWeight(WeightMatrix w) {
        if (w.rows() != weight.rows() || w.cols() != weight.cols()) {
            throw new IllegalArgumentException(name + ": replacement weight has shape (" + w.rows() + ", " + w.cols()
                    + "), expected (" + weight.rows() + ", " + weight.cols() + ")");
        }
        weight = w;
    }

    /** out (T, N) = x (T, K) W^T + b; x is not modified. */
    public void forward(float[] x, int T, float[] out, ActivationTap tap) {
        int K = weight.cols();
        int N = weight.rows();
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
        Gemm.matmul(in, T, weight, out);
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
