package org.qvlm4j.tensor;

import static org.qvlm4j.tensor.GradCheck.check;
import static org.qvlm4j.tensor.GradCheck.randn;

import java.util.Random;
import org.junit.jupiter.api.Test;

/** Every backward rule in {@link Ops} against central finite differences of its own forward. */
class OpsGradientTest {

    @Test
    void linearWithAndWithoutBias() {
        Random rnd = new Random(1);
        check("linear", (t, in) -> Ops.linear(t, in[0], in[1], in[2]), 11,
                randn(rnd, 1, 5, 7), randn(rnd, 0.5, 3, 7), randn(rnd, 1, 3));
        check("linear no bias", (t, in) -> Ops.linear(t, in[0], in[1], null), 12,
                randn(rnd, 1, 4, 6), randn(rnd, 0.5, 5, 6));
        // More rows than Ops.TALL_ROWS: the backward runs on the blocked GEMM.
        check("linear tall", (t, in) -> Ops.linear(t, in[0], in[1], in[2]), 13,
                randn(rnd, 1, Ops.TALL_ROWS + 37, 5), randn(rnd, 0.5, 3, 5), randn(rnd, 1, 3));
    }

    @Test
    void matmulPlainAndBatched() {
        Random rnd = new Random(2);
        check("matmul", (t, in) -> Ops.matmul(t, in[0], in[1]), 21, randn(rnd, 1, 4, 3), randn(rnd, 1, 3, 5));
        check("matmul batched", (t, in) -> Ops.matmul(t, in[0], in[1]), 22,
                randn(rnd, 1, 2, 3, 4), randn(rnd, 1, 2, 4, 2));
    }

    @Test
    void elementwiseArithmetic() {
        Random rnd = new Random(3);
        check("add", (t, in) -> Ops.add(t, in[0], in[1]), 31, randn(rnd, 1, 3, 4), randn(rnd, 1, 3, 4));
        check("addBias", (t, in) -> Ops.addBias(t, in[0], in[1]), 32, randn(rnd, 1, 3, 4), randn(rnd, 1, 4));
        check("mul", (t, in) -> Ops.mul(t, in[0], in[1]), 33, randn(rnd, 1, 3, 4), randn(rnd, 1, 3, 4));
        check("scale", (t, in) -> Ops.scale(t, in[0], -1.75f), 34, randn(rnd, 1, 2, 5));
        check("reshape", (t, in) -> Ops.mul(t, Ops.reshape(t, in[0], 4, 3), in[1]), 35,
                randn(rnd, 1, 2, 6), randn(rnd, 1, 4, 3));
    }

    @Test
    void norms() {
        Random rnd = new Random(4);
        check("layerNorm", (t, in) -> Ops.layerNorm(t, in[0], in[1], in[2], 1e-5f), 41,
                randn(rnd, 1, 4, 9), randn(rnd, 1, 9), randn(rnd, 1, 9));
        check("rmsNorm", (t, in) -> Ops.rmsNorm(t, in[0], in[1], 1e-6f), 42, randn(rnd, 1, 4, 9), randn(rnd, 1, 9));
    }

    @Test
    void activations() {
        Random rnd = new Random(5);
        check("gelu", (t, in) -> Ops.gelu(t, in[0]), 51, randn(rnd, 2, 6, 5));
        check("geluTanh", (t, in) -> Ops.geluTanh(t, in[0]), 52, randn(rnd, 2, 6, 5));
        check("quickGelu", (t, in) -> Ops.quickGelu(t, in[0]), 53, randn(rnd, 2, 6, 5));
        check("silu", (t, in) -> Ops.silu(t, in[0]), 54, randn(rnd, 2, 6, 5));
        check("softmax", (t, in) -> Ops.softmax(t, in[0]), 55, randn(rnd, 1, 4, 6));
    }

    @Test
    void attentionCausalBidirectionalAndGrouped() {
        Random rnd = new Random(6);
        check("attention causal MHA", (t, in) -> Ops.attention(t, in[0], in[1], in[2], 2, 2, true), 61,
                randn(rnd, 1, 5, 8), randn(rnd, 1, 5, 8), randn(rnd, 1, 5, 8));
        check("attention bidirectional MHA", (t, in) -> Ops.attention(t, in[0], in[1], in[2], 2, 2, false), 62,
                randn(rnd, 1, 5, 8), randn(rnd, 1, 5, 8), randn(rnd, 1, 5, 8));
        check("attention causal GQA", (t, in) -> Ops.attention(t, in[0], in[1], in[2], 4, 2, true), 63,
                randn(rnd, 1, 4, 12), randn(rnd, 1, 4, 6), randn(rnd, 1, 4, 6));
    }

    @Test
    void ropeWithPositionOffset() {
        Random rnd = new Random(7);
        check("rope", (t, in) -> Ops.rope(t, in[0], 2, 10000.0, 3), 71, randn(rnd, 1, 4, 8));
    }

    @Test
    void indexingAndLayout() {
        Random rnd = new Random(8);
        int[] ids = {2, 0, 2, 3};
        check("embedding", (t, in) -> Ops.embedding(t, in[0], ids), 81, randn(rnd, 1, 5, 3));
        check("concatRows", (t, in) -> Ops.concatRows(t, in[0], in[1], in[0]), 82,
                randn(rnd, 1, 2, 3), randn(rnd, 1, 1, 3));
        check("sliceRows", (t, in) -> Ops.sliceRows(t, in[0], 1, 3), 83, randn(rnd, 1, 4, 3));
    }

    @Test
    void losses() {
        Random rnd = new Random(9);
        int[] targets = {1, Ops.IGNORE_INDEX, 4, 0};
        check("crossEntropy", (t, in) -> Ops.crossEntropy(t, in[0], targets), 91, randn(rnd, 2, 4, 5));
        check("mse", (t, in) -> Ops.mse(t, in[0], in[1]), 92, randn(rnd, 1, 3, 4), randn(rnd, 1, 3, 4));
    }

    /** A pre-norm transformer block and LM head: checks accumulation through reuse and residuals. */
    @Test
    void composedBlock() {
        Random rnd = new Random(10);
        int T = 4;
        int D = 8;
        int[] targets = {3, 1, Ops.IGNORE_INDEX, 5};
        check("block", (t, in) -> {
            Tensor x = in[0];
            Tensor h = Ops.rmsNorm(t, x, in[1], 1e-6f);
            Tensor q = Ops.rope(t, Ops.linear(t, h, in[2], null), 2, 10000.0, 0);
            Tensor k = Ops.rope(t, Ops.linear(t, h, in[3], null), 1, 10000.0, 0);
            Tensor v = Ops.linear(t, h, in[4], null);
            Tensor a = Ops.attention(t, q, k, v, 2, 1, true);
            Tensor r = Ops.add(t, x, Ops.linear(t, a, in[5], null));
            Tensor m = Ops.silu(t, Ops.linear(t, Ops.layerNorm(t, r, in[1], in[6], 1e-5f), in[7], in[8]));
            Tensor logits = Ops.linear(t, Ops.add(t, r, m), in[9], null);
            return Ops.crossEntropy(t, logits, targets);
        }, 101,
                randn(rnd, 1, T, D), randn(rnd, 1, D), randn(rnd, 0.4, D, D), randn(rnd, 0.4, D / 2, D),
                randn(rnd, 0.4, D / 2, D), randn(rnd, 0.4, D, D), randn(rnd, 0.3, D), randn(rnd, 0.4, D, D),
                randn(rnd, 0.3, D), randn(rnd, 0.4, 7, D));
    }
}
