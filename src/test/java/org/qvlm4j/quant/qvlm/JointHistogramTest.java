package org.qvlm4j.quant.qvlm;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** Conditional entropy against hand-computed joint tables and its two limits, and the soft joint histogram. */
class JointHistogramTest {
    private static final double EXACT = 1e-12;
    private static final double SAMPLING = 0.02;

    @Test
    void handComputedTable() {
        // P = [[1/4, 1/4], [1/2, 0]]: H(Y|X=0) = ln 2 with P(X=0) = 1/2, H(Y|X=1) = 0
        double h = JointHistogram.conditionalEntropy(new double[] {1, 1, 2, 0}, 2, 2);
        assertEquals(0.5 * Math.log(2), h, EXACT);
        // un-normalised masses give the same value
        assertEquals(h, JointHistogram.conditionalEntropy(new double[] {10, 10, 20, 0}, 2, 2), EXACT);
        // 3 x 2: rows (0.1, 0.2), (0.3, 0.1), (0.3, 0)
        double want = -(0.1 * Math.log(0.1 / 0.3) + 0.2 * Math.log(0.2 / 0.3) + 0.3 * Math.log(0.3 / 0.4)
                + 0.1 * Math.log(0.1 / 0.4));
        assertEquals(want, JointHistogram.conditionalEntropy(new double[] {0.1, 0.2, 0.3, 0.1, 0.3, 0}, 3, 2), EXACT);
    }

    @Test
    void zeroWhenYIsAFunctionOfX() {
        // each row holds one non-zero entry: Y = f(X) (here a non-injective map)
        double[] t = {0.2, 0, 0, 0, 0, 0.3, 0.1, 0, 0, 0, 0, 0.4};
        assertEquals(0, JointHistogram.conditionalEntropy(t, 4, 3), EXACT);
    }

    @Test
    void marginalEntropyOfYWhenIndependent() {
        double[] px = {0.1, 0.6, 0.3};
        double[] py = {0.5, 0.25, 0.125, 0.125};
        double[] t = new double[12];
        for (int m = 0; m < 3; m++) {
            for (int n = 0; n < 4; n++) {
                t[m * 4 + n] = px[m] * py[n];
            }
        }
        double hy = 0;
        for (double p : py) {
            hy -= p * Math.log(p);
        }
        assertEquals(hy, JointHistogram.conditionalEntropy(t, 3, 4), EXACT);
    }

    @Test
    void softHistogramOfHardAssignmentsCountsLevelPairs() {
        // tau -> 0: every element falls on its nearest level; Y = X gives a diagonal table
        SoftAssignment g = new SoftAssignment(0, 3, 4, 1e-9, 1e-6);
        float[] x = {0, 1, 1, 2, 3, 3, 3, 0.9f};
        JointHistogram h = new JointHistogram(4, 4);
        h.add(g, x, g, x, x.length);
        double[] p = h.probabilities();
        assertEquals(1 / 8.0, p[0], EXACT); // 0
        assertEquals(3 / 8.0, p[5], EXACT); // 1, 1, 0.9
        assertEquals(1 / 8.0, p[10], EXACT); // 2
        assertEquals(3 / 8.0, p[15], EXACT); // 3, 3, 3
        assertEquals(0, h.conditionalEntropy(), EXACT);
        assertEquals(8, h.elements());
    }

    @Test
    void independentSoftSamplesApproachMarginalEntropy() {
        SplittableRandom rnd = new SplittableRandom(1);
        int n = 40000;
        float[] x = new float[n];
        float[] y = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) rnd.nextDouble(0, 7);
            y[i] = (float) rnd.nextDouble(0, 7);
        }
        SoftAssignment g = new SoftAssignment(0, 7, 8, 0.3, 1e-9);
        JointHistogram joint = new JointHistogram(8, 8);
        joint.add(g, x, g, y, n);
        double[] p = joint.probabilities();
        double hy = 0;
        for (int b = 0; b < 8; b++) {
            double py = 0;
            for (int a = 0; a < 8; a++) {
                py += p[a * 8 + b];
            }
            hy -= py * Math.log(py);
        }
        assertEquals(hy, joint.conditionalEntropy(), SAMPLING);
        // and Y = X has a much smaller (soft, so not zero) conditional entropy
        JointHistogram same = new JointHistogram(8, 8);
        same.add(g, x, g, x, n);
        assertTrue(same.conditionalEntropy() < hy / 2);
    }

    @Test
    void mergeEqualsOneAddOfConcatenatedElements() {
        SplittableRandom rnd = new SplittableRandom(2);
        float[] x = new float[50];
        float[] y = new float[50];
        for (int i = 0; i < 50; i++) {
            x[i] = (float) rnd.nextGaussian();
            y[i] = (float) (x[i] * 0.5 + rnd.nextGaussian());
        }
        SoftAssignment gx = new SoftAssignment(-3, 3, 16, 1, 1e-6);
        SoftAssignment gy = new SoftAssignment(-4, 4, 16, 1, 1e-6);
        JointHistogram all = new JointHistogram(16, 16);
        all.add(gx, x, gy, y, 50);
        JointHistogram a = new JointHistogram(16, 16);
        a.add(gx, Arrays.copyOfRange(x, 0, 20), gy, Arrays.copyOfRange(y, 0, 20), 20);
        JointHistogram b = new JointHistogram(16, 16);
        b.add(gx, Arrays.copyOfRange(x, 20, 50), gy, Arrays.copyOfRange(y, 20, 50), 30);
        a.merge(b);
        assertArrayEquals(all.probabilities(), a.probabilities(), EXACT);
        double sum = 0;
        for (double v : all.probabilities()) {
            sum += v;
        }
        assertEquals(1, sum, EXACT);
    }

    @Test
    void badTablesAreRejected() {
        assertThrows(IllegalArgumentException.class, () -> JointHistogram.conditionalEntropy(new double[] {1, 2}, 2, 2));
        assertThrows(IllegalArgumentException.class, () -> JointHistogram.conditionalEntropy(new double[] {1, -1}, 1, 2));
    }
}
