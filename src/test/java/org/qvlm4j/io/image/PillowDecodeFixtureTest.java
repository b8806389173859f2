package org.qvlm4j.io.image;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/** Decoding of unusual PNG/JPEG layouts against the bytes Pillow's convert("RGB") produced for them. */
class PillowDecodeFixtureTest {

    private static final Path DIR = Path.of("src/test/resources/fixtures/pillow-decode");
    /** PNG is lossless: every byte must agree. */
    private static final int PNG_MAX_LEVEL_DIFF = 0;
    /** Two libjpeg builds may round an IDCT or upsampling step differently by one level. */
    private static final int JPEG_MAX_LEVEL_DIFF = 1;
    private static final int CASES = 22;

    static Stream<String> images() throws IOException {
        try (Stream<Path> s = Files.list(DIR)) {
            return s.map(p -> p.getFileName().toString())
                    .filter(n -> n.endsWith(".png") || n.endsWith(".jpg"))
                    .sorted()
                    .toList()
                    .stream();
        }
    }

    @ParameterizedTest
    @MethodSource("images")
    void matchesPillow(String name) throws IOException {
        byte[] expected = Files.readAllBytes(DIR.resolve(name.substring(0, name.lastIndexOf('.')) + ".rgb"));
        RgbImage img = ImageDecoder.read(DIR.resolve(name));
        assertEquals(13, img.width());
        assertEquals(7, img.height());
        assertEquals(expected.length, img.rgb().length);
        int tolerance = name.endsWith(".png") ? PNG_MAX_LEVEL_DIFF : JPEG_MAX_LEVEL_DIFF;
        for (int i = 0; i < expected.length; i++) {
            int d = Math.abs((expected[i] & 0xFF) - (img.rgb()[i] & 0xFF));
            assertTrue(d <= tolerance, name + ": byte " + i + " differs by " + d);
        }
    }

    @Test
    void allCasesPresent() throws IOException {
        assertEquals(CASES, images().count());
    }
}
