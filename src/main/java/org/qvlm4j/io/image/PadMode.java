package org.qvlm4j.io.image;

/**
 * What happens to the aspect ratio before CLIP preprocessing, after LLaVA's
 * {@code image_aspect_ratio} option: NONE resizes and center-crops (the crop loses the long
 * side's ends); PAD_TO_SQUARE is LLaVA-1.5's "pad" (expand2square: the image is pasted centred
 * on a square of the mean colour, so nothing is cropped).
 */
public enum PadMode {
    NONE,
    PAD_TO_SQUARE
}
