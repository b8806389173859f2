package org.qvlm4j.quant.methods;

import java.util.ArrayList;
import java.util.List;
import org.qvlm4j.model.Linear;
import org.qvlm4j.model.LlavaModel;
import org.qvlm4j.quant.QuantParams;
import org.qvlm4j.quant.QuantPlan;
import org.qvlm4j.quant.QuantSpec;
import org.qvlm4j.quant.Ranges;
import org.qvlm4j.quant.UniformQuantizer;
import org.qvlm4j.quant.calib.CalibrationStats;

/**
 * AWQ (Lin et al. 2024, "AWQ: Activation-aware Weight Quantization for LLM Compression and
 * Acceleration"), following the reference {@code auto_scale} / {@code auto_clip}:
 * <ol>
 *   <li>Scale search: for linears sharing an input (q/k/v, gate/up, or one linear alone) and
 *       α = i / alphaGrid, i = 0 .. alphaGrid − 1, s = mean|X|^α (clamped to ≥ 1e-4, divided by
 *       sqrt(max s · min s)); the α minimising Σ_linears ||Q(W·diag(s))·diag(1/s)·x − W·x||² over the
 *       calibration tokens wins (α = 0, plain RTN, is a candidate, so AWQ never does worse on this
 *       loss). mean|X_j| is the statistics' {@code channel_mean_abs}.</li>
 *   <li>Clip search: per quantization slot (output row, or row × group) the range of W·diag(s) is
 *       shrunk by r = 1 − i / clipGrid for i &lt; maxShrink · clipGrid and the r with the smallest
 *       output error of that slot's columns wins (r = 1 is a candidate). As in the reference, q_proj
 *       and k_proj are not clipped (their error is amplified by the attention scores).</li>
 * </ol>
 * <b>Loss proxy.</b> Instead of re-running the model on the calibration samples, the output error of
 * a weight error E (N, K) is computed exactly from the input Hessian H = Σ xᵀx stored by calibration:
 * Σ_tokens ||E x||² = tr(E H Eᵀ) (for a slot, the block of H on its columns). The reference measures
 * the error on the output of the whole block (attention or MLP) for the scale search; here it is the
 * sum over the group's linears, which leaves out the nonlinearity between them.
 *
 * <p>1/s is folded into the preceding norm where there is one, otherwise applied by the activation
 * tap when the plan quantizes the input, otherwise folded back into the fake-quantized weight
 * (Q(W·diag(s))·diag(1/s), the weight-only case). NF4 weight specs take the scale search but no
 * clip search; percentile-clipped specs are not clip-searched either. Needs the Hessian and
 * channel_mean_abs of every quantized linear's input.
 */
public final class Awq implements QuantMethod {
    /** Lower clamp of the raw scales before normalisation (reference code). */
    public static final double MIN_SCALE = 1e-4;

    /**
     * @param alphaGrid  number of α points in [0, 1); default 20
     * @param clipSearch whether to search per-slot clip ratios; default true
     * @param clipGrid   ratio grid denominator; default 20
     * @param maxShrink  largest range shrink tried; default 0.5 (ratios 1.0, 0.95, …, 0.55)
     */
    public record Config(int alphaGrid, boolean clipSearch, int clipGrid, double maxShrink) {
        public static final Config DEFAULT = new Config(20, true, 20, 0.5);

        public Config {
            if (alphaGrid < 1 || clipGrid < 1 || !(maxShrink >= 0 && maxShrink < 1)) {
                throw new IllegalArgumentException("AWQ config: alphaGrid and clipGrid must be >= 1 and maxShrink in "
                        + "[0, 1), got " + alphaGrid + ", " + clipGrid + ", " + maxShrink);
            }
        }
    }

    private final Config cfg;

    public Awq(Config cfg) {
        this.cfg = cfg;
    }

    @Override
    public String name() {
        return "awq";
    }

    /** One quantized linear of a group: weight (N, K), spec, Hessian. */
    record Target(String name, float[] w, int n, QuantSpec spec, double[] h, long tokens, boolean clip) {
    }

