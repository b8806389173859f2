package org.qvlm4j.quant.calib;

import java.util.Arrays;

/**
 * A mergeable fixed-bin histogram of signed values over a symmetric range [-R, R] whose half-width
 * R is a power of two, grown by doubling as larger values arrive. Doubling the range merges pairs of
 * adjacent bins exactly (the old range is aligned with the new bin edges), so the counts never
 * depend on the order in which values or partial histograms arrive: one pass, no second sweep over
 * the data, and bit-identical results for any split of the data.
 *
 * <p><b>Accuracy.</b> The bin width is w = 2R / B with R &le; 2 |x|max (R is the smallest power of
 * two strictly above |x|max), so w &le; 4 |x|max / B. Bins are found from |v| scaled by a power of
 * two, which is exact, so a value's bin never depends on how many doublings happened before it. For a percentile p of N values, with h = p (N - 1) and
 * x(k) the k-th smallest value (0-based), the exact linearly interpolated percentile (numpy's
 * default) lies in [x(floor h), x(ceil h)]; the estimate of {@link #quantile} lies in the bin that
 * holds x(floor h), so it is within [x(floor h) - w, x(floor h) + w], and it is clamped to the exact
 * [min, max]. Leaves out: non-finite values (the caller rejects them), relative-error (log) bins.
 */
public final class RangeHistogram {
    private final long[] counts;
    private int exponent = Integer.MIN_VALUE; // R = 2^exponent; MIN_VALUE while only zeros were seen
    private long total;
    private float min = Float.POSITIVE_INFINITY;
    private float max = Float.NEGATIVE_INFINITY;

    /** A histogram of {@code bins} bins; bins must be an even power of two &ge; 4. */
    public RangeHistogram(int bins) {
        if (bins < 4 || Integer.bitCount(bins) != 1) {
            throw new IllegalArgumentException("histogram bins must be a power of two >= 4, got " + bins);
        }
        this.counts = new long[bins];
    }

    public int bins() {
        return counts.length;
    }

    public long total() {
        return total;
    }

    /** Half-width R of the covered range [-R, R]; 0 when every value so far was 0 or none was added. */
    public double range() {
        return exponent == Integer.MIN_VALUE ? 0 : Math.scalb(1.0, exponent);
    }

    /** Count of bin i (bins cover [-R, R] in equal widths, bin 0 starting at -R). */
    public long count(int i) {
        return counts[i];
    }

    public long[] counts() {
        return counts.clone();
    }

    public void add(float v) {
        float a = Math.abs(v);
        if (a != 0 && (exponent == Integer.MIN_VALUE || a >= Math.scalb(1.0, exponent))) {
            grow(exponentFor(a));
        }
        counts[bin(v)]++;
        total++;
        if (v < min) {
            min = v;
        }
        if (v > max) {
            max = v;
        }
    }

    /** Adds every count of other (which must have the same bin count). */
    public void merge(RangeHistogram other) {
        if (other.counts.length != counts.length) {
            throw new IllegalArgumentException("cannot merge histograms of " + other.counts.length + " and "
                    + counts.length + " bins");
        }
        if (other.total == 0) {
            return;
        }
        RangeHistogram o = other;
        if (o.exponent != exponent) {
            int e = Math.max(o.exponent, exponent);
            grow(e);
            if (o.exponent != e) {
                o = other.copy();
                o.grow(e);
            }
        }
        for (int i = 0; i < counts.length; i++) {
            counts[i] += o.counts[i];
        }
        total += o.total;
        min = Math.min(min, o.min);
        max = Math.max(max, o.max);
    }

