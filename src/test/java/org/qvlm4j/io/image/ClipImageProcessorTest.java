package org.qvlm4j.io.image;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The CLIP preprocessing steps on hand-computed cases: constants, geometry of pad/resize/crop. */
class ClipImageProcessorTest {

    private static final double[] MEAN = ClipPreprocessConfig.CLIP_MEAN;
    private static final double[] STD = ClipPreprocessConfig.CLIP_STD;

    @TempDir
    Path tmp;

    /** numpy's float32 arithmetic for one level: rescale in float64 then cast, normalise in float32. */
    private static float normalized(int level, int c) {
        float x = (float) (level * (1.0 / 255));
        return (x - (float) MEAN[c]) / (float) STD[c];
    }

    private static void assertConstant(PixelValues pv, int[] levels) {
        for (int c = 0; c < 3; c++) {
            float expected = normalized(levels[c], c);
            for (int y = 0; y < pv.height(); y++) {
                for (int x = 0; x < pv.width(); x++) {
                    assertEquals(expected, pv.get(c, y, x), "c=" + c + " y=" + y + " x=" + x);
                }
            }
        }
    }

    @Test
    void constantColourGivesNormalizedConstant() {
        int[] levels = {250, 17, 99};
        RgbImage img = RgbImage.filled(500, 301, 250, 17, 99);
        PixelValues cropped = ClipImageProcessor.llava15(PadMode.NONE).preprocess(img);
        assertEquals(336, cropped.height());
        assertEquals(336, cropped.width());
        assertConstant(cropped, levels);
        // Padded: the image occupies square rows 99..399 of 500, i.e. about output rows 67..268 of 336;
        // rows far from that band are pure background, the centre row pure image colour.
        PixelValues padded = ClipImageProcessor.llava15(PadMode.PAD_TO_SQUARE).preprocess(img);
        int[] bg = {122, 116, 104};
        for (int c = 0; c < 3; c++) {
            for (int x = 0; x < 336; x++) {
                assertEquals(normalized(bg[c], c), padded.get(c, 0, x));
                assertEquals(normalized(bg[c], c), padded.get(c, 335, x));
                assertEquals(normalized(levels[c], c), padded.get(c, 168, x));
            }
        }
        // Padding a mean-coloured image with the mean colour keeps it constant.
        PixelValues meanPadded = ClipImageProcessor.llava15(PadMode.PAD_TO_SQUARE)
                .preprocess(RgbImage.filled(90, 400, 122, 116, 104));
        assertConstant(meanPadded, new int[] {122, 116, 104});
    }

    @Test
    void grayscaleAndRgbaFilesPreprocessLikeTheirRgb() throws IOException {
        BufferedImage gray = new BufferedImage(40, 30, BufferedImage.TYPE_BYTE_GRAY);
        for (int y = 0; y < 30; y++) {
            for (int x = 0; x < 40; x++) {
                gray.getRaster().setSample(x, y, 0, 77);
            }
        }
        Path g = tmp.resolve("g.png");
        ImageIO.write(gray, "png", g.toFile());
        assertConstant(ClipImageProcessor.llava15(PadMode.NONE).preprocess(g), new int[] {77, 77, 77});

        BufferedImage rgba = new BufferedImage(30, 40, BufferedImage.TYPE_INT_ARGB);
        Random rnd = new Random(5);
        for (int y = 0; y < 40; y++) {
            for (int x = 0; x < 30; x++) {
                rgba.setRGB(x, y, (rnd.nextInt(256) << 24) | (10 << 16) | (200 << 8) | 30);
            }
        }
        Path a = tmp.resolve("a.png");
        ImageIO.write(rgba, "png", a.toFile());
        assertConstant(ClipImageProcessor.llava15(PadMode.NONE).preprocess(a), new int[] {10, 200, 30});
    }

    @Test
    void backgroundIsTruncatedMeanTimes255() {
        assertArrayEquals(new int[] {122, 116, 104}, ClipImageProcessor.backgroundColour(MEAN));
    }

    @Test
    void expandToSquareCentresWithFloorOffset() {
        // 5 wide, 2 high: the square is 5x5 and the image starts at row (5 - 2) // 2 = 1.
        RgbImage wide = RgbImage.filled(5, 2, 9, 9, 9);
        RgbImage sq = ClipImageProcessor.expandToSquare(wide, new int[] {1, 2, 3});
        assertEquals(5, sq.width());
        assertEquals(5, sq.height());
        for (int y = 0; y < 5; y++) {
            int expectedR = (y == 1 || y == 2) ? 9 : 1;
            for (int x = 0; x < 5; x++) {
                assertEquals(expectedR, sq.get(x, y, 0), "x=" + x + " y=" + y);
            }
        }
        assertEquals(3, sq.get(0, 4, 2));
        // 2 wide, 5 high: the image starts at column 1.
        RgbImage tall = ClipImageProcessor.expandToSquare(RgbImage.filled(2, 5, 9, 9, 9), new int[] {1, 2, 3});
        for (int x = 0; x < 5; x++) {
            assertEquals((x == 1 || x == 2) ? 9 : 1, tall.get(x, 3, 0), "x=" + x);
        }
        RgbImage square = RgbImage.filled(3, 3, 0, 0, 0);
        assertSame(square, ClipImageProcessor.expandToSquare(square, new int[] {1, 2, 3}));
    }

