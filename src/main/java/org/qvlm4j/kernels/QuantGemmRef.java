package org.qvlm4j.kernels;

/**
 * Scalar references for {@link QuantGemm}: double-precision products on dequantized values, and
 * the scalar twins that spell out the arithmetic of the vector kernels one element at a time.
 */
public final class QuantGemmRef {
    private QuantGemmRef() {
    }

    /** out[t, n] = sum_k x[t, k] * deq(w)[n, k], accumulated in double. */
    public static void matmulDequantized(float[] x, int T, PackedMatrix w, float[] out) {
        int K = w.cols();
        int N = w.rows();
        float[] row = new float[K];
        for (int n = 0; n < N; n++) {
            w.dequantizeRow(n, row, 0);
            for (int t = 0; t < T; t++) {
                double acc = 0;
                for (int k = 0; k < K; k++) {
                    acc += (double) x[t * K + k] * row[k];
                }
                out[t * N + n] = (float) acc;
            }
        }
    }

    /**
     * The weight-only twin: per group, s * (sum_k q_k x_k) in float, with the zero point folded as
     * s * z * (sum_k x_k) (NF4: s * sum_k level(q_k) x_k), groups in order.
     */
    public static void matmulWeightOnly(float[] x, int T, PackedMatrix w, float[] out) {
        int K = w.cols();
        int N = w.rows();
        int G = w.groupSize();
        boolean nf4 = w.format() == QuantFormat.NF4;
        for (int t = 0; t < T; t++) {
            for (int n = 0; n < N; n++) {
                float acc = 0f;
                float corr = 0f;
                for (int g = 0; g < w.groups(); g++) {
                    float dot = 0f;
                    float xs = 0f;
                    for (int k = g * G; k < (g + 1) * G; k++) {
                        int q = w.code(n, k);
                        float xv = x[t * K + k];
                        dot = Math.fma(nf4 ? QuantFormat.NF4_LEVELS[q] : q, xv, dot);
                        xs += xv;
                    }
                    float s = w.scale(n, g);
                    acc = Math.fma(dot, s, acc);
                    corr = Math.fma(s * w.zeroPoint(n, g), xs, corr);
                }
                out[t * N + n] = acc - corr;
            }
        }
    }

    /**
     * The twin of the tiled INT4 GEMV (INT4, K a multiple of 8), bit-identical to it at any width:
     * per row and group, accumulator j mod 4 takes {@code fma((float) (q_k << 4j), x_k 2^(-4j), .)}
     * for k = 8 c + j in k order (j = 7 unshifted and unscaled), then
     * {@code acc = fma((a0 + a1) + (a2 + a3), s, acc)} and {@code acc = fma(s * z, -xsum_g, acc)}
     * with xsum_g the group's float sum of x in k order.
     */
    public static void gemvInt4Tiled(float[] x, PackedMatrix w, float[] out) {
        if (!Int4Tiles.supports(w)) {
            throw new IllegalArgumentException("tiled INT4 GEMV needs INT4 with K a multiple of 8, got " + w);
        }
        int G = w.groupSize();
        for (int n = 0; n < w.rows(); n++) {
            float acc = 0f;
            for (int g = 0; g < w.groups(); g++) {
                float[] a = new float[4];
                float xs = 0f;
                for (int k = g * G; k < (g + 1) * G; k++) {
                    int j = k % 8;
                    int shift = j < 7 ? 4 * j : 0;
                    a[j % 4] = Math.fma((float) (w.code(n, k) << shift), Math.scalb(x[k], -shift), a[j % 4]);
                    xs += x[k];
                }
                float s = w.scale(n, g);
                acc = Math.fma((a[0] + a[1]) + (a[2] + a[3]), s, acc);
                acc = Math.fma(s * w.zeroPoint(n, g), -xs, acc);
            }
            out[n] = acc;
        }
    }

    /**
     * The integer twin, bit-identical to the vector integer kernel: per segment of
     * S = min(weight group, activation group) weights, the exact integer
     * {@code isum = sum_k q_k a_k - z * sum_k a_k}, then {@code acc += (s_w * s_x) * (float) isum}
     * in segment order.
     */
    public static void matmulInt(QuantizedActivations xq, PackedMatrix w, float[] out) {
        QuantGemm.checkInt(xq, w, out);
        int K = w.cols();
        int N = w.rows();
        int S = Math.min(w.groupSize(), xq.groupSize());
        for (int t = 0; t < xq.T(); t++) {
            for (int n = 0; n < N; n++) {
                float acc = 0f;
                for (int k0 = 0; k0 < K; k0 += S) {
                    int dot = 0;
                    int asum = 0;
                    for (int k = k0; k < k0 + S; k++) {
                        int a = xq.codes()[t * K + k];
                        dot += w.code(n, k) * a;
                        asum += a;
                    }
                    int gw = k0 / w.groupSize();
                    int isum = dot - w.zeroPoint(n, gw) * asum;
                    acc += (w.scale(n, gw) * xq.scale(t, k0 / xq.groupSize())) * (float) isum;
                }
                out[t * N + n] = acc;
            }
        }
    }

    /** out[t, n] = sum_k deq(x)[t, k] * deq(w)[n, k] in double: the fake-quant float product. */
    public static void matmulFakeQuant(QuantizedActivations xq, PackedMatrix w, float[] out) {
        int K = w.cols();
        int N = w.rows();
        float[] row = new float[K];
        for (int n = 0; n < N; n++) {
            w.dequantizeRow(n, row, 0);
            for (int t = 0; t < xq.T(); t++) {
                double acc = 0;
                for (int k = 0; k < K; k++) {
                    acc += (double) xq.dequantize(t, k) * row[k];
                }
                out[t * N + n] = (float) acc;
            }
        }
    }
}
