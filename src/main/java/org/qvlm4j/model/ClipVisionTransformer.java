package org.qvlm4j.model;

import java.util.ArrayList;
import java.util.List;
import org.qvlm4j.io.config.ClipVisionConfig;

/**
 * The CLIP vision tower (HF CLIPVisionTransformer, Radford et al. 2021): patch embedding (a
 * stride-p convolution without bias, computed as a matmul over flattened patches), a class token,
 * learned position embeddings, {@code pre_layrnorm} and the encoder layers.
 *
 * <p>Hidden states are indexed as HF's {@code hidden_states} tuple: index 0 is the embeddings
 * after {@code pre_layrnorm}, index i (1 .. L) is the output of encoder layer {@code layers.<i-1>},
 * so index L is the last layer's output (before {@code post_layernorm}, which LLaVA never applies).
 * Only the layers up to the requested index run. Leaves out position-embedding interpolation:
 * the image must be {@code image_size} square.
 */
public final class ClipVisionTransformer {
    private final ClipVisionConfig cfg;
    private final float[] classEmbedding; // (D)
    private final Linear patchEmbedding; // (D, C*p*p)
    private final float[] positionEmbedding; // (P+1, D)
    private final float[] preLnW;
    private final float[] preLnB;
    private final List<ClipEncoderLayer> layers = new ArrayList<>();

    ClipVisionTransformer(LlavaWeights w, ClipVisionConfig cfg) {
        this.cfg = cfg;
        classEmbedding = w.vector("vision.embeddings.class_embedding");
        patchEmbedding = new Linear("vision.embeddings.patch_embedding",
                w.matrix("vision.embeddings.patch_embedding.weight"), null);
        positionEmbedding = w.vector("vision.embeddings.position_embedding.weight");
        preLnW = w.vector("vision.pre_layrnorm.weight");
        preLnB = w.vector("vision.pre_layrnorm.bias");
        for (int i = 0; i < cfg.numHiddenLayers(); i++) {
            layers.add(new ClipEncoderLayer(w, cfg, i));
        }
    }

    public ClipVisionConfig config() {
        return cfg;
    }

    public List<ClipEncoderLayer> layers() {
        return layers;
    }

    Linear patchEmbedding() {
        return patchEmbedding;
    }

    /**
     * HF's hidden_states[index] for one image: pixels are (C, S, S) normalized CHW floats with
     * S = image_size; returns (P+1, D) with the class token first.
     */
    public float[] hiddenState(float[] pixels, int index, ActivationTap tap) {
        int C = cfg.numChannels();
        int S = cfg.imageSize();
        if (pixels.length != C * S * S) {
            throw new IllegalArgumentException("pixel values: expected (" + C + ", " + S + ", " + S + ") = "
                    + C * S * S + " floats, got " + pixels.length);
        }
        if (index < 0 || index > layers.size()) {
            throw new IllegalArgumentException("vision hidden state index expected 0 .. " + layers.size() + ", got " + index);
        }
        int p = cfg.patchSize();
        int g = cfg.gridSize();
        int P = g * g;
        int D = cfg.hiddenSize();
        int patchLen = C * p * p;
        float[] patches = new float[P * patchLen]; // (P, C*p*p), conv weight order (c, ky, kx)
        for (int gy = 0; gy < g; gy++) {
            for (int gx = 0; gx < g; gx++) {
                int o = (gy * g + gx) * patchLen;
                for (int c = 0; c < C; c++) {
                    for (int ky = 0; ky < p; ky++) {
                        int src = c * S * S + (gy * p + ky) * S + gx * p;
                        System.arraycopy(pixels, src, patches, o + (c * p + ky) * p, p);
                    }
                }
            }
        }
        float[] h = new float[(P + 1) * D]; // (P+1, D)
        float[] patchEmbeds = new float[P * D]; // (P, D)
        patchEmbedding.forward(patches, P, patchEmbeds, tap);
        System.arraycopy(classEmbedding, 0, h, 0, D);
        System.arraycopy(patchEmbeds, 0, h, D, P * D);
        for (int i = 0; i < (P + 1) * D; i++) {
            h[i] += positionEmbedding[i];
        }
        Ops.layerNorm(h, P + 1, D, preLnW, preLnB, cfg.layerNormEps());
        for (int i = 0; i < index; i++) {
            layers.get(i).forward(h, P + 1, tap);
        }
        return h;
    }
}
