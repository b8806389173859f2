package org.qvlm4j.quant.methods;

import org.qvlm4j.model.Linear;
import org.qvlm4j.model.LlavaModel;
import org.qvlm4j.quant.QuantPlan;
import org.qvlm4j.quant.QuantSpec;
import org.qvlm4j.quant.calib.CalibrationStats;

/**
 * SmoothQuant (Xiao et al. 2023, "SmoothQuant: Accurate and Efficient Post-Training Quantization
 * for Large Language Models"): migrates activation outliers into the weights with a per-input-
 * channel scale s_j = max|X_j|^α / max|W_{:,j}|^(1−α) (reference code: weight column absmax
 * clamped to ≥ 1e-5, s clamped to ≥ 1e-5), so that X·Wᵀ = (X·diag(1/s))·(W·diag(s))ᵀ. Linears that
 * read one normalized input share one s (q/k/v; gate/up; fc1 alone after layer_norm2) with
 * max|W_{:,j}| taken over all of them, and 1/s is folded into that norm's weight (and bias for
 * CLIP's LayerNorm). max|X_j| is the statistics' {@code channel_absmax} of the group's input site.
 * Then the weights are rounded to nearest with the plan's weight spec and the inputs quantized per
 * the plan (static ranges divided by s).
 *
 * <p>As in the reference implementation only norm-fed linears are smoothed by default; with
 * {@link Config#smoothUnfolded} every other planned linear is smoothed too, its 1/s applied by the
 * activation tap (or folded back into the weight when its input stays floating point). Left out:
 * the per-layer α table and the fused INT8 kernels.
 */
public final class SmoothQuant implements QuantMethod {
    /** Lower clamp of the weight column absmax and of s, as the reference code. */
    public static final double MIN_SCALE = 1e-5;

    /**
     * @param alpha          migration strength α in [0, 1]; default 0.5 (the paper's default)
     * @param smoothUnfolded also smooth linears not fed by a norm; default false (reference code)
     */
    public record Config(double alpha, boolean smoothUnfolded) {
        public static final Config DEFAULT = new Config(0.5, false);

        public Config {
            if (!(alpha >= 0 && alpha <= 1)) {
                throw new IllegalArgumentException("SmoothQuant alpha must be in [0, 1], got " + alpha);
            }
        }
    }

    private final Config cfg;

    public SmoothQuant(Config cfg) {
        this.cfg = cfg;
    }

    @Override
    public String name() {
        return "smoothquant";
    }

    /** Per-column max |w| of w (N, K). */
    public static float[] columnAbsMax(float[] w, int n, int k) {
        float[] m = new float[k];
        for (int r = 0; r < n; r++) {
            for (int j = 0; j < k; j++) {
                m[j] = Math.max(m[j], Math.abs(w[r * k + j]));
            }
        }
        return m;
    }

    /** s_j = max(actAbsMax_j^α / max(weightAbsMax_j, 1e-5)^(1−α), 1e-5). */
    public static float[] scales(float[] actAbsMax, float[] weightAbsMax, double alpha) {
        if (actAbsMax.length != weightAbsMax.length) {
            throw new IllegalArgumentException("SmoothQuant: " + actAbsMax.length + " activation channels but "
                    + weightAbsMax.length + " weight columns");
        }
        float[] s = new float[actAbsMax.length];
        for (int j = 0; j < s.length; j++) {
            double v = Math.pow(actAbsMax[j], alpha) / Math.pow(Math.max(weightAbsMax[j], MIN_SCALE), 1 - alpha);
            s[j] = (float) Math.max(v, MIN_SCALE);
        }
        return s;
    }

    @Override
    public QuantResult apply(LlavaModel model, QuantPlan plan, CalibrationStats stats) {
        return run(model, plan, stats, true);
    }

    /**
     * The smoothing transform alone: scales, W·diag(s) and the folded norms (or the 1/s tap) for
     * the groups the plan touches, with no rounding of weights or inputs. The model's FP function is
     * unchanged up to float rounding.
     */
    public QuantResult smoothOnly(LlavaModel model, QuantPlan plan, CalibrationStats stats) {
        return run(model, plan, stats, false);
    }

    private QuantResult run(LlavaModel model, QuantPlan plan, CalibrationStats stats, boolean quantize) {
        MethodSupport.Outcome out = new MethodSupport.Outcome(name());
        for (MethodSupport.ScaleGroup g : MethodSupport.scaleGroups(model)) {
            if (!MethodSupport.planned(g, plan)) {
                continue;
            }
            boolean smooth = !g.norms().isEmpty() || cfg.smoothUnfolded();
            if (!smooth) {
                for (Linear l : g.members()) {
                    QuantSpec spec = plan.forLinear(l.name()).weight();
                    if (spec != null && quantize) {
                        out.put(l, MethodSupport.fakeQuant(l.weight().toFloatArray(), l.outFeatures(), l.inFeatures(),
                                spec), null, "none", spec.toString());
                    }
                }
                continue;
            }
            String site = g.inputSite();
            if (!stats.sites().contains(site)) {
                throw new IllegalArgumentException(name() + ": " + stats.directory() + " has no statistics for site '"
                        + site + "'; expected channel_absmax of every smoothed linear's input");
            }
            float[] act = stats.floats(site, "channel_absmax"); // (K)
            int k = g.members().getFirst().inFeatures();
            float[] wMax = new float[k];
            for (Linear l : g.members()) {
                float[] m = columnAbsMax(l.weight().toFloatArray(), l.outFeatures(), k);
                for (int j = 0; j < k; j++) {
                    wMax[j] = Math.max(wMax[j], m[j]);
                }
            }
            float[] s = scales(act, wMax, cfg.alpha());
            String placement = MethodSupport.placement(g, plan);
            for (Linear l : g.members()) {
                int n = l.outFeatures();
                QuantSpec spec = quantize ? plan.forLinear(l.name()).weight() : null;
                float[] w = MethodSupport.scaleColumns(l.weight().toFloatArray(), n, k, s); // (N, K)
                if (spec != null) {
                    w = MethodSupport.fakeQuant(w, n, k, spec);
                }
                if (placement.equals("weight")) {
                    w = MethodSupport.unscaleColumns(w, n, k, s);
                }
                out.put(l, w, s, placement, "alpha=" + cfg.alpha() + (spec == null ? " fp" : " " + spec));
            }
            if (!g.norms().isEmpty()) {
                MethodSupport.foldIntoNorms(model, g, s);
            }
        }
        return out.finish(model, plan, stats, quantize);
    }
}
