package org.qvlm4j.io.image;

import java.nio.file.Path;

/**
 * HF's {@code CLIPImageProcessor} with the PIL backend (the "slow" processor), optionally preceded
 * by the original LLaVA pad-to-square step: what llava-1.5 feeds its CLIP ViT-L/14-336.
 *
 * <p>Steps, each as HF/LLaVA compute it:
 * <ol>
 *   <li>{@link PadMode#PAD_TO_SQUARE}: LLaVA's expand2square, the image pasted on a square of
 *       colour {@code int(mean * 255)} per channel ((122, 116, 104) for the CLIP mean) at offset
 *       {@code (w - h) // 2} along the short side.</li>
 *   <li>resize: with shortest_edge s, the short side becomes s and the long side
 *       {@code int(s * long / short)} (transformers' get_resize_output_image_size truncates);
 *       with height/width the image is resized to exactly that. Pillow-exact
 *       ({@link PillowResample}).</li>
 *   <li>center crop: top = (h - crop_h) // 2, left = (w - crop_w) // 2; when the crop is larger
 *       than the image HF zero-pads first (the image lands at ceil((crop - size) / 2)), and padded
 *       pixels are level 0 before rescaling.</li>
 *   <li>rescale: {@code float32(float64(v) * rescale_factor)}; normalize:
 *       {@code (x - float32(mean)) / float32(std)} in float32, as numpy does for a float32 image.</li>
 * </ol>
 * Left out: batching, the torchvision ("fast") backend, return of tensors other than one image.
 */
public final class ClipImageProcessor {

    private final ClipPreprocessConfig config;
    private final PadMode padMode;

    public ClipImageProcessor(ClipPreprocessConfig config, PadMode padMode) {
        if (config == null || padMode == null) {
            throw new IllegalArgumentException("config and pad mode must be given");
        }
        this.config = config;
        this.padMode = padMode;
    }

    /** llava-1.5's preprocessing with the given pad mode. */
    public static ClipImageProcessor llava15(PadMode padMode) {
        return new ClipImageProcessor(ClipPreprocessConfig.llava15(), padMode);
    }

    /** The processor of a model directory (its preprocessor_config.json, or the llava-1.5 settings). */
    public static ClipImageProcessor forModelDir(Path modelDir, PadMode padMode) {
        return new ClipImageProcessor(ClipPreprocessConfig.forModelDir(modelDir), padMode);
    }

    public ClipPreprocessConfig config() {
        return config;
    }

    public PadMode padMode() {
        return padMode;
    }

    /** Decodes the file ({@link ImageDecoder}) and preprocesses it. */
    public PixelValues preprocess(Path imageFile) {
        return preprocess(ImageDecoder.read(imageFile));
    }

    /** The (3, H, W) pixel values of one RGB image. */
    public PixelValues preprocess(RgbImage image) {
        RgbImage img = image;
        if (padMode == PadMode.PAD_TO_SQUARE) {
            img = expandToSquare(img, backgroundColour(config.imageMean()));
        }
        if (config.doResize()) {
            int[] hw = resizeOutputSize(img.height(), img.width());
            img = PillowResample.resize(img, hw[1], hw[0], config.resample());
        }
        if (config.doCenterCrop()) {
            img = centerCrop(img, config.cropHeight(), config.cropWidth());
        }
        return toPixelValues(img);
    }

    /** LLaVA's background colour for padding: {@code tuple(int(x * 255) for x in image_mean)}. */
    public static int[] backgroundColour(double[] mean) {
        int[] c = new int[3];
        for (int i = 0; i < 3; i++) {
            c[i] = (int) (mean[i] * 255);
            if (c[i] < 0 || c[i] > 255) {
                throw new IllegalArgumentException("image_mean " + mean[i] + " gives background level " + c[i]
                        + ", expected a level in [0, 255]");
            }
        }
        return c;
    }

    /** LLaVA's expand2square: the image centred on a square of the given colour; square images pass through. */
    public static RgbImage expandToSquare(RgbImage img, int[] background) {
        int w = img.width();
        int h = img.height();
        if (w == h) {
            return img;
        }
        int side = Math.max(w, h);
        RgbImage square = RgbImage.filled(side, side, background[0], background[1], background[2]);
        int left = w > h ? 0 : (h - w) / 2;
        int top = w > h ? (w - h) / 2 : 0;
        byte[] dst = square.rgb();
        byte[] src = img.rgb();
        for (int y = 0; y < h; y++) {
            System.arraycopy(src, y * w * 3, dst, ((y + top) * side + left) * 3, w * 3);
        }
        return square;
    }

    /** Output {height, width} of the resize step for an input of the given size. */
    public int[] resizeOutputSize(int height, int width) {
        if (config.resizeShortestEdge() == 0) {
            return new int[] {config.resizeHeight(), config.resizeWidth()};
        }
        int s = config.resizeShortestEdge();
        int shortSide = Math.min(height, width);
        int longSide = Math.max(height, width);
        // Python: int(s * long / short), the product exact in integers, then one rounded division.
        int newLong = (int) ((double) ((long) s * longSide) / shortSide);
        return width <= height ? new int[] {newLong, s} : new int[] {s, newLong};
    }

    /** HF's center_crop on an RGB image, zero-padding when the crop is larger than the image. */
    public static RgbImage centerCrop(RgbImage img, int cropHeight, int cropWidth) {
        int h = img.height();
        int w = img.width();
        int top = cropOrigin(h, cropHeight);
        int left = cropOrigin(w, cropWidth);
        byte[] src = img.rgb();
        byte[] dst = new byte[Math.multiplyExact(Math.multiplyExact(cropHeight, cropWidth), 3)]; // (ch, cw, 3)
        for (int y = 0; y < cropHeight; y++) {
            int sy = y + top;
            if (sy < 0 || sy >= h) {
                continue;
            }
            int x0 = Math.max(0, -left);
            int x1 = Math.min(cropWidth, w - left);
            if (x1 > x0) {
                System.arraycopy(src, (sy * w + x0 + left) * 3, dst, (y * cropWidth + x0) * 3, (x1 - x0) * 3);
            }
        }
        return new RgbImage(cropWidth, cropHeight, dst);
    }

    /** Source index of crop row 0: (size - crop) // 2 when it fits, else minus the pad ceil((crop - size) / 2). */
    private static int cropOrigin(int size, int crop) {
        if (size >= crop) {
            return (size - crop) / 2;
        }
        return -((crop - size + 1) / 2);
    }

    private PixelValues toPixelValues(RgbImage img) {
        int h = img.height();
        int w = img.width();
        int plane = h * w;
        float[] out = new float[3 * plane]; // (3, H, W)
        float[] mean = new float[3];
        float[] std = new float[3];
        double[] m = config.imageMean();
        double[] s = config.imageStd();
        for (int c = 0; c < 3; c++) {
            mean[c] = (float) m[c];
            std[c] = (float) s[c];
        }
        double factor = config.rescaleFactor();
        byte[] px = img.rgb();
        for (int i = 0; i < plane; i++) {
            for (int c = 0; c < 3; c++) {
                int v = px[i * 3 + c] & 0xFF;
                float x = config.doRescale() ? (float) (v * factor) : (float) v;
                if (config.doNormalize()) {
                    x = (x - mean[c]) / std[c];
                }
                out[c * plane + i] = x;
            }
        }
        return new PixelValues(3, h, w, out);
    }
}
