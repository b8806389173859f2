package org.qvlm4j.model;

import org.qvlm4j.kernels.PackedMatrix;
import org.qvlm4j.kernels.QuantFormat;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import org.qvlm4j.io.config.ClipVisionConfig;
import org.qvlm4j.io.config.LlamaTextConfig;
import org.qvlm4j.io.config.LlavaConfig;
import org.qvlm4j.io.safetensors.Checkpoint;
import org.qvlm4j.io.safetensors.TensorEntry;
import org.qvlm4j.kernels.DType;
import org.qvlm4j.kernels.WeightMatrix;

/**
 * The tensors of a LLaVA checkpoint under canonical internal names, validated strictly against
 * the config: every expected tensor present with its exact shape, nothing unexpected.
 *
 * <p>This is the only place that knows HF key strings. {@link #canonicalName} accepts both the
 * llava-hf hub layout of transformers 4.x ({@code vision_tower.vision_model.*},
 * {@code multi_modal_projector.*}, {@code language_model.model.*}, {@code language_model.lm_head.*})
 * and the layout transformers 5 saves ({@code model.vision_tower.*}, with or without
 * {@code vision_model.}, {@code model.multi_modal_projector.*}, {@code model.language_model.*},
 * {@code lm_head.*}), mirroring LlavaForConditionalGeneration's checkpoint conversion mapping.
 * Canonical names are {@code vision.*}, {@code projector.*}, {@code llm.*} and {@code lm_head.weight},
 * the same prefixes as the {@link ActivationTap} sites.
 *
 * <p>Weights stay in the mapped checkpoint in their stored dtype (F32, F16, BF16); only
 * one-dimensional tensors (norms, biases, the class embedding) are decoded to float arrays. In a
 * quantized checkpoint ({@link QuantizedLayouts}) a linear may instead hold packed codes (U8) with
 * F32 scales and zero points, and beside them an F32 input scale, low-rank factors and static
 * input ranges; {@link #linear} sets them on the {@link Linear}.
 * {@code post_layernorm} may be present though the LLaVA forward never uses it; with tied word
 * embeddings {@code lm_head} may be absent.
 */
public final class LlavaWeights {
    private final Checkpoint checkpoint;
    private final Map<String, TensorEntry> byCanonical;
    private final Map<String, LinearLayout> layouts = new HashMap<>();

    /**
     * How a linear's weight is stored packed in a quantized checkpoint: tensors
     * {@code <prefix>.qweight} (U8 codes, (N, rowBytes)), {@code <prefix>.scales} (F32, (N, groups))
     * and, for asymmetric uniform formats, {@code <prefix>.zeros} (U8, (N, groups)).
     */
    public record PackedLayout(QuantFormat format, int groupSize, boolean symmetric) {}

    /**
     * What a quantized checkpoint stores for one linear beyond, or instead of, its {@code .weight}.
     *
     * @param packed     the packed weight's layout, or null when the weight stays floating point
     * @param inputScale whether {@code <prefix>.input_scale} (F32, (K)) divides the input at run time
     * @param lowRank    rank r of the low-rank term {@code <prefix>.lorc_u} (F32, (N, r)) and
     *                   {@code <prefix>.lorc_v} (F32, (r, K)); 0 when there is none
     * @param input      the input quantizer's spec, or null when the input stays floating point;
     *                   static per-channel ranges are {@code <prefix>.act_range} (F32, (2, K): lo, hi),
     *                   static per-token-position ranges the same tensor of (2, positions)
     * @param execution  how quantized inputs meet the weight (null when input is null)
     * @param tensorRange static per-tensor range {lo, hi} given in the config, or null (dynamic, or
     *                   per-channel ranges from the tensor)
     * @param positions  token positions of static per-token ranges, else 0
     */
    public record LinearLayout(PackedLayout packed, boolean inputScale, int lowRank, InputQuantizer.Spec input,
                               InputQuantizer.Execution execution, float[] tensorRange, int positions) {
        public LinearLayout {
            if (lowRank < 0) {
                throw new IllegalArgumentException("low rank must be >= 0, got " + lowRank);
            }
            if ((input == null) != (execution == null)) {
                throw new IllegalArgumentException("an input spec needs an execution and vice versa, got " + input
                        + " and " + execution);
            }
        }

        /** A packed weight and nothing else. */
        public static LinearLayout packed(PackedLayout p) {
            return new LinearLayout(p, false, 0, null, null, null, 0);
        }

        /** Whether static ranges come from the {@code .act_range} tensor. */
        public boolean rangeTensor() {
            return input != null && !input.dynamic() && (input.granularity() == InputQuantizer.Granularity.PER_CHANNEL
                    || input.granularity() == InputQuantizer.Granularity.PER_TOKEN);
        }

        /** Ranges in the {@code .act_range} tensor of a linear with k inputs: k per channel, else the positions. */
        public int rangeSlots(int k) {
            return input.granularity() == InputQuantizer.Granularity.PER_TOKEN ? positions : k;
        }
    }

