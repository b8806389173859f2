package org.qvlm4j.quant.qvlm;

import java.util.LinkedHashMap;
import java.util.Map;
import org.qvlm4j.io.config.LlavaConfig;
import org.qvlm4j.quant.QuantPlan;
import org.qvlm4j.quant.QuantSpec;
import org.qvlm4j.quant.Ranges;
import org.qvlm4j.quant.calib.CalibrationStats;

/**
 * Starting ranges for visual encoder optimisation: for every linear whose planned input spec is
 * static, the calibration min/max in the spec's slot layout: per token position
 * ({@code position_min}/{@code position_max}, which the calibrator records for vision and
 * projector sites), per input channel ({@code channel_min}/{@code channel_max}) or per tensor
 * ({@code min}/{@code max}). A clip ratio in the spec is applied later by the quantizer, as at
 * run time. Percentile-clipped static specs are refused: per-position percentiles are not recorded.
 */
public final class VeoRanges {
    private VeoRanges() {
    }

    /** Site → calibrated ranges for every planned static input site of the model's forward. */
    public static Map<String, Ranges> fromStats(CalibrationStats stats, QuantPlan plan, LlavaConfig cfg) {
        Map<String, Ranges> out = new LinkedHashMap<>();
        for (String linear : VeoForward.linearNames(cfg)) {
            QuantSpec spec = plan.forLinear(linear).input();
            if (spec == null || spec.dynamic()) {
                continue;
            }
            String site = linear + ".in";
            if (!stats.sites().contains(site)) {
                throw new IllegalArgumentException(stats.directory() + ": no statistics for site '" + site
                        + "', needed for the static input spec " + spec);
            }
            if (spec.clip().kind() == QuantSpec.ClipKind.PERCENTILE) {
                throw new IllegalArgumentException("site " + site + ": static percentile-clipped input spec " + spec
                        + " is not supported; expected min/max ranges (no clip or a clip ratio)");
            }
            out.put(site, switch (spec.granularity()) {
                case PER_TOKEN -> {
                    if (!stats.has(site, "position_min")) {
                        throw new IllegalArgumentException(stats.directory() + ": site " + site + " has no statistic "
                                + "'position_min', needed for the per-token static spec " + spec + " (calibrate with "
                                + "per-position statistics, as the calibrate command does for vision sites)");
                    }
                    yield new Ranges(stats.floats(site, "position_min"), stats.floats(site, "position_max"));
                }
                case PER_CHANNEL -> new Ranges(stats.floats(site, "channel_min"), stats.floats(site, "channel_max"));
                case PER_TENSOR -> Ranges.of(stats.floats(site, "min")[0], stats.floats(site, "max")[0]);
                default -> throw new IllegalArgumentException("site " + site + ": static input spec " + spec
                        + " has granularity " + spec.granularity() + "; expected PER_TOKEN, PER_CHANNEL or PER_TENSOR");
            });
        }
        return out;
    }
}