    /** The chosen scale and α of a scale search. */
    public record Search(float[] scales, double alpha, double loss) {
    }

    @Override
    public QuantResult apply(LlavaModel model, QuantPlan plan, CalibrationStats stats) {
        MethodSupport.Outcome out = new MethodSupport.Outcome(name());
        for (MethodSupport.ScaleGroup g : MethodSupport.scaleGroups(model)) {
            List<Target> targets = new ArrayList<>();
            int k = g.members().getFirst().inFeatures();
            for (Linear l : g.members()) {
                QuantSpec spec = plan.forLinear(l.name()).weight();
                if (spec != null) {
                    MethodSupport.Hessian h = MethodSupport.hessian(stats, l.name(), name(), true);
                    boolean clip = !l.name().endsWith("q_proj") && !l.name().endsWith("k_proj");
                    targets.add(new Target(l.name(), l.weight().toFloatArray(), l.outFeatures(), spec, h.h(),
                            h.tokens(), clip));
                }
            }
            if (targets.isEmpty()) {
                continue;
            }
            String site = g.inputSite();
            if (!stats.has(site, "channel_mean_abs")) {
                throw new IllegalArgumentException(name() + ": " + stats.directory() + " has no tensor '" + site
                        + ".channel_mean_abs'");
            }
            Search best = searchScales(stats.floats(site, "channel_mean_abs"), targets, k, cfg.alphaGrid());
            float[] s = best.scales();
            String placement = MethodSupport.placement(g, plan);
            for (Linear l : g.members()) {
                int n = l.outFeatures();
                float[] ws = MethodSupport.scaleColumns(l.weight().toFloatArray(), n, k, s); // (N, K)
                Target t = targets.stream().filter(x -> x.name().equals(l.name())).findFirst().orElse(null);
                String detail = String.format("alpha=%.2f", best.alpha());
                if (t != null) {
                    if (cfg.clipSearch() && t.clip() && clippable(t.spec())) {
                        float[] ratios = searchClip(ws, n, k, s, t.spec(), t.h(), cfg);
                        ws = quantizeWithRatios(ws, n, k, t.spec(), ratios);
                        detail += String.format(" clip-mean=%.3f", mean(ratios));
                    } else {
                        ws = MethodSupport.fakeQuant(ws, n, k, t.spec());
                    }
                    detail += " " + t.spec();
                }
                if (placement.equals("weight")) {
                    ws = MethodSupport.unscaleColumns(ws, n, k, s);
                }
                out.put(l, ws, s, placement, detail);
            }
            if (!g.norms().isEmpty()) {
                MethodSupport.foldIntoNorms(model, g, s);
            }
        }
        return out.finish(model, plan, stats);
    }

    private static boolean clippable(QuantSpec spec) {
        return spec.format() == QuantSpec.Format.UNIFORM && spec.clip().kind() != QuantSpec.ClipKind.PERCENTILE;
    }

    private static double mean(float[] a) {
        double s = 0;
        for (float v : a) {
            s += v;
        }
        return s / a.length;
    }

    /** s(α) = clamp(meanAbs^α, 1e-4) / sqrt(max · min). */
    public static float[] scalesFor(float[] meanAbs, double alpha) {
        double[] raw = new double[meanAbs.length];
        double mx = 0;
        double mn = Double.POSITIVE_INFINITY;
        for (int j = 0; j < raw.length; j++) {
            raw[j] = Math.max(Math.pow(meanAbs[j], alpha), MIN_SCALE);
            mx = Math.max(mx, raw[j]);
            mn = Math.min(mn, raw[j]);
        }
        double norm = Math.sqrt(mx * mn);
        float[] s = new float[raw.length];
        for (int j = 0; j < s.length; j++) {
            s[j] = (float) (raw[j] / norm);
        }
        return s;
    }

