package org.qvlm4j.tensor;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * {@link Ops#fakeQuantize}: forward values, the straight-through gradient for x and the LSQ
 * gradient for the scale, on hand-computed cases.
 */
class FakeQuantizeTest {
    static final float TOL = 1e-6f;

    @Test
    void symmetricPerTensorHandCase() {
        // s = 0.5, z = 0, int4 range [-8, 7]. x/s = 0.6, -1.48, 2.52, 10, -10, 0.5, 1.5.
        Tensor x = Tensor.variable(new float[] {0.3f, -0.74f, 1.26f, 5f, -5f, 0.25f, 0.75f}, 7);
        Tensor s = Tensor.param("s", new float[] {0.5f}, 1);
        Tape tape = new Tape();
        Tensor y = Ops.fakeQuantize(tape, x, s, 0f, -8, 7);
        // round half to even: 0.5 → 0, 1.5 → 2; 10 clips to 7, -10 to -8.
        assertArrayEquals(new float[] {0.5f, -0.5f, 1.5f, 3.5f, -4f, 0f, 1f}, y.data(), TOL);
        tape.backward(y, new float[] {1, 2, 3, 4, 5, 6, 7});
        assertArrayEquals(new float[] {1, 2, 3, 0, 0, 6, 7}, x.grad(), TOL);
        // inside: round(u) - u = 0.4, 0.48, 0.48, -0.5, 0.5; clipped: qmax - z = 7, qmin - z = -8.
        double ds = 1 * 0.4 + 2 * 0.48 + 3 * 0.48 + 4 * 7 + 5 * -8 + 6 * -0.5 + 7 * 0.5;
        assertEquals(ds, s.grad()[0], 1e-5);
    }

    @Test
    void asymmetricZeroPointAndGradFactor() {
        // s = 0.25, z = 3, range [0, 15]. x/s = -4 → q = -1 clips to 0; 2.4 → 5; 13.2 → 16 clips to 15.
        Tensor x = Tensor.variable(new float[] {-1f, 0.6f, 3.3f}, 3);
        Tensor s = Tensor.param("s", new float[] {0.25f}, 1);
        Tape tape = new Tape();
        Tensor y = Ops.fakeQuantize(tape, x, s, 3f, 0, 15, 0.5f);
        assertArrayEquals(new float[] {-0.75f, 0.5f, 3f}, y.data(), TOL);
        tape.backward(y, new float[] {1, 1, 1});
        assertArrayEquals(new float[] {0, 1, 0}, x.grad(), TOL);
        assertEquals(0.5 * (-3 + (2 - 2.4) + 12), s.grad()[0], 1e-5);
    }

    @Test
    void perRowScale() {
        Tensor x = Tensor.variable(new float[] {0.3f, 1.1f, -9f, 0.3f, 1.1f, -9f}, 2, 3);
        Tensor s = Tensor.param("s", new float[] {0.5f, 2f}, 2);
        Tape tape = new Tape();
        Tensor y = Ops.fakeQuantize(tape, x, s, 0f, -4, 3);
        // row 0: u = 0.6, 2.2, -18 → 1, 2, -4 (clip); row 1: u = 0.15, 0.55, -4.5 → 0, 1, -4 (rint -4.5 = -4)
        assertArrayEquals(new float[] {0.5f, 1f, -2f, 0f, 2f, -8f}, y.data(), TOL);
        tape.backward(y, new float[] {1, 1, 1, 1, 1, 1});
        assertArrayEquals(new float[] {1, 1, 0, 1, 1, 1}, x.grad(), TOL);
        assertEquals((1 - 0.6) + (2 - 2.2) + -4, s.grad()[0], 1e-5);
        assertEquals((0 - 0.15) + (1 - 0.55) + (-4 + 4.5), s.grad()[1], 1e-5);
    }

    @Test
    void rejectsNonPositiveScaleAndBadRange() {
        Tape tape = new Tape();
        Tensor x = Tensor.zeros(2, 2);
        assertThrows(IllegalArgumentException.class,
                () -> Ops.fakeQuantize(tape, x, Tensor.of(new float[] {0f}, 1), 0f, -8, 7));
        assertThrows(IllegalArgumentException.class,
                () -> Ops.fakeQuantize(tape, x, Tensor.of(new float[] {1f}, 1), 0f, 7, -8));
        assertThrows(IllegalArgumentException.class,
                () -> Ops.fakeQuantize(tape, x, Tensor.of(new float[] {1f, 1f, 1f}, 3), 0f, -8, 7));
    }

    /** The scale is learnable through the tape: gradient descent on the reconstruction error lowers it. */
    @Test
    void lsqGradientLowersReconstructionError() {
        Random rnd = new Random(5);
        float[] xd = new float[256];
        for (int i = 0; i < xd.length; i++) {
            xd[i] = (float) rnd.nextGaussian();
        }
        Tensor x = Tensor.of(xd, 256);
        Tensor s = Tensor.param("s", new float[] {1.5f}, 1);
        float first = Float.NaN;
        float last = Float.NaN;
        for (int step = 0; step < 100; step++) {
            Tape tape = new Tape();
            Tensor loss = Ops.mse(tape, Ops.fakeQuantize(tape, x, s, 0f, -8, 7), x);
            if (step == 0) {
                first = loss.item();
            }
            last = loss.item();
            s.zeroGrad();
            tape.backward(loss);
            s.data()[0] -= 0.05f * s.grad()[0];
        }
        assertTrue(last < 0.5f * first, "loss " + first + " → " + last);
    }
}
