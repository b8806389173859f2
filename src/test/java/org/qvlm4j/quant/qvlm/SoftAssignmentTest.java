package org.qvlm4j.quant.qvlm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** Eq. 5's soft assignment against hand-computed softmaxes, its hard-rounding limit and its truncation bound. */
class SoftAssignmentTest {
    private static final double EXACT = 1e-15;

    /** Full softmax over all levels, written out plainly: the untruncated reference. */
    private static double[] full(double lo, double step, int levels, double tau, double x) {
        double[] w = new double[levels];
        double sum = 0;
        for (int m = 0; m < levels; m++) {
            double d = (x - (lo + m * step)) / step;
            w[m] = Math.exp(-d * d / tau);
            sum += w[m];
        }
        for (int m = 0; m < levels; m++) {
            w[m] /= sum;
        }
        return w;
    }

    @Test
    void handComputedCaseBetweenTwoLevels() {
        // levels 0,1,2,3 (step 1), tau 1, x = 0.5: exponents -0.25, -0.25, -2.25, -6.25
        SoftAssignment a = new SoftAssignment(0, 3, 4, 1.0, 1e-12);
        double[] w = new double[a.width()];
        int first = a.assign(0.5, w);
        assertEquals(0, first);
        assertEquals(4, a.width());
        double z = 2 * Math.exp(-0.25) + Math.exp(-2.25) + Math.exp(-6.25);
        assertEquals(Math.exp(-0.25) / z, w[0], EXACT);
        assertEquals(Math.exp(-0.25) / z, w[1], EXACT);
        assertEquals(Math.exp(-2.25) / z, w[2], EXACT);
        assertEquals(Math.exp(-6.25) / z, w[3], EXACT);
    }

    @Test
    void paperTemperatureIsTheLevelSpacing() {
        // grid 0, 0.5, 1 (step 0.5); T = 0.5, x = 0.2: exp(-(0.2 - q)^2 / 0.5)
        SoftAssignment a = SoftAssignment.of(0, 1, 3, SoftAssignment.Temperature.PAPER, 99, 1e-12);
        assertEquals(2.0, a.tau(), EXACT);
        double[] w = new double[a.width()];
        a.assign(0.2, w);
        double e0 = Math.exp(-0.04 / 0.5);
        double e1 = Math.exp(-0.09 / 0.5);
        double e2 = Math.exp(-0.64 / 0.5);
        double z = e0 + e1 + e2;
        assertEquals(e0 / z, w[0], EXACT);
        assertEquals(e1 / z, w[1], EXACT);
        assertEquals(e2 / z, w[2], EXACT);
    }

    @Test
    void zeroTemperatureLimitIsHardRounding() {
        SoftAssignment a = new SoftAssignment(-1, 2, 16, 1e-9, SoftAssignment.DEFAULT_TAIL);
        // one neighbour per side is always kept: halfway between two levels both hold half the mass
        assertEquals(1, a.radius());
        double step = 3.0 / 15;
        SplittableRandom rnd = new SplittableRandom(3);
        double[] w = new double[a.width()];
        for (int i = 0; i < 200; i++) {
            double x = -1.3 + 3.6 * rnd.nextDouble();
            int want = (int) Math.max(0, Math.min(15, Math.rint((x + 1) / step)));
            int first = a.assign(x, w);
            assertEquals(want, first + argmax(w), "x=" + x);
            assertEquals(1.0, w[argmax(w)], 1e-12, "x=" + x);
        }
        // as tau shrinks the nearest level's weight goes to 1
        double prev = 0;
        for (double tau : new double[] {1, 0.3, 0.1, 0.03}) {
            SoftAssignment s = new SoftAssignment(0, 15, 16, tau, 1e-12);
            double[] ws = new double[s.width()];
            int f = s.assign(7.3, ws);
            double near = ws[7 - f];
            assertTrue(near > prev, "tau=" + tau);
            prev = near;
        }
    }

    @Test
    void truncationStaysWithinItsBound() {
        SplittableRandom rnd = new SplittableRandom(7);
        for (double tau : new double[] {0.25, 1, 4, 20}) {
            for (double tail : new double[] {1e-3, 1e-6, 1e-9}) {
                SoftAssignment a = new SoftAssignment(-2, 3, 64, tau, tail);
                double step = 5.0 / 63;
                double[] w = new double[a.width()];
                for (int i = 0; i < 100; i++) {
                    double x = -2.5 + 6 * rnd.nextDouble();
                    double[] ref = full(-2, step, 64, tau, x);
                    int first = a.assign(x, w);
                    double kept = 0;
                    for (int k = 0; k < a.width(); k++) {
                        kept += ref[first + k];
                        assertTrue(Math.abs(w[k] - ref[first + k]) <= tail + 1e-15, "tau=" + tau + " x=" + x);
                    }
                    assertTrue(1 - kept <= tail + 1e-15, "dropped " + (1 - kept) + " > " + tail);
                }
            }
        }
    }

    @Test
    void radiusIsTheSmallestMeetingTheBound() {
        for (double tau : new double[] {0.5, 1, 3}) {
            int r = SoftAssignment.radiusFor(tau, 1e-6, 1000);
            assertTrue(SoftAssignment.droppedMassBound(r, tau) <= 1e-6);
            assertTrue(r == 0 || SoftAssignment.droppedMassBound(r - 1, tau) > 1e-6);
        }
        assertEquals(4, SoftAssignment.radiusFor(1, 1e-6, 1000));
    }

    @Test
    void constantTensorPutsAllMassOnOneLevel() {
        SoftAssignment a = new SoftAssignment(2, 2, 16, 1, 1e-6);
        double[] w = new double[a.width()];
        int first = a.assign(2, w);
        assertEquals(0, first + argmax(w));
        assertEquals(1.0, w[argmax(w)]);
    }

    @Test
    void badArgumentsAreRejected() {
        assertThrows(IllegalArgumentException.class, () -> new SoftAssignment(1, 0, 4, 1, 1e-6));
        assertThrows(IllegalArgumentException.class, () -> new SoftAssignment(0, 1, 1, 1, 1e-6));
        assertThrows(IllegalArgumentException.class, () -> new SoftAssignment(0, 1, 4, 0, 1e-6));
        assertThrows(IllegalArgumentException.class, () -> new SoftAssignment(0, 1, 4, 1, 1));
    }

    private static int argmax(double[] w) {
        int best = 0;
        for (int i = 1; i < w.length; i++) {
            if (w[i] > w[best]) {
                best = i;
            }
        }
        return best;
    }
}