    /** Grid search of α for a group of targets sharing an input with per-channel mean |x| meanAbs. */
    static Search searchScales(float[] meanAbs, List<Target> targets, int k, int grid) {
        Search best = null;
        for (int i = 0; i < grid; i++) {
            double alpha = (double) i / grid;
            float[] s = scalesFor(meanAbs, alpha);
            double loss = 0;
            for (Target t : targets) {
                float[] q = MethodSupport.fakeQuant(MethodSupport.scaleColumns(t.w(), t.n(), k, s), t.n(), k, t.spec());
                float[] eff = MethodSupport.unscaleColumns(q, t.n(), k, s);
                loss += MethodSupport.outputSse(eff, t.w(), t.n(), k, t.h()) / Math.max(1, t.tokens());
            }
            if (best == null || loss < best.loss()) {
                best = new Search(s, alpha, loss);
            }
        }
        return best;
    }

    /**
     * Scale search on one weight w (N, K) with input Hessian h (K, K) and per-channel mean |x|: the
     * AWQ image Q(W·diag(s))·diag(1/s) (no clipping) of the best α.
     */
    public static float[] quantizeLayer(float[] w, int n, int k, float[] meanAbs, double[] h, QuantSpec spec,
                                        Config cfg) {
        Target t = new Target("layer", w, n, spec, h, 1, true);
        float[] s = searchScales(meanAbs, List.of(t), k, cfg.alphaGrid()).scales();
        float[] ws = MethodSupport.scaleColumns(w, n, k, s);
        if (cfg.clipSearch() && clippable(spec)) {
            ws = quantizeWithRatios(ws, n, k, spec, searchClip(ws, n, k, s, spec, h, cfg));
        } else {
            ws = MethodSupport.fakeQuant(ws, n, k, spec);
        }
        return MethodSupport.unscaleColumns(ws, n, k, s);
    }

    /** Per-slot shrink ratio minimising the slot's output error (in the original input basis). */
    static float[] searchClip(float[] ws, int n, int k, float[] s, QuantSpec spec, double[] h, Config cfg) {
        int slots = QuantParams.slots(spec, n, k);
        float[] bestRatio = new float[slots];
        double[] bestLoss = new double[slots];
        java.util.Arrays.fill(bestLoss, Double.POSITIVE_INFINITY);
        int steps = (int) (cfg.maxShrink() * cfg.clipGrid());
        int seg = spec.granularity() == QuantSpec.Granularity.PER_GROUP ? spec.groupSize() : k;
        double[] e = new double[k];
        for (int i = 0; i < Math.max(1, steps); i++) {
            float ratio = (float) (1 - (double) i / cfg.clipGrid());
            float[] ratios = new float[slots];
            java.util.Arrays.fill(ratios, ratio);
            float[] q = quantizeWithRatios(ws, n, k, spec, ratios);
            double[] loss = new double[slots];
            for (int r = 0; r < n; r++) {
                for (int j = 0; j < k; j++) {
                    e[j] = ((double) q[r * k + j] - ws[r * k + j]) / s[j];
                }
                for (int c0 = 0; c0 < k; c0 += seg) {
                    loss[QuantParams.slot(spec, r, c0, k)] += MethodSupport.quadratic(e, c0, Math.min(k, c0 + seg), h, k);
                }
            }
            for (int t = 0; t < slots; t++) {
                if (loss[t] < bestLoss[t]) {
                    bestLoss[t] = loss[t];
                    bestRatio[t] = ratio;
                }
            }
        }
        return bestRatio;
    }

    /** Fake quantization of ws (N, K) with each slot's min/max range scaled by its ratio. */
    static float[] quantizeWithRatios(float[] ws, int n, int k, QuantSpec spec, float[] ratios) {
        Ranges base = new UniformQuantizer(spec.withClip(QuantSpec.Clip.NONE)).ranges(ws, n, k);
        float[] lo = base.lo().clone();
        float[] hi = base.hi().clone();
        for (int t = 0; t < lo.length; t++) {
            lo[t] *= ratios[t];
            hi[t] *= ratios[t];
        }
        UniformQuantizer uq = new UniformQuantizer(spec);
        float[] out = ws.clone();
        uq.fakeQuantize(out, n, k, uq.params(new Ranges(lo, hi)));
        return out;
    }
}
