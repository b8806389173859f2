package org.qvlm4j.model;

import org.qvlm4j.io.config.LlamaTextConfig;

/**
 * Reusable activation buffers of one LLaMA forward, grown to the largest T seen so that decode
 * steps (T = 1) allocate nothing.
 */
final class LlamaScratch {
    private final LlamaTextConfig cfg;
    private int tokens;
    private int keys;
    float[] x = new float[0]; // (T, D) normed input of a sublayer
    float[] q = new float[0]; // (T, H*Hd)
    float[] k = new float[0]; // (T, KV*Hd)
    float[] v = new float[0]; // (T, KV*Hd)
    float[] att = new float[0]; // (T, H*Hd)
    float[] o = new float[0]; // (T, D)
    float[] gate = new float[0]; // (T, I)
    float[] up = new float[0]; // (T, I)
    float[] cos = new float[0]; // (T, Hd/2)
    float[] sin = new float[0]; // (T, Hd/2)
    float[] scores = new float[0]; // (H, S)

    LlamaScratch(LlamaTextConfig cfg) {
        this.cfg = cfg;
    }

    void ensure(int T, int S) {
        int D = cfg.hiddenSize();
        int qd = cfg.numAttentionHeads() * cfg.headDim();
        int kvd = cfg.numKeyValueHeads() * cfg.headDim();
        if (T > tokens) {
            tokens = T;
            x = new float[T * D];
            q = new float[T * qd];
            k = new float[T * kvd];
            v = new float[T * kvd];
            att = new float[T * qd];
            o = new float[T * D];
            gate = new float[T * cfg.intermediateSize()];
            up = new float[T * cfg.intermediateSize()];
            cos = new float[T * cfg.headDim() / 2];
            sin = new float[T * cfg.headDim() / 2];
        }
        if (S > keys) {
            keys = S;
            scores = new float[cfg.numAttentionHeads() * S];
        }
    }
}
