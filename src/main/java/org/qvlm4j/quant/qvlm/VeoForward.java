package org.qvlm4j.quant.qvlm;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Predicate;
import org.qvlm4j.io.config.LlavaConfig;
import org.qvlm4j.kernels.WeightMatrix;
import org.qvlm4j.quant.LinearQuant;
import org.qvlm4j.quant.QuantParams;
import org.qvlm4j.quant.QuantPlan;
import org.qvlm4j.quant.QuantSpec;
import org.qvlm4j.quant.Ranges;
import org.qvlm4j.quant.TensorCategory;
import org.qvlm4j.quant.UniformQuantizer;
import org.qvlm4j.quant.WeightFakeQuantizer;
import org.qvlm4j.tensor.Ops;
import org.qvlm4j.tensor.Tape;
import org.qvlm4j.tensor.Tensor;
import org.qvlm4j.train.TrainableLlava;

/**
 * The differentiable fake-quantized LLaVA forward of visual encoder optimisation: a
 * {@link TrainableLlava.Hook} that applies a {@link QuantPlan} the way the runtime's
 * {@code WeightFakeQuantizer} and {@code FakeQuantTap} do, with the vision tower's static input
 * ranges made learnable.
 *
 * <ul>
 *   <li><b>Weights</b> of every planned linear: replaced once by their round-to-nearest image under
 *       the plan's weight spec ({@link WeightFakeQuantizer#fakeQuantized}), constants.</li>
 *   <li><b>Learnable inputs</b>: every linear of the vision tower (family VISION: the encoder layers'
 *       q, k, v, out, fc1, fc2 and, if planned, the patch embedding) whose input spec is static. Its
 *       bounds are lo = lo0 · α_lo and hi = hi0 · α_hi per slot (per token position, input channel or
 *       tensor, as the spec says), with lo0 = min(calibrated lo, 0), hi0 = max(calibrated hi, 0) and
 *       the <b>clipping factors α_lo, α_hi ≥ 0 the only parameters that move</b> (initial 1, so the
 *       start is the calibrated quantizer). Gradients reach them through
 *       {@link VeoOps#fakeQuantize(Tape, Tensor, Tensor, Tensor, QuantSpec)}.</li>
 *   <li><b>Other static inputs</b> (projector, LLM): fixed ranges as given; <b>dynamic inputs</b>:
 *       ranges from the tensor at hand; both with the straight-through gradient.</li>
 * </ul>
 * It also records the residual stream around every layer of the last forward
 * ({@link #residual(String)}), which the loss reads. The model it is applied to should be
 * {@link TrainableLlava#frozen}, so no weight collects gradients.
 *
 * <p>Left out: the embeddings (never quantized by the runtime either) and output ({@code .out})
 * quantization.
 */
public final class VeoForward implements TrainableLlava.Hook {
    private final QuantPlan plan;
    private final Map<String, Ranges> fixed;
    private final Map<String, Bounds> learnable;
    private final Map<String, Tensor> weights = new HashMap<>();
    private final Map<String, QuantParams> fixedParams = new HashMap<>();
    private final Map<String, Tensor> residuals = new HashMap<>();

    /**
     * The learnable bounds of one site: slots of lo0, hi0 and the two factor parameters.
     *
     * @param site    runtime site name, e.g. {@code vision.layers.0.self_attn.q_proj.in}
     * @param alphaLo (slots) parameter named {@code <site>.alpha_lo}
     * @param alphaHi (slots) parameter named {@code <site>.alpha_hi}
     */
    public record Bounds(String site, QuantSpec spec, float[] lo0, float[] hi0, Tensor alphaLo, Tensor alphaHi) {
        /** Factors 1 over the calibrated ranges, widened to hold 0. */
        static Bounds initial(String site, QuantSpec spec, Ranges calibrated) {
            int n = calibrated.size();
            float[] lo0 = new float[n];
            float[] hi0 = new float[n];
            for (int i = 0; i < n; i++) {
                lo0[i] = Math.min(calibrated.lo()[i], 0f);
                hi0[i] = Math.max(calibrated.hi()[i], 0f);
            }
            float[] one = new float[n];
            Arrays.fill(one, 1f);
            return new Bounds(site, spec, lo0, hi0, Tensor.param(site + ".alpha_lo", one.clone(), n),
                    Tensor.param(site + ".alpha_hi", one, n));
        }

        Tensor lo(Tape tape) {
            return Ops.mul(tape, Tensor.of(lo0, lo0.length), alphaLo);
        }

        Tensor hi(Tape tape) {
            return Ops.mul(tape, Tensor.of(hi0, hi0.length), alphaHi);
        }

        /** The current bounds, bit-identical to the ones the forward uses. */
        public Ranges ranges() {
            float[] lo = new float[lo0.length];
            float[] hi = new float[hi0.length];
            float[] al = alphaLo.data();
            float[] ah = alphaHi.data();
            for (int i = 0; i < lo.length; i++) {
                lo[i] = lo0[i] * al[i];
                hi[i] = hi0[i] * ah[i];
            }
            return new Ranges(lo, hi);
        }

        /** Keeps the factors non-negative, so lo stays ≤ 0 ≤ hi. */
        void project() {
            for (Tensor t : List.of(alphaLo, alphaHi)) {
                float[] d = t.data();
                for (int i = 0; i < d.length; i++) {
                    d[i] = Math.max(d[i], 0f);
                }
            }
        }
    }

