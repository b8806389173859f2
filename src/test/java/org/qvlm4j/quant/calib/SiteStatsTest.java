package org.qvlm4j.quant.calib;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.qvlm4j.kernels.Parallel;

class SiteStatsTest {
    private static final int BINS = 256;
    /** Relative tolerance of double sums accumulated in a different grouping. */
    private static final double SUM_REL_TOL = 1e-12;

    private static SiteStats.Options all(int capacity) {
        return new SiteStats.Options(BINS, capacity, true, false);
    }

    @Test
    void handComputedStatistics() {
        float[] x = {1, -2, 0.5f, -3, 4, 0}; // (2, 3)
        SiteStats s = new SiteStats("s", 3, new SiteStats.Options(BINS, 4, true, true));
        s.observe(x, 2, 3, null);
        assertEquals(2, s.tokens());
        assertEquals(1, s.observations());
        assertEquals(-3f, s.min());
        assertEquals(4f, s.max());
        assertArrayEquals(new float[] {-3, -2, 0}, s.channelMin());
        assertArrayEquals(new float[] {1, 4, 0.5f}, s.channelMax());
        assertArrayEquals(new float[] {3, 4, 0.5f}, s.channelAbsMax());
        assertArrayEquals(new double[] {2, 3, 0.25}, s.channelMeanAbs());
        assertEquals(2f, s.tokenAbsMaxMin());
        assertEquals(4f, s.tokenAbsMaxMax());
        assertArrayEquals(new float[] {-2, -3}, s.positionMin());
        assertArrayEquals(new float[] {1, 4}, s.positionMax());
        assertArrayEquals(new double[] {10, -14, 0.5, -14, 20, -1, 0.5, -1, 0.25}, s.hessian());
        assertEquals(6, s.histogram().total());
        assertEquals(0.5, s.tails().quantile(2, 1.0));
        assertEquals(0.25, s.tails().quantile(2, 0.5));

        // A pass with another token count cannot feed per-position ranges.
        assertThrows(IllegalArgumentException.class, () -> s.observe(new float[] {1, 2, 3}, 1, 3, null));
        assertThrows(IllegalArgumentException.class, () -> s.observe(new float[] {1, 2}, 1, 2, null));
        assertThrows(IllegalStateException.class,
                () -> s.observe(new float[] {1, Float.NaN, 3, 1, 2, 3}, 2, 3, null));
    }

    /** X^T X summed in token order in double, written independently of SiteStats. */
    private static double[] gram(float[] x, int T, int K) {
        double[] h = new double[K * K];
        for (int i = 0; i < K; i++) {
            for (int j = 0; j < K; j++) {
                double acc = 0;
                for (int t = 0; t < T; t++) {
                    acc += (double) x[t * K + i] * x[t * K + j];
                }
                h[i * K + j] = acc;
            }
        }
        return h;
    }

    private static float[] random(long seed, int n) {
        SplittableRandom r = new SplittableRandom(seed);
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) (Exact.gaussian(r) * (1 + i % 5));
        }
        return v;
    }

    private static float[] concat(float[] a, float[] b) {
        float[] out = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }

    @Test
    void passesInSequenceEqualOnePassOverConcatenatedRowsBitForBit() {
        int K = 37;
        float[] a = random(1, 23 * K); // (23, K)
        float[] b = random(2, 41 * K); // (41, K)
        float[] ab = concat(a, b);
        int cap = ChannelTails.capacityFor(0.98, 64);
        try (Parallel par = new Parallel(3)) {
            SiteStats seq = new SiteStats("s", K, all(cap));
            seq.observe(a, 23, K, par);
            seq.observe(b, 41, K, par);
            SiteStats one = new SiteStats("s", K, all(cap));
            one.observe(ab, 64, K, null);
            assertSame(one, seq, true);
            assertArrayEquals(gram(ab, 64, K), seq.hessian());
            assertEquals(64, seq.tokens());
            assertEquals(2, seq.observations());
        }
    }

    @Test
    void mergedPartsEqualOneShotUpToSumRounding() {
        int K = 19;
        float[] a = random(3, 30 * K);
        float[] b = random(4, 50 * K);
        int cap = ChannelTails.capacityFor(0.98, 80);
        SiteStats pa = new SiteStats("s", K, all(cap));
        pa.observe(a, 30, K, null);
        SiteStats pb = new SiteStats("s", K, all(cap));
        pb.observe(b, 50, K, null);
        pb.merge(pa);
        SiteStats one = new SiteStats("s", K, all(cap));
        one.observe(concat(a, b), 80, K, null);
        assertSame(one, pb, false);
        assertEquals(80, pb.tokens());
    }

    private static void assertSame(SiteStats want, SiteStats got, boolean bitExactSums) {
        assertEquals(want.min(), got.min());
        assertEquals(want.max(), got.max());
        assertArrayEquals(want.channelMin(), got.channelMin());
        assertArrayEquals(want.channelMax(), got.channelMax());
        assertArrayEquals(want.channelAbsMax(), got.channelAbsMax());
        assertEquals(want.tokenAbsMaxMin(), got.tokenAbsMaxMin());
        assertEquals(want.tokenAbsMaxMax(), got.tokenAbsMaxMax());
        assertArrayEquals(want.histogram().counts(), got.histogram().counts());
        assertEquals(want.histogram().range(), got.histogram().range());
        for (int c = 0; c < want.cols(); c++) {
            assertArrayEquals(want.tails().quantiles(c, Calibrator.PERCENTILE_GRID),
                    got.tails().quantiles(c, Calibrator.PERCENTILE_GRID));
        }
        for (List<double[]> pair : List.of(List.of(want.channelMeanAbs(), got.channelMeanAbs()),
                List.of(want.hessian(), got.hessian()))) {
            if (bitExactSums) {
                assertArrayEquals(pair.get(0), pair.get(1));
            } else {
                for (int i = 0; i < pair.get(0).length; i++) {
                    double w = pair.get(0)[i];
                    assertEquals(w, pair.get(1)[i], SUM_REL_TOL * Math.max(1, Math.abs(w)));
                }
            }
        }
    }

    @Test
    void hessianDoesNotDependOnThreadCount() {
        int K = 64;
        float[] x = random(5, 33 * K);
        SiteStats one = new SiteStats("s", K, all(2));
        one.observe(x, 33, K, null);
        try (Parallel p4 = new Parallel(4)) {
            SiteStats four = new SiteStats("s", K, all(2));
            four.observe(x, 33, K, p4);
            assertArrayEquals(one.hessian(), four.hessian());
        }
    }

    @Test
    void tapObservesPlannedSitesAndLeavesActivationsUnchanged() {
        CalibrationTap tap = new CalibrationTap(site -> site.endsWith(".in") ? new SiteStats.Options(BINS, 0, false, false)
                : null, null);
        float[] x = random(6, 4 * 5);
        float[] before = x.clone();
        tap.onActivation("a.in", x, 4, 5);
        tap.onActivation("a.out", x, 4, 5);
        tap.onActivation("a.in", x, 4, 5);
        assertArrayEquals(before, x);
        assertEquals(List.of("a.in"), List.copyOf(tap.stats().keySet()));
        SiteStats s = tap.stats().get("a.in");
        assertEquals(8, s.tokens());
        assertNull(s.hessian());
        assertNull(s.tails());
        assertNull(s.positionMin());
    }
}
