package org.qvlm4j.model;

import org.qvlm4j.io.config.Activation;

/**
 * Row-wise elementwise and normalization math of the LLaVA forward pass, on row-major float
 * arrays: LayerNorm and RMSNorm (HF computes both in fp32; here the statistics accumulate in
 * double), the activations of {@link Activation}, a numerically stable softmax and LLaMA's rotary
 * embedding. Matrix products are not here: they go through {@code Gemm.matmul}.
 */
public final class Ops {
    private static final double SQRT_HALF = Math.sqrt(0.5);
    private static final double SQRT_2_OVER_PI = Math.sqrt(2.0 / Math.PI);
    /** Coefficient of the cubic term in the tanh approximation of GELU (Hendrycks and Gimpel). */
    private static final double GELU_TANH_CUBIC = 0.044715;
    /** Slope of the sigmoid in OpenAI CLIP's quick GELU. */
    private static final double QUICK_GELU_SLOPE = 1.702;

    private Ops() {
    }

    /** LayerNorm over the last axis of x (rows, cols), in place: (x - mean) / sqrt(var + eps) * w + b. */
    public static void layerNorm(float[] x, int rows, int cols, float[] w, float[] b, double eps) {
        for (int r = 0; r < rows; r++) {
            int o = r * cols;
            double mean = 0;
            for (int c = 0; c < cols; c++) {
                mean += x[o + c];
            }
            mean /= cols;
            double var = 0;
            for (int c = 0; c < cols; c++) {
                double d = x[o + c] - mean;
                var += d * d;
            }
            var /= cols;
            double inv = 1.0 / Math.sqrt(var + eps);
            for (int c = 0; c < cols; c++) {
                x[o + c] = (float) ((x[o + c] - mean) * inv * w[c] + b[c]);
            }
        }
    }

    /** RMSNorm of src rows into dst (may alias): x / sqrt(mean(x^2) + eps) * w, as LlamaRMSNorm. */
    public static void rmsNorm(float[] src, float[] dst, int rows, int cols, float[] w, double eps) {
        for (int r = 0; r < rows; r++) {
            int o = r * cols;
            double ss = 0;
            for (int c = 0; c < cols; c++) {
                ss += (double) src[o + c] * src[o + c];
            }
            float inv = (float) (1.0 / Math.sqrt(ss / cols + eps));
            for (int c = 0; c < cols; c++) {
                dst[o + c] = w[c] * (src[o + c] * inv);
            }
        }
    }

    /** Applies the activation to x[0 .. n) in place. */
    public static void activate(Activation act, float[] x, int n) {
        switch (act) {
            case SILU -> {
                for (int i = 0; i < n; i++) {
                    x[i] = (float) silu(x[i]);
                }
            }
            case GELU_ERF -> {
                for (int i = 0; i < n; i++) {
                    x[i] = (float) geluErf(x[i]);
                }
            }
            case GELU_TANH -> {
                for (int i = 0; i < n; i++) {
                    x[i] = (float) geluTanh(x[i]);
                }
            }
            case QUICK_GELU -> {
                for (int i = 0; i < n; i++) {
                    x[i] = (float) quickGelu(x[i]);
                }
            }
        }
    }

    public static double silu(double x) {
        return x / (1.0 + Math.exp(-x));
    }

    public static double geluErf(double x) {
        return 0.5 * x * (1.0 + erf(x * SQRT_HALF));
    }

    public static double geluTanh(double x) {
        return 0.5 * x * (1.0 + Math.tanh(SQRT_2_OVER_PI * (x + GELU_TANH_CUBIC * x * x * x)));
    }

    public static double quickGelu(double x) {
        return x / (1.0 + Math.exp(-QUICK_GELU_SLOPE * x));
    }

    /**
     * The error function, via the Chebyshev fit of erfc from Numerical Recipes (Press et al., 2nd
     * ed., section 6.2): relative error below 1.2e-7 everywhere, enough for float activations.
     */
    public static double erf(double x) {
        double z = Math.abs(x);
        double t = 1.0 / (1.0 + 0.5 * z);
        double erfc = t * Math.exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418
                + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587
                + t * (-0.82215223 + t * 0.17087277)))))))));
        return x >= 0 ? 1.0 - erfc : erfc - 1.0;
    }

    /** Softmax of x[off .. off + n) in place, subtracting the max first. */
    public static void softmax(float[] x, int off, int n) {
        float max = Float.NEGATIVE_INFINITY;
        for (int i = 0; i < n; i++) {
            max = Math.max(max, x[off + i]);
        }
        double sum = 0;
        for (int i = 0; i < n; i++) {
            float e = (float) Math.exp(x[off + i] - max);
            x[off + i] = e;
            sum += e;
        }
        float inv = (float) (1.0 / sum);
        for (int i = 0; i < n; i++) {
            x[off + i] *= inv;
        }
    }

    /**
     * LLaMA's inverse frequencies theta^(-2i/Hd), rounded to float as HF computes them, so that
     * angles at long positions match HF's float32 rounding.
     */
    public static float[] ropeInverseFrequencies(int headDim, double theta) {
        float[] inv = new float[headDim / 2];
        for (int i = 0; i < inv.length; i++) {
            float exponent = (float) (2 * i) / headDim;
            inv[i] = (float) (1.0 / (float) Math.pow(theta, exponent));
        }
        return inv;
    }

    /** cos and sin of position * invFreq[i] into cos[dstOff + i], sin[dstOff + i], in float like HF. */
    public static void ropeAngles(float[] invFreq, int position, float[] cos, float[] sin, int dstOff) {
        for (int i = 0; i < invFreq.length; i++) {
            float angle = invFreq[i] * position;
            cos[dstOff + i] = (float) Math.cos(angle);
            sin[dstOff + i] = (float) Math.sin(angle);
        }
    }

    /**
     * Rotates one head vector x[off .. off + Hd) in place with HF's rotate_half convention: the
     * first and second halves form the (real, imaginary) pairs, not adjacent elements.
     */
    public static void ropeRotate(float[] x, int off, int headDim, float[] cos, float[] sin, int angleOff) {
        int half = headDim / 2;
        for (int i = 0; i < half; i++) {
            float a = x[off + i];
            float b = x[off + half + i];
            float c = cos[angleOff + i];
            float s = sin[angleOff + i];
            x[off + i] = a * c - b * s;
            x[off + half + i] = b * c + a * s;
        }
    }
}
