package org.qvlm4j.io.image;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.qvlm4j.io.safetensors.SafeTensors;

/**
 * llava-1.5 preprocessing of three real images against HF transformers' CLIPImageProcessor (PIL
 * backend) plus LLaVA's pad-to-square, from a strided subset and three full rows of the reference.
 */
class ClipImageProcessorFixtureTest {

    private static final Path FIXTURES = Path.of("src/test/resources/fixtures");
    /** PNG decoding is lossless and the resampler is a bit-exact port: only float32 rounding may differ. */
    private static final double PNG_TOLERANCE = 1e-5;
    /** One 8-bit level after normalisation by the smallest CLIP std, for JPEG decoders that disagree by one level. */
    private static final double JPEG_MAX_TOLERANCE = 1.0 / 255 / 0.26130258 + 1e-5;
    /** A decoder that is off by one level on a few pixels keeps the mean error far below one level. */
    private static final double JPEG_MEAN_TOLERANCE = 1e-3;
    private static final int SIDE = 336;

    private static SafeTensors reference;
    private static int stride;
    private static int[] rows;

    @BeforeAll
    static void open() {
        reference = SafeTensors.open(FIXTURES.resolve("clip336-preprocess-reduced.safetensors"));
        stride = Integer.parseInt(reference.metadata().get("stride"));
        rows = Arrays.stream(reference.metadata().get("rows").split(",")).mapToInt(Integer::parseInt).toArray();
    }

    @AfterAll
    static void close() {
        reference.close();
    }

    @ParameterizedTest
    @CsvSource({
        "skimage_chelsea.png, crop", "skimage_chelsea.png, pad",
        "skimage_coffee.png, crop", "skimage_coffee.png, pad",
        "skimage_rocket.jpg, crop", "skimage_rocket.jpg, pad"
    })
    void matchesHfReference(String image, String kind) {
        PadMode mode = kind.equals("pad") ? PadMode.PAD_TO_SQUARE : PadMode.NONE;
        PixelValues pv = ClipImageProcessor.llava15(mode).preprocess(FIXTURES.resolve("images").resolve(image));
        assertEquals(3, pv.channels());
        assertEquals(SIDE, pv.height());
        assertEquals(SIDE, pv.width());

        String key = image.substring(0, image.indexOf('.')) + "." + kind;
        float[] strided = reference.get(key + ".strided").toFloatArray();
        float[] refRows = reference.get(key + ".rows").toFloatArray(); // (3, rows, 336)
        float[] got = pv.data(); // (3, 336, 336)
        double maxErr = 0;
        double sumErr = 0;
        int n = 0;
        for (int i = 0; i < strided.length; i++) {
            double d = Math.abs(got[i * stride] - strided[i]);
            maxErr = Math.max(maxErr, d);
            sumErr += d;
            n++;
        }
        for (int c = 0; c < 3; c++) {
            for (int r = 0; r < rows.length; r++) {
                for (int x = 0; x < SIDE; x++) {
                    double d = Math.abs(pv.get(c, rows[r], x) - refRows[(c * rows.length + r) * SIDE + x]);
                    maxErr = Math.max(maxErr, d);
                    sumErr += d;
                    n++;
                }
            }
        }
        if (image.endsWith(".png")) {
            assertTrue(maxErr <= PNG_TOLERANCE, key + ": max abs error " + maxErr);
        } else {
            assertTrue(maxErr <= JPEG_MAX_TOLERANCE, key + ": max abs error " + maxErr);
            assertTrue(sumErr / n <= JPEG_MEAN_TOLERANCE, key + ": mean abs error " + sumErr / n);
        }
    }
}
