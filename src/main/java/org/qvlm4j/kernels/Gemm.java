package org.qvlm4j.kernels;

/**
 * Dense products of float activations with a weight matrix in its stored dtype: {@code out = x W^T}.
 *
 * <p>This is the entry point the model calls for every linear layer. It dispatches on the weight
 * dtype and on T (T = 1 is a matrix-vector product, memory-bound; T &gt; 1 is a blocked GEMM).
 */
public final class Gemm {
    private Gemm() {
    }

    /** out[t, n] = sum_k x[t, k] * w[n, k]; x is (T, K) and out is (T, N), both row-major. */
    public static void matmul(float[] x, int T, WeightMatrix w, float[] out) {
        if (x.length < (long) T * w.cols() || out.length < (long) T * w.rows()) {
            throw new IllegalArgumentException("matmul: x has " + x.length + " floats, out has " + out.length
                    + "; need (" + T + ", " + w.cols() + ") and (" + T + ", " + w.rows() + ")");
        }
        GemmRef.matmul(x, T, w, out);
    }
}
