package org.qvlm4j.io.image;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** preprocessor_config.json parsing: the llava-1.5 file, HF defaults, custom sizes and bad values. */
class ClipPreprocessConfigTest {

    /** The preprocessor_config.json published with llava-hf/llava-1.5-7b-hf. */
    private static final String LLAVA15_JSON = """
            {
              "crop_size": {"height": 336, "width": 336},
              "do_center_crop": true,
              "do_convert_rgb": true,
              "do_normalize": true,
              "do_rescale": true,
              "do_resize": true,
              "image_mean": [0.48145466, 0.4578275, 0.40821073],
              "image_processor_type": "CLIPImageProcessor",
              "image_std": [0.26862954, 0.26130258, 0.27577711],
              "processor_class": "LlavaProcessor",
              "resample": 3,
              "rescale_factor": 0.00392156862745098,
              "size": {"shortest_edge": 336}
            }
            """;

    @TempDir
    Path dir;

    private Path write(String json) throws IOException {
        return Files.writeString(dir.resolve(ClipPreprocessConfig.FILE_NAME), json);
    }

    private static void assertLlava15(ClipPreprocessConfig c) {
        assertTrue(c.doResize());
        assertEquals(336, c.resizeShortestEdge());
        assertEquals(PillowFilter.BICUBIC, c.resample());
        assertTrue(c.doCenterCrop());
        assertEquals(336, c.cropHeight());
        assertEquals(336, c.cropWidth());
        assertTrue(c.doRescale());
        assertEquals(1.0 / 255, c.rescaleFactor(), 1e-18);
        assertTrue(c.doNormalize());
        assertArrayEquals(new double[] {0.48145466, 0.4578275, 0.40821073}, c.imageMean());
        assertArrayEquals(new double[] {0.26862954, 0.26130258, 0.27577711}, c.imageStd());
    }

    @Test
    void squareJsonReadsBackAsTheSquareClipSettings() throws IOException {
        ClipPreprocessConfig c = ClipPreprocessConfig.load(write(ClipPreprocessConfig.squareJson(48)));
        assertEquals(48, c.resizeShortestEdge());
        assertEquals(48, c.cropHeight());
        assertEquals(48, c.cropWidth());
        assertEquals(PillowFilter.BICUBIC, c.resample());
        assertEquals(1.0 / 255, c.rescaleFactor());
        assertTrue(c.doResize() && c.doCenterCrop() && c.doRescale() && c.doNormalize());
        assertArrayEquals(ClipPreprocessConfig.CLIP_MEAN, c.imageMean());
        assertArrayEquals(ClipPreprocessConfig.CLIP_STD, c.imageStd());
    }

    @Test
    void missingFileGivesLlava15() {
        assertLlava15(ClipPreprocessConfig.forModelDir(dir));
        assertLlava15(ClipPreprocessConfig.llava15());
    }

    @Test
    void llava15FileParses() throws IOException {
        write(LLAVA15_JSON);
        assertLlava15(ClipPreprocessConfig.forModelDir(dir));
    }

    @Test
    void absentKeysTakeHfClassDefaults() throws IOException {
        ClipPreprocessConfig c = ClipPreprocessConfig.load(write("{}"));
        assertEquals(224, c.resizeShortestEdge());
        assertEquals(224, c.cropHeight());
        assertEquals(224, c.cropWidth());
        assertEquals(PillowFilter.BICUBIC, c.resample());
        assertArrayEquals(ClipPreprocessConfig.CLIP_MEAN, c.imageMean());
    }

    @Test
    void intSizesAndExactResize() throws IOException {
        ClipPreprocessConfig c = ClipPreprocessConfig.load(write("{\"size\": 448, \"crop_size\": 400, \"resample\": 2}"));
        assertEquals(448, c.resizeShortestEdge());
        assertEquals(400, c.cropHeight());
        assertEquals(400, c.cropWidth());
        assertEquals(PillowFilter.BILINEAR, c.resample());

        ClipPreprocessConfig exact = ClipPreprocessConfig.load(write(
                "{\"size\": {\"height\": 300, \"width\": 200}, \"crop_size\": {\"height\": 100, \"width\": 150},"
                        + " \"do_normalize\": false, \"image_mean\": 0.5, \"do_rescale\": false}"));
        assertEquals(0, exact.resizeShortestEdge());
        assertEquals(300, exact.resizeHeight());
        assertEquals(200, exact.resizeWidth());
        assertEquals(100, exact.cropHeight());
        assertEquals(150, exact.cropWidth());
        assertFalse(exact.doNormalize());
        assertFalse(exact.doRescale());
        assertArrayEquals(new double[] {0.5, 0.5, 0.5}, exact.imageMean());
    }

    @Test
    void nullMeansAbsent() throws IOException {
        assertEquals(224, ClipPreprocessConfig.load(write("{\"size\": null}")).resizeShortestEdge());
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
        "{\"size\": \"336\"}|size",
        "{\"size\": {\"shortest_edge\": -1}}|size.shortest_edge",
        "{\"size\": {\"shortest_edge\": 3.5}}|size.shortest_edge",
        "{\"size\": {\"longest_edge\": 336}}|size",
        "{\"crop_size\": 0}|crop_size",
        "{\"crop_size\": {\"height\": 336}}|crop_size",
        "{\"resample\": 0}|resample",
        "{\"resample\": \"bicubic\"}|resample",
        "{\"do_resize\": \"yes\"}|do_resize",
        "{\"do_center_crop\": 1}|do_center_crop",
        "{\"rescale_factor\": \"1/255\"}|rescale_factor",
        "{\"rescale_factor\": 0}|rescale_factor",
        "{\"image_mean\": [0.5, 0.5]}|image_mean",
        "{\"image_mean\": [0.5, \"a\", 0.5]}|image_mean",
        "{\"image_std\": [0.5, 0, 0.5]}|image_std"
    })
    void badValuesNameFileAndKey(String json, String key) throws IOException {
        Path f = write(json);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ClipPreprocessConfig.load(f));
        assertTrue(e.getMessage().contains(f.toString()), e.getMessage());
        assertTrue(e.getMessage().contains("'" + key + "'"), e.getMessage());
    }

    @Test
    void notJsonOrNotAnObject() throws IOException {
        Path broken = write("{\"size\": ");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ClipPreprocessConfig.load(broken));
        assertTrue(e.getMessage().contains(broken.toString()), e.getMessage());
        Path array = write("[1, 2]");
        e = assertThrows(IllegalArgumentException.class, () -> ClipPreprocessConfig.load(array));
        assertTrue(e.getMessage().contains("JSON object"), e.getMessage());
    }
}
