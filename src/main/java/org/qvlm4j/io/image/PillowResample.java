package org.qvlm4j.io.image;

/**
 * Pillow's {@code Image.resize} for 8-bit RGB images, bit-exact: a port of the separable
 * convolution in libImaging/Resample.c ({@code ImagingResampleInner} with the 8-bpc passes).
 *
 * <p>What Pillow does, and so what this does:
 * <ul>
 *   <li>Per output pixel, the filter is centred at {@code (i + 0.5) * scale} in input coordinates,
 *       its support is {@code filter.support * max(scale, 1)} (the kernel is stretched when
 *       downscaling, which is the antialiasing), the taps run over
 *       {@code [(int)(center - support + 0.5), (int)(center + support + 0.5))} clipped to the image,
 *       and the weights are divided by their sum.</li>
 *   <li>The normalised double weights become fixed point with {@link #PRECISION_BITS} fraction
 *       bits, rounded half away from zero; each accumulator starts at one half
 *       ({@code 1 << (PRECISION_BITS - 1)}) and the result is {@code acc >> PRECISION_BITS} clamped
 *       to [0, 255] (Pillow's clip8).</li>
 *   <li>The horizontal pass runs first, only over the input rows the vertical pass will read, and
 *       its output is stored as 8-bit before the vertical pass. A pass is skipped when its output
 *       size equals the input size.</li>
 * </ul>
 * Left out: the {@code box} (source crop) argument, {@code reducing_gap}, and the 16/32-bit paths.
 */
public final class PillowResample {

    /** Fraction bits of the fixed-point weights: 32 - 8 (pixel) - 2 (headroom for overshoot). */
    public static final int PRECISION_BITS = 32 - 8 - 2;

    private PillowResample() {}

    /**
     * The taps of a 1-D resampling from inSize to outSize: output i reads input
     * {@code first[i] .. first[i] + count[i] - 1} with weights {@code weights[i * ksize + j]}.
     */
    public record Coefficients(int ksize, int[] first, int[] count, double[] weights) {

        /** The weights in Pillow's fixed point (normalize_coeffs_8bpc). */
        public int[] fixedPoint() {
            int[] k = new int[weights.length];
            double one = 1 << PRECISION_BITS;
            for (int i = 0; i < k.length; i++) {
                double w = weights[i];
                k[i] = (int) (w < 0 ? -0.5 + w * one : 0.5 + w * one);
            }
            return k;
        }
    }

    /** Pillow's precompute_coeffs for the full box [0, inSize). */
    public static Coefficients coefficients(int inSize, int outSize, PillowFilter filter) {
        if (inSize <= 0 || outSize <= 0) {
            throw new IllegalArgumentException("resample sizes must be positive, got " + inSize + " -> " + outSize);
        }
        // Pillow passes the box edges as C floats; for whole-image boxes they are exact.
        double scale = (double) ((float) inSize - 0f) / outSize;
        double filterScale = Math.max(scale, 1.0);
        double support = filter.support * filterScale;
        int ksize = (int) Math.ceil(support) * 2 + 1;
        int[] first = new int[outSize];
        int[] count = new int[outSize];
        double[] kk = new double[Math.multiplyExact(outSize, ksize)];
        double invScale = 1.0 / filterScale;
        for (int xx = 0; xx < outSize; xx++) {
            double center = (xx + 0.5) * scale;
            int xmin = (int) (center - support + 0.5);
            if (xmin < 0) {
                xmin = 0;
            }
            int xmax = (int) (center + support + 0.5);
            if (xmax > inSize) {
                xmax = inSize;
            }
            xmax -= xmin;
            int base = xx * ksize;
            double sum = 0.0;
            for (int x = 0; x < xmax; x++) {
                double w = filter.weight((x + xmin - center + 0.5) * invScale);
                kk[base + x] = w;
                sum += w;
            }
            if (sum != 0.0) {
                for (int x = 0; x < xmax; x++) {
                    kk[base + x] /= sum;
                }
            }
            first[xx] = xmin;
            count[xx] = xmax;
        }
        return new Coefficients(ksize, first, count, kk);
    }

