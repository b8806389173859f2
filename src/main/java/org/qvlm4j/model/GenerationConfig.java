package org.qvlm4j.model;

/**
 * Decoding settings of {@link Generator}, as HF's GenerationConfig: greedy when temperature is 0,
 * otherwise sampling from softmax(logits / temperature) restricted to the top-p nucleus.
 *
 * @param maxNewTokens upper bound on generated tokens (HF max_new_tokens)
 * @param temperature 0 for greedy decoding, else the softmax temperature
 * @param topP nucleus mass in (0, 1]; 1 keeps every token
 * @param seed seed of the sampling random stream
 */
public record GenerationConfig(int maxNewTokens, double temperature, double topP, long seed) {
    public GenerationConfig {
        if (maxNewTokens < 0) {
            throw new IllegalArgumentException("maxNewTokens must be >= 0, got " + maxNewTokens);
        }
        if (!(temperature >= 0) || Double.isInfinite(temperature)) {
            throw new IllegalArgumentException("temperature must be a finite number >= 0, got " + temperature);
        }
        if (!(topP > 0 && topP <= 1)) {
            throw new IllegalArgumentException("topP must be in (0, 1], got " + topP);
        }
    }

    /** Greedy decoding of up to maxNewTokens tokens. */
    public static GenerationConfig greedy(int maxNewTokens) {
        return new GenerationConfig(maxNewTokens, 0, 1, 0);
    }

    public boolean isGreedy() {
        return temperature == 0;
    }
}
