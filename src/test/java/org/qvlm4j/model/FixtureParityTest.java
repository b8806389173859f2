package org.qvlm4j.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.file.Path;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.qvlm4j.io.safetensors.SafeTensors;

/** The runtime against HF transformers' outputs for the tiny LLaVA fixture. */
class FixtureParityTest {
    static final Path DIR = Path.of("src/test/resources/fixtures/tiny-llava");
    /** Absolute tolerance of float32 runtime vs float32 PyTorch on the tiny model. */
    static final double TOL = 1e-4;

    static LlavaModel model;
    static SafeTensors ref;
    static int[] ids;
    static float[] pixels;

    @BeforeAll
    static void load() {
        model = LlavaModel.load(DIR);
        ref = SafeTensors.open(DIR.resolve("reference_forward.safetensors"));
        ids = TestArrays.toInts(ref.get("input_ids").toLongArray());
        pixels = ref.get("pixel_values").toFloatArray();
    }

    @AfterAll
    static void close() {
        model.close();
        ref.close();
    }

    @Test
    void visionHiddenStatesMatchHf() {
        TestArrays.assertClose(ref.get("vision_hidden_states_0").toFloatArray(),
                model.vision().hiddenState(pixels, 0, null), TOL, "vision_hidden_states_0");
        TestArrays.assertClose(ref.get("vision_hidden_states_last").toFloatArray(),
                model.vision().hiddenState(pixels, 2, null), TOL, "vision_hidden_states_last");
    }

    @Test
    void imageFeaturesMatchHf() {
        TestArrays.assertClose(ref.get("image_features").toFloatArray(), model.imageFeatures(pixels), TOL,
                "image_features");
    }

    @Test
    void hiddenStatesAndLogitsMatchHf() {
        TestArrays.assertClose(ref.get("text_hidden_states_last").toFloatArray(), model.hiddenStates(ids, pixels), TOL,
                "text_hidden_states_last");
        TestArrays.assertClose(ref.get("logits").toFloatArray(), model.forward(ids, pixels), TOL, "logits");
    }

    @Test
    void greedyGenerationMatchesHf() {
        int[] expected = TestArrays.toInts(ref.get("greedy_new_tokens").toLongArray());
        int[] streamed = new int[expected.length];
        int[] count = {0};
        int[] got = new Generator(model).generate(ids, pixels, GenerationConfig.greedy(expected.length),
                (token, index) -> {
                    assertEquals(count[0], index);
                    streamed[count[0]++] = token;
                });
        assertArrayEquals(expected, got);
        assertArrayEquals(expected, streamed);
    }
}
