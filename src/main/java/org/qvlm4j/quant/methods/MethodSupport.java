package org.qvlm4j.quant.methods;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.qvlm4j.kernels.WeightMatrix;
import org.qvlm4j.model.ActivationTap;
import org.qvlm4j.model.Linear;
import org.qvlm4j.model.LlavaModel;
import org.qvlm4j.quant.FakeQuantTap;
import org.qvlm4j.quant.QuantPlan;
import org.qvlm4j.quant.QuantSpec;
import org.qvlm4j.quant.Quantizer;
import org.qvlm4j.quant.Ranges;
import org.qvlm4j.quant.calib.CalibrationStats;

/**
 * What the baselines share: the Hessian proxy of a linear's calibration inputs, the
 * quadratic-form output error, the groups of linears that read the same normalized input (and so
 * share smoothing scales), the placement of per-input-channel scales (folded into the norm, applied
 * by the activation tap, or folded back into a weight-only fake-quantized weight), static
 * activation ranges from the statistics, and the collection of results into a {@link QuantResult}.
 */
final class MethodSupport {
    private static final Pattern LLM_ATTN_IN = Pattern.compile("(llm\\.layers\\.\\d+)\\.self_attn\\.[qkv]_proj");
    private static final Pattern LLM_MLP_IN = Pattern.compile("(llm\\.layers\\.\\d+)\\.mlp\\.(gate|up)_proj");
    private static final Pattern VIS_ATTN_IN = Pattern.compile("(vision\\.layers\\.\\d+)\\.self_attn\\.[qkv]_proj");
    private static final Pattern VIS_MLP_IN = Pattern.compile("(vision\\.layers\\.\\d+)\\.mlp\\.fc1");

    private MethodSupport() {
    }

    /** H = Σ xᵀx (K, K) over the calibration tokens of a linear's input, and the token count. */
    record Hessian(double[] h, int k, long tokens) {
    }

    /** The Hessian of linear's input site, or null (or an error when required) if the stats lack it. */
    static Hessian hessian(CalibrationStats stats, String linear, String method, boolean required) {
        String site = linear + ".in";
        if (!stats.sites().contains(site) || !stats.has(site, "hessian")) {
            if (required) {
                throw new IllegalArgumentException(method + ": " + stats.directory() + " has no tensor '" + site
                        + ".hessian'; expected the input Hessian of every quantized linear (calibrate with --hessian all"
                        + " or including " + linear + ")");
            }
            return null;
        }
        float[] f = stats.floats(site, "hessian");
        int k = stats.cols(site);
        double[] h = new double[f.length];
        for (int i = 0; i < f.length; i++) {
            h[i] = f[i];
        }
        return new Hessian(h, k, stats.longs(site, "count")[0]);
    }

    /** Σ_r e_r H e_rᵀ with E = a − b (N, K): the summed squared output error over the tokens of H. */
    static double outputSse(float[] a, float[] b, int n, int k, double[] h) {
        double total = 0;
        double[] e = new double[k];
        for (int r = 0; r < n; r++) {
            for (int j = 0; j < k; j++) {
                e[j] = (double) a[r * k + j] - b[r * k + j];
            }
            total += quadratic(e, 0, k, h, k);
        }
        return total;
    }

    /** e[from, to) H[from:to, from:to] e[from, to)ᵀ for a (k, k) H. */
    static double quadratic(double[] e, int from, int to, double[] h, int k) {
        double s = 0;
        for (int i = from; i < to; i++) {
            if (e[i] == 0) {
                continue;
            }
            double acc = 0;
            for (int j = from; j < to; j++) {
                acc += h[i * k + j] * e[j];
            }
            s += e[i] * acc;
        }
        return s;
    }

    static double meanSquaredDiff(float[] a, float[] b) {
        double s = 0;
        for (int i = 0; i < a.length; i++) {
            double d = (double) a[i] - b[i];
            s += d * d;
        }
        return s / a.length;
    }

    /** A copy of w (rows, cols) replaced by its quantize-dequantize image under spec. */
    static float[] fakeQuant(float[] w, int rows, int cols, QuantSpec spec) {
        float[] out = w.clone();
        Quantizer.of(spec).fakeQuantize(out, rows, cols);
        return out;
    }

    /** w (N, K) · diag(s). */
    static float[] scaleColumns(float[] w, int n, int k, float[] s) {
        float[] out = new float[n * k];
        for (int r = 0; r < n; r++) {
            for (int j = 0; j < k; j++) {
                out[r * k + j] = w[r * k + j] * s[j];
            }
        }
        return out;
    }

