package org.qvlm4j.io.image;

/**
 * The resampling filters of Pillow's {@code ImagingResample} (libImaging/Resample.c), keyed by
 * the integer codes of {@code PIL.Image.Resampling} that HF configs store under "resample".
 * NEAREST (0) is not a convolution filter in Pillow (it goes through the affine transform path)
 * and is left out.
 */
public enum PillowFilter {
    LANCZOS(1, 3.0),
    BILINEAR(2, 1.0),
    BICUBIC(3, 2.0),
    BOX(4, 0.5),
    HAMMING(5, 1.0);

    /** Pillow's bicubic uses the Keys cubic with a = -0.5. */
    private static final double CUBIC_A = -0.5;

    /** The PIL.Image.Resampling code. */
    public final int pilCode;
    /** Support radius at scale 1, in input pixels. */
    public final double support;

    PillowFilter(int pilCode, double support) {
        this.pilCode = pilCode;
        this.support = support;
    }

    /** The filter by its PIL code; throws naming the code when it is not a supported filter. */
    public static PillowFilter fromPilCode(int code) {
        for (PillowFilter f : values()) {
            if (f.pilCode == code) {
                return f;
            }
        }
        throw new IllegalArgumentException("resample " + code + " is not a supported Pillow filter; expected one of "
                + "1 (lanczos), 2 (bilinear), 3 (bicubic), 4 (box), 5 (hamming)");
    }

    /** The kernel value at x (input pixels, already divided by the downscale factor). */
    public double weight(double x) {
        return switch (this) {
            case BOX -> (x > -0.5 && x <= 0.5) ? 1.0 : 0.0;
            case BILINEAR -> {
                double ax = Math.abs(x);
                yield ax < 1.0 ? 1.0 - ax : 0.0;
            }
            case HAMMING -> {
                double ax = Math.abs(x);
                if (ax == 0.0) {
                    yield 1.0;
                }
                if (ax >= 1.0) {
                    yield 0.0;
                }
                double px = ax * Math.PI;
                // Pillow writes these two constants as C floats, so they carry float rounding.
                yield Math.sin(px) / px * ((double) 0.54f + (double) 0.46f * Math.cos(px));
            }
            case BICUBIC -> {
                double ax = Math.abs(x);
                if (ax < 1.0) {
                    yield ((CUBIC_A + 2.0) * ax - (CUBIC_A + 3.0)) * ax * ax + 1;
                }
                if (ax < 2.0) {
                    yield (((ax - 5) * ax + 8) * ax - 4) * CUBIC_A;
                }
                yield 0.0;
            }
            case LANCZOS -> (-3.0 <= x && x < 3.0) ? sinc(x) * sinc(x / 3) : 0.0;
        };
    }

    private static double sinc(double x) {
        if (x == 0.0) {
            return 1.0;
        }
        double px = x * Math.PI;
        return Math.sin(px) / px;
    }
}