    /**
     * The histogram whose counts, range half-width and exact min and max were stored (the statistics'
     * {@code hist}, {@code hist_range}, {@code min}, {@code max}): it answers {@link #quantile} as the
     * histogram that was written did. The range must be 0 or a power of two and the counts must fit it.
     */
    public static RangeHistogram restore(long[] counts, double range, float min, float max) {
        RangeHistogram h = new RangeHistogram(counts.length);
        long total = 0;
        for (long c : counts) {
            if (c < 0) {
                throw new IllegalArgumentException("histogram counts must be >= 0, got " + c);
            }
            total = Math.addExact(total, c);
        }
        if (range != 0) {
            int e = Math.getExponent(range);
            if (!(range > 0) || Math.scalb(1.0, e) != range) {
                throw new IllegalArgumentException("histogram range must be 0 or a power of two, got " + range);
            }
            h.exponent = e;
        }
        if (total > 0 && !(min <= max)) {
            throw new IllegalArgumentException("histogram min " + min + " is above its max " + max);
        }
        System.arraycopy(counts, 0, h.counts, 0, counts.length);
        h.total = total;
        h.min = total > 0 ? min : Float.POSITIVE_INFINITY;
        h.max = total > 0 ? max : Float.NEGATIVE_INFINITY;
        return h;
    }

    public RangeHistogram copy() {
        RangeHistogram h = new RangeHistogram(counts.length);
        System.arraycopy(counts, 0, h.counts, 0, counts.length);
        h.exponent = exponent;
        h.total = total;
        h.min = min;
        h.max = max;
        return h;
    }

    /**
     * Estimate of the p-quantile (0 &le; p &le; 1) with numpy's linear-interpolation positions; exact
     * at p = 0 and p = 1 (the true min and max). See the class comment for the error bound.
     */
    public double quantile(double p) {
        if (!(p >= 0 && p <= 1)) {
            throw new IllegalArgumentException("quantile p must be in [0, 1], got " + p);
        }
        if (total == 0) {
            throw new IllegalStateException("quantile of an empty histogram");
        }
        if (p == 0) {
            return min;
        }
        if (p == 1) {
            return max;
        }
        double h = p * (total - 1);
        long k = (long) Math.floor(h);
        long before = 0;
        int b = 0;
        while (before + counts[b] <= k) {
            before += counts[b];
            b++;
        }
        double R = range();
        double w = 2 * R / counts.length;
        double lo = -R + b * w;
        // Spread the bin's values evenly inside it (rank-midpoint placement).
        double est = lo + w * ((h - before + 0.5) / counts[b]);
        est = Math.min(est, lo + w);
        return Math.max(min, Math.min(max, est));
    }

    /** Smallest exponent e with 2^e &gt; a (a &gt; 0, finite). */
    static int exponentFor(float a) {
        int e = Math.max(Math.getExponent(a), Float.MIN_EXPONENT - 1);
        return Math.scalb(1.0, e) > a ? e : e + 1;
    }

    private int bin(float v) {
        int half = counts.length / 2;
        if (exponent == Integer.MIN_VALUE) {
            return half; // only zeros so far; 0 sits at the start of the upper half
        }
        // a = |v| / w, exact in double; v >= 0 falls in bin half + floor(a), v < 0 in half - ceil(a).
        double a = Math.scalb((double) Math.abs(v), Integer.numberOfTrailingZeros(half) - exponent);
        return v >= 0 ? half + (int) Math.floor(a) : half - (int) Math.ceil(a);
    }

    /** Widens the range to 2^e, merging bins in pairs once per doubling. */
    private void grow(int e) {
        if (exponent == Integer.MIN_VALUE) {
            exponent = e; // zeros stay in the middle bin, which is where they fall for any R
            return;
        }
        int B = counts.length;
        while (exponent < e) {
            long[] next = new long[B];
            for (int i = 0; i < B; i++) {
                next[B / 4 + i / 2] += counts[i];
            }
            System.arraycopy(next, 0, counts, 0, B);
            exponent++;
        }
    }

    @Override
    public String toString() {
        return "RangeHistogram[bins=" + counts.length + ", R=" + range() + ", total=" + total + ", nonzero="
                + Arrays.stream(counts).filter(c -> c != 0).count() + "]";
    }
}
