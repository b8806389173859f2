package org.qvlm4j.io.config;

/**
 * The vision-tower half of a LLaVA config: the fields of transformers' {@code CLIPVisionConfig}
 * the forward pass reads. Defaults are CLIPVisionConfig's (ViT-B/32 at 224), except when a LLaVA
 * config has no {@code vision_config} at all, where LlavaConfig substitutes CLIP ViT-L/14-336.
 */
public record ClipVisionConfig(
        int hiddenSize,
        int intermediateSize,
        int numHiddenLayers,
        int numAttentionHeads,
        int numChannels,
        int imageSize,
        int patchSize,
        Activation hiddenAct,
        double layerNormEps,
        int projectionDim) {

    /** Patches per side of the (square) image. */
    public int gridSize() {
        return imageSize / patchSize;
    }

    /** Number of patch tokens P (without the class token). */
    public int numPatches() {
        return gridSize() * gridSize();
    }

    public int headDim() {
        return hiddenSize / numAttentionHeads;
    }
}
