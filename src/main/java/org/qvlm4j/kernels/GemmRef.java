package org.qvlm4j.kernels;

/**
 * Scalar reference for {@link Gemm}: the slow, obvious loop every fast kernel is tested against.
 * {@link #matmul} accumulates in double so that its own rounding error is far below the fast
 * kernels'; {@link #matmulFloatFma} is the float twin whose arithmetic the blocked GEMM reproduces
 * bit for bit.
 */
public final class GemmRef {
    private GemmRef() {
    }

    /** out[t, n] = sum_k x[t, k] * w[n, k] for t &lt; T; x is (T, K), out is (T, N), row-major. */
    public static void matmul(float[] x, int T, WeightMatrix w, float[] out) {
        int K = w.cols();
        int N = w.rows();
        for (int t = 0; t < T; t++) {
            for (int n = 0; n < N; n++) {
                double acc = 0;
                for (int k = 0; k < K; k++) {
                    acc += (double) x[t * K + k] * w.get(n, k);
                }
                out[t * N + n] = (float) acc;
            }
        }
    }

    /**
     * out[t, n] = one float FMA chain over k = 0 .. K-1 in order, starting from 0: the exact
     * arithmetic of the blocked GEMM at every vector width and thread count.
     */
    public static void matmulFloatFma(float[] x, int T, WeightMatrix w, float[] out) {
        int K = w.cols();
        int N = w.rows();
        for (int t = 0; t < T; t++) {
            for (int n = 0; n < N; n++) {
                float acc = 0f;
                for (int k = 0; k < K; k++) {
                    acc = Math.fma(x[t * K + k], w.get(n, k), acc);
                }
                out[t * N + n] = acc;
            }
        }
    }
}
