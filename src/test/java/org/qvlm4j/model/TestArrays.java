package org.qvlm4j.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

/** Array helpers for model tests: element-wise closeness with the worst index in the message. */
final class TestArrays {
    private TestArrays() {
    }

    static int[] toInts(long[] a) {
        int[] r = new int[a.length];
        for (int i = 0; i < a.length; i++) {
            r[i] = Math.toIntExact(a[i]);
        }
        return r;
    }

    static void assertClose(float[] expected, float[] actual, double tol, String what) {
        assertEquals(expected.length, actual.length, what + ": length");
        int worst = -1;
        double worstErr = 0;
        for (int i = 0; i < expected.length; i++) {
            double e = Math.abs((double) expected[i] - actual[i]);
            if (!(e <= worstErr) || Double.isNaN(actual[i])) {
                worst = i;
                worstErr = Double.isNaN(actual[i]) ? Double.POSITIVE_INFINITY : e;
            }
        }
        if (worstErr > tol) {
            fail(what + ": max abs error " + worstErr + " at " + worst + " (expected " + expected[worst] + ", got "
                    + actual[worst] + "), tolerance " + tol);
        }
    }

    static void assertClose(double[] expected, float[] actual, double tol, String what) {
        float[] e = new float[expected.length];
        for (int i = 0; i < e.length; i++) {
            e[i] = (float) expected[i];
        }
        assertClose(e, actual, tol, what);
    }

    static float[] row(float[] m, int r, int cols) {
        float[] out = new float[cols];
        System.arraycopy(m, r * cols, out, 0, cols);
        return out;
    }
}
