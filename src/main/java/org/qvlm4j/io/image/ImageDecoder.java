package org.qvlm4j.io.image;

import java.awt.color.ColorSpace;
import java.awt.image.BufferedImage;
import java.awt.image.ColorModel;
import java.awt.image.ComponentColorModel;
import java.awt.image.IndexColorModel;
import java.awt.image.Raster;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import javax.imageio.ImageIO;
import javax.imageio.ImageReadParam;
import javax.imageio.ImageReader;
import javax.imageio.ImageTypeSpecifier;
import javax.imageio.event.IIOReadWarningListener;
import javax.imageio.stream.ImageInputStream;

/**
 * Decodes PNG and JPEG files (any format javax.imageio can read, TwelveMonkeys supplying the
 * JPEG reader for CMYK/YCCK and odd JPEGs) into the pixels PIL's
 * {@code Image.open(path).convert("RGB")} gives.
 *
 * <p>The reduction to 8-bit RGB follows Pillow's decoders and Convert.c, working on the raw raster
 * samples (never {@code BufferedImage.getRGB}, which would apply a colour-space conversion Pillow
 * does not do):
 * <ul>
 *   <li>grayscale (L): replicated to R, G, B; 1/2/4-bit grey expands to 0..255 (0x55, 0x11
 *       multiples, as Pillow's L;2 and L;4 unpackers).</li>
 *   <li>palette (P): palette lookup; any transparency is ignored.</li>
 *   <li>alpha (LA, RGBA): the alpha channel is dropped, with no compositing (Pillow's rgba2rgb).</li>
 *   <li>16-bit RGB/RGBA and 16-bit grey+alpha PNG: the high byte of each sample (Pillow unpacks
 *       them as "RGB;16B" / "RGBA;16B" / "LA;16B").</li>
 *   <li>16-bit grey PNG: Pillow opens it as mode "I;16" ("I" before Pillow 10) and both
 *       conversions to RGB saturate, {@code min(v, 255)}, so most such images come out near-white.
 *       This is reproduced as is.</li>
 *   <li>4-component JPEG: the unconverted samples (YCCK first turned into CMYK with libjpeg's
 *       integer tables), inverted as Pillow's "CMYK;I" raw mode does for every CMYK JPEG, then
 *       Pillow's cmyk2rgb ({@code (255 - k) - c * (255 - k) / 255}, rounded as MULDIV255).</li>
 *   <li>JPEG with an ICC profile: the decoder's native samples, before TwelveMonkeys' conversion
 *       to sRGB.</li>
 * </ul>
 * Checked byte for byte against Pillow on generated files of every layout above
 * (src/test/resources/fixtures/pillow-decode).
 * Left out: EXIF orientation is not applied (Image.open does not apply it, and neither does the
 * original LLaVA code); embedded ICC profiles are ignored, as PIL ignores them; animated images
 * give their first frame. A JPEG that the decoder reports as truncated is rejected, as PIL rejects
 * it by default.
 */
public final class ImageDecoder {

    private static final String EXPECTED = "a PNG or JPEG image";

    private ImageDecoder() {}

    /** Reads file as PIL's {@code Image.open(file).convert("RGB")}; bad input throws naming the file. */
    public static RgbImage read(Path file) {
        if (!Files.exists(file)) {
            throw new IllegalArgumentException(file + ": no such file (expected " + EXPECTED + ")");
        }
        if (!Files.isRegularFile(file)) {
            throw new IllegalArgumentException(file + ": not a regular file (expected " + EXPECTED + ")");
        }
        long size;
        try {
            size = Files.size(file);
        } catch (IOException e) {
            throw new IllegalArgumentException(file + ": cannot read (" + e.getMessage() + ")", e);
        }
        if (size == 0) {
            throw new IllegalArgumentException(file + ": file is empty (expected " + EXPECTED + ")");
        }
        try (ImageInputStream in = ImageIO.createImageInputStream(file.toFile())) {
            if (in == null) {
                throw new IllegalArgumentException(file + ": cannot open an image stream (expected " + EXPECTED + ")");
            }
            Iterator<ImageReader> readers = ImageIO.getImageReaders(in);
            if (!readers.hasNext()) {
                throw new IllegalArgumentException(file + ": no image decoder recognises the file's header (expected "
                        + EXPECTED + ", file has " + size + " bytes)");
            }
            ImageReader reader = readers.next();
            try {
                reader.setInput(in, true, true);
                List<String> fatal = new ArrayList<>();
                reader.addIIOReadWarningListener(truncationListener(fatal));
                ImageReadParam param = reader.getDefaultReadParam();
                JpegHeader jpeg = "jpeg".equalsIgnoreCase(reader.getFormatName()) ? JpegHeader.read(file) : null;
                if (jpeg != null && jpeg.components() == 4) {
                    Raster samples = reader.readRaster(0, param);
                    if (!fatal.isEmpty()) {
                        throw new IllegalArgumentException(file + ": JPEG data is incomplete (" + fatal.get(0)
                                + "); expected a complete PNG or JPEG image");
                    }
                    return fourComponentJpegToRgb(samples, jpeg.adobeTransform() == JpegHeader.ADOBE_YCCK);
                }
                ImageTypeSpecifier raw = rawType(reader);
                if (raw != null) {
                    param.setDestinationType(raw);
                }
                BufferedImage img = reader.read(0, param);
                if (img == null) {
                    throw new IllegalArgumentException(file + ": the " + reader.getFormatName()
                            + " decoder returned no image (expected " + EXPECTED + ")");
                }
                if (!fatal.isEmpty()) {
                    throw new IllegalArgumentException(file + ": " + reader.getFormatName()
                            + " data is incomplete (" + fatal.get(0) + "); expected a complete PNG or JPEG image");
                }
                return toRgb(img, file.toString());
            } finally {
                reader.dispose();
            }
        } catch (IOException | RuntimeException e) {
            if (e instanceof IllegalArgumentException iae && iae.getMessage() != null
                    && iae.getMessage().startsWith(file.toString())) {
                throw iae;
            }
            throw new IllegalArgumentException(file + ": cannot decode image (expected " + EXPECTED + "): "
                    + describe(e), e);
        }
    }

