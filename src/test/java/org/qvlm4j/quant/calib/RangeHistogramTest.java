package org.qvlm4j.quant.calib;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import org.junit.jupiter.api.Test;

class RangeHistogramTest {
    private static final int BINS = 1024;

    @Test
    void handBinnedValues() {
        RangeHistogram h = new RangeHistogram(8);
        h.add(0.5f);
        h.add(-0.25f);
        h.add(1.5f);
        // R = 2 (smallest power of two above 1.5), bin width 0.5: [-2,-1.5) ... [1.5, 2).
        assertEquals(2.0, h.range());
        assertArrayEquals(new long[] {0, 0, 0, 1, 0, 1, 0, 1}, h.counts());
        h.add(-3f);
        // R = 4, width 1: -3 -> [-3,-2) bin 1; old bins merge pairwise into the middle half.
        assertEquals(4.0, h.range());
        assertArrayEquals(new long[] {0, 1, 0, 1, 1, 1, 0, 0}, h.counts());
        assertEquals(4, h.total());
    }

    @Test
    void powerOfTwoValueOpensTheNextRange() {
        RangeHistogram h = new RangeHistogram(8);
        h.add(1f);
        assertEquals(2.0, h.range());
        assertArrayEquals(new long[] {0, 0, 0, 0, 0, 0, 1, 0}, h.counts());
    }

    @Test
    void quantilesWithinOneBinOfTheExactOrderStatistics() {
        float[] v = Exact.heavyTailed(7, 20_000);
        RangeHistogram h = new RangeHistogram(BINS);
        for (float x : v) {
            h.add(x);
        }
        float absmax = 0;
        for (float x : v) {
            absmax = Math.max(absmax, Math.abs(x));
        }
        double w = 2 * h.range() / BINS;
        assertTrue(w <= 4.0 * absmax / BINS, "bin width " + w + " exceeds the documented bound");
        for (double p : new double[] {0, 0.001, 0.02, 0.5, 0.98, 0.985, 0.99, 0.995, 0.999, 1}) {
            double hpos = p * (v.length - 1);
            double lo = Exact.rank(v, (int) Math.floor(hpos)) - w;
            double hi = Exact.rank(v, (int) Math.ceil(hpos)) + w;
            double est = h.quantile(p);
            assertTrue(est >= lo && est <= hi, "p=" + p + ": " + est + " outside [" + lo + ", " + hi + "]");
            double exact = Exact.percentile(v, p);
            assertTrue(Math.abs(est - exact) <= w + (hi - lo), "p=" + p);
        }
        assertEquals(Exact.percentile(v, 1), h.quantile(1));
        assertEquals(Exact.percentile(v, 0), h.quantile(0));
    }

    @Test
    void countsDoNotDependOnOrderOrSplit() {
        float[] v = Exact.heavyTailed(9, 5000);
        RangeHistogram all = new RangeHistogram(BINS);
        for (float x : v) {
            all.add(x);
        }
        float[] sorted = v.clone();
        Arrays.sort(sorted); // ascending |x| is not monotone, so the range grows in several steps
        RangeHistogram ordered = new RangeHistogram(BINS);
        for (int i = sorted.length - 1; i >= 0; i--) {
            ordered.add(sorted[i]);
        }
        assertArrayEquals(all.counts(), ordered.counts());
        assertEquals(all.range(), ordered.range());

        // Small values first, large later: parts have different ranges when merged.
        RangeHistogram a = new RangeHistogram(BINS);
        RangeHistogram b = new RangeHistogram(BINS);
        for (float x : v) {
            (Math.abs(x) < 1 ? a : b).add(x);
        }
        assertTrue(a.range() < b.range());
        RangeHistogram ab = a.copy();
        ab.merge(b);
        RangeHistogram ba = b.copy();
        ba.merge(a);
        assertArrayEquals(all.counts(), ab.counts());
        assertArrayEquals(all.counts(), ba.counts());
        assertEquals(all.quantile(0.99), ab.quantile(0.99));
    }

    @Test
    void restoredFromItsStoredPartsAnswersAsTheOriginal() {
        float[] v = Exact.heavyTailed(11, 5000);
        RangeHistogram h = new RangeHistogram(BINS);
        float min = Float.POSITIVE_INFINITY;
        float max = Float.NEGATIVE_INFINITY;
        for (float x : v) {
            h.add(x);
            min = Math.min(min, x);
            max = Math.max(max, x);
        }
        float lo = min;
        float hi = max;
        RangeHistogram r = RangeHistogram.restore(h.counts(), h.range(), lo, hi);
        assertEquals(h.total(), r.total());
        assertEquals(h.range(), r.range());
        for (double p : new double[] {0, 0.0001, 0.02, 0.5, 0.98, 0.9995, 0.99999, 1}) {
            assertEquals(h.quantile(p), r.quantile(p), "p=" + p);
        }
        // adding to a restored histogram bins like the original
        h.add(3 * hi);
        r.add(3 * hi);
        assertArrayEquals(h.counts(), r.counts());
        assertThrows(IllegalArgumentException.class, () -> RangeHistogram.restore(h.counts(), 3.0, lo, hi));
        long[] negative = h.counts();
        negative[0] = -1;
        assertThrows(IllegalArgumentException.class, () -> RangeHistogram.restore(negative, h.range(), lo, hi));
        assertThrows(IllegalArgumentException.class, () -> RangeHistogram.restore(h.counts(), h.range(), hi, lo));
    }

    @Test
    void rejectsBadBinCountsAndPercentiles() {
        assertThrows(IllegalArgumentException.class, () -> new RangeHistogram(100));
        RangeHistogram h = new RangeHistogram(8);
        assertThrows(IllegalStateException.class, () -> h.quantile(0.5));
        h.add(1f);
        assertThrows(IllegalArgumentException.class, () -> h.quantile(1.5));
    }
}
