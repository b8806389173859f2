package org.qvlm4j.model;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.file.Path;
import java.util.function.DoubleUnaryOperator;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.qvlm4j.io.config.Activation;
import org.qvlm4j.io.safetensors.SafeTensors;

/** Each op of {@link Ops} and {@link Attention} against PyTorch float64 outputs (ops-reference). */
class OpsTest {
    /** Float32 op vs float64 PyTorch, values of order 1. */
    static final double TOL = 2e-6;

    static SafeTensors ref;

    @BeforeAll
    static void open() {
        ref = SafeTensors.open(Path.of("src/test/resources/fixtures/ops-reference.safetensors"));
    }

    @AfterAll
    static void close() {
        ref.close();
    }

    static float[] get(String name) {
        return ref.get(name).toFloatArray();
    }

    @Test
    void layerNorm() {
        float[] x = get("layer_norm.in0");
        Ops.layerNorm(x, 4, 9, get("layer_norm.in1"), get("layer_norm.in2"), 1e-5);
        TestArrays.assertClose(get("layer_norm.out"), x, TOL, "layer_norm");
    }

    @Test
    void rmsNorm() {
        float[] x = get("rms_norm.in0");
        float[] out = new float[x.length];
        Ops.rmsNorm(x, out, 4, 9, get("rms_norm.in1"), 1e-6);
        TestArrays.assertClose(get("rms_norm.out"), out, TOL, "rms_norm");
    }

    @Test
    void activations() {
        check("gelu_erf", Activation.GELU_ERF);
        check("gelu_tanh", Activation.GELU_TANH);
        check("quick_gelu", Activation.QUICK_GELU);
        check("silu", Activation.SILU);
    }

    private void check(String op, Activation act) {
        float[] x = get(op + ".in0");
        Ops.activate(act, x, x.length);
        TestArrays.assertClose(get(op + ".out"), x, TOL, op);
    }

    @Test
    void erfMatchesSeriesToSevenDigits() {
        DoubleUnaryOperator series = z -> {
            double term = z;
            double sum = z;
            for (int n = 1; n < 200; n++) {
                term *= -z * z / n;
                sum += term / (2 * n + 1);
            }
            return 2 / Math.sqrt(Math.PI) * sum;
        };
        for (double z = -3; z <= 3; z += 0.01) {
            assertEquals(series.applyAsDouble(z), Ops.erf(z), 2e-7, "erf(" + z + ")");
        }
        assertEquals(1.0, Ops.erf(8), 1e-12);
        assertEquals(-1.0, Ops.erf(-8), 1e-12);
    }

    @Test
    void softmax() {
        float[] x = get("softmax.in0");
        for (int r = 0; r < 4; r++) {
            Ops.softmax(x, r * 6, 6);
        }
        TestArrays.assertClose(get("softmax.out"), x, TOL, "softmax");
    }

    @Test
    void causalAttention() {
        int H = 2;
        int T = 5;
        int Hd = 4;
        float[] q = headsToTokens(get("causal_attention.in0"), H, T, Hd);
        float[] k = headsToTokens(get("causal_attention.in1"), H, T, Hd);
        float[] v = headsToTokens(get("causal_attention.in2"), H, T, Hd);
        float[] out = new float[T * H * Hd];
        Attention.forward(q, k, v, out, new float[H * T], T, T, 0, H, H, Hd, true);
        TestArrays.assertClose(headsToTokens(get("causal_attention.out"), H, T, Hd), out, TOL, "causal_attention");
    }

    @Test
    void ropeLlama() {
        int H = 2;
        int T = 6;
        int Hd = 8;
        float[] x = get("rope_llama.in0"); // (H, T, Hd)
        float[] inv = Ops.ropeInverseFrequencies(Hd, 10000);
        float[] cos = new float[T * Hd / 2];
        float[] sin = new float[T * Hd / 2];
        for (int t = 0; t < T; t++) {
            Ops.ropeAngles(inv, t, cos, sin, t * Hd / 2);
        }
        for (int h = 0; h < H; h++) {
            for (int t = 0; t < T; t++) {
                Ops.ropeRotate(x, (h * T + t) * Hd, Hd, cos, sin, t * Hd / 2);
            }
        }
        TestArrays.assertClose(get("rope_llama.out"), x, TOL, "rope_llama");
    }

    /**
     * Grouped-query causal attention large enough to run heads in parallel, against the float64
     * test reference; then the last rows again as a query block at an offset, as in a decode step.
     */
    @Test
    void parallelGroupedQueryAttentionAndQueryOffset() {
        int T = 40;
        int H = 8;
        int KV = 2;
        int Hd = 16;
        java.util.SplittableRandom rnd = new java.util.SplittableRandom(5);
        float[] q = TestCheckpoints.random(rnd, T * H * Hd, 1.0);
        float[] k = TestCheckpoints.random(rnd, T * KV * Hd, 1.0);
        float[] v = TestCheckpoints.random(rnd, T * KV * Hd, 1.0);
        float[] out = new float[T * H * Hd];
        Attention.forward(q, k, v, out, new float[H * T], T, T, 0, H, KV, Hd, true);
        double[][] expected = ReferenceLlava.attention(rows(q, T), rows(k, T), rows(v, T), H, KV, Hd, true);
        TestArrays.assertClose(ReferenceLlava.flatten(expected), out, TOL, "parallel GQA attention");

        int tail = 8;
        int pos0 = T - tail;
        float[] qTail = java.util.Arrays.copyOfRange(q, pos0 * H * Hd, T * H * Hd);
        float[] outTail = new float[tail * H * Hd];
        Attention.forward(qTail, k, v, outTail, new float[H * T], tail, T, pos0, H, KV, Hd, true);
        TestArrays.assertClose(java.util.Arrays.copyOfRange(out, pos0 * H * Hd, T * H * Hd), outTail, 0, "offset block");
    }

    static double[][] rows(float[] x, int T) {
        int cols = x.length / T;
        double[][] r = new double[T][cols];
        for (int t = 0; t < T; t++) {
            for (int c = 0; c < cols; c++) {
                r[t][c] = x[t * cols + c];
            }
        }
        return r;
    }

    /** (H, T, Hd) to (T, H*Hd). */
    static float[] headsToTokens(float[] x, int H, int T, int Hd) {
        float[] out = new float[x.length];
        for (int h = 0; h < H; h++) {
            for (int t = 0; t < T; t++) {
                System.arraycopy(x, (h * T + t) * Hd, out, (t * H + h) * Hd, Hd);
            }
        }
        return out;
    }
}
