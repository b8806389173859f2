package org.qvlm4j.model;

import org.qvlm4j.io.config.LlamaTextConfig;

/**
 * One LLaMA decoder layer (HF LlamaDecoderLayer, Touvron et al. 2023):
 * h += o_proj(attn(rope(q_proj(n)), rope(k_proj(n)), v_proj(n))) with n = input_layernorm(h),
 * then h += down_proj(act(gate_proj(n)) * up_proj(n)) with n = post_attention_layernorm(h).
 * Attention is causal with grouped-query heads; keys and values go to the {@link KvCache}.
 */
public final class LlamaDecoderLayer {
    private final LlamaTextConfig cfg;
    private final int index;
    private final String inSite;
    private final String outSite;
    private final float[] inputNorm; // (D)
    private final float[] postAttentionNorm; // (D)
    final Linear qProj;
    final Linear kProj;
    final Linear vProj;
    final Linear oProj;
    final Linear gateProj;
    final Linear upProj;
    final Linear downProj;

    LlamaDecoderLayer(LlavaWeights w, LlamaTextConfig cfg, int index) {
        this.cfg = cfg;
        this.index = index;
        String p = "llm.layers." + index;
        inSite = p + ".in";
        outSite = p + ".out";
        inputNorm = w.vector(p + ".input_layernorm.weight");
        postAttentionNorm = w.vector(p + ".post_attention_layernorm.weight");
        qProj = w.linear(p + ".self_attn.q_proj");
        kProj = w.linear(p + ".self_attn.k_proj");
        vProj = w.linear(p + ".self_attn.v_proj");
        oProj = w.linear(p + ".self_attn.o_proj");
        gateProj = w.linear(p + ".mlp.gate_proj");
        upProj = w.linear(p + ".mlp.up_proj");
        downProj = w.linear(p + ".mlp.down_proj");
    }

    /** The live norm vector for a local name ({@code input_layernorm.weight}, ...), or null. */
    float[] normVector(String local) {
        return switch (local) {
            case "input_layernorm.weight" -> inputNorm;
            case "post_attention_layernorm.weight" -> postAttentionNorm;
            default -> null;
        };
    }

    /**
     * Updates h (T, D) in place for tokens at positions pos0 .. pos0+T-1; s.cos/s.sin hold their
     * rotary angles. Appends the T keys and values to the cache rows pos0 .. pos0+T-1.
     */
    void forward(float[] h, int T, int pos0, KvCache cache, LlamaScratch s, ActivationTap tap) {
        int D = cfg.hiddenSize();
        int H = cfg.numAttentionHeads();
        int KV = cfg.numKeyValueHeads();
        int Hd = cfg.headDim();
        int half = Hd / 2;
        if (tap != null) {
            tap.onActivation(inSite, h, T, D);
        }
        Ops.rmsNorm(h, s.x, T, D, inputNorm, cfg.rmsNormEps());
        qProj.forward(s.x, T, s.q, tap);
        kProj.forward(s.x, T, s.k, tap);
        vProj.forward(s.x, T, s.v, tap);
        for (int t = 0; t < T; t++) {
            for (int hh = 0; hh < H; hh++) {
                Ops.ropeRotate(s.q, (t * H + hh) * Hd, Hd, s.cos, s.sin, t * half);
            }
            for (int hh = 0; hh < KV; hh++) {
                Ops.ropeRotate(s.k, (t * KV + hh) * Hd, Hd, s.cos, s.sin, t * half);
            }
        }
        int kvd = KV * Hd;
        float[] keys = cache.keys[index]; // (capacity, KV*Hd)
        float[] values = cache.values[index];
        System.arraycopy(s.k, 0, keys, pos0 * kvd, T * kvd);
        System.arraycopy(s.v, 0, values, pos0 * kvd, T * kvd);
        Attention.forward(s.q, keys, values, s.att, s.scores, T, pos0 + T, pos0, H, KV, Hd, true);
        oProj.forward(s.att, T, s.o, tap);
        ClipEncoderLayer.addInPlace(h, s.o, T * D);

        Ops.rmsNorm(h, s.x, T, D, postAttentionNorm, cfg.rmsNormEps());
        int I = cfg.intermediateSize();
        gateProj.forward(s.x, T, s.gate, tap);
        upProj.forward(s.x, T, s.up, tap);
        Ops.activate(cfg.hiddenAct(), s.gate, T * I);
        for (int i = 0; i < T * I; i++) {
            s.gate[i] *= s.up[i];
        }
        downProj.forward(s.gate, T, s.o, tap);
        ClipEncoderLayer.addInPlace(h, s.o, T * D);
        if (tap != null) {
            tap.onActivation(outSite, h, T, D);
        }
    }
}