    /** Pillow's clip8: drop the fraction bits, saturate to a byte. */
    static int clip8(int acc) {
        int v = acc >> PRECISION_BITS;
        return v < 0 ? 0 : Math.min(v, 255);
    }

    /** {@code image.resize((outWidth, outHeight), filter)} as Pillow computes it for mode "RGB". */
    public static RgbImage resize(RgbImage in, int outWidth, int outHeight, PillowFilter filter) {
        if (outWidth <= 0 || outHeight <= 0) {
            throw new IllegalArgumentException("resize target must be positive, got " + outWidth + "x" + outHeight);
        }
        boolean needHorizontal = outWidth != in.width();
        boolean needVertical = outHeight != in.height();
        if (!needHorizontal && !needVertical) {
            return new RgbImage(in.width(), in.height(), in.rgb().clone());
        }
        Coefficients vert = coefficients(in.height(), outHeight, filter);
        RgbImage src = in;
        int[] vertFirst = vert.first().clone();
        if (needHorizontal) {
            int yFirst = vert.first()[0];
            int yLast = vert.first()[outHeight - 1] + vert.count()[outHeight - 1];
            src = horizontal(in, yFirst, yLast - yFirst, coefficients(in.width(), outWidth, filter));
            for (int i = 0; i < outHeight; i++) {
                vertFirst[i] -= yFirst;
            }
        }
        if (!needVertical) {
            return src;
        }
        return vertical(src, new Coefficients(vert.ksize(), vertFirst, vert.count(), vert.weights()));
    }

    private static RgbImage horizontal(RgbImage in, int rowOffset, int rows, Coefficients c) {
        int outW = c.first().length;
        int inW = in.width();
        int[] k = c.fixedPoint();
        int ksize = c.ksize();
        byte[] src = in.rgb();
        byte[] dst = new byte[outW * rows * 3]; // (rows, outW, 3)
        int half = 1 << (PRECISION_BITS - 1);
        for (int y = 0; y < rows; y++) {
            int rowBase = (y + rowOffset) * inW * 3;
            for (int xx = 0; xx < outW; xx++) {
                int xmin = c.first()[xx];
                int n = c.count()[xx];
                int kb = xx * ksize;
                int s0 = half;
                int s1 = half;
                int s2 = half;
                for (int x = 0; x < n; x++) {
                    int p = rowBase + (x + xmin) * 3;
                    int w = k[kb + x];
                    s0 += (src[p] & 0xFF) * w;
                    s1 += (src[p + 1] & 0xFF) * w;
                    s2 += (src[p + 2] & 0xFF) * w;
                }
                int o = (y * outW + xx) * 3;
                dst[o] = (byte) clip8(s0);
                dst[o + 1] = (byte) clip8(s1);
                dst[o + 2] = (byte) clip8(s2);
            }
        }
        return new RgbImage(outW, rows, dst);
    }

    private static RgbImage vertical(RgbImage in, Coefficients c) {
        int outH = c.first().length;
        int w = in.width();
        int[] k = c.fixedPoint();
        int ksize = c.ksize();
        byte[] src = in.rgb();
        byte[] dst = new byte[w * outH * 3]; // (outH, w, 3)
        int half = 1 << (PRECISION_BITS - 1);
        for (int yy = 0; yy < outH; yy++) {
            int ymin = c.first()[yy];
            int n = c.count()[yy];
            int kb = yy * ksize;
            for (int xx = 0; xx < w; xx++) {
                int s0 = half;
                int s1 = half;
                int s2 = half;
                for (int y = 0; y < n; y++) {
                    int p = ((y + ymin) * w + xx) * 3;
                    int wt = k[kb + y];
                    s0 += (src[p] & 0xFF) * wt;
                    s1 += (src[p + 1] & 0xFF) * wt;
                    s2 += (src[p + 2] & 0xFF) * wt;
                }
                int o = (yy * w + xx) * 3;
                dst[o] = (byte) clip8(s0);
                dst[o + 1] = (byte) clip8(s1);
                dst[o + 2] = (byte) clip8(s2);
            }
        }
        return new RgbImage(w, outH, dst);
    }
}
