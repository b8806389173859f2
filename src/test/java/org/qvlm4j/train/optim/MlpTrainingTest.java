package org.qvlm4j.train.optim;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.qvlm4j.tensor.Ops;
import org.qvlm4j.tensor.ParallelLoop;
import org.qvlm4j.tensor.Tape;
import org.qvlm4j.tensor.Tensor;

/**
 * End to end: a 2-layer GELU MLP learns a seeded synthetic 4-class task (labels from a random
 * linear teacher) with AdamW, clipping and the cosine schedule; training is bit-reproducible for a
 * seed and independent of the thread count.
 */
class MlpTrainingTest {
    static final int SAMPLES = 128;
    static final int IN = 16;
    static final int HIDDEN = 64;
    static final int CLASSES = 4;
    static final int STEPS = 200;
    /** The final loss must be at most this fraction of the initial one. */
    static final double REQUIRED_REDUCTION = 0.02;

    record Run(float firstLoss, float lastLoss, List<Tensor> params) {
    }

    private static float[] gaussian(Random rnd, int n, double std) {
        float[] d = new float[n];
        for (int i = 0; i < n; i++) {
            d[i] = (float) (rnd.nextGaussian() * std);
        }
        return d;
    }

    private static Run train(long seed, int threads) {
        int saved = ParallelLoop.threads();
        ParallelLoop.setThreads(threads);
        try {
            Random rnd = new Random(seed);
            float[] x = gaussian(rnd, SAMPLES * IN, 1.0); // (S, IN)
            float[] teacher = gaussian(rnd, CLASSES * IN, 1.0); // (C, IN)
            int[] labels = new int[SAMPLES];
            for (int s = 0; s < SAMPLES; s++) {
                double best = Double.NEGATIVE_INFINITY;
                for (int c = 0; c < CLASSES; c++) {
                    double z = 0;
                    for (int k = 0; k < IN; k++) {
                        z += teacher[c * IN + k] * x[s * IN + k];
                    }
                    if (z > best) {
                        best = z;
                        labels[s] = c;
                    }
                }
            }
            Tensor input = Tensor.of(x, SAMPLES, IN);
            Tensor w1 = Tensor.param("fc1.weight", gaussian(rnd, HIDDEN * IN, 1.0 / Math.sqrt(IN)), HIDDEN, IN);
            Tensor b1 = Tensor.param("fc1.bias", new float[HIDDEN], HIDDEN);
            Tensor w2 = Tensor.param("fc2.weight", gaussian(rnd, CLASSES * HIDDEN, 1.0 / Math.sqrt(HIDDEN)),
                    CLASSES, HIDDEN);
            Tensor b2 = Tensor.param("fc2.bias", new float[CLASSES], CLASSES);
            List<Tensor> params = List.of(w1, b1, w2, b2);
            AdamW opt = new AdamW(List.of(new AdamW.Group(List.of(w1, w2), 0.01), new AdamW.Group(List.of(b1, b2), 0.0)),
                    AdamW.DEFAULT_BETA1, AdamW.DEFAULT_BETA2, AdamW.DEFAULT_EPS);
            CosineSchedule schedule = new CosineSchedule(1e-2, 10, STEPS, 0.1);
            float first = Float.NaN;
            float last = Float.NaN;
            for (int step = 0; step < STEPS; step++) {
                Tape tape = new Tape();
                Tensor h = Ops.gelu(tape, Ops.linear(tape, input, w1, b1)); // (S, HIDDEN)
                Tensor logits = Ops.linear(tape, h, w2, b2); // (S, C)
                Tensor loss = Ops.crossEntropy(tape, logits, labels);
                if (step == 0) {
                    first = loss.item();
                }
                last = loss.item();
                opt.zeroGrad();
                tape.backward(loss);
                GradClip.clipByGlobalNorm(params, 1.0);
                opt.step(schedule.lr(step));
            }
            return new Run(first, last, params);
        } finally {
            ParallelLoop.setThreads(saved);
        }
    }

    @Test
    void lossDropsByALargeFactor() {
        Run r = train(7, 1);
        assertTrue(r.lastLoss() < REQUIRED_REDUCTION * r.firstLoss(), "loss " + r.firstLoss() + " → " + r.lastLoss());
    }

    @Test
    void sameSeedGivesBitIdenticalParametersForOneAndTwoThreads() {
        Run a = train(11, 1);
        Run b = train(11, 1);
        Run c = train(11, 2);
        for (int i = 0; i < a.params().size(); i++) {
            assertArrayEquals(a.params().get(i).data(), b.params().get(i).data(), a.params().get(i).name());
            assertArrayEquals(a.params().get(i).data(), c.params().get(i).data(), a.params().get(i).name());
        }
        Run other = train(12, 1);
        assertTrue(other.params().get(0).data()[0] != a.params().get(0).data()[0], "a different seed changes the run");
    }
}