    /** w (N, K) · diag(1/s). */
    static float[] unscaleColumns(float[] w, int n, int k, float[] s) {
        float[] out = new float[n * k];
        for (int r = 0; r < n; r++) {
            for (int j = 0; j < k; j++) {
                out[r * k + j] = w[r * k + j] / s[j];
            }
        }
        return out;
    }

    /**
     * Linears reading the same input, with the norm parameters that produce it (empty when the
     * input does not come straight from a norm): q/k/v after input_layernorm / layer_norm1, gate/up
     * after post_attention_layernorm, fc1 after layer_norm2; every other linear alone.
     */
    record ScaleGroup(List<Linear> members, List<String> norms) {
        String inputSite() {
            return members.getFirst().name() + ".in";
        }
    }

    static List<ScaleGroup> scaleGroups(LlavaModel model) {
        Map<String, List<Linear>> members = new LinkedHashMap<>();
        Map<String, List<String>> norms = new LinkedHashMap<>();
        for (Linear l : model.linears()) {
            String key = l.name();
            List<String> n = List.of();
            Matcher m;
            if ((m = LLM_ATTN_IN.matcher(l.name())).matches()) {
                key = m.group(1) + ".input_layernorm.weight";
                n = List.of(key);
            } else if ((m = LLM_MLP_IN.matcher(l.name())).matches()) {
                key = m.group(1) + ".post_attention_layernorm.weight";
                n = List.of(key);
            } else if ((m = VIS_ATTN_IN.matcher(l.name())).matches()) {
                key = m.group(1) + ".layer_norm1.weight";
                n = List.of(key, m.group(1) + ".layer_norm1.bias");
            } else if ((m = VIS_MLP_IN.matcher(l.name())).matches()) {
                key = m.group(1) + ".layer_norm2.weight";
                n = List.of(key, m.group(1) + ".layer_norm2.bias");
            }
            members.computeIfAbsent(key, x -> new ArrayList<>()).add(l);
            norms.put(key, n);
        }
        List<ScaleGroup> out = new ArrayList<>();
        members.forEach((k, v) -> out.add(new ScaleGroup(List.copyOf(v), norms.get(k))));
        return out;
    }

    /** Whether the plan touches any member of the group (weight or input). */
    static boolean planned(ScaleGroup g, QuantPlan plan) {
        return g.members().stream().anyMatch(l -> !plan.forLinear(l.name()).isFloatingPoint());
    }

    /**
     * Where 1/s goes for a group: into the norm when the input comes from one; else into the
     * activation tap when some member's input is quantized (the quantizer must see X/s); else, for
     * weight-only plans, back into the fake-quantized weight (Q(W·diag(s))·diag(1/s)).
     */
    static String placement(ScaleGroup g, QuantPlan plan) {
        if (!g.norms().isEmpty()) {
            return "norm:" + g.norms().getFirst();
        }
        boolean inputQuantized = g.members().stream().anyMatch(l -> plan.forLinear(l.name()).input() != null);
        return inputQuantized ? "activation" : "weight";
    }

    /** Divides the group's norm parameters (weight and bias) by s, so the norm emits X·diag(1/s). */
    static void foldIntoNorms(LlavaModel model, ScaleGroup g, float[] s) {
        for (String n : g.norms()) {
            float[] v = model.normVector(n);
            if (v.length != s.length) {
                throw new IllegalArgumentException(n + ": norm has " + v.length + " channels, scales have " + s.length);
            }
            for (int j = 0; j < v.length; j++) {
                v[j] /= s[j];
            }
        }
    }

    /** Collects per-linear results and turns them into a {@link QuantResult}. */
    static final class Outcome {
        private final String method;
        private final Map<String, float[]> stored = new LinkedHashMap<>();
        private final Map<String, float[]> scales = new LinkedHashMap<>();
        private final Map<String, String> placements = new LinkedHashMap<>();
        private final Map<String, String> details = new LinkedHashMap<>();

        Outcome(String method) {
            this.method = method;
        }

        /**
         * Records linear's new weight. s (or null) is its input scale and placement where 1/s went:
         * for {@code weight} placement the stored weight is already in the original input basis.
         */
        void put(Linear l, float[] weight, float[] s, String placement, String detail) {
            stored.put(l.name(), weight);
            if (s != null) {
                scales.put(l.name(), s);
            }
            placements.put(l.name(), placement);
            details.put(l.name(), detail);
        }

        /** Replaces the weights in the model and builds the activation tap and the report. */
        QuantResult finish(LlavaModel model, QuantPlan plan, CalibrationStats stats) {
            return finish(model, plan, stats, true);
        }

