package org.qvlm4j.model;

import java.util.Arrays;

/**
 * Autoregressive generation as HF's {@code generate} for batch 1: prefill the prompt, then pick a
 * token with the {@link Sampler}, report it, and decode it, until an end-of-sequence token (which
 * is reported and included in the result) or maxNewTokens.
 */
public final class Generator {
    /** Receives each new token as soon as it is chosen. */
    @FunctionalInterface
    public interface TokenListener {
        void onToken(int token, int index);
    }

    private final LlavaModel model;

    public Generator(LlavaModel model) {
        this.model = model;
    }

    /** Generates up to cfg.maxNewTokens tokens after the prompt ids (with pixels, or null). */
    public int[] generate(int[] ids, float[] pixels, GenerationConfig cfg, TokenListener listener) {
        int[] out = new int[cfg.maxNewTokens()];
        if (cfg.maxNewTokens() == 0) {
            return out;
        }
        int V = model.config().textConfig().vocabSize();
        Sampler sampler = new Sampler(cfg);
        LlavaModel.Session session = model.newSession(ids.length + cfg.maxNewTokens());
        float[] logits = session.prefill(ids, pixels);
        int n = 0;
        while (true) {
            int token = sampler.sample(logits, V);
            out[n++] = token;
            if (listener != null) {
                listener.onToken(token, n - 1);
            }
            if (n == cfg.maxNewTokens() || model.config().textConfig().isEos(token)) {
                break;
            }
            logits = session.decode(token);
        }
        return Arrays.copyOf(out, n);
    }
}