    @Test
    void resizeOutputSizeTruncatesTheLongSide() {
        ClipImageProcessor p = ClipImageProcessor.llava15(PadMode.NONE);
        assertArrayEquals(new int[] {336, 505}, p.resizeOutputSize(300, 451)); // 505.12
        assertArrayEquals(new int[] {336, 503}, p.resizeOutputSize(427, 640)); // 503.61: int(), not round()
        assertArrayEquals(new int[] {503, 336}, p.resizeOutputSize(640, 427));
        assertArrayEquals(new int[] {336, 336}, p.resizeOutputSize(50, 50));
    }

    @Test
    void centerCropOffsetsAndZeroPadding() {
        Random rnd = new Random(9);
        byte[] px = new byte[7 * 5 * 3];
        rnd.nextBytes(px);
        RgbImage img = new RgbImage(7, 5, px);
        // Smaller crop: top = (5 - 2) // 2 = 1, left = (7 - 4) // 2 = 1.
        RgbImage small = ClipImageProcessor.centerCrop(img, 2, 4);
        for (int y = 0; y < 2; y++) {
            for (int x = 0; x < 4; x++) {
                assertEquals(img.get(x + 1, y + 1, 2), small.get(x, y, 2));
            }
        }
        // Larger crop (8 x 8): HF pads by ceil((8-5)/2) = 2 rows and ceil((8-7)/2) = 1 column of zeros.
        RgbImage big = ClipImageProcessor.centerCrop(img, 8, 8);
        for (int y = 0; y < 8; y++) {
            for (int x = 0; x < 8; x++) {
                boolean inside = y >= 2 && y < 7 && x >= 1 && x < 8;
                assertEquals(inside ? img.get(x - 1, y - 2, 0) : 0, big.get(x, y, 0), "x=" + x + " y=" + y);
            }
        }
    }

    @Test
    void paddedCropPixelsNormalizeFromZero() throws IOException {
        Path f = Files.writeString(tmp.resolve(ClipPreprocessConfig.FILE_NAME),
                "{\"do_resize\": false, \"crop_size\": 6}");
        ClipImageProcessor p = ClipImageProcessor.forModelDir(tmp, PadMode.NONE);
        assertTrue(f.toFile().exists());
        PixelValues pv = p.preprocess(RgbImage.filled(2, 2, 255, 255, 255));
        assertEquals(6, pv.height());
        assertEquals(normalized(0, 1), pv.get(1, 0, 0));
        assertEquals(normalized(255, 1), pv.get(1, 2, 2));
    }

    @Test
    void rescaleAndNormalizeSwitches() throws IOException {
        Files.writeString(tmp.resolve(ClipPreprocessConfig.FILE_NAME),
                "{\"do_resize\": false, \"do_center_crop\": false, \"do_normalize\": false}");
        PixelValues rescaled = ClipImageProcessor.forModelDir(tmp, PadMode.NONE).preprocess(RgbImage.filled(3, 2, 51, 0, 255));
        assertEquals(2, rescaled.height());
        assertEquals(3, rescaled.width());
        assertEquals((float) (51 / 255.0), rescaled.get(0, 1, 2));
        assertEquals(1.0f, rescaled.get(2, 0, 0));

        Files.writeString(tmp.resolve(ClipPreprocessConfig.FILE_NAME),
                "{\"do_resize\": false, \"do_center_crop\": false, \"do_rescale\": false, \"do_normalize\": false}");
        PixelValues raw = ClipImageProcessor.forModelDir(tmp, PadMode.NONE).preprocess(RgbImage.filled(3, 2, 51, 0, 255));
        assertEquals(51.0f, raw.get(0, 0, 0));
    }

    @Test
    void exactResizeSize() throws IOException {
        Files.writeString(tmp.resolve(ClipPreprocessConfig.FILE_NAME),
                "{\"size\": {\"height\": 20, \"width\": 30}, \"do_center_crop\": false}");
        PixelValues pv = ClipImageProcessor.forModelDir(tmp, PadMode.NONE).preprocess(RgbImage.filled(7, 9, 1, 2, 3));
        assertEquals(20, pv.height());
        assertEquals(30, pv.width());
    }

    @Test
    void unreadableImageFails() {
        Path missing = tmp.resolve("missing.jpg");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> ClipImageProcessor.llava15(PadMode.NONE).preprocess(missing));
        assertTrue(e.getMessage().contains(missing.toString()));
    }
}