        /** As {@link #finish(LlavaModel, QuantPlan, CalibrationStats)}; without quantizeInputs the tap only rescales. */
        QuantResult finish(LlavaModel model, QuantPlan plan, CalibrationStats stats, boolean quantizeInputs) {
            Map<String, WeightMatrix> weights = new LinkedHashMap<>();
            List<LayerReport> report = new ArrayList<>();
            Map<String, float[]> inputScales = new LinkedHashMap<>(); // site → s, for X/s seen at the site
            Map<String, float[]> tapScales = new LinkedHashMap<>(); // site → s, applied by the tap
            for (Linear l : model.linears()) {
                float[] w = stored.get(l.name());
                if (w == null) {
                    continue;
                }
                int n = l.outFeatures();
                int k = l.inFeatures();
                float[] original = l.weight().toFloatArray(); // (N, K)
                String placement = placements.get(l.name());
                float[] s = scales.get(l.name());
                float[] effective = w;
                if (s != null && !placement.equals("weight")) {
                    effective = unscaleColumns(w, n, k, s);
                    inputScales.put(l.name() + ".in", s);
                    if (placement.equals("activation")) {
                        tapScales.put(l.name() + ".in", s);
                    }
                }
                Hessian h = hessian(stats, l.name(), method, false);
                double outMse = h == null || h.k() != k ? Double.NaN
                        : outputSse(effective, original, n, k, h.h()) / ((double) Math.max(1, h.tokens()) * n);
                report.add(new LayerReport(l.name(), meanSquaredDiff(effective, original), outMse, placement,
                        details.get(l.name())));
                WeightMatrix wm = WeightMatrix.ofFloats(w, n, k);
                l.replaceWeight(wm);
                weights.put(l.name(), wm);
            }
            ActivationTap tap = quantizeInputs ? activationTap(model, plan, stats, inputScales, tapScales)
                    : tapScales.isEmpty() ? null : new InputScalingTap(tapScales, null);
            return new QuantResult(method, weights, tap, scales, report);
        }
    }

    /**
     * The plan's input quantization: static ranges per site from the statistics' channel min/max
     * (divided by the site's scale where the model now feeds X/s), behind a tap applying 1/s for
     * unfolded scales. Null when the plan quantizes no input and no scale is applied by the tap.
     */
    static ActivationTap activationTap(LlavaModel model, QuantPlan plan, CalibrationStats stats,
                                       Map<String, float[]> inputScales, Map<String, float[]> tapScales) {
        Map<String, Ranges> ranges = new LinkedHashMap<>();
        boolean any = false;
        for (Linear l : model.linears()) {
            QuantSpec spec = plan.forLinear(l.name()).input();
            if (spec == null) {
                continue;
            }
            any = true;
            if (spec.dynamic()) {
                continue;
            }
            String site = l.name() + ".in";
            ranges.put(site, staticRanges(stats, site, spec, inputScales.get(site)));
        }
        if (!any && tapScales.isEmpty()) {
            return null;
        }
        ActivationTap quant = any ? new FakeQuantTap(plan, ranges) : null;
        return tapScales.isEmpty() ? quant : new InputScalingTap(tapScales, quant);
    }

    /** Static ranges of one site under spec: per channel, or per tensor; s (or null) divides each channel. */
    static Ranges staticRanges(CalibrationStats stats, String site, QuantSpec spec, float[] s) {
        if (!stats.sites().contains(site)) {
            throw new IllegalArgumentException(stats.directory() + ": no statistics for site '" + site + "', needed for the "
                    + "static input spec " + spec);
        }
        if (spec.clip().kind() == QuantSpec.ClipKind.PERCENTILE) {
            throw new IllegalArgumentException("site " + site + ": static percentile-clipped input spec " + spec
                    + " is not supported by the baselines; expected min/max ranges (no clip or a clip ratio)");
        }
        float[] lo = stats.floats(site, "channel_min");
        float[] hi = stats.floats(site, "channel_max");
        if (s != null) {
            if (s.length != lo.length) {
                throw new IllegalArgumentException("site " + site + ": " + s.length + " scales for " + lo.length
                        + " channels");
            }
            for (int j = 0; j < lo.length; j++) {
                lo[j] /= s[j];
                hi[j] /= s[j];
            }
        }
        return switch (spec.granularity()) {
            case PER_CHANNEL -> new Ranges(lo, hi);
            case PER_TENSOR -> {
                float mn = Float.POSITIVE_INFINITY;
                float mx = Float.NEGATIVE_INFINITY;
                for (int j = 0; j < lo.length; j++) {
                    mn = Math.min(mn, lo[j]);
                    mx = Math.max(mx, hi[j]);
                }
                yield Ranges.of(mn, mx);
            }
            default -> throw new IllegalArgumentException("site " + site + ": static input spec " + spec
                    + " has granularity " + spec.granularity() + "; expected PER_CHANNEL or PER_TENSOR for static ranges");
        };
    }
}
