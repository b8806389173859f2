package org.qvlm4j.io.image;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** Pillow's resampler on cases whose taps and fixed-point weights are derived by hand from Resample.c. */
class PillowResampleTest {

    private static final double ONE = 1 << 22; // 2^PRECISION_BITS
    private static final int HALF = 1 << 21;
    private static final double WEIGHT_TOLERANCE = 1e-15;

    /** Keys cubic, a = -0.5, at the arguments the hand cases need. */
    private static final double CUBIC_025 = 0.8671875; // (1.5*0.25 - 2.5)*0.0625 + 1
    private static final double CUBIC_075 = 0.2265625; // (1.5*0.75 - 2.5)*0.5625 + 1
    private static final double CUBIC_125 = -0.0703125; // ((1.25-5)*1.25+8)*1.25-4) * -0.5

    private static int fixed(double w) {
        return (int) (w < 0 ? -0.5 + w * ONE : 0.5 + w * ONE);
    }

    private static int clip(int acc) {
        return Math.max(0, Math.min(255, acc >> 22));
    }

    @Test
    void downscaleByTwoTaps() {
        // 4 -> 2: scale 2, support 2 * 2 = 4. Output 0: centre 1, taps (int)(1-4+0.5)=-2 -> 0 up to
        // (int)(1+4+0.5)=5 -> 4, at (x - 1 + 0.5) / 2 = -0.25, 0.25, 0.75, 1.25.
        PillowResample.Coefficients c = PillowResample.coefficients(4, 2, PillowFilter.BICUBIC);
        assertEquals(9, c.ksize()); // ceil(4) * 2 + 1
        assertEquals(0, c.first()[0]);
        assertEquals(4, c.count()[0]);
        double sum = 2 * CUBIC_025 + CUBIC_075 + CUBIC_125;
        double[] expected = {CUBIC_025 / sum, CUBIC_025 / sum, CUBIC_075 / sum, CUBIC_125 / sum};
        for (int j = 0; j < 4; j++) {
            assertEquals(expected[j], c.weights()[j], WEIGHT_TOLERANCE);
            assertEquals(fixed(expected[j]), c.fixedPoint()[j]);
        }
        for (int j = 4; j < c.ksize(); j++) {
            assertEquals(0.0, c.weights()[j]);
        }
        // Output 1: centre 3, taps 0 .. 4 at (x - 3 + 0.5) / 2 = -1.25, -0.75, -0.25, 0.25 (mirror image).
        assertEquals(0, c.first()[1]);
        assertEquals(4, c.count()[1]);
        assertEquals(expected[3], c.weights()[c.ksize()], WEIGHT_TOLERANCE);
        assertEquals(expected[0], c.weights()[c.ksize() + 3], WEIGHT_TOLERANCE);
    }

    @Test
    void upscaleByTwoTaps() {
        // 2 -> 4: scale 0.5, support 2. Output 0: centre 0.25, taps 0 .. (int)(2.75)=2 at 0.25, 1.25.
        PillowResample.Coefficients c = PillowResample.coefficients(2, 4, PillowFilter.BICUBIC);
        assertEquals(5, c.ksize());
        assertEquals(0, c.first()[0]);
        assertEquals(2, c.count()[0]);
        double sum = CUBIC_025 + CUBIC_125;
        assertEquals(CUBIC_025 / sum, c.weights()[0], WEIGHT_TOLERANCE);
        assertEquals(CUBIC_125 / sum, c.weights()[1], WEIGHT_TOLERANCE);
    }

    @Test
    void onePixelWideLineHorizontal() {
        // A 4x1 image with one bright column at x = 2, downscaled to 2x1 (the vertical pass is skipped).
        byte[] px = new byte[4 * 3];
        px[2 * 3] = (byte) 255;
        px[2 * 3 + 1] = (byte) 200;
        px[2 * 3 + 2] = (byte) 7;
        RgbImage out = PillowResample.resize(new RgbImage(4, 1, px), 2, 1, PillowFilter.BICUBIC);
        double sum = 2 * CUBIC_025 + CUBIC_075 + CUBIC_125;
        // Output 0 sees the line at tap 2 (weight 0.75 arg); output 1 at tap 1 (argument -0.25).
        int k0 = fixed(CUBIC_075 / sum);
        int k1 = fixed(CUBIC_025 / sum);
        int[] levels = {255, 200, 7};
        for (int ch = 0; ch < 3; ch++) {
            assertEquals(clip(HALF + levels[ch] * k0), out.get(0, 0, ch), "channel " + ch);
            assertEquals(clip(HALF + levels[ch] * k1), out.get(1, 0, ch), "channel " + ch);
        }
        assertEquals(31, out.get(0, 0, 0)); // 255 * 0.2265625 / 1.890625 = 30.56 -> 31 with rounding
    }

