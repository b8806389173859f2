package org.qvlm4j.train.optim;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.List;
import org.junit.jupiter.api.Test;
import org.qvlm4j.tensor.Tensor;

/** {@link GradClip} on a 3-4-5 hand case. */
class GradClipTest {
    static final double TOL = 1e-6;

    private static Tensor withGrad(String name, float... g) {
        Tensor t = Tensor.param(name, new float[g.length], g.length);
        System.arraycopy(g, 0, t.gradOrCreate(), 0, g.length);
        return t;
    }

    @Test
    void clipsToMaxNormAndReturnsTheNormBefore() {
        Tensor a = withGrad("a", 3f, 0f);
        Tensor b = withGrad("b", 0f, -4f);
        Tensor none = Tensor.param("none", new float[2], 2);
        double total = GradClip.clipByGlobalNorm(List.of(a, none, b), 1.0);
        assertEquals(5.0, total, TOL);
        double c = 1.0 / (5.0 + GradClip.NORM_EPS);
        assertArrayEquals(new float[] {(float) (3 * c), 0f}, a.grad(), (float) TOL);
        assertArrayEquals(new float[] {0f, (float) (-4 * c)}, b.grad(), (float) TOL);
        assertEquals(1.0, GradClip.globalNorm(List.of(a, b)), 1e-5);
    }

    @Test
    void leavesSmallGradientsUnchanged() {
        Tensor a = withGrad("a", 3f, 0f);
        Tensor b = withGrad("b", 0f, -4f);
        assertEquals(5.0, GradClip.clipByGlobalNorm(List.of(a, b), 10.0), TOL);
        assertArrayEquals(new float[] {3f, 0f}, a.grad());
        assertArrayEquals(new float[] {0f, -4f}, b.grad());
    }

    @Test
    void nonFiniteNormIsReportedAndGradientsKept() {
        Tensor a = withGrad("a", Float.NaN, 1f);
        assertEquals(Double.NaN, GradClip.clipByGlobalNorm(List.of(a), 1.0));
        assertEquals(1f, a.grad()[1]);
        assertThrows(IllegalArgumentException.class, () -> GradClip.clipByGlobalNorm(List.of(a), 0));
    }
}