    /** Suffixes of the tensors of a packed linear. */
    public static final String QWEIGHT = ".qweight";
    public static final String SCALES = ".scales";
    public static final String ZEROS = ".zeros";
    /** Suffixes of a quantized linear's extra tensors: input scale, LoRC factors, static input ranges. */
    public static final String INPUT_SCALE = ".input_scale";
    public static final String LORC_U = ".lorc_u";
    public static final String LORC_V = ".lorc_v";
    public static final String ACT_RANGE = ".act_range";

    private LlavaWeights(Checkpoint checkpoint, Map<String, TensorEntry> byCanonical) {
        this.checkpoint = checkpoint;
        this.byCanonical = byCanonical;
    }

    /**
     * Translates an HF checkpoint key (either layout) to its canonical name, or returns null when
     * the key belongs to no LLaVA module.
     */
    public static String canonicalName(String key) {
        String s = key;
        boolean v5 = s.startsWith("model.");
        if (v5) {
            s = s.substring("model.".length());
        }
        if (!v5 && s.startsWith("language_model.model.")) {
            return "llm." + s.substring("language_model.model.".length());
        }
        if (!v5 && s.startsWith("language_model.lm_head.")) {
            return "lm_head." + s.substring("language_model.lm_head.".length());
        }
        if (v5 && s.startsWith("language_model.")) {
            return "llm." + s.substring("language_model.".length());
        }
        if (!v5 && s.startsWith("lm_head.")) {
            return s;
        }
        if (s.startsWith("vision_tower.")) {
            String r = s.substring("vision_tower.".length());
            if (r.startsWith("vision_model.")) {
                r = r.substring("vision_model.".length());
            }
            if (r.startsWith("encoder.layers.")) {
                r = r.substring("encoder.".length());
            }
            return "vision." + r;
        }
        if (s.startsWith("multi_modal_projector.")) {
            return "projector." + s.substring("multi_modal_projector.".length());
        }
        return null;
    }

