package org.qvlm4j.io.image;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** Every Pillow convolution filter, down, up and per axis, against Image.resize output byte for byte. */
class PillowResizeFixtureTest {

    private static final Path DIR = Path.of("src/test/resources/fixtures/pillow-resize");
    private static final int IN_WIDTH = 37;
    private static final int IN_HEIGHT = 23;

    @ParameterizedTest
    @CsvSource({
        "LANCZOS", "BILINEAR", "BICUBIC", "BOX", "HAMMING"
    })
    void matchesPillowByteForByte(String filterName) throws IOException {
        RgbImage in = new RgbImage(IN_WIDTH, IN_HEIGHT, Files.readAllBytes(DIR.resolve("input.rgb")));
        PillowFilter filter = PillowFilter.valueOf(filterName);
        int[][] sizes = {{17, 11}, {60, 41}, {37, 60}, {5, 23}, {1, 1}, {36, 24}};
        for (int[] s : sizes) {
            byte[] expected = Files.readAllBytes(DIR.resolve(filterName + "_" + s[0] + "x" + s[1] + ".rgb"));
            RgbImage out = PillowResample.resize(in, s[0], s[1], filter);
            assertArrayEquals(expected, out.rgb(), filterName + " " + s[0] + "x" + s[1]);
        }
    }
}
