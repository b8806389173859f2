package org.qvlm4j.quant.qvlm;

import java.util.Arrays;
import org.qvlm4j.quant.QuantSpec;
import org.qvlm4j.quant.Ranges;
import org.qvlm4j.quant.calib.CalibrationStats;
import org.qvlm4j.quant.calib.RangeHistogram;

/**
 * Static activation ranges of one site at a clipping percentile p, read from calibration statistics:
 * per input channel [quantile(1 − p), quantile(p)] of the channel's calibration values (exact, from
 * the channel tails; p = 1 is the channel min/max), per tensor the histogram's percentile estimates
 * (p = 1: min/max; stored for the statistics' grid, and estimated from the stored histogram for any
 * other p), per token position only p = 1 (the recorded position min/max). This is the
 * "percentile p of the full-precision tensor distribution" of Q-VLM §3.2 (qvlm-method.md §6.3).
 *
 * <p>Left out: per-position percentiles (not recorded by the calibration), percentile-clipped specs
 * (the search chooses p; a spec's own percentile clip is refused).
 */
final class SiteRanges {
    /** Largest distance at which a requested p matches a grid value of the statistics. */
    static final double GRID_MATCH = 1e-9;

    private SiteRanges() {
    }

    static Ranges of(CalibrationStats stats, String site, QuantSpec spec, double p) {
        if (spec.dynamic()) {
            throw new IllegalArgumentException("site " + site + ": spec " + spec + " is dynamic and takes no static ranges");
        }
        if (spec.clip().kind() == QuantSpec.ClipKind.PERCENTILE) {
            throw new IllegalArgumentException("site " + site + ": spec " + spec + " has its own percentile clip; Q-VLM "
                    + "searches the percentile, expected a spec without -pct");
        }
        if (!stats.sites().contains(site)) {
            throw new IllegalArgumentException(stats.directory() + ": no statistics for site '" + site + "', needed for the "
                    + "static input spec " + spec);
        }
        boolean full = p == 1.0;
        return switch (spec.granularity()) {
            case PER_CHANNEL -> full ? new Ranges(stats.floats(site, "channel_min"), stats.floats(site, "channel_max"))
                    : channelPercentile(stats, site, p);
            case PER_TENSOR -> full ? Ranges.of(stats.floats(site, "min")[0], stats.floats(site, "max")[0])
                    : tensorPercentile(stats, site, p);
            case PER_TOKEN -> {
                if (!full) {
                    throw new IllegalArgumentException("site " + site + ": per-token-position ranges exist only for p = 1 "
                            + "(the statistics record position min/max), got p = " + p);
                }
                if (!stats.has(site, "position_min")) {
                    throw new IllegalArgumentException(stats.directory() + ": site " + site + " has no position_min/"
                            + "position_max, needed for the static per-token spec " + spec);
                }
                yield new Ranges(stats.floats(site, "position_min"), stats.floats(site, "position_max"));
            }
            default -> throw new IllegalArgumentException("site " + site + ": static input spec " + spec + " has granularity "
                    + spec.granularity() + "; expected PER_CHANNEL, PER_TENSOR or PER_TOKEN");
        };
    }

    /** Index of p in the statistics' percentile grid, or -1. */
    private static int indexInGrid(CalibrationStats stats, double p) {
        double[] grid = stats.percentiles();
        for (int g = 0; g < grid.length; g++) {
            if (Math.abs(grid[g] - p) < GRID_MATCH) {
                return g;
            }
        }
        return -1;
    }

    /** Index of p in the statistics' percentile grid; an error lists the grid. */
    static int gridIndex(CalibrationStats stats, double p) {
        int g = indexInGrid(stats, p);
        if (g >= 0) {
            return g;
        }
        throw new IllegalArgumentException(stats.directory() + ": percentile " + p + " is not in the statistics' grid "
                + Arrays.toString(stats.percentiles()) + "; recalibrate with this version of qvlm4j calibrate or choose p from the grid");
    }

    private static Ranges channelPercentile(CalibrationStats stats, String site, double p) {
        if (!stats.has(site, "channel_pct_hi")) {
            throw new IllegalArgumentException(stats.directory() + ": site " + site + " has no channel_pct_hi/lo, needed for "
                    + "p = " + p + " (calibrate with --channel-percentiles including it)");
        }
        int g = gridIndex(stats, p);
        int K = stats.cols(site);
        float[] hi = Arrays.copyOfRange(stats.floats(site, "channel_pct_hi"), g * K, (g + 1) * K); // (G, K) row g
        float[] lo = Arrays.copyOfRange(stats.floats(site, "channel_pct_lo"), g * K, (g + 1) * K);
        return new Ranges(lo, hi);
    }

    /** The stored grid value when p is on the grid, else the same estimate from the stored histogram. */
    private static Ranges tensorPercentile(CalibrationStats stats, String site, double p) {
        int g = indexInGrid(stats, p);
        if (g >= 0) {
            return Ranges.of(stats.floats(site, "pct_lo")[g], stats.floats(site, "pct_hi")[g]);
        }
        RangeHistogram h = stats.histogram(site);
        return Ranges.of((float) h.quantile(1 - p), (float) h.quantile(p));
    }
}
