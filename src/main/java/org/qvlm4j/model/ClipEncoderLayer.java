package org.qvlm4j.model;

import org.qvlm4j.io.config.ClipVisionConfig;

/**
 * One pre-norm CLIP encoder layer (HF CLIPEncoderLayer): h += out_proj(attn(layer_norm1(h))),
 * then h += fc2(act(fc1(layer_norm2(h)))). Attention is bidirectional with biased q, k, v, out
 * projections and scale 1/sqrt(Hd). Dropout is left out (inference only).
 */
public final class ClipEncoderLayer {
    private final ClipVisionConfig cfg;
    private final String inSite;
    private final String outSite;
    private final float[] ln1w;
    private final float[] ln1b;
    private final float[] ln2w;
    private final float[] ln2b;
    final Linear qProj;
    final Linear kProj;
    final Linear vProj;
    final Linear outProj;
    final Linear fc1;
    final Linear fc2;

    ClipEncoderLayer(LlavaWeights w, ClipVisionConfig cfg, int index) {
        this.cfg = cfg;
        String p = "vision.layers." + index;
        inSite = p + ".in";
        outSite = p + ".out";
        ln1w = w.vector(p + ".layer_norm1.weight");
        ln1b = w.vector(p + ".layer_norm1.bias");
        ln2w = w.vector(p + ".layer_norm2.weight");
        ln2b = w.vector(p + ".layer_norm2.bias");
        qProj = w.linear(p + ".self_attn.q_proj");
        kProj = w.linear(p + ".self_attn.k_proj");
        vProj = w.linear(p + ".self_attn.v_proj");
        outProj = w.linear(p + ".self_attn.out_proj");
        fc1 = w.linear(p + ".mlp.fc1");
        fc2 = w.linear(p + ".mlp.fc2");
    }

    /** The live norm vector for a local name ({@code layer_norm1.weight}, ...), or null. */
    float[] normVector(String local) {
        return switch (local) {
            case "layer_norm1.weight" -> ln1w;
            case "layer_norm1.bias" -> ln1b;
            case "layer_norm2.weight" -> ln2w;
            case "layer_norm2.bias" -> ln2b;
            default -> null;
        };
    }

    /** Updates the residual stream h (T, D) in place. */
    void forward(float[] h, int T, ActivationTap tap) {
        int D = cfg.hiddenSize();
        int H = cfg.numAttentionHeads();
        if (tap != null) {
            tap.onActivation(inSite, h, T, D);
        }
        float[] x = h.clone(); // (T, D)
        Ops.layerNorm(x, T, D, ln1w, ln1b, cfg.layerNormEps());
        float[] q = new float[T * D]; // (T, H*Hd)
        float[] k = new float[T * D];
        float[] v = new float[T * D];
        qProj.forward(x, T, q, tap);
        kProj.forward(x, T, k, tap);
        vProj.forward(x, T, v, tap);
        float[] att = new float[T * D]; // (T, H*Hd)
        Attention.forward(q, k, v, att, new float[H * T], T, T, 0, H, H, cfg.headDim(), false);
        outProj.forward(att, T, x, tap);
        addInPlace(h, x, T * D);

        System.arraycopy(h, 0, x, 0, T * D);
        Ops.layerNorm(x, T, D, ln2w, ln2b, cfg.layerNormEps());
        float[] mid = new float[T * cfg.intermediateSize()]; // (T, I)
        fc1.forward(x, T, mid, tap);
        Ops.activate(cfg.hiddenAct(), mid, T * cfg.intermediateSize());
        fc2.forward(mid, T, x, tap);
        addInPlace(h, x, T * D);
        if (tap != null) {
            tap.onActivation(outSite, h, T, D);
        }
    }

    static void addInPlace(float[] h, float[] x, int n) {
        for (int i = 0; i < n; i++) {
            h[i] += x[i];
        }
    }
}
