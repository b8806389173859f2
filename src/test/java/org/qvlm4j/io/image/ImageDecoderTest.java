package org.qvlm4j.io.image;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.awt.Transparency;
import java.awt.color.ColorSpace;
import java.awt.image.BufferedImage;
import java.awt.image.ComponentColorModel;
import java.awt.image.DataBuffer;
import java.awt.image.IndexColorModel;
import java.awt.image.WritableRaster;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Random;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Decoding of generated PNG/JPEG layouts against Pillow's convert("RGB") rules, and of broken files. */
class ImageDecoderTest {

    private static final Path FIXTURES = Path.of("src/test/resources/fixtures/images");

    @TempDir
    Path tmp;

    private Path writePng(BufferedImage img, String name) throws IOException {
        Path f = tmp.resolve(name);
        assertTrue(ImageIO.write(img, "png", f.toFile()), "no PNG writer for " + img);
        return f;
    }

    @Test
    void grayscaleIsReplicated() throws IOException {
        Random rnd = new Random(1);
        BufferedImage img = new BufferedImage(7, 5, BufferedImage.TYPE_BYTE_GRAY);
        int[] levels = new int[35];
        for (int i = 0; i < levels.length; i++) {
            levels[i] = rnd.nextInt(256);
        }
        img.getRaster().setPixels(0, 0, 7, 5, levels);
        RgbImage out = ImageDecoder.read(writePng(img, "gray.png"));
        assertEquals(7, out.width());
        assertEquals(5, out.height());
        for (int y = 0; y < 5; y++) {
            for (int x = 0; x < 7; x++) {
                for (int c = 0; c < 3; c++) {
                    assertEquals(levels[y * 7 + x], out.get(x, y, c));
                }
            }
        }
    }

    @Test
    void alphaIsDroppedWithoutCompositing() throws IOException {
        Random rnd = new Random(2);
        BufferedImage img = new BufferedImage(6, 4, BufferedImage.TYPE_4BYTE_ABGR);
        int[] rgba = new int[6 * 4 * 4];
        for (int i = 0; i < rgba.length; i++) {
            rgba[i] = rnd.nextInt(256);
        }
        rgba[3] = 0; // fully transparent pixel keeps its colour
        img.getRaster().setPixels(0, 0, 6, 4, rgba);
        RgbImage out = ImageDecoder.read(writePng(img, "rgba.png"));
        for (int i = 0; i < 24; i++) {
            for (int c = 0; c < 3; c++) {
                assertEquals(rgba[i * 4 + c], out.get(i % 6, i / 6, c), "pixel " + i + " channel " + c);
            }
        }
    }

    @Test
    void paletteIsLookedUp() throws IOException {
        byte[] r = {10, 20, (byte) 200, 0};
        byte[] g = {11, 120, 5, (byte) 255};
        byte[] b = {12, 60, 90, 1};
        IndexColorModel icm = new IndexColorModel(8, 4, r, g, b);
        BufferedImage img = new BufferedImage(4, 2, BufferedImage.TYPE_BYTE_INDEXED, icm);
        int[] idx = {0, 1, 2, 3, 3, 2, 1, 0};
        img.getRaster().setPixels(0, 0, 4, 2, idx);
        RgbImage out = ImageDecoder.read(writePng(img, "palette.png"));
        for (int i = 0; i < idx.length; i++) {
            assertEquals(r[idx[i]] & 0xFF, out.get(i % 4, i / 4, 0));
            assertEquals(g[idx[i]] & 0xFF, out.get(i % 4, i / 4, 1));
            assertEquals(b[idx[i]] & 0xFF, out.get(i % 4, i / 4, 2));
        }
    }

    @Test
    void twoBitGrayExpandsLikePillow() throws IOException {
        byte[] ramp = {0, 85, (byte) 170, (byte) 255};
        IndexColorModel icm = new IndexColorModel(2, 4, ramp, ramp, ramp);
        BufferedImage img = new BufferedImage(4, 1, BufferedImage.TYPE_BYTE_BINARY, icm);
        img.getRaster().setPixels(0, 0, 4, 1, new int[] {0, 1, 2, 3});
        RgbImage out = ImageDecoder.read(writePng(img, "gray2.png"));
        for (int x = 0; x < 4; x++) {
            assertEquals(x * 0x55, out.get(x, 0, 1)); // Pillow's L;2 unpacker
        }
    }