    /** The shape of every tensor the config requires, by canonical name. */
    static Map<String, long[]> expectedShapes(LlavaConfig cfg) {
        Map<String, long[]> m = new LinkedHashMap<>();
        ClipVisionConfig v = cfg.visionConfig();
        long dv = v.hiddenSize();
        int p = v.patchSize();
        m.put("vision.embeddings.class_embedding", new long[] {dv});
        m.put("vision.embeddings.patch_embedding.weight", new long[] {dv, v.numChannels(), p, p});
        m.put("vision.embeddings.position_embedding.weight", new long[] {v.numPatches() + 1, dv});
        m.put("vision.pre_layrnorm.weight", new long[] {dv});
        m.put("vision.pre_layrnorm.bias", new long[] {dv});
        for (int i = 0; i < v.numHiddenLayers(); i++) {
            String l = "vision.layers." + i + ".";
            for (String ln : List.of("layer_norm1", "layer_norm2")) {
                m.put(l + ln + ".weight", new long[] {dv});
                m.put(l + ln + ".bias", new long[] {dv});
            }
            for (String proj : List.of("q_proj", "k_proj", "v_proj", "out_proj")) {
                m.put(l + "self_attn." + proj + ".weight", new long[] {dv, dv});
                m.put(l + "self_attn." + proj + ".bias", new long[] {dv});
            }
            m.put(l + "mlp.fc1.weight", new long[] {v.intermediateSize(), dv});
            m.put(l + "mlp.fc1.bias", new long[] {v.intermediateSize()});
            m.put(l + "mlp.fc2.weight", new long[] {dv, v.intermediateSize()});
            m.put(l + "mlp.fc2.bias", new long[] {dv});
        }
        LlamaTextConfig t = cfg.textConfig();
        long d = t.hiddenSize();
        long qd = (long) t.numAttentionHeads() * t.headDim();
        long kvd = (long) t.numKeyValueHeads() * t.headDim();
        long inter = t.intermediateSize();
        m.put("projector.linear_1.weight", new long[] {d, dv});
        m.put("projector.linear_2.weight", new long[] {d, d});
        if (cfg.multimodalProjectorBias()) {
            m.put("projector.linear_1.bias", new long[] {d});
            m.put("projector.linear_2.bias", new long[] {d});
        }
        m.put("llm.embed_tokens.weight", new long[] {t.vocabSize(), d});
        for (int i = 0; i < t.numHiddenLayers(); i++) {
            String l = "llm.layers." + i + ".";
            m.put(l + "input_layernorm.weight", new long[] {d});
            m.put(l + "post_attention_layernorm.weight", new long[] {d});
            m.put(l + "self_attn.q_proj.weight", new long[] {qd, d});
            m.put(l + "self_attn.k_proj.weight", new long[] {kvd, d});
            m.put(l + "self_attn.v_proj.weight", new long[] {kvd, d});
            m.put(l + "self_attn.o_proj.weight", new long[] {d, qd});
            if (t.attentionBias()) {
                m.put(l + "self_attn.q_proj.bias", new long[] {qd});
                m.put(l + "self_attn.k_proj.bias", new long[] {kvd});
                m.put(l + "self_attn.v_proj.bias", new long[] {kvd});
                m.put(l + "self_attn.o_proj.bias", new long[] {d});
            }
            m.put(l + "mlp.gate_proj.weight", new long[] {inter, d});
            m.put(l + "mlp.up_proj.weight", new long[] {inter, d});
            m.put(l + "mlp.down_proj.weight", new long[] {d, inter});
            if (t.mlpBias()) {
                m.put(l + "mlp.gate_proj.bias", new long[] {inter});
                m.put(l + "mlp.up_proj.bias", new long[] {inter});
                m.put(l + "mlp.down_proj.bias", new long[] {d});
            }
        }
        m.put("llm.norm.weight", new long[] {d});
        if (!cfg.tieWordEmbeddings()) {
            m.put("lm_head.weight", new long[] {t.vocabSize(), d});
        }
        return m;
    }

    /** Tensors that may be present but are not required (and, except lm_head when untied, unused). */
    static Map<String, long[]> optionalShapes(LlavaConfig cfg) {
        Map<String, long[]> m = new LinkedHashMap<>();
        long dv = cfg.visionConfig().hiddenSize();
        m.put("vision.post_layernorm.weight", new long[] {dv});
        m.put("vision.post_layernorm.bias", new long[] {dv});
        if (cfg.tieWordEmbeddings()) {
            m.put("lm_head.weight", new long[] {cfg.textConfig().vocabSize(), cfg.textConfig().hiddenSize()});
        }
        return m;
    }

    /** Validates the checkpoint against the config and indexes it by canonical name. */
    public static LlavaWeights of(Checkpoint ckpt, LlavaConfig cfg) {
        return of(ckpt, cfg, Map.of());
    }

