package org.qvlm4j.model;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.qvlm4j.io.config.LlavaConfig;
import org.qvlm4j.io.safetensors.Checkpoint;

/**
 * LLaVA (Liu et al. 2023, "Visual Instruction Tuning"; HF LlavaForConditionalGeneration): the CLIP
 * vision tower's selected hidden state, minus the CLS token under the "default" strategy, goes
 * through the {@link MultimodalProjector}; the projected image features replace, in order, the
 * embeddings of the {@code image_token_index} tokens of the prompt; LLaMA then runs on the spliced
 * embeddings.
 *
 * <p>Batch size 1 and one image (or none) per prompt; no padding or attention mask. The model
 * keeps the checkpoint mapped until {@link #close()}.
 */
public final class LlavaModel implements AutoCloseable {
    private final LlavaConfig cfg;
    private final LlavaWeights weights;
    private final ClipVisionTransformer vision;
    private final MultimodalProjector projector;
    private final LlamaModel language;
    private ActivationTap tap;

    LlavaModel(LlavaConfig cfg, LlavaWeights weights) {
        this.cfg = cfg;
        this.weights = weights;
        this.vision = new ClipVisionTransformer(weights, cfg.visionConfig());
        this.projector = new MultimodalProjector(weights, cfg.projectorHiddenAct());
        this.language = new LlamaModel(weights, cfg.textConfig(), cfg.tieWordEmbeddings());
    }

    /**
     * Loads {@code config.json} and the (possibly sharded) safetensors checkpoint of a model directory;
     * with a {@code quantization_config.json}, its packed linears run the low-bit kernels and its
     * input scales, input quantizers and low-rank terms are set on their linears.
     */
    public static LlavaModel load(Path modelDir) {
        LlavaConfig cfg = LlavaConfig.load(modelDir);
        Checkpoint ckpt = Checkpoint.open(modelDir);
        try {
            return new LlavaModel(cfg, LlavaWeights.of(ckpt, cfg, QuantizedLayouts.read(modelDir).linears()));
        } catch (RuntimeException e) {
            ckpt.close();
            throw e;
        }
    }

    public LlavaConfig config() {
        return cfg;
    }

    public ClipVisionTransformer vision() {
        return vision;
    }

    public MultimodalProjector projector() {
        return projector;
    }

    public LlamaModel language() {
        return language;
    }

    /** Registers the tap that sees every named activation (null removes it); see {@link ActivationTap}. */
    public void setActivationTap(ActivationTap tap) {
        this.tap = tap;
    }

    public ActivationTap activationTap() {
        return tap;
    }

    /** Every linear layer of the model, in forward order (vision, projector, language, lm_head). */
    public List<Linear> linears() {
        List<Linear> all = new ArrayList<>();
        all.add(vision.patchEmbedding());
        for (ClipEncoderLayer l : vision.layers()) {
            all.addAll(List.of(l.qProj, l.kProj, l.vProj, l.outProj, l.fc1, l.fc2));
        }
        all.add(projector.linear1);
        all.add(projector.linear2);
        for (LlamaDecoderLayer l : language.layers()) {
            all.addAll(List.of(l.qProj, l.kProj, l.vProj, l.oProj, l.gateProj, l.upProj, l.downProj));
        }
        all.add(language.lmHead);
        return all;
    }

    private static final java.util.regex.Pattern NORM_NAME =
            java.util.regex.Pattern.compile("(vision|llm)\\.layers\\.(\\d+)\\.(.+)");

    /**
     * The live parameter array of a per-layer norm, by canonical name
     * ({@code llm.layers.<i>.input_layernorm.weight}, {@code llm.layers.<i>.post_attention_layernorm.weight},
     * {@code vision.layers.<i>.layer_norm{1,2}.{weight,bias}}): changes made to it take effect in
     * the next forward pass (scale folding such as SmoothQuant's). Unknown names are an error.
     */
    public float[] normVector(String canonicalName) {
        java.util.regex.Matcher m = NORM_NAME.matcher(canonicalName);
        float[] v = null;
        if (m.matches()) {
            int i = Integer.parseInt(m.group(2));
            if (m.group(1).equals("llm") && i < language.layers().size()) {
                v = language.layers().get(i).normVector(m.group(3));
            } else if (m.group(1).equals("vision") && i < vision.layers().size()) {
                v = vision.layers().get(i).normVector(m.group(3));
            }
        }
        if (v == null) {
            throw new IllegalArgumentException("no norm vector '" + canonicalName + "'; expected e.g. "
                    + "llm.layers.0.input_layernorm.weight or vision.layers.0.layer_norm1.bias");
        }
        return v;
    }

