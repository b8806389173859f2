package org.qvlm4j.quant.calib;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.Function;
import org.qvlm4j.kernels.Parallel;
import org.qvlm4j.model.ActivationTap;

/**
 * An {@link ActivationTap} that hands each activation to the {@link SiteStats} of its site and
 * never changes it. Which sites are observed, and with which options, is the plan's choice (null
 * means ignore); a site's statistics are created when it is first seen, with the channel count of
 * that activation. One tap per model and per forward at a time: it keeps state and is not
 * thread-safe (the statistics' Hessian work is spread over the given pool instead).
 */
public final class CalibrationTap implements ActivationTap {
    private final Function<String, SiteStats.Options> plan;
    private final Parallel par;
    private final Map<String, SiteStats> stats = new LinkedHashMap<>();

    /** @param par pool for the Hessian updates, or null to run them on the forward's thread */
    public CalibrationTap(Function<String, SiteStats.Options> plan, Parallel par) {
        this.plan = plan;
        this.par = par;
    }

    @Override
    public void onActivation(String site, float[] data, int rows, int cols) {
        SiteStats s = stats.get(site);
        if (s == null) {
            SiteStats.Options o = plan.apply(site);
            if (o == null) {
                return;
            }
            s = new SiteStats(site, cols, o);
            stats.put(site, s);
        }
        s.observe(data, rows, cols, par);
    }

    /** Statistics per observed site, in the order the sites were first seen (forward order). */
    public Map<String, SiteStats> stats() {
        return Collections.unmodifiableMap(stats);
    }
}