    @Test
    void sixteenBitRgbKeepsHighByte() throws IOException {
        ComponentColorModel cm = new ComponentColorModel(ColorSpace.getInstance(ColorSpace.CS_sRGB), false, false,
                Transparency.OPAQUE, DataBuffer.TYPE_USHORT);
        WritableRaster raster = cm.createCompatibleWritableRaster(3, 1);
        int[] samples = {0x1234, 0xFFFF, 0x00FF, 0x8000, 0x7FFF, 0x0100, 0, 1, 0xFEFF};
        raster.setPixels(0, 0, 3, 1, samples);
        RgbImage out = ImageDecoder.read(writePng(new BufferedImage(cm, raster, false, null), "rgb16.png"));
        for (int i = 0; i < samples.length; i++) {
            assertEquals(samples[i] >> 8, out.get(i / 3, 0, i % 3), "sample " + i);
        }
    }

    @Test
    void sixteenBitGraySaturatesLikePillowI16() throws IOException {
        BufferedImage img = new BufferedImage(4, 1, BufferedImage.TYPE_USHORT_GRAY);
        int[] samples = {0, 200, 255, 40000};
        img.getRaster().setPixels(0, 0, 4, 1, samples);
        RgbImage out = ImageDecoder.read(writePng(img, "gray16.png"));
        int[] expected = {0, 200, 255, 255}; // Pillow I;16 -> RGB: min(v, 255)
        for (int x = 0; x < 4; x++) {
            for (int c = 0; c < 3; c++) {
                assertEquals(expected[x], out.get(x, 0, c));
            }
        }
    }

    @Test
    void grayscaleJpegHasEqualChannels() throws IOException {
        BufferedImage img = new BufferedImage(16, 16, BufferedImage.TYPE_BYTE_GRAY);
        for (int y = 0; y < 16; y++) {
            for (int x = 0; x < 16; x++) {
                img.getRaster().setSample(x, y, 0, x * 16);
            }
        }
        Path f = tmp.resolve("gray.jpg");
        assertTrue(ImageIO.write(img, "jpeg", f.toFile()));
        RgbImage out = ImageDecoder.read(f);
        for (int y = 0; y < 16; y++) {
            for (int x = 0; x < 16; x++) {
                assertEquals(out.get(x, y, 0), out.get(x, y, 1));
                assertEquals(out.get(x, y, 0), out.get(x, y, 2));
            }
        }
    }

    @Test
    void readsFixtureSizes() {
        assertEquals(451, ImageDecoder.read(FIXTURES.resolve("skimage_chelsea.png")).width());
        RgbImage rocket = ImageDecoder.read(FIXTURES.resolve("skimage_rocket.jpg"));
        assertEquals(640, rocket.width());
        assertEquals(427, rocket.height());
    }

    private static void assertRejected(Path f, String... fragments) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ImageDecoder.read(f));
        assertTrue(e.getMessage().contains(f.toString()), e.getMessage());
        for (String s : fragments) {
            assertTrue(e.getMessage().contains(s), "'" + s + "' missing in: " + e.getMessage());
        }
    }

    @Test
    void missingFile() {
        assertRejected(tmp.resolve("nope.png"), "no such file", "PNG or JPEG");
    }

    @Test
    void emptyFile() throws IOException {
        assertRejected(Files.createFile(tmp.resolve("empty.png")), "empty");
    }

    @Test
    void directory() {
        assertRejected(tmp, "not a regular file");
    }

    @Test
    void textRenamedPng() throws IOException {
        Path f = Files.writeString(tmp.resolve("notes.png"), "this is not an image\n");
        assertRejected(f, "PNG or JPEG");
    }

    @Test
    void truncatedPng() throws IOException {
        byte[] png = Files.readAllBytes(FIXTURES.resolve("skimage_chelsea.png"));
        Path f = Files.write(tmp.resolve("truncated.png"), Arrays.copyOf(png, png.length / 2));
        assertRejected(f, "PNG or JPEG");
    }

    @Test
    void truncatedJpeg() throws IOException {
        byte[] jpg = Files.readAllBytes(FIXTURES.resolve("skimage_rocket.jpg"));
        Path f = Files.write(tmp.resolve("truncated.jpg"), Arrays.copyOf(jpg, jpg.length / 2));
        assertRejected(f, "PNG or JPEG");
    }

    @Test
    void pngHeaderOnly() throws IOException {
        byte[] png = Files.readAllBytes(FIXTURES.resolve("skimage_chelsea.png"));
        Path f = Files.write(tmp.resolve("header.png"), Arrays.copyOf(png, 8));
        assertRejected(f, "PNG or JPEG");
    }
}