    /** Projected image features (F, D) for pixels (C, S, S): F = P, or P + 1 with the "full" strategy. */
    public float[] imageFeatures(float[] pixels) {
        int Dv = cfg.visionConfig().hiddenSize();
        float[] h = vision.hiddenState(pixels, cfg.visionFeatureLayerIndex(), tap); // (P+1, Dv)
        int F = cfg.imageSeqLength();
        float[] selected = h; // (F, Dv)
        if (cfg.visionFeatureSelectStrategy() == LlavaConfig.FeatureSelectStrategy.DEFAULT) {
            selected = new float[F * Dv];
            System.arraycopy(h, Dv, selected, 0, F * Dv);
        }
        return projector.forward(selected, F, tap);
    }

    /**
     * Input embeddings (T, D): token embeddings with the image features spliced in at the image
     * tokens. pixels may be null only when ids hold no image token.
     */
    public float[] embedInputs(int[] ids, float[] pixels) {
        int D = cfg.textConfig().hiddenSize();
        int imageTokens = 0;
        for (int id : ids) {
            if (id == cfg.imageTokenIndex()) {
                imageTokens++;
            }
        }
        float[] features = null; // (F, D)
        int F = cfg.imageSeqLength();
        if (pixels != null) {
            if (imageTokens != F) {
                throw new IllegalArgumentException("input ids hold " + imageTokens + " image tokens (id "
                        + cfg.imageTokenIndex() + "), expected " + F + " to match the image features");
            }
            features = imageFeatures(pixels);
        } else if (imageTokens > 0) {
            throw new IllegalArgumentException("input ids hold " + imageTokens + " image tokens (id "
                    + cfg.imageTokenIndex() + ") but no pixel values were given");
        }
        float[] h = new float[ids.length * D]; // (T, D)
        int f = 0;
        for (int t = 0; t < ids.length; t++) {
            if (features != null && ids[t] == cfg.imageTokenIndex()) {
                System.arraycopy(features, (f++) * D, h, t * D, D);
            } else {
                language.embed(ids[t], h, t * D);
            }
        }
        return h;
    }

    /** Final-normed hidden states (T, D) of a full forward pass (HF's last hidden state). */
    public float[] hiddenStates(int[] ids, float[] pixels) {
        float[] h = embedInputs(ids, pixels);
        language.forward(h, ids.length, new KvCache(cfg.textConfig().numHiddenLayers(), ids.length, kvDim()),
                new LlamaScratch(cfg.textConfig()), tap);
        return h;
    }

    /** Logits (T, V) of a full forward pass over ids, with the image (or null) spliced in. */
    public float[] forward(int[] ids, float[] pixels) {
        float[] h = hiddenStates(ids, pixels); // (T, D)
        float[] logits = new float[ids.length * cfg.textConfig().vocabSize()]; // (T, V)
        language.logits(h, ids.length, logits, tap);
        return logits;
    }

    /** A generation session whose KV cache holds up to capacity positions (prompt plus new tokens). */
    public Session newSession(int capacity) {
        return new Session(capacity);
    }

    private int kvDim() {
        return cfg.textConfig().numKeyValueHeads() * cfg.textConfig().headDim();
    }

    @Override
    public void close() {
        weights.checkpoint().close();
    }

    /**
     * Incremental inference: a prefill of the prompt into the KV cache, then one decode step per
     * token. Returned logits arrays are reused by the next call; copy them to keep them.
     */
    public final class Session {
        private final KvCache cache;
        private final LlamaScratch scratch;
        private final float[] step; // (D)
        private final float[] logits; // (V)

        private Session(int capacity) {
            cache = new KvCache(cfg.textConfig().numHiddenLayers(), capacity, kvDim());
            scratch = new LlamaScratch(cfg.textConfig());
            step = new float[cfg.textConfig().hiddenSize()];
            logits = new float[cfg.textConfig().vocabSize()];
        }

        /** Positions already in the cache. */
        public int position() {
            return cache.length();
        }

        public int capacity() {
            return cache.capacity();
        }

        /** Empties the cache so the session can take a new prompt without reallocating. */
        public void reset() {
            cache.clear();
        }

        /** Appends the prompt (with its image, or null) and returns the logits (V) of its last token. */
        public float[] prefill(int[] ids, float[] pixels) {
            if (ids.length == 0) {
                throw new IllegalArgumentException("prefill needs at least one token");
            }
            float[] h = embedInputs(ids, pixels); // (T, D)
            int T = ids.length;
            language.forward(h, T, cache, scratch, tap);
            int D = cfg.textConfig().hiddenSize();
            System.arraycopy(h, (T - 1) * D, step, 0, D);
            language.logits(step, 1, logits, tap);
            return logits;
        }

        /** Appends one token and returns its next-token logits (V). */
        public float[] decode(int token) {
            language.embed(token, step, 0);
            language.forward(step, 1, cache, scratch, tap);
            language.logits(step, 1, logits, tap);
            return logits;
        }
    }
}
