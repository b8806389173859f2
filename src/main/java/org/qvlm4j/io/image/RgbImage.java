package org.qvlm4j.io.image;

import java.util.Arrays;

/**
 * An 8-bit RGB raster, row-major with interleaved channels (H, W, 3): the pixel data of a PIL
 * image in mode "RGB". Alpha, palettes and colour profiles are gone by the time an image is an
 * RgbImage; see {@link ImageDecoder} for how each source layout is reduced to it.
 *
 * <p>The record holds the array without copying; callers must not mutate it after construction.
 * Equality is by reference of the array, as for any record over an array; use
 * {@link #samePixels(RgbImage)} to compare contents.
 */
public record RgbImage(int width, int height, byte[] rgb) {

    public static final int CHANNELS = 3;

    public RgbImage {
        if (width <= 0 || height <= 0) {
            throw new IllegalArgumentException("image size must be positive, got " + width + "x" + height);
        }
        long expected = (long) width * height * CHANNELS;
        if (rgb == null || rgb.length != expected) {
            throw new IllegalArgumentException("a " + width + "x" + height + " RGB image needs " + expected
                    + " bytes, got " + (rgb == null ? "null" : rgb.length));
        }
    }

    /** An image of one colour, like PIL's {@code Image.new("RGB", (w, h), (r, g, b))}. */
    public static RgbImage filled(int width, int height, int r, int g, int b) {
        checkLevel(r);
        checkLevel(g);
        checkLevel(b);
        byte[] px = new byte[Math.multiplyExact(Math.multiplyExact(width, height), CHANNELS)];
        for (int i = 0; i < px.length; i += CHANNELS) {
            px[i] = (byte) r;
            px[i + 1] = (byte) g;
            px[i + 2] = (byte) b;
        }
        return new RgbImage(width, height, px);
    }

    /** Channel c (0 = R, 1 = G, 2 = B) of pixel (x, y) as 0..255. */
    public int get(int x, int y, int c) {
        return rgb[(y * width + x) * CHANNELS + c] & 0xFF;
    }

    public boolean samePixels(RgbImage other) {
        return width == other.width && height == other.height && Arrays.equals(rgb, other.rgb);
    }

    private static void checkLevel(int v) {
        if (v < 0 || v > 255) {
            throw new IllegalArgumentException("colour level must be in [0, 255], got " + v);
        }
    }

    @Override
    public String toString() {
        return "RgbImage[" + width + "x" + height + "]";
    }
}
