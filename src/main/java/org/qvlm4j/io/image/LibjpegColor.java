package org.qvlm4j.io.image;

/**
 * libjpeg's integer YCC conversion (jdcolor.c, the same in libjpeg-turbo), needed where a decoder
 * hands back unconverted samples: YCCK to CMYK, as libjpeg does before Pillow sees the data.
 * Fixed point with 16 fraction bits, table entries rounded as libjpeg builds them.
 */
final class LibjpegColor {

    private static final int SCALEBITS = 16;
    private static final int ONE_HALF = 1 << (SCALEBITS - 1);
    private static final int CENTER = 128;
    private static final int[] CR_R = new int[256];
    private static final int[] CB_B = new int[256];
    private static final int[] CR_G = new int[256];
    private static final int[] CB_G = new int[256];

    static {
        for (int i = 0; i < 256; i++) {
            int x = i - CENTER;
            CR_R[i] = (fix(1.40200) * x + ONE_HALF) >> SCALEBITS;
            CB_B[i] = (fix(1.77200) * x + ONE_HALF) >> SCALEBITS;
            CR_G[i] = -fix(0.71414) * x;
            CB_G[i] = -fix(0.34414) * x + ONE_HALF;
        }
    }

    private LibjpegColor() {}

    private static int fix(double v) {
        return (int) (v * (1L << SCALEBITS) + 0.5);
    }

    private static int limit(int v) {
        return v < 0 ? 0 : Math.min(v, 255);
    }

    /** libjpeg's ycck_cmyk_convert for one pixel: CMY = 255 - RGB(YCC), K unchanged. */
    static void ycckToCmyk(int y, int cb, int cr, int k, int[] cmyk) {
        cmyk[0] = limit(255 - (y + CR_R[cr]));
        cmyk[1] = limit(255 - (y + ((CB_G[cb] + CR_G[cr]) >> SCALEBITS)));
        cmyk[2] = limit(255 - (y + CB_B[cb]));
        cmyk[3] = k;
    }
}