    /**
     * As {@link #of(Checkpoint, LlavaConfig)}, with the linears named in layouts (canonical prefix,
     * e.g. {@code llm.layers.0.mlp.down_proj}) stored as a quantized checkpoint describes them:
     * packed tensors instead of {@code .weight}, and their extra tensors, all F32 (U8 codes).
     */
    public static LlavaWeights of(Checkpoint ckpt, LlavaConfig cfg, Map<String, LinearLayout> layouts) {
        Map<String, long[]> expected = expectedShapes(cfg);
        Map<String, long[]> optional = optionalShapes(cfg);
        Map<String, DType> packedDtypes = new HashMap<>();
        for (Map.Entry<String, LinearLayout> e : layouts.entrySet()) {
            String p = e.getKey();
            long[] w = expected.get(p + ".weight");
            if (w == null || w.length != 2) {
                throw new IllegalArgumentException(ckpt.dir() + ": quantized linear '" + p
                        + "' is not a linear of a LLaVA model with this config");
            }
            LinearLayout ll = e.getValue();
            int k = Math.toIntExact(w[1]);
            PackedLayout pl = ll.packed();
            if (pl != null) {
                long groups = pl.groupSize() > 0 && k % pl.groupSize() == 0 ? k / pl.groupSize() : -1;
                if (groups < 0) {
                    throw new IllegalArgumentException(ckpt.dir() + ": packed linear '" + p + "' group size "
                            + pl.groupSize() + " does not divide K = " + k);
                }
                expected.remove(p + ".weight");
                expected.put(p + QWEIGHT, new long[] {w[0], pl.format().rowBytes(k)});
                expected.put(p + SCALES, new long[] {w[0], groups});
                packedDtypes.put(p + QWEIGHT, DType.U8);
                packedDtypes.put(p + SCALES, DType.F32);
                if (pl.format().isUniform() && !pl.symmetric()) {
                    expected.put(p + ZEROS, new long[] {w[0], groups});
                    packedDtypes.put(p + ZEROS, DType.U8);
                }
            }
            if (ll.inputScale()) {
                expected.put(p + INPUT_SCALE, new long[] {k});
                packedDtypes.put(p + INPUT_SCALE, DType.F32);
            }
            if (ll.lowRank() > 0) {
                expected.put(p + LORC_U, new long[] {w[0], ll.lowRank()});
                expected.put(p + LORC_V, new long[] {ll.lowRank(), k});
                packedDtypes.put(p + LORC_U, DType.F32);
                packedDtypes.put(p + LORC_V, DType.F32);
            }
            if (ll.rangeTensor()) {
                expected.put(p + ACT_RANGE, new long[] {2, ll.rangeSlots(k)});
                packedDtypes.put(p + ACT_RANGE, DType.F32);
            }
        }
        Map<String, TensorEntry> byCanonical = new HashMap<>();
        Map<String, String> sourceKey = new HashMap<>();
        for (Map.Entry<String, TensorEntry> e : ckpt.tensors().entrySet()) {
            String key = e.getKey();
            TensorEntry t = e.getValue();
            String canon = canonicalName(key);
            long[] shape = canon == null ? null : expected.containsKey(canon) ? expected.get(canon) : optional.get(canon);
            if (shape == null) {
                throw new IllegalArgumentException(ckpt.dir() + ": unexpected tensor '" + key + "' "
                        + java.util.Arrays.toString(t.shape()) + " (not part of a LLaVA model with this config)");
            }
            String prev = sourceKey.put(canon, key);
            if (prev != null) {
                throw new IllegalArgumentException(ckpt.dir() + ": tensors '" + prev + "' and '" + key
                        + "' both name " + canon + " (mixed checkpoint layouts)");
            }
            if (!java.util.Arrays.equals(shape, t.shape())) {
                throw new IllegalArgumentException(ckpt.dir() + ": tensor '" + key + "' expected shape "
                        + java.util.Arrays.toString(shape) + ", got " + java.util.Arrays.toString(t.shape()));
            }
            DType packedType = packedDtypes.get(canon);
            if (packedType != null && t.dtype() != packedType) {
                throw new IllegalArgumentException(ckpt.dir() + ": quantized-linear tensor '" + key + "' expected dtype "
                        + packedType + ", got " + t.dtype());
            }
            if (packedType == null && t.dtype() != DType.F32 && t.dtype() != DType.F16 && t.dtype() != DType.BF16) {
                throw new IllegalArgumentException(ckpt.dir() + ": tensor '" + key + "' expected dtype F32, F16 or BF16, got "
                        + t.dtype());
            }
            byCanonical.put(canon, t);
        }
        Set<String> missing = new TreeSet<>();
        for (String name : expected.keySet()) {
            if (!byCanonical.containsKey(name)) {
                missing.add(name);
            }
        }
        if (!missing.isEmpty()) {
            List<String> shown = new ArrayList<>();
            for (String name : missing) {
                if (shown.size() == 5) {
                    shown.add("... (" + missing.size() + " in all)");
                    break;
                }
                shown.add(hubKey(name) + " " + java.util.Arrays.toString(expected.get(name)));
            }
            throw new IllegalArgumentException(ckpt.dir() + ": missing tensor(s) " + String.join(", ", shown));
        }
        LlavaWeights lw = new LlavaWeights(ckpt, byCanonical);
        lw.layouts.putAll(layouts);
        return lw;
    }

    /** The llava-hf hub key of a canonical name, for messages. */
    static String hubKey(String canonical) {
        if (canonical.startsWith("llm.")) {
            return "language_model.model." + canonical.substring(4);
        }
        if (canonical.startsWith("lm_head.")) {
            return "language_model." + canonical;
        }
        if (canonical.startsWith("projector.")) {
            return "multi_modal_projector." + canonical.substring("projector.".length());
        }
        String r = canonical.substring("vision.".length());
        return "vision_tower.vision_model." + (r.startsWith("layers.") ? "encoder." + r : r);
    }