    @Test
    void onePixelWideLineVerticalMatchesHorizontal() {
        Random rnd = new Random(7);
        byte[] row = new byte[9 * 3];
        rnd.nextBytes(row);
        RgbImage wide = new RgbImage(9, 1, row);
        RgbImage tall = new RgbImage(1, 9, row.clone());
        for (int out : new int[] {2, 4, 5, 13}) {
            RgbImage h = PillowResample.resize(wide, out, 1, PillowFilter.BICUBIC);
            RgbImage v = PillowResample.resize(tall, 1, out, PillowFilter.BICUBIC);
            assertArrayEquals(h.rgb(), v.rgb(), "size " + out);
        }
    }

    @Test
    void overshootIsClamped() {
        // A hard 0/255 step upscaled: bicubic rings below 0 and above 255 near the edge.
        byte[] px = new byte[8 * 3];
        for (int x = 4; x < 8; x++) {
            px[x * 3] = px[x * 3 + 1] = px[x * 3 + 2] = (byte) 255;
        }
        RgbImage out = PillowResample.resize(new RgbImage(8, 1, px), 32, 1, PillowFilter.BICUBIC);
        assertEquals(0, out.get(0, 0, 0));
        assertEquals(255, out.get(31, 0, 0));
        for (int x = 1; x < 32; x++) {
            // Wrapped instead of clamped ringing would show as a drop (-1 -> 255 -> next, 256 -> 0).
            assertTrue(out.get(x, 0, 0) >= out.get(x - 1, 0, 0), "clamped ringing must not wrap around at x=" + x);
        }
    }

    @ParameterizedTest
    @EnumSource(PillowFilter.class)
    void constantImageStaysConstant(PillowFilter filter) {
        RgbImage in = RgbImage.filled(37, 23, 200, 3, 128);
        int[][] sizes = {{336, 336}, {5, 4}, {37, 11}, {100, 23}, {1, 1}};
        for (int[] s : sizes) {
            RgbImage out = PillowResample.resize(in, s[0], s[1], filter);
            assertEquals(s[0], out.width());
            assertEquals(s[1], out.height());
            assertTrue(out.samePixels(RgbImage.filled(s[0], s[1], 200, 3, 128)), filter + " " + s[0] + "x" + s[1]);
        }
    }

    @Test
    void sameSizeIsACopy() {
        Random rnd = new Random(11);
        byte[] px = new byte[6 * 5 * 3];
        rnd.nextBytes(px);
        RgbImage in = new RgbImage(6, 5, px);
        RgbImage out = PillowResample.resize(in, 6, 5, PillowFilter.BICUBIC);
        assertTrue(out.samePixels(in));
    }

    @Test
    void horizontalPassOnlyReadsNeededRows() {
        // Downscaling both axes must equal a horizontal pass over all rows followed by a vertical pass.
        Random rnd = new Random(3);
        byte[] px = new byte[41 * 29 * 3];
        rnd.nextBytes(px);
        RgbImage in = new RgbImage(41, 29, px);
        RgbImage both = PillowResample.resize(in, 13, 7, PillowFilter.BICUBIC);
        RgbImage twoStep = PillowResample.resize(PillowResample.resize(in, 13, 29, PillowFilter.BICUBIC), 13, 7,
                PillowFilter.BICUBIC);
        assertTrue(both.samePixels(twoStep));
    }

    @Test
    void boxFilterAveragesExactly() {
        // Box filter 2 -> 1: taps 0, 1 at weight 1/2 each; (10 + 21) / 2 = 15.5 rounds up to 16.
        byte[] px = {10, 10, 10, 21, 21, 21};
        RgbImage out = PillowResample.resize(new RgbImage(2, 1, px), 1, 1, PillowFilter.BOX);
        assertEquals(16, out.get(0, 0, 0));
    }

    @Test
    void rejectsBadSizes() {
        RgbImage in = RgbImage.filled(2, 2, 0, 0, 0);
        assertThrows(IllegalArgumentException.class, () -> PillowResample.resize(in, 0, 2, PillowFilter.BICUBIC));
        assertThrows(IllegalArgumentException.class, () -> PillowFilter.fromPilCode(0));
    }
}
