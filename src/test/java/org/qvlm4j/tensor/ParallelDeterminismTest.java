package org.qvlm4j.tensor;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import java.util.Random;
import org.junit.jupiter.api.Test;

/** The parallel ops give bit-identical outputs and gradients with one and two threads. */
class ParallelDeterminismTest {

    private static float[][] run(int threads) {
        int saved = ParallelLoop.threads();
        ParallelLoop.setThreads(threads);
        try {
            Random rnd = new Random(77);
            Tensor x = GradCheck.randn(rnd, 1, 48, 64);
            Tensor w = GradCheck.randn(rnd, 0.2, 96, 64);
            Tensor b = GradCheck.randn(rnd, 0.2, 96);
            Tensor m = GradCheck.randn(rnd, 0.2, 96, 64);
            Tape tape = new Tape();
            Tensor h = Ops.linear(tape, x, w, b); // (48, 96)
            Tensor q = Ops.matmul(tape, h, m); // (48, 64)
            Tensor a = Ops.attention(tape, q, Ops.sliceRows(tape, q, 0, 48), Ops.scale(tape, q, 0.5f), 8, 8, true);
            tape.backward(Ops.mse(tape, a, Tensor.zeros(48, 64)));
            return new float[][] {a.data(), x.grad(), w.grad(), b.grad(), m.grad()};
        } finally {
            ParallelLoop.setThreads(saved);
        }
    }

    @Test
    void oneAndTwoThreadsAgreeBitForBit() {
        float[][] one = run(1);
        float[][] two = run(2);
        for (int i = 0; i < one.length; i++) {
            assertArrayEquals(one[i], two[i]);
        }
    }
}