    public Checkpoint checkpoint() {
        return checkpoint;
    }

    public boolean has(String canonical) {
        return byCanonical.containsKey(canonical);
    }

    TensorEntry entry(String canonical) {
        TensorEntry e = byCanonical.get(canonical);
        if (e == null) {
            throw new IllegalArgumentException(checkpoint.dir() + ": no tensor for " + hubKey(canonical));
        }
        return e;
    }

    /** A tensor read in place as a (shape[0], product of the rest) matrix. */
    public WeightMatrix matrix(String canonical) {
        TensorEntry e = entry(canonical);
        long[] s = e.shape();
        long cols = 1;
        for (int i = 1; i < s.length; i++) {
            cols *= s[i];
        }
        return new WeightMatrix(e.data(), e.dtype(), Math.toIntExact(s[0]), Math.toIntExact(cols));
    }

    /** A small tensor decoded to floats. */
    public float[] vector(String canonical) {
        return entry(canonical).toFloatArray();
    }

    /** The bias vector, or null when the checkpoint has none. */
    public float[] optionalVector(String canonical) {
        return has(canonical) ? vector(canonical) : null;
    }

    /**
     * A linear layer whose site name is its canonical prefix (without {@code .weight}), with the
     * packed weight, input scale, input quantizer and low-rank term its layout names.
     */
    public Linear linear(String prefix) {
        LinearLayout ll = layouts.get(prefix);
        float[] bias = optionalVector(prefix + ".bias");
        if (ll == null) {
            return new Linear(prefix, matrix(prefix + ".weight"), bias);
        }
        Linear l;
        PackedLayout pl = ll.packed();
        if (pl != null) {
            TensorEntry q = entry(prefix + QWEIGHT);
            TensorEntry z = pl.format().isUniform() && !pl.symmetric() ? entry(prefix + ZEROS) : null;
            int rows = Math.toIntExact(q.shape()[0]);
            int groups = Math.toIntExact(entry(prefix + SCALES).shape()[1]);
            int cols = Math.toIntExact(groups * (long) pl.groupSize());
            byte[] zeros = z == null ? null : z.data().toArray(java.lang.foreign.ValueLayout.JAVA_BYTE);
            PackedMatrix m = new PackedMatrix(pl.format(), rows, cols, pl.groupSize(), q.data(),
                    vector(prefix + SCALES), zeros);
            l = new Linear(prefix, m, bias);
        } else {
            l = new Linear(prefix, matrix(prefix + ".weight"), bias);
        }
        if (ll.lowRank() > 0) {
            l.setLowRank(matrix(prefix + LORC_U), matrix(prefix + LORC_V));
        }
        if (ll.inputScale()) {
            l.setInputScale(vector(prefix + INPUT_SCALE));
        }
        InputQuantizer.Spec spec = ll.input();
        if (spec != null) {
            int k = l.inFeatures();
            if (spec.dynamic()) {
                l.setInputQuantizer(InputQuantizer.dynamic(spec, ll.execution(), k));
            } else if (ll.rangeTensor()) {
                int n = ll.rangeSlots(k);
                float[] r = vector(prefix + ACT_RANGE); // (2, K) or (2, positions)
                l.setInputQuantizer(InputQuantizer.fromRanges(spec, ll.execution(), k,
                        java.util.Arrays.copyOfRange(r, 0, n), java.util.Arrays.copyOfRange(r, n, 2 * n)));
            } else {
                l.setInputQuantizer(InputQuantizer.fromRanges(spec, ll.execution(), k,
                        new float[] {ll.tensorRange()[0]}, new float[] {ll.tensorRange()[1]}));
            }
            if (ll.execution() == InputQuantizer.Execution.INTEGER && !l.integerInputs()) {
                throw new IllegalArgumentException(checkpoint.dir().resolve(QuantizedLayouts.FILE) + ": key activations."
                        + prefix + ".path: expected '" + QuantizedLayouts.PATH_FAKE + "' ("
                        + InputQuantizer.integerUnsupported(spec, pl == null ? null : pl.format(),
                                pl == null ? k : pl.groupSize(), k) + "), got '" + QuantizedLayouts.PATH_INTEGER + "'");
            }
        }
        return l;
    }
}
