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
 * one-dimensional tensors (norms, biases, the class embedding) are decoded to float arrays.
 * {@code post_layernorm} may be present though the LLaVA forward never uses it; with tied word
 * embeddings {@code lm_head} may be absent.
 */
public final class LlavaWeights {
    private final Checkpoint checkpoint;
    private final Map<String, TensorEntry> byCanonical;
    private final Map<String, PackedLayout> packedLayouts = new HashMap<>();

    /**
     * How a linear's weight is stored packed in a quantized checkpoint: tensors
     * {@code <prefix>.qweight} (U8 codes, (N, rowBytes)), {@code <prefix>.scales} (F32, (N, groups))
     * and, for asymmetric uniform formats, {@code <prefix>.zeros} (U8, (N, groups)).
     */
    public record PackedLayout(QuantFormat format, int groupSize, boolean symmetric) {}

    /** Suffixes of the tensors of a packed linear. */
    public static final String QWEIGHT = ".qweight";
    public static final String SCALES = ".scales";
    public static final String ZEROS = ".zeros";

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
     * As {@link #of(Checkpoint, LlavaConfig)}, with the linears named in packed (canonical prefix,
     * e.g. {@code llm.layers.0.mlp.down_proj}) stored as packed tensors instead of {@code .weight}.
     */
    public static LlavaWeights of(Checkpoint ckpt, LlavaConfig cfg, Map<String, PackedLayout> packed) {
        Map<String, long[]> expected = expectedShapes(cfg);
        Map<String, long[]> optional = optionalShapes(cfg);
        Map<String, DType> packedDtypes = new HashMap<>();
        for (Map.Entry<String, PackedLayout> e : packed.entrySet()) {
            long[] w = expected.get(e.getKey() + ".weight");
            if (w == null || w.length != 2) {
                throw new IllegalArgumentException(ckpt.dir() + ": packed linear '" + e.getKey()
                        + "' is not a linear of a LLaVA model with this config");
            }
            PackedLayout pl = e.getValue();
            int k = Math.toIntExact(w[1]);
            long groups = pl.groupSize() > 0 && k % pl.groupSize() == 0 ? k / pl.groupSize() : -1;
            if (groups < 0) {
                throw new IllegalArgumentException(ckpt.dir() + ": packed linear '" + e.getKey() + "' group size "
                        + pl.groupSize() + " does not divide K = " + k);
            }
            expected.remove(e.getKey() + ".weight");
            expected.put(e.getKey() + QWEIGHT, new long[] {w[0], pl.format().rowBytes(k)});
            expected.put(e.getKey() + SCALES, new long[] {w[0], groups});
            packedDtypes.put(e.getKey() + QWEIGHT, DType.U8);
            packedDtypes.put(e.getKey() + SCALES, DType.F32);
            if (pl.format().isUniform() && !pl.symmetric()) {
                expected.put(e.getKey() + ZEROS, new long[] {w[0], groups});
                packedDtypes.put(e.getKey() + ZEROS, DType.U8);
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
                throw new IllegalArgumentException(ckpt.dir() + ": packed tensor '" + key + "' expected dtype "
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
        lw.packedLayouts.putAll(packed);
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

    /** A linear layer whose site name is its canonical prefix (without {@code .weight}). */
    public Linear linear(String prefix) {
        PackedLayout pl = packedLayouts.get(prefix);
        if (pl != null) {
            TensorEntry q = entry(prefix + QWEIGHT);
            TensorEntry z = pl.format().isUniform() && !pl.symmetric() ? entry(prefix + ZEROS) : null;
            int rows = Math.toIntExact(q.shape()[0]);
            int groups = Math.toIntExact(entry(prefix + SCALES).shape()[1]);
            int cols = Math.toIntExact(groups * (long) pl.groupSize());
            byte[] zeros = z == null ? null : z.data().toArray(java.lang.foreign.ValueLayout.JAVA_BYTE);
            PackedMatrix m = new PackedMatrix(pl.format(), rows, cols, pl.groupSize(), q.data(),
                    vector(prefix + SCALES), zeros);
            return new Linear(prefix, m, optionalVector(prefix + ".bias"));
        }
        return new Linear(prefix, matrix(prefix + ".weight"), optionalVector(prefix + ".bias"));
    }
}
