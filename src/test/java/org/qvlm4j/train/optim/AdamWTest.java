package org.qvlm4j.train.optim;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.List;
import org.junit.jupiter.api.Test;
import org.qvlm4j.tensor.Tensor;

/** {@link AdamW} against updates computed by hand in double arithmetic. */
class AdamWTest {
    /** Parameters are float32; the reference is double. */
    static final double TOL = 1e-6;

    private static final double LR = 0.1;
    private static final double WD = 0.01;
    private static final double B1 = 0.9;
    private static final double B2 = 0.999;
    private static final double EPS = 1e-8;

    @Test
    void firstStepMovesEachWeightByLrTimesSignAfterDecay() {
        // At t = 1 the bias-corrected moments are g and g^2, so the step is lr * g / (|g| + eps).
        Tensor p = Tensor.param("p", new float[] {1f, -2f}, 2);
        AdamW opt = new AdamW(List.of(new AdamW.Group(List.of(p), WD)), B1, B2, EPS);
        p.gradOrCreate()[0] = 0.5f;
        p.gradOrCreate()[1] = -1f;
        opt.step(LR);
        assertEquals(1.0 * (1 - LR * WD) - LR, p.data()[0], TOL);
        assertEquals(-2.0 * (1 - LR * WD) + LR, p.data()[1], TOL);
    }

    @Test
    void threeStepsMatchTheTextbookRecursion() {
        threeSteps(EPS);
    }

    /** A large eps makes the test sensitive to where eps enters: torch adds it to sqrt(vHat). */
    @Test
    void threeStepsWithLargeEps() {
        threeSteps(0.05);
    }

    private static void threeSteps(double eps) {
        double[][] grads = {{0.5, -1.0, 0.25}, {0.1, 0.3, -0.7}, {-0.2, 0.0, 0.05}};
        double[] init = {1.0, -2.0, 0.5};
        Tensor decayed = Tensor.param("decayed", toFloats(init), 3);
        Tensor plain = Tensor.param("plain", toFloats(init), 3);
        AdamW opt = new AdamW(List.of(new AdamW.Group(List.of(decayed), WD), new AdamW.Group(List.of(plain), 0.0)),
                B1, B2, eps);

        double[] pd = init.clone();
        double[] pp = init.clone();
        double[] m = new double[3];
        double[] v = new double[3];
        for (int t = 1; t <= 3; t++) {
            double[] g = grads[t - 1];
            decayed.zeroGrad();
            plain.zeroGrad();
            for (int i = 0; i < 3; i++) {
                decayed.gradOrCreate()[i] = (float) g[i];
                plain.gradOrCreate()[i] = (float) g[i];
            }
            opt.step(LR);
            for (int i = 0; i < 3; i++) {
                m[i] = B1 * m[i] + (1 - B1) * g[i];
                v[i] = B2 * v[i] + (1 - B2) * g[i] * g[i];
                double mHat = m[i] / (1 - Math.pow(B1, t));
                double vHat = v[i] / (1 - Math.pow(B2, t));
                // torch adds eps to sqrt(v) / sqrt(1 - beta2^t), which is sqrt(vHat)
                double update = LR * mHat / (Math.sqrt(vHat) + eps);
                pd[i] = pd[i] - LR * WD * pd[i] - update;
                pp[i] = pp[i] - update;
            }
            for (int i = 0; i < 3; i++) {
                assertEquals(pd[i], decayed.data()[i], TOL, "decayed step " + t + " element " + i);
                assertEquals(pp[i], plain.data()[i], TOL, "plain step " + t + " element " + i);
            }
            assertEquals(t, opt.stepCount(decayed));
        }
    }

    @Test
    void parameterWithoutGradientIsSkipped() {
        Tensor a = Tensor.param("a", new float[] {1f, 2f}, 2);
        Tensor b = Tensor.param("b", new float[] {3f}, 1);
        AdamW opt = AdamW.of(List.of(a, b), 0.5);
        b.gradOrCreate()[0] = 1f;
        opt.step(0.01);
        assertArrayEquals(new float[] {1f, 2f}, a.data());
        assertEquals(0, opt.stepCount(a));
        assertEquals(1, opt.stepCount(b));
        opt.zeroGrad();
        assertNull(b.grad());
    }

    @Test
    void rejectsBadConfiguration() {
        Tensor a = Tensor.param("a", new float[] {1f}, 1);
        assertThrows(IllegalArgumentException.class, () -> new AdamW(List.of(new AdamW.Group(List.of(a), 0)), 1.0, 0.999, 1e-8));
        assertThrows(IllegalArgumentException.class, () -> new AdamW.Group(List.of(a), -1));
        assertThrows(IllegalArgumentException.class,
                () -> AdamW.of(List.of(Tensor.of(new float[] {1f}, 1)), 0));
        assertThrows(IllegalArgumentException.class, () -> new AdamW(
                List.of(new AdamW.Group(List.of(a), 0), new AdamW.Group(List.of(a), 0.1)), 0.9, 0.999, 1e-8));
        assertThrows(IllegalArgumentException.class, () -> AdamW.of(List.of(a), 0).step(Double.NaN));
    }

    private static float[] toFloats(double[] d) {
        float[] f = new float[d.length];
        for (int i = 0; i < d.length; i++) {
            f[i] = (float) d[i];
        }
        return f;
    }
}
