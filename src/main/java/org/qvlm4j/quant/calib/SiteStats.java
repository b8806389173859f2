package org.qvlm4j.quant.calib;

import java.util.Arrays;
import org.qvlm4j.kernels.Parallel;

/**
 * Running statistics of one activation site (rows = tokens, cols = channels), fed by
 * {@link #observe} once per forward pass and combinable with {@link #merge}:
 * <ul>
 *   <li>count of tokens and of observations (forward passes);</li>
 *   <li>per-tensor min and max; per-channel min, max, absmax and mean |x| (SmoothQuant's
 *       per-channel activation scales, AWQ's mean activation magnitude);</li>
 *   <li>per-token absmax, summarised by its min and max over all tokens;</li>
 *   <li>a {@link RangeHistogram} of all values (per-tensor percentiles, entropy);</li>
 *   <li>optionally {@link ChannelTails} (exact per-channel percentiles near 0 and 1);</li>
 *   <li>optionally the input Hessian H = sum over tokens of x^T x (K, K), GPTQ's H/2 before its
 *       1/N scaling, accumulated in double;</li>
 *   <li>optionally per-token-position min and max (over channels and observations) for sites whose
 *       row count is the same in every pass, such as the vision tower's (P + 1) tokens: the static
 *       per-token ranges Q-VLM's code uses for ViT inputs.</li>
 * </ul>
 *
 * <p>Determinism: sums run in double in a fixed order (observation order, then token order), and
 * each Hessian element is owned by one thread of the {@link Parallel} pool, so results do not depend
 * on the thread count. Observing A and then B gives bit-identical statistics to observing the rows
 * of A and B concatenated in one call (positions excepted, which are per row index). {@link #merge}
 * of separately accumulated statistics is exact for everything but the double sums, which differ from
 * a single accumulation only by rounding. Leaves out: weighting samples, per-group statistics.
 */
public final class SiteStats {

    /** What to collect beyond the always-present basics. */
    public record Options(int histogramBins, int tailCapacity, boolean hessian, boolean positions) {
        public Options {
            if (tailCapacity != 0 && tailCapacity < 2) {
                throw new IllegalArgumentException("tail capacity must be 0 (off) or >= 2, got " + tailCapacity);
            }
        }

        public boolean channelTails() {
            return tailCapacity > 0;
        }
    }

    private static final int HESSIAN_GRAIN = 8;

    private final String site;
    private final int cols;
    private final Options options;
    private long tokens;
    private long observations;
    private float min = Float.POSITIVE_INFINITY;
    private float max = Float.NEGATIVE_INFINITY;
    private final float[] channelMin; // (K)
    private final float[] channelMax; // (K)
    private final double[] channelAbsSum; // (K)
    private float tokenAbsMaxMin = Float.POSITIVE_INFINITY;
    private float tokenAbsMaxMax = Float.NEGATIVE_INFINITY;
    private final RangeHistogram histogram;
    private final ChannelTails tails; // or null
    private final double[] hessian; // (K, K), upper triangle filled while accumulating; or null
    private float[] positionMin; // (rows) or null
    private float[] positionMax; // (rows) or null

    public SiteStats(String site, int cols, Options options) {
        if (cols < 1) {
            throw new IllegalArgumentException(site + ": channel count must be >= 1, got " + cols);
        }
        this.site = site;
        this.cols = cols;
        this.options = options;
        channelMin = new float[cols];
        channelMax = new float[cols];
        Arrays.fill(channelMin, Float.POSITIVE_INFINITY);
        Arrays.fill(channelMax, Float.NEGATIVE_INFINITY);
        channelAbsSum = new double[cols];
        histogram = new RangeHistogram(options.histogramBins());
        tails = options.channelTails() ? new ChannelTails(cols, options.tailCapacity()) : null;
        hessian = options.hessian() ? new double[Math.multiplyExact(cols, cols)] : null;
    }

    public String site() {
        return site;
    }

    public int cols() {
        return cols;
    }

    public Options options() {
        return options;
    }

    /**
     * Adds one pass's activation x (rows, cols), row-major in the first rows * cols floats of data;
     * data is only read. par spreads the Hessian update; null runs it on the calling thread.
     */
    public void observe(float[] data, int rows, int cols, Parallel par) {
        if (cols != this.cols) {
            throw new IllegalArgumentException(site + ": activation has " + cols + " channels, expected " + this.cols);
        }
        if (options.positions()) {
            if (positionMin == null) {
                positionMin = new float[rows];
                positionMax = new float[rows];
                Arrays.fill(positionMin, Float.POSITIVE_INFINITY);
                Arrays.fill(positionMax, Float.NEGATIVE_INFINITY);
            } else if (positionMin.length != rows) {
                throw new IllegalArgumentException(site + ": per-position statistics need the same token count in every "
                        + "pass, expected " + positionMin.length + ", got " + rows);
            }
        }
        for (int t = 0; t < rows; t++) {
            int o = t * cols;
            float rowAbs = 0;
            float rowMin = Float.POSITIVE_INFINITY;
            float rowMax = Float.NEGATIVE_INFINITY;
            for (int c = 0; c < cols; c++) {
                float v = data[o + c];
                if (!Float.isFinite(v)) {
                    throw new IllegalStateException(site + ": non-finite activation " + v + " at token "
                            + (tokens + t) + ", channel " + c);
                }
                float a = Math.abs(v);
                rowAbs = Math.max(rowAbs, a);
                rowMin = Math.min(rowMin, v);
                rowMax = Math.max(rowMax, v);
                channelMin[c] = Math.min(channelMin[c], v);
                channelMax[c] = Math.max(channelMax[c], v);
                channelAbsSum[c] += a;
                histogram.add(v);
            }
            min = Math.min(min, rowMin);
            max = Math.max(max, rowMax);
            tokenAbsMaxMin = Math.min(tokenAbsMaxMin, rowAbs);
            tokenAbsMaxMax = Math.max(tokenAbsMaxMax, rowAbs);
            if (positionMin != null) {
                positionMin[t] = Math.min(positionMin[t], rowMin);
                positionMax[t] = Math.max(positionMax[t], rowMax);
            }
        }
        if (tails != null) {
            tails.add(data, rows);
        }
        if (hessian != null && rows > 0) {
            accumulateHessian(data, rows, par);
        }
        tokens += rows;
        observations++;
    }

