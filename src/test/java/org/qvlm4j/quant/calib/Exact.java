package org.qvlm4j.quant.calib;

import java.util.Arrays;

/** Reference statistics written plainly: sorted-array percentiles as numpy's default "linear" method. */
final class Exact {
    private Exact() {
    }

    /** Percentile p of values: sorted x, h = p (n - 1), x[floor h] + (h - floor h)(x[floor h + 1] - x[floor h]). */
    static double percentile(float[] values, double p) {
        float[] x = values.clone();
        Arrays.sort(x);
        double h = p * (x.length - 1);
        int k = (int) Math.floor(h);
        int k1 = Math.min(k + 1, x.length - 1);
        return x[k] + (h - k) * ((double) x[k1] - x[k]);
    }

    /** The k-th smallest value (0-based). */
    static float rank(float[] values, int k) {
        float[] x = values.clone();
        Arrays.sort(x);
        return x[k];
    }

    /** Heavy-tailed seeded test data: mostly N(0, 1), a few large outliers. */
    static float[] heavyTailed(long seed, int n) {
        java.util.SplittableRandom r = new java.util.SplittableRandom(seed);
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            double g = gaussian(r);
            v[i] = (float) (r.nextInt(100) == 0 ? g * 40 : g);
        }
        return v;
    }

    static double gaussian(java.util.SplittableRandom r) {
        double u = 1 - r.nextDouble();
        double w = r.nextDouble();
        return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * w);
    }
}
