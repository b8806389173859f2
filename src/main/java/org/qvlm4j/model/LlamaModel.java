package org.qvlm4j.model;

import java.util.ArrayList;
import java.util.List;
import org.qvlm4j.io.config.LlamaTextConfig;
import org.qvlm4j.kernels.WeightMatrix;

/**
 * The LLaMA language model with its head (HF LlamaModel + lm_head): token embeddings, decoder
 * layers, the final RMSNorm and the vocabulary projection. The embedding table stays in the
 * checkpoint; a lookup decodes one row. With tied embeddings lm_head reads the same table.
 * Rope scaling and sliding windows are left out.
 */
public final class LlamaModel {
    private final LlamaTextConfig cfg;
    private final WeightMatrix embedTokens; // (V, D)
    private final List<LlamaDecoderLayer> layers = new ArrayList<>();
    private final float[] norm; // (D)
    final Linear lmHead; // (V, D)
    private final float[] invFreq; // (Hd/2)

    LlamaModel(LlavaWeights w, LlamaTextConfig cfg, boolean tied) {
        this.cfg = cfg;
        embedTokens = w.matrix("llm.embed_tokens.weight");
        for (int i = 0; i < cfg.numHiddenLayers(); i++) {
            layers.add(new LlamaDecoderLayer(w, cfg, i));
        }
        norm = w.vector("llm.norm.weight");
        lmHead = tied ? new Linear("lm_head", embedTokens, null) : w.linear("lm_head");
        invFreq = Ops.ropeInverseFrequencies(cfg.headDim(), cfg.ropeTheta());
    }

    public LlamaTextConfig config() {
        return cfg;
    }

    public List<LlamaDecoderLayer> layers() {
        return layers;
    }

    /** Writes the embedding of token id into dst[off .. off + D). */
    void embed(int id, float[] dst, int off) {
        if (id < 0 || id >= cfg.vocabSize()) {
            throw new IllegalArgumentException("token id " + id + " is outside the vocabulary 0 .. " + (cfg.vocabSize() - 1));
        }
        embedTokens.row(id, dst, off);
    }

    /**
     * Runs the decoder on input embeddings h (T, D) of positions cache.length() .. +T-1 and leaves
     * the final-normed hidden states in h.
     */
    void forward(float[] h, int T, KvCache cache, LlamaScratch s, ActivationTap tap) {
        cache.checkRoom(T);
        int pos0 = cache.length();
        prepare(s, T, pos0);
        for (LlamaDecoderLayer layer : layers) {
            layer.forward(h, T, pos0, cache, s, tap);
        }
        cache.advance(T);
        Ops.rmsNorm(h, h, T, cfg.hiddenSize(), norm, cfg.rmsNormEps());
    }

    private void prepare(LlamaScratch s, int T, int pos0) {
        s.ensure(T, pos0 + T);
        int half = cfg.headDim() / 2;
        for (int t = 0; t < T; t++) {
            Ops.ropeAngles(invFreq, pos0 + t, s.cos, s.sin, t * half);
        }
    }

    /** A {@link LayerRunner} for prompts of up to capacity tokens. */
    public LayerRunner layerRunner(int capacity) {
        return new LayerRunner(capacity);
    }

    /**
     * Re-runs a range of decoder layers on stored hidden states, as a prefill of positions 0 .. T-1:
     * what a block-wise quantization search needs to evaluate a few layers many times without the
     * rest of the model. Buffers are reused between calls; one runner per thread.
     */
    public final class LayerRunner {
        private final LlamaScratch scratch = new LlamaScratch(cfg);
        private final KvCache cache;

        private LayerRunner(int capacity) {
            cache = KvCache.sharedAcrossLayers(cfg.numHiddenLayers(), capacity,
                    cfg.numKeyValueHeads() * cfg.headDim());
        }

        /**
         * Updates h (T, D), the input of layer from, in place to the output of layer to - 1 (no final
         * norm), with the tap seeing the layers' sites as in a full forward.
         */
        public void run(float[] h, int T, int from, int to, ActivationTap tap) {
            if (from < 0 || to > layers.size() || from >= to) {
                throw new IllegalArgumentException("decoder layers [" + from + ", " + to + ") are not a non-empty range of 0 .. "
                        + layers.size());
            }
            if (T < 1 || T > cache.capacity() || h.length < T * cfg.hiddenSize()) {
                throw new IllegalArgumentException("hidden states of " + T + " tokens (" + h.length + " floats) do not fit "
                        + "a runner for up to " + cache.capacity() + " tokens of width " + cfg.hiddenSize());
            }
            prepare(scratch, T, 0);
            for (int i = from; i < to; i++) {
                layers.get(i).forward(h, T, 0, cache, scratch, tap);
            }
        }
    }

    /**
     * Writes into out (T, D) the hidden states h (T, D) as the model next reads the output of decoder
     * layer k: through layer k + 1's input_layernorm, or through the final norm after the last layer.
     */
    public void normAfterLayer(int k, float[] h, float[] out, int T) {
        if (k < 0 || k >= layers.size()) {
            throw new IllegalArgumentException("decoder layer " + k + " is outside 0 .. " + (layers.size() - 1));
        }
        float[] w = k + 1 < layers.size() ? layers.get(k + 1).normVector("input_layernorm.weight") : norm;
        Ops.rmsNorm(h, out, T, cfg.hiddenSize(), w, cfg.rmsNormEps());
    }

    /** logits (T, V) = lm_head(hidden (T, D)). */
    void logits(float[] hidden, int T, float[] out, ActivationTap tap) {
        lmHead.forward(hidden, T, out, tap);
    }
}