    /** The exception and its root cause, which usually says what was wrong with the data. */
    private static String describe(Throwable e) {
        Throwable root = e;
        while (root.getCause() != null && root.getCause() != root) {
            root = root.getCause();
        }
        String s = e.getClass().getSimpleName() + ": " + e.getMessage();
        return root == e ? s : s + " (" + root.getClass().getSimpleName() + ": " + root.getMessage() + ")";
    }

    private static IIOReadWarningListener truncationListener(List<String> fatal) {
        return (source, warning) -> {
            // JPEG decoders report a truncated stream only as a warning and fill the rest with grey;
            // PIL raises "image file is truncated" instead.
            String w = warning == null ? "" : warning.toLowerCase(Locale.ROOT);
            if (w.contains("premature end") || w.contains("truncated")) {
                fatal.add(warning);
            }
        };
    }

    /**
     * The decoder's native layout, used as destination so that the samples arrive unconverted:
     * TwelveMonkeys otherwise converts JPEGs with an embedded ICC profile (e.g. Adobe RGB) or CMYK
     * data to sRGB, and PIL does neither.
     */
    private static ImageTypeSpecifier rawType(ImageReader reader) throws IOException {
        return reader.getRawImageType(0);
    }

    /**
     * Pillow's path for a 4-component JPEG: libjpeg turns YCCK into CMYK, Pillow reads the samples
     * as inverted CMYK ("CMYK;I", Adobe's convention, assumed for every CMYK JPEG) and cmyk2rgb
     * maps them to RGB. samples are the decoder's unconverted component values.
     */
    private static RgbImage fourComponentJpegToRgb(Raster samples, boolean ycck) {
        int w = samples.getWidth();
        int h = samples.getHeight();
        int[] px = new int[w * 4];
        byte[] out = new byte[Math.multiplyExact(Math.multiplyExact(w, h), 3)]; // (H, W, 3)
        int[] cmyk = new int[4];
        for (int y = 0; y < h; y++) {
            samples.getPixels(samples.getMinX(), samples.getMinY() + y, w, 1, px);
            for (int x = 0; x < w; x++) {
                int p = x * 4;
                if (ycck) {
                    LibjpegColor.ycckToCmyk(px[p], px[p + 1], px[p + 2], px[p + 3], cmyk);
                } else {
                    System.arraycopy(px, p, cmyk, 0, 4);
                }
                int k = 255 - cmyk[3]; // "CMYK;I": every stored sample is inverted
                int nk = 255 - k;
                int o = (y * w + x) * 3;
                out[o] = (byte) cmykChannel(255 - cmyk[0], nk);
                out[o + 1] = (byte) cmykChannel(255 - cmyk[1], nk);
                out[o + 2] = (byte) cmykChannel(255 - cmyk[2], nk);
            }
        }
        return new RgbImage(w, h, out);
    }

