package org.qvlm4j.train;

import org.qvlm4j.io.config.Activation;
import org.qvlm4j.io.config.ClipVisionConfig;
import org.qvlm4j.io.config.LlamaTextConfig;
import org.qvlm4j.io.config.LlavaConfig;

/**
 * The few numbers that size a LLaVA trained from scratch, and the full {@link LlavaConfig} they
 * imply: CLIP ViT (quick_gelu, MLP 4x, LayerNorm eps 1e-5) at {@code imageSize} with
 * {@code patchSize} patches; a GELU projector with biases; LLaMA (SiLU gated MLP of about 8/3 x
 * rounded up to a multiple of {@value #MLP_MULTIPLE}, RMSNorm eps 1e-5, RoPE theta 10000) with
 * {@code textKvHeads} key/value heads. Image features come from the last vision layer
 * ({@code vision_feature_layer = -1}: a model trained from scratch has no reason to drop one) with
 * the "default" strategy (CLS dropped).
 */
public record ModelShape(int imageSize, int patchSize, int visionHidden, int visionLayers, int visionHeads,
                         int textHidden, int textLayers, int textHeads, int textKvHeads, int maxPositions) {
    /** The text MLP width is rounded up to a multiple of this. */
    public static final int MLP_MULTIPLE = 16;

    public ModelShape {
        if (imageSize <= 0 || patchSize <= 0 || imageSize % patchSize != 0) {
            throw new IllegalArgumentException("image size " + imageSize + " must be a positive multiple of patch size " + patchSize);
        }
        if (visionHeads <= 0 || visionHidden % visionHeads != 0 || textHeads <= 0 || textHidden % textHeads != 0
                || textKvHeads <= 0 || textHeads % textKvHeads != 0 || (textHidden / textHeads) % 2 != 0) {
            throw new IllegalArgumentException("heads must divide hidden sizes (vision " + visionHidden + "/" + visionHeads
                    + ", text " + textHidden + "/" + textHeads + "), kv heads must divide heads (" + textKvHeads
                    + ") and the text head size must be even");
        }
        if (visionLayers < 1 || textLayers < 1 || maxPositions < 1) {
            throw new IllegalArgumentException("need at least one vision and one text layer and positive max positions, got "
                    + visionLayers + ", " + textLayers + ", " + maxPositions);
        }
    }

    /** Text MLP width: 8/3 of the hidden size rounded up to a multiple of {@value #MLP_MULTIPLE}. */
    public int textIntermediate() {
        int raw = (int) Math.ceil(textHidden * 8.0 / 3.0);
        return (raw + MLP_MULTIPLE - 1) / MLP_MULTIPLE * MLP_MULTIPLE;
    }

    /** The config for a vocabulary of {@code vocab} ids with the given special ids. */
    public LlavaConfig toConfig(int vocab, int imageTokenId, int bosId, int eosId) {
        ClipVisionConfig v = new ClipVisionConfig(visionHidden, 4 * visionHidden, visionLayers, visionHeads, 3, imageSize,
                patchSize, Activation.QUICK_GELU, 1e-5, visionHidden);
        LlamaTextConfig t = new LlamaTextConfig(vocab, textHidden, textIntermediate(), textLayers, textHeads, textKvHeads,
                textHidden / textHeads, Activation.SILU, maxPositions, 1e-5, 10000.0, false, false, bosId, new int[] {eosId});
        return new LlavaConfig(t, v, imageTokenId, Activation.GELU_ERF, LlavaConfig.FeatureSelectStrategy.DEFAULT, -1,
                true, false, "float32");
    }
}
