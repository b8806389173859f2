package org.qvlm4j.kernels;

/**
 * Activations x (T, K) quantized to signed symmetric integer codes for the integer GEMM:
 * {@code x[t, k] ~= codes[t, k] * scales[t, k / groupSize]}, codes in [-qmax, qmax] with
 * qmax = 2^(bits-1) - 1 (127 for 8 bits, 7 for 4 bits). Codes are held widened to int so that
 * kernels load them as int lanes without conversion.
 *
 * <p>Scales are dynamic (absmax per token or per group of a token, computed by
 * {@link #quantizeDynamic}) or static (one given per-tensor scale, {@link #quantizeStatic}), as in
 * SmoothQuant/ZeroQuant-style W8A8. Rounding is to nearest even; values beyond the range clamp.
 * Leaves out: asymmetric activations (the integer kernel then needs per-token zero points).
 *
 * @param groupSize K (one scale per token) or a multiple of {@value PackedMatrix#GROUP_QUANTUM}
 *     dividing K
 * @param codes (T, K) row-major
 * @param scales (T, K / groupSize) row-major
 */
public record QuantizedActivations(int T, int K, int bits, int groupSize, int[] codes, float[] scales) {

    public QuantizedActivations {
        if (bits != 8 && bits != 4) {
            throw new IllegalArgumentException("activation bits must be 8 or 4, got " + bits);
        }
        if (T < 1 || K < 1) {
            throw new IllegalArgumentException("activations shape must be positive, got (" + T + ", " + K + ")");
        }
        if (groupSize != K && (groupSize <= 0 || groupSize % PackedMatrix.GROUP_QUANTUM != 0 || K % groupSize != 0)) {
            throw new IllegalArgumentException("activation group size " + groupSize + " must be K = " + K
                    + " or a multiple of " + PackedMatrix.GROUP_QUANTUM + " dividing K");
        }
        if (codes.length != (long) T * K) {
            throw new IllegalArgumentException("activation codes need (" + T + ", " + K + ") ints, got " + codes.length);
        }
        if (scales.length != (long) T * (K / groupSize)) {
            throw new IllegalArgumentException("activation scales need " + (long) T * (K / groupSize)
                    + " floats, got " + scales.length);
        }
        int qmax = (1 << (bits - 1)) - 1;
        for (int i = 0; i < codes.length; i++) {
            if (codes[i] < -qmax || codes[i] > qmax) {
                throw new IllegalArgumentException("activation code " + i + " is " + codes[i]
                        + ", expected -" + qmax + ".." + qmax);
            }
        }
    }

    /** Largest code magnitude: 2^(bits-1) - 1. */
    public int qmax() {
        return (1 << (bits - 1)) - 1;
    }

    /** Groups per token. */
    public int groups() {
        return K / groupSize;
    }

    public float scale(int t, int g) {
        return scales[t * groups() + g];
    }

    /** The dequantized activation code(t, k) * scale: what the integer GEMM multiplies by. */
    public float dequantize(int t, int k) {
        return codes[t * K + k] * scale(t, k / groupSize);
    }

    /** Symmetric dynamic quantization: scale = absmax / qmax per (token, group). */
    public static QuantizedActivations quantizeDynamic(float[] x, int T, int K, int bits, int groupSize) {
        checkInput(x, T, K);
        int qmax = (1 << (bits - 1)) - 1;
        int groups = groupSize > 0 ? K / groupSize : 0;
        float[] scales = new float[T * Math.max(groups, 1)];
        int[] codes = new int[T * K];
        for (int t = 0; t < T; t++) {
            for (int g = 0; g < groups; g++) {
                float absmax = 0f;
                for (int k = g * groupSize; k < (g + 1) * groupSize; k++) {
                    absmax = Math.max(absmax, Math.abs(x[t * K + k]));
                }
                float s = absmax > 0 ? absmax / qmax : 1f;
                scales[t * groups + g] = s;
                for (int k = g * groupSize; k < (g + 1) * groupSize; k++) {
                    codes[t * K + k] = round(x[t * K + k], s, qmax);
                }
            }
        }
        return new QuantizedActivations(T, K, bits, groupSize, codes, scales);
    }

    /** Static per-tensor quantization with a calibrated scale (values beyond qmax * scale clamp). */
    public static QuantizedActivations quantizeStatic(float[] x, int T, int K, int bits, float scale) {
        checkInput(x, T, K);
        if (!(scale > 0) || !Float.isFinite(scale)) {
            throw new IllegalArgumentException("static activation scale must be positive and finite, got " + scale);
        }
        int qmax = (1 << (bits - 1)) - 1;
        int[] codes = new int[T * K];
        for (int i = 0; i < T * K; i++) {
            codes[i] = round(x[i], scale, qmax);
        }
        float[] scales = new float[T];
        java.util.Arrays.fill(scales, scale);
        return new QuantizedActivations(T, K, bits, K, codes, scales);
    }

    private static int round(float v, float s, int qmax) {
        double q = Math.rint(v / s);
        return (int) Math.max(-qmax, Math.min(qmax, q));
    }

    private static void checkInput(float[] x, int T, int K) {
        if (T < 1 || K < 1 || x.length < (long) T * K) {
            throw new IllegalArgumentException("quantize activations: x has " + x.length + " floats, need ("
                    + T + ", " + K + ")");
        }
    }
}