    /** Reduces a decoded image to 8-bit RGB the way Pillow's convert("RGB") does; source names it in errors. */
    public static RgbImage toRgb(BufferedImage img, String source) {
        int w = img.getWidth();
        int h = img.getHeight();
        ColorModel cm = img.getColorModel();
        Raster raster = img.getRaster();
        byte[] out = new byte[Math.multiplyExact(Math.multiplyExact(w, h), 3)]; // (H, W, 3)
        if (cm instanceof IndexColorModel icm) {
            int[] idx = new int[w];
            for (int y = 0; y < h; y++) {
                raster.getSamples(0, y, w, 1, 0, idx);
                for (int x = 0; x < w; x++) {
                    int o = (y * w + x) * 3;
                    out[o] = (byte) icm.getRed(idx[x]);
                    out[o + 1] = (byte) icm.getGreen(idx[x]);
                    out[o + 2] = (byte) icm.getBlue(idx[x]);
                }
            }
            return new RgbImage(w, h, out);
        }
        if (cm instanceof ComponentColorModel && !cm.isAlphaPremultiplied()) {
            int colors = cm.getNumColorComponents();
            int csType = cm.getColorSpace().getType();
            int bits = cm.getComponentSize(0);
            boolean alpha = cm.hasAlpha();
            int bands = raster.getNumBands();
            int[] px = new int[w * bands];
            if (colors == 1 && csType == ColorSpace.TYPE_GRAY) {
                for (int y = 0; y < h; y++) {
                    raster.getPixels(0, y, w, 1, px);
                    for (int x = 0; x < w; x++) {
                        int v = grayTo8(px[x * bands], bits, alpha);
                        int o = (y * w + x) * 3;
                        out[o] = (byte) v;
                        out[o + 1] = (byte) v;
                        out[o + 2] = (byte) v;
                    }
                }
                return new RgbImage(w, h, out);
            }
            if (colors == 3 && csType == ColorSpace.TYPE_RGB && (bits == 8 || bits == 16)) {
                int shift = bits - 8;
                for (int y = 0; y < h; y++) {
                    raster.getPixels(0, y, w, 1, px);
                    for (int x = 0; x < w; x++) {
                        int o = (y * w + x) * 3;
                        int p = x * bands;
                        out[o] = (byte) (px[p] >> shift);
                        out[o + 1] = (byte) (px[p + 1] >> shift);
                        out[o + 2] = (byte) (px[p + 2] >> shift);
                    }
                }
                return new RgbImage(w, h, out);
            }
            if (colors == 4 && csType == ColorSpace.TYPE_CMYK && bits == 8) {
                for (int y = 0; y < h; y++) {
                    raster.getPixels(0, y, w, 1, px);
                    for (int x = 0; x < w; x++) {
                        int p = x * bands;
                        int nk = 255 - px[p + 3];
                        int o = (y * w + x) * 3;
                        out[o] = (byte) cmykChannel(px[p], nk);
                        out[o + 1] = (byte) cmykChannel(px[p + 1], nk);
                        out[o + 2] = (byte) cmykChannel(px[p + 2], nk);
                    }
                }
                return new RgbImage(w, h, out);
            }
        }
        if (cm.getColorSpace().isCS_sRGB() && !cm.isAlphaPremultiplied()
                && (img.getType() == BufferedImage.TYPE_INT_RGB || img.getType() == BufferedImage.TYPE_INT_ARGB
                        || img.getType() == BufferedImage.TYPE_3BYTE_BGR || img.getType() == BufferedImage.TYPE_4BYTE_ABGR)) {
            // Packed sRGB layouts: getRGB returns the stored samples unchanged.
            for (int y = 0; y < h; y++) {
                for (int x = 0; x < w; x++) {
                    int argb = img.getRGB(x, y);
                    int o = (y * w + x) * 3;
                    out[o] = (byte) (argb >> 16);
                    out[o + 1] = (byte) (argb >> 8);
                    out[o + 2] = (byte) argb;
                }
            }
            return new RgbImage(w, h, out);
        }
        throw new IllegalArgumentException(source + ": unsupported pixel layout (colour model " + cm.getClass().getSimpleName()
                + ", colour space type " + cm.getColorSpace().getType() + ", " + cm.getNumComponents()
                + " components of " + cm.getComponentSize(0) + " bits); expected grey, palette, RGB or CMYK samples");
    }

    private static int grayTo8(int v, int bits, boolean withAlpha) {
        return switch (bits) {
            case 8 -> v;
            // Pillow: 16-bit grey+alpha unpacks the high byte; 16-bit grey ("I;16") saturates.
            case 16 -> withAlpha ? v >> 8 : Math.min(v, 255);
            case 1, 2, 4 -> v * 255 / ((1 << bits) - 1);
            default -> throw new IllegalArgumentException("unsupported grey bit depth " + bits);
        };
    }

    /** Pillow's cmyk2rgb for one channel: CLIP8(nk - MULDIV255(c, nk)). */
    private static int cmykChannel(int c, int nk) {
        int t = c * nk + 128;
        int mulDiv255 = ((t >> 8) + t) >> 8;
        int v = nk - mulDiv255;
        return v < 0 ? 0 : Math.min(v, 255);
    }
}
