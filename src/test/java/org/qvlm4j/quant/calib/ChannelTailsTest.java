package org.qvlm4j.quant.calib;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import org.junit.jupiter.api.Test;

class ChannelTailsTest {
    private static final int C = 3;
    private static final int T = 2000;

    private static float[] column(float[] x, int c) {
        float[] out = new float[T];
        for (int t = 0; t < T; t++) {
            out[t] = x[t * C + c];
        }
        return out;
    }

    @Test
    void percentilesNearBothEndsAreExact() {
        float[] x = Exact.heavyTailed(3, T * C); // (T, C)
        ChannelTails tails = new ChannelTails(C, ChannelTails.capacityFor(Calibrator.MIN_PERCENTILE, T));
        tails.add(x, T);
        for (int c = 0; c < C; c++) {
            float[] col = column(x, c);
            assertEquals(T, tails.count(c));
            for (double p : Calibrator.PERCENTILE_GRID) {
                assertEquals(Exact.percentile(col, p), tails.quantile(c, p), 0, "p=" + p);
                assertEquals(Exact.percentile(col, 1 - p), tails.quantile(c, 1 - p), 0, "p=" + (1 - p));
            }
        }
    }

    @Test
    void mergeOfPartsEqualsOneShot() {
        float[] x = Exact.heavyTailed(4, T * C);
        int cap = ChannelTails.capacityFor(0.98, T);
        ChannelTails all = new ChannelTails(C, cap);
        all.add(x, T);
        ChannelTails a = new ChannelTails(C, cap);
        ChannelTails b = new ChannelTails(C, cap);
        int split = 777;
        a.add(java.util.Arrays.copyOfRange(x, 0, split * C), split);
        b.add(java.util.Arrays.copyOfRange(x, split * C, T * C), T - split);
        b.merge(a);
        for (int c = 0; c < C; c++) {
            assertEquals(java.util.Arrays.toString(all.sortedHigh(c)), java.util.Arrays.toString(b.sortedHigh(c)));
            assertEquals(java.util.Arrays.toString(all.sortedLow(c)), java.util.Arrays.toString(b.sortedLow(c)));
            assertEquals(all.quantile(c, 0.99), b.quantile(c, 0.99));
        }
    }

    @Test
    void tooSmallCapacityIsReported() {
        float[] x = Exact.heavyTailed(5, T * C);
        ChannelTails tails = new ChannelTails(C, 10);
        tails.add(x, T);
        assertEquals(Exact.percentile(column(x, 1), 0.999), tails.quantile(1, 0.999), 0);
        assertThrows(IllegalStateException.class, () -> tails.quantile(1, 0.98));
    }
}
