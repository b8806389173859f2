package org.qvlm4j.quant;

import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import org.qvlm4j.model.ActivationTap;

/**
 * An {@link ActivationTap} that fake-quantizes the input ({@code <linear>.in} site) of every
 * linear whose category has an input spec in the {@link QuantPlan}, so the FP runtime evaluates the
 * plan's activation quantization. Dynamic specs compute their ranges from the tensor at hand (per
 * token, per tensor, ...); static specs take them from a map site → {@link Ranges} (e.g.
 * {@code llm.layers.0.self_attn.q_proj.in} → one range per input channel) supplied by calibration,
 * and a missing or mis-sized entry is an error naming the site. Static parameters are computed
 * once per site and reused.
 *
 * <p>An optional next tap sees every site after this tap's rewrite (so an observer chained behind
 * it records quantized inputs). Weights are not touched here: see {@link WeightFakeQuantizer}.
 * Left out: output ({@code .out}) quantization, KV-cache and attention-matmul quantization.
 */
public final class FakeQuantTap implements ActivationTap {
    private final QuantPlan plan;
    private final Map<String, Ranges> staticRanges;
    private final ActivationTap next;
    private final Map<String, Optional<Site>> sites = new ConcurrentHashMap<>();

    /** What to do at one site: the quantizer and, for static specs, the fixed parameters. */
    private record Site(UniformQuantizer quantizer, QuantParams fixed) {
    }

    public FakeQuantTap(QuantPlan plan, Map<String, Ranges> staticRanges) {
        this(plan, staticRanges, null);
    }

    public FakeQuantTap(QuantPlan plan, Map<String, Ranges> staticRanges, ActivationTap next) {
        this.plan = plan;
        this.staticRanges = staticRanges == null ? Map.of() : Map.copyOf(staticRanges);
        this.next = next;
    }

    /** The plan whose input specs this tap applies. */
    public QuantPlan plan() {
        return plan;
    }

    /** The static ranges by site (unmodifiable), as given. */
    public Map<String, Ranges> staticRanges() {
        return staticRanges;
    }

    /** The tap that sees every site after this one, or null. */
    public ActivationTap next() {
        return next;
    }

    @Override
    public void onActivation(String site, float[] data, int rows, int cols) {
        Optional<Site> action = sites.computeIfAbsent(site, this::resolve);
        if (action.isPresent()) {
            Site s = action.get();
            try {
                if (s.fixed() != null) {
                    s.quantizer().fakeQuantize(data, rows, cols, s.fixed());
                } else {
                    s.quantizer().fakeQuantize(data, rows, cols);
                }
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("site " + site + ": " + e.getMessage(), e);
            }
        }
        if (next != null) {
            next.onActivation(site, data, rows, cols);
        }
    }

    private Optional<Site> resolve(String site) {
        if (!site.endsWith(".in")) {
            return Optional.empty();
        }
        Optional<TensorCategory> category = TensorCategory.find(site.substring(0, site.length() - ".in".length()));
        if (category.isEmpty()) {
            return Optional.empty(); // a transformer layer's residual stream, not a linear input
        }
        QuantSpec spec = plan.entry(category.get()).input();
        if (spec == null) {
            return Optional.empty();
        }
        UniformQuantizer q = new UniformQuantizer(spec);
        if (spec.dynamic()) {
            return Optional.of(new Site(q, null));
        }
        Ranges r = staticRanges.get(site);
        if (r == null) {
            throw new IllegalArgumentException("site " + site + ": spec " + spec
                    + " needs static ranges, none were supplied (" + staticRanges.size() + " sites have ranges)");
        }
        return Optional.of(new Site(q, q.params(r)));
    }
}
