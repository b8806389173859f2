package org.qvlm4j.quant.calib;

import java.util.Arrays;

/**
 * Exact upper and lower tails of every channel: the {@code capacity} largest and the
 * {@code capacity} smallest values seen per channel, from which percentiles close to 1 (and 0)
 * are exact, as the Q-VLM percentile search needs for p in [0.98, 1]. The kept values are a
 * function of the multiset of values only, so the order of arrival and any split into partial
 * tails merged later give identical results.
 *
 * <p>Percentile p of N values uses numpy's linear interpolation at h = p (N - 1), which needs the
 * values of ranks floor(h) and floor(h) + 1; it is available when capacity &ge; (1 - p) N + 2 (and
 * symmetrically for 1 - p from the lower tail). {@link #capacityFor} gives that bound for a known
 * upper bound on N. Memory: 16 capacity bytes per channel (buffers of 2 capacity floats per side,
 * compacted by sorting when full).
 */
public final class ChannelTails {
    private final int channels;
    private final int capacity;
    private final float[][] hi; // (C, 2 capacity), largest values, unordered
    private final float[][] lo; // (C, 2 capacity), smallest values, unordered
    private final int[] hiLen;
    private final int[] loLen;
    private final long[] seen;

    public ChannelTails(int channels, int capacity) {
        if (channels < 1 || capacity < 2) {
            throw new IllegalArgumentException("channel tails need >= 1 channel and capacity >= 2, got " + channels
                    + " channels, capacity " + capacity);
        }
        this.channels = channels;
        this.capacity = capacity;
        this.hi = new float[channels][2 * capacity];
        this.lo = new float[channels][2 * capacity];
        this.hiLen = new int[channels];
        this.loLen = new int[channels];
        this.seen = new long[channels];
    }

    /** The capacity that makes every percentile p &ge; pMin (and 1 - p) exact for up to maxCount values. */
    public static int capacityFor(double pMin, long maxCount) {
        if (!(pMin > 0 && pMin <= 1)) {
            throw new IllegalArgumentException("minimum percentile must be in (0, 1], got " + pMin);
        }
        return Math.toIntExact((long) Math.ceil((1 - pMin) * maxCount) + 2);
    }

    public int channels() {
        return channels;
    }

    public int capacity() {
        return capacity;
    }

    /** Values seen in channel c. */
    public long count(int c) {
        return seen[c];
    }

    /** Adds the rows of x (rows, channels), row-major. */
    public void add(float[] x, int rows) {
        for (int c = 0; c < channels; c++) {
            for (int t = 0; t < rows; t++) {
                add(c, x[t * channels + c]);
            }
        }
    }

    public void add(int c, float v) {
        seen[c]++;
        float[] h = hi[c];
        if (hiLen[c] == h.length) {
            hiLen[c] = compact(h, true);
        }
        h[hiLen[c]++] = v;
        float[] l = lo[c];
        if (loLen[c] == l.length) {
            loLen[c] = compact(l, false);
        }
        l[loLen[c]++] = v;
    }

    /** Adds every kept value of other, as if other's values had been added here. */
    public void merge(ChannelTails other) {
        if (other.channels != channels || other.capacity != capacity) {
            throw new IllegalArgumentException("cannot merge channel tails of (" + other.channels + ", "
                    + other.capacity + ") into (" + channels + ", " + capacity + ")");
        }
        for (int c = 0; c < channels; c++) {
            long before = seen[c];
            float[] oh = other.sortedHigh(c);
            float[] ol = other.sortedLow(c);
            for (float v : oh) {
                if (hiLen[c] == hi[c].length) {
                    hiLen[c] = compact(hi[c], true);
                }
                hi[c][hiLen[c]++] = v;
            }
            for (float v : ol) {
                if (loLen[c] == lo[c].length) {
                    loLen[c] = compact(lo[c], false);
                }
                lo[c][loLen[c]++] = v;
            }
            seen[c] = before + other.seen[c];
        }
    }

    /** The kept largest values of channel c, descending (at most capacity). */
    public float[] sortedHigh(int c) {
        float[] h = Arrays.copyOf(hi[c], hiLen[c]);
        Arrays.sort(h);
        int n = Math.min(capacity, h.length);
        float[] out = new float[n];
        for (int i = 0; i < n; i++) {
            out[i] = h[h.length - 1 - i];
        }
        return out;
    }

    /** The kept smallest values of channel c, ascending (at most capacity). */
    public float[] sortedLow(int c) {
        float[] l = Arrays.copyOf(lo[c], loLen[c]);
        Arrays.sort(l);
        return Arrays.copyOf(l, Math.min(capacity, l.length));
    }

    /**
     * Exact percentile p of channel c with numpy's linear interpolation; p &ge; 0.5 reads the upper
     * tail, p &lt; 0.5 the lower one. IllegalStateException when the tail is too short for p.
     */
    public double quantile(int c, double p) {
        return quantiles(c, new double[] {p})[0];
    }

    /** {@link #quantile} for several percentiles, sorting the tails once. */
    public double[] quantiles(int c, double[] ps) {
        long n = seen[c];
        if (n == 0) {
            throw new IllegalStateException("channel " + c + ": no values");
        }
        float[] top = sortedHigh(c);
        float[] low = sortedLow(c);
        double[] out = new double[ps.length];
        for (int i = 0; i < ps.length; i++) {
            double p = ps[i];
            if (!(p >= 0 && p <= 1)) {
                throw new IllegalArgumentException("percentile must be in [0, 1], got " + p);
            }
            double h = p * (n - 1);
            long k = (long) Math.floor(h);
            double frac = h - k;
            long k1 = Math.min(k + 1, n - 1);
            out[i] = p >= 0.5 ? interpolate(fromTop(c, top, k, n), fromTop(c, top, k1, n), frac)
                    : interpolate(fromBottom(c, low, k), fromBottom(c, low, k1), frac);
        }
        return out;
    }

    private double fromTop(int c, float[] top, long rank, long n) {
        long j = n - 1 - rank;
        if (j >= top.length) {
            throw new IllegalStateException("channel " + c + ": rank " + rank + " of " + n + " is outside the kept "
                    + top.length + " largest values (capacity " + capacity + " too small for this percentile)");
        }
        return top[(int) j];
    }

    private double fromBottom(int c, float[] low, long rank) {
        if (rank >= low.length) {
            throw new IllegalStateException("channel " + c + ": rank " + rank + " is outside the kept " + low.length
                    + " smallest values (capacity " + capacity + " too small for this percentile)");
        }
        return low[(int) rank];
    }

    private static double interpolate(double a, double b, double frac) {
        return frac == 0 ? a : a + frac * (b - a);
    }

    /** Sorts the full buffer and keeps its capacity largest (high) or smallest values at the front. */
    private int compact(float[] buf, boolean high) {
        Arrays.sort(buf);
        if (high) {
            System.arraycopy(buf, buf.length - capacity, buf, 0, capacity);
        }
        return capacity;
    }
}
