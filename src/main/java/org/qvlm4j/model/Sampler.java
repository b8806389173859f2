package org.qvlm4j.model;

import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * Picks the next token from logits: argmax when greedy; otherwise HF's temperature and top-p
 * warpers followed by multinomial sampling: probabilities softmax(logits / temperature), tokens
 * sorted by probability, the smallest prefix whose cumulative mass reaches top_p kept (at least
 * one token), renormalized, then one draw from a seeded stream. Buffers are reused across calls.
 */
public final class Sampler {
    private final GenerationConfig cfg;
    private final SplittableRandom random;
    private double[] probs = new double[0];
    private long[] order = new long[0];

    public Sampler(GenerationConfig cfg) {
        this.cfg = cfg;
        this.random = new SplittableRandom(cfg.seed());
    }

    /** The index of the largest logit (the first one on ties, as torch.argmax). */
    public static int argmax(float[] logits, int n) {
        int best = 0;
        for (int i = 1; i < n; i++) {
            if (logits[i] > logits[best]) {
                best = i;
            }
        }
        return best;
    }

    /** The next token for logits[0 .. n). */
    public int sample(float[] logits, int n) {
        if (cfg.isGreedy()) {
            return argmax(logits, n);
        }
        if (probs.length < n) {
            probs = new double[n];
            order = new long[n];
        }
        double max = Double.NEGATIVE_INFINITY;
        for (int i = 0; i < n; i++) {
            max = Math.max(max, logits[i] / cfg.temperature());
        }
        double sum = 0;
        for (int i = 0; i < n; i++) {
            probs[i] = Math.exp(logits[i] / cfg.temperature() - max);
            sum += probs[i];
        }
        for (int i = 0; i < n; i++) {
            probs[i] /= sum;
            // Non-negative float bits order like the floats, so one long sort orders by probability.
            order[i] = ((long) Float.floatToRawIntBits((float) probs[i]) << 32) | i;
        }
        Arrays.sort(order, 0, n);
        double kept = 0;
        int keep = 0;
        for (int j = n - 1; j >= 0 && (keep == 0 || kept < cfg.topP()); j--) {
            kept += probs[(int) order[j]];
            keep++;
        }
        double u = random.nextDouble() * kept;
        double acc = 0;
        for (int j = n - 1; j >= n - keep; j--) {
            int id = (int) order[j];
            acc += probs[id];
            if (u < acc) {
                return id;
            }
        }
        return (int) order[n - keep];
    }
}