    private void accumulateHessian(float[] x, int T, Parallel par) {
        int K = cols;
        float[] xt = new float[T * K]; // (K, T): each channel's tokens contiguous
        for (int t = 0; t < T; t++) {
            for (int c = 0; c < K; c++) {
                xt[c * T + t] = x[t * K + c];
            }
        }
        Parallel.RangeTask task = (lo, hi) -> {
            for (int i = lo; i < hi; i++) {
                int ri = i * T;
                for (int j = i; j < K; j++) {
                    int rj = j * T;
                    double acc = hessian[i * K + j];
                    for (int t = 0; t < T; t++) {
                        // float * float is exact in double, so only the additions round.
                        acc += (double) xt[ri + t] * xt[rj + t];
                    }
                    hessian[i * K + j] = acc;
                }
            }
        };
        if (par == null) {
            task.run(0, K);
        } else {
            par.forRange(0, K, HESSIAN_GRAIN, task);
        }
    }

    /** Adds other's statistics (same site shape and options) to these. */
    public void merge(SiteStats other) {
        if (other.cols != cols || !other.options.equals(options)) {
            throw new IllegalArgumentException(site + ": cannot merge statistics of " + other.cols + " channels with "
                    + other.options + " into " + cols + " channels with " + options);
        }
        if (other.observations == 0) {
            return;
        }
        min = Math.min(min, other.min);
        max = Math.max(max, other.max);
        for (int c = 0; c < cols; c++) {
            channelMin[c] = Math.min(channelMin[c], other.channelMin[c]);
            channelMax[c] = Math.max(channelMax[c], other.channelMax[c]);
            channelAbsSum[c] += other.channelAbsSum[c];
        }
        tokenAbsMaxMin = Math.min(tokenAbsMaxMin, other.tokenAbsMaxMin);
        tokenAbsMaxMax = Math.max(tokenAbsMaxMax, other.tokenAbsMaxMax);
        histogram.merge(other.histogram);
        if (tails != null) {
            tails.merge(other.tails);
        }
        if (hessian != null) {
            for (int i = 0; i < hessian.length; i++) {
                hessian[i] += other.hessian[i];
            }
        }
        if (other.positionMin != null) {
            if (positionMin == null) {
                positionMin = other.positionMin.clone();
                positionMax = other.positionMax.clone();
            } else if (positionMin.length != other.positionMin.length) {
                throw new IllegalArgumentException(site + ": cannot merge per-position statistics of "
                        + other.positionMin.length + " tokens into " + positionMin.length);
            } else {
                for (int t = 0; t < positionMin.length; t++) {
                    positionMin[t] = Math.min(positionMin[t], other.positionMin[t]);
                    positionMax[t] = Math.max(positionMax[t], other.positionMax[t]);
                }
            }
        }
        tokens += other.tokens;
        observations += other.observations;
    }

    public long tokens() {
        return tokens;
    }

    public long observations() {
        return observations;
    }

    public float min() {
        return min;
    }

    public float max() {
        return max;
    }

    public float[] channelMin() {
        return channelMin.clone();
    }

    public float[] channelMax() {
        return channelMax.clone();
    }

    /** max(|channel min|, |channel max|) per channel. */
    public float[] channelAbsMax() {
        float[] out = new float[cols];
        for (int c = 0; c < cols; c++) {
            out[c] = Math.max(Math.abs(channelMin[c]), Math.abs(channelMax[c]));
        }
        return out;
    }

    /** Mean |x| per channel over all tokens (sum in double, then divided). */
    public double[] channelMeanAbs() {
        double[] out = new double[cols];
        for (int c = 0; c < cols; c++) {
            out[c] = channelAbsSum[c] / tokens;
        }
        return out;
    }

    /** Smallest per-token absmax seen. */
    public float tokenAbsMaxMin() {
        return tokenAbsMaxMin;
    }

    /** Largest per-token absmax seen (equals the tensor absmax). */
    public float tokenAbsMaxMax() {
        return tokenAbsMaxMax;
    }

    public RangeHistogram histogram() {
        return histogram;
    }

    /** The exact channel tails, or null when not collected. */
    public ChannelTails tails() {
        return tails;
    }

    /** H = sum over tokens of x^T x as a full symmetric (K, K) row-major matrix, or null when not collected. */
    public double[] hessian() {
        if (hessian == null) {
            return null;
        }
        int K = cols;
        double[] full = hessian.clone();
        for (int i = 0; i < K; i++) {
            for (int j = 0; j < i; j++) {
                full[i * K + j] = hessian[j * K + i];
            }
        }
        return full;
    }

    /** Per-row-index minimum (rows), or null when not collected or nothing observed. */
    public float[] positionMin() {
        return positionMin == null ? null : positionMin.clone();
    }

    /** Per-row-index maximum (rows), or null when not collected or nothing observed. */
    public float[] positionMax() {
        return positionMax == null ? null : positionMax.clone();
    }
}