    /**
     * @param config  the model's config (decides which linears exist)
     * @param plan    what is quantized and how
     * @param initial static ranges of every planned static input site; those of learnable sites are
     *                the starting point, the others stay fixed
     */
    public VeoForward(LlavaConfig config, QuantPlan plan, Map<String, Ranges> initial) {
        this(config, plan, initial, VeoForward::isLearnable);
    }

    /**
     * As {@link #VeoForward(LlavaConfig, QuantPlan, Map)}, with the linears whose static input ranges
     * are learnable chosen by a predicate on the linear's runtime name (e.g. the LLM's, for
     * {@link RangeRefinement}).
     */
    public VeoForward(LlavaConfig config, QuantPlan plan, Map<String, Ranges> initial, Predicate<String> learnableLinear) {
        this.plan = plan;
        Map<String, Ranges> f = new LinkedHashMap<>();
        Map<String, Bounds> l = new LinkedHashMap<>();
        for (String linear : linearNames(config)) {
            QuantSpec spec = plan.forLinear(linear).input();
            if (spec == null || spec.dynamic()) {
                continue;
            }
            String site = linear + ".in";
            Ranges r = initial.get(site);
            if (r == null) {
                throw new IllegalArgumentException("site " + site + ": spec " + spec + " needs static ranges, none were"
                        + " supplied (" + initial.size() + " sites have ranges)");
            }
            if (learnableLinear.test(linear)) {
                l.put(site, Bounds.initial(site, spec, r));
            } else {
                f.put(site, r);
            }
        }
        this.fixed = f;
        this.learnable = l;
    }

    /** Whether a linear's static input ranges are optimised: the vision tower's. */
    static boolean isLearnable(String linear) {
        return TensorCategory.of(linear).family() == TensorCategory.Family.VISION;
    }

    /** Runtime names of the linears a forward runs, in forward order (vision layers up to the feature layer). */
    public static List<String> linearNames(LlavaConfig cfg) {
        List<String> out = new ArrayList<>();
        out.add("vision.embeddings.patch_embedding");
        for (int i = 0; i < cfg.visionFeatureLayerIndex(); i++) {
            String p = "vision.layers." + i + ".";
            for (String s : List.of("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj",
                    "mlp.fc1", "mlp.fc2")) {
                out.add(p + s);
            }
        }
        out.add("projector.linear_1");
        out.add("projector.linear_2");
        for (int i = 0; i < cfg.textConfig().numHiddenLayers(); i++) {
            String p = "llm.layers." + i + ".";
            for (String s : List.of("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                    "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")) {
                out.add(p + s);
            }
        }
        out.add("lm_head");
        return out;
    }

    /** The learnable sites in forward order. */
    public Map<String, Bounds> learnable() {
        return Collections.unmodifiableMap(learnable);
    }

    /** Every factor parameter (α_lo, α_hi per learnable site, in forward order). */
    public List<Tensor> parameters() {
        List<Tensor> out = new ArrayList<>();
        for (Bounds b : learnable.values()) {
            out.add(b.alphaLo());
            out.add(b.alphaHi());
        }
        return out;
    }

    /** The current ranges of the learnable sites, keyed by runtime site name. */
    public Map<String, Ranges> ranges() {
        Map<String, Ranges> out = new LinkedHashMap<>();
        learnable.forEach((site, b) -> out.put(site, b.ranges()));
        return out;
    }

    /** Clamps every factor to ≥ 0 (after an optimiser step). */
    void project() {
        learnable.values().forEach(Bounds::project);
    }

    /** The residual stream recorded at a site ({@code llm.layers.<i>.out}, ...) in the last forward. */
    public Tensor residual(String site) {
        Tensor t = residuals.get(site);
        if (t == null) {
            throw new IllegalStateException("no residual stream recorded at " + site + " in the last forward");
        }
        return t;
    }

    /** Forgets the residual streams of the previous forward. */
    void clearResiduals() {
        residuals.clear();
    }

    @Override
    public Tensor weight(String linear, Tensor w) {
        QuantSpec spec = entry(linear).weight();
        if (spec == null) {
            return w;
        }
        return weights.computeIfAbsent(linear, k -> Tensor.of(WeightFakeQuantizer.fakeQuantized(
                WeightMatrix.ofFloats(w.data(), w.dim(0), w.dim(1)), spec), w.dim(0), w.dim(1)));
    }

    @Override
    public Tensor input(Tape tape, String linear, Tensor x) {
        QuantSpec spec = entry(linear).input();
        if (spec == null) {
            return x;
        }
        String site = linear + ".in";
        try {
            UniformQuantizer q = new UniformQuantizer(spec);
            if (spec.dynamic()) {
                return VeoOps.fakeQuantize(tape, x, q, q.params(x.data(), x.dim(0), x.dim(1)));
            }
            Bounds b = learnable.get(site);
            if (b != null) {
                return VeoOps.fakeQuantize(tape, x, b.lo(tape), b.hi(tape), spec);
            }
            QuantParams p = fixedParams.computeIfAbsent(site, k -> q.params(fixed.get(k)));
            return VeoOps.fakeQuantize(tape, x, q, p);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("site " + site + ": " + e.getMessage(), e);
        }
    }

    @Override
    public Tensor residual(Tape tape, String site, Tensor h) {
        residuals.put(site, h);
        return h;
    }

    private LinearQuant entry(String linear) {
        return plan.forLinear(linear);
    }
}
