package org.qvlm4j.io.image;

/**
 * A preprocessed image as the vision tower takes it: float32 values in (C, H, W) order, the
 * {@code pixel_values[0]} of HF's image processors. The array is held without copying.
 */
public record PixelValues(int channels, int height, int width, float[] data) {

    public PixelValues {
        if (channels <= 0 || height <= 0 || width <= 0) {
            throw new IllegalArgumentException("pixel values shape must be positive, got (" + channels + ", "
                    + height + ", " + width + ")");
        }
        if (data == null || data.length != (long) channels * height * width) {
            throw new IllegalArgumentException("pixel values of shape (" + channels + ", " + height + ", " + width
                    + ") need " + (long) channels * height * width + " floats, got " + (data == null ? "null" : data.length));
        }
    }

    /** Value of channel c at row y, column x. */
    public float get(int c, int y, int x) {
        return data[(c * height + y) * width + x];
    }

    @Override
    public String toString() {
        return "PixelValues(" + channels + ", " + height + ", " + width + ")";
    }
}
