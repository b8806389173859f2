package org.qvlm4j.tensor;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * {@link Ops#rope} reads its angles from a cached table: the rotation must be the same bits as the
 * formula evaluated for the call's own positions, whatever table an earlier call left (shorter,
 * longer, another theta or head size) and at any position offset.
 */
class RopeTableTest {
    /** RoPE by the formula, as the op computed it before the table: the independent reference. */
    private static float[] direct(float[] x, int T, int heads, int hd, double theta, int offset) {
        int half = hd / 2;
        int w = heads * hd;
        float[] y = new float[x.length];
        for (int t = 0; t < T; t++) {
            for (int h = 0; h < heads; h++) {
                for (int i = 0; i < half; i++) {
                    double angle = (double) (offset + t) * (1.0 / Math.pow(theta, (2.0 * i) / hd));
                    float c = (float) Math.cos(angle);
                    float s = (float) Math.sin(angle);
                    int o = t * w + h * hd;
                    float a = x[o + i];
                    float b = x[o + i + half];
                    y[o + i] = a * c - b * s;
                    y[o + i + half] = b * c + a * s;
                }
            }
        }
        return y;
    }

    @Test
    void cachedAnglesGiveTheFormulasBitsAcrossTablesAndOffsets() {
        SplittableRandom rnd = new SplittableRandom(3);
        int[][] calls = {{5, 2, 8, 0}, {300, 2, 8, 0}, {7, 2, 8, 290}, {4, 1, 16, 3}, {9, 2, 8, 600}, {6, 2, 8, 1}};
        double[] thetas = {10000.0, 10000.0, 10000.0, 10000.0, 10000.0, 500000.0};
        for (int c = 0; c < calls.length; c++) {
            int T = calls[c][0];
            int heads = calls[c][1];
            int hd = calls[c][2];
            int offset = calls[c][3];
            float[] x = new float[T * heads * hd];
            for (int i = 0; i < x.length; i++) {
                x[i] = (float) (rnd.nextDouble() * 4 - 2);
            }
            Tape tape = new Tape();
            Tensor out = Ops.rope(tape, Tensor.of(x.clone(), T, heads * hd), heads, thetas[c], offset);
            assertArrayEquals(direct(x, T, heads, hd, thetas[c], offset), out.data(), "call " + c);
        }
    }

    @Test
    void aTableGrowsToCoverTheRequestedPositions() {
        Ops.RopeTable t = Ops.RopeTable.covering(1234.0, 6, 10);
        Ops.RopeTable longer = Ops.RopeTable.covering(1234.0, 6, t.positions() + 1);
        assertEquals(true, longer.positions() > t.positions());
        Ops.RopeTable fresh = Ops.RopeTable.compute(1234.0, 6, longer.positions());
        assertArrayEquals(fresh.cos(), longer.cos());
        assertArrayEquals(fresh.sin(), longer.sin());
    }
}
