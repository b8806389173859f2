package org.qvlm4j.tensor;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.function.BiFunction;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.qvlm4j.io.safetensors.SafeTensors;

/**
 * Forward and backward of each op against PyTorch float64 references in
 * {@code ops-reference.safetensors}: for op X, inputs {@code X.inK}, upstream gradient
 * {@code X.grad_out}, output {@code X.out} and input gradients {@code X.grad_inK}.
 * Attention and RoPE references are laid out (H, T, Dh); they are transposed to the ops' (T, H*Dh).
 */
class OpsFixtureTest {
    /** Allowed error relative to the largest magnitude of the reference tensor. */
    static final double REL_TOL = 1e-5;

    private static final Path FIXTURE = Path.of("src/test/resources/fixtures/ops-reference.safetensors");
    private static SafeTensors st;

    @BeforeAll
    static void open() {
        st = SafeTensors.open(FIXTURE);
    }

    @AfterAll
    static void close() {
        st.close();
    }

    private static float[] get(String key) {
        return st.get(key).toFloatArray();
    }

    private static int[] shape(String key) {
        return st.get(key).intShape();
    }

    private static Tensor input(String key) {
        return Tensor.variable(get(key), shape(key));
    }

    private static void assertClose(String what, float[] expected, float[] actual) {
        assertEquals(expected.length, actual.length, what + ": length");
        double max = 0;
        for (float e : expected) {
            max = Math.max(max, Math.abs(e));
        }
        double tol = REL_TOL * Math.max(max, 1e-30);
        for (int i = 0; i < expected.length; i++) {
            int idx = i;
            assertTrue(Math.abs(expected[i] - actual[i]) <= tol,
                    () -> what + "[" + idx + "]: expected " + expected[idx] + ", got " + actual[idx] + ", tol " + tol);
        }
    }

    /** Runs op on the fixture inputs, backpropagates the fixture upstream gradient, compares all. */
    private static void checkOp(String op, int inputs, BiFunction<Tape, Tensor[], Tensor> f) {
        Tensor[] in = new Tensor[inputs];
        for (int i = 0; i < inputs; i++) {
            in[i] = input(op + ".in" + i);
        }
        Tape tape = new Tape();
        Tensor out = f.apply(tape, in);
        assertClose(op + ".out", get(op + ".out"), out.data());
        tape.backward(out, get(op + ".grad_out"));
        for (int i = 0; i < inputs; i++) {
            assertClose(op + ".grad_in" + i, get(op + ".grad_in" + i), in[i].grad());
        }
    }

    @Test
    void fixtureHasTheExpectedLayout() {
        assertArrayEquals(new int[] {5, 7}, shape("linear.in0"));
        assertArrayEquals(new int[] {3, 7}, shape("linear.in1"));
        assertArrayEquals(new int[] {2, 5, 4}, shape("causal_attention.in0"));
        assertArrayEquals(new int[] {2, 6, 8}, shape("rope_llama.in0"));
        assertArrayEquals(new int[] {4, 5}, shape("cross_entropy_targets_1_4_0_2.in0"));
    }

    @Test
    void linear() {
        checkOp("linear", 3, (t, in) -> Ops.linear(t, in[0], in[1], in[2]));
    }

    @Test
    void layerNorm() {
        checkOp("layer_norm", 3, (t, in) -> Ops.layerNorm(t, in[0], in[1], in[2], 1e-5f));
    }

    @Test
    void rmsNorm() {
        checkOp("rms_norm", 2, (t, in) -> Ops.rmsNorm(t, in[0], in[1], 1e-6f));
    }

    @Test
    void activations() {
        checkOp("gelu_erf", 1, (t, in) -> Ops.gelu(t, in[0]));
        checkOp("gelu_tanh", 1, (t, in) -> Ops.geluTanh(t, in[0]));
        checkOp("quick_gelu", 1, (t, in) -> Ops.quickGelu(t, in[0]));
        checkOp("silu", 1, (t, in) -> Ops.silu(t, in[0]));
    }

    @Test
    void softmax() {
        checkOp("softmax", 1, (t, in) -> Ops.softmax(t, in[0]));
    }

    @Test
    void crossEntropy() {
        checkOp("cross_entropy_targets_1_4_0_2", 1, (t, in) -> Ops.crossEntropy(t, in[0], new int[] {1, 4, 0, 2}));
    }

    @Test
    void causalAttention() {
        String op = "causal_attention";
        int[] s = shape(op + ".in0"); // (H, T, Dh)
        int H = s[0];
        int T = s[1];
        int Dh = s[2];
        Tensor q = Tensor.variable(headsToRows(get(op + ".in0"), H, T, Dh), T, H * Dh);
        Tensor k = Tensor.variable(headsToRows(get(op + ".in1"), H, T, Dh), T, H * Dh);
        Tensor v = Tensor.variable(headsToRows(get(op + ".in2"), H, T, Dh), T, H * Dh);
        Tape tape = new Tape();
        Tensor out = Ops.attention(tape, q, k, v, H, H, true);
        assertClose(op + ".out", headsToRows(get(op + ".out"), H, T, Dh), out.data());
        tape.backward(out, headsToRows(get(op + ".grad_out"), H, T, Dh));
        assertClose(op + ".grad_in0", headsToRows(get(op + ".grad_in0"), H, T, Dh), q.grad());
        assertClose(op + ".grad_in1", headsToRows(get(op + ".grad_in1"), H, T, Dh), k.grad());
        assertClose(op + ".grad_in2", headsToRows(get(op + ".grad_in2"), H, T, Dh), v.grad());
    }

    @Test
    void ropeLlama() {
        String op = "rope_llama";
        int[] s = shape(op + ".in0"); // (H, T, Dh)
        int H = s[0];
        int T = s[1];
        int Dh = s[2];
        Tensor x = Tensor.variable(headsToRows(get(op + ".in0"), H, T, Dh), T, H * Dh);
        Tape tape = new Tape();
        Tensor out = Ops.rope(tape, x, H, 10000.0, 0);
        assertClose(op + ".out", headsToRows(get(op + ".out"), H, T, Dh), out.data());
        tape.backward(out, headsToRows(get(op + ".grad_out"), H, T, Dh));
        assertClose(op + ".grad_in0", headsToRows(get(op + ".grad_in0"), H, T, Dh), x.grad());
    }

    /** (H, T, Dh) → (T, H*Dh). */
    private static float[] headsToRows(float[] a, int H, int T, int Dh) {
        float[] r = new float[a.length];
        for (int h = 0; h < H; h++) {
            for (int t = 0; t < T; t++) {
                System.arraycopy(a, (h * T + t) * Dh, r, t * H * Dh + h * Dh, Dh);
            }
        }
        return r;
    }
}
