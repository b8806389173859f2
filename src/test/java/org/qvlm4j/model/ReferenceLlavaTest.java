package org.qvlm4j.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import org.junit.jupiter.api.Test;
import org.qvlm4j.io.safetensors.SafeTensors;

/** Pins the float64 test reference to HF's outputs, so that it can judge the variant checkpoints. */
class ReferenceLlavaTest {
    static final double TOL = 1e-4;

    @Test
    void referenceMatchesHfFixture() {
        try (ReferenceLlava r = new ReferenceLlava(FixtureParityTest.DIR);
                SafeTensors ref = SafeTensors.open(FixtureParityTest.DIR.resolve("reference_forward.safetensors"))) {
            int[] ids = TestArrays.toInts(ref.get("input_ids").toLongArray());
            float[] pixels = ref.get("pixel_values").toFloatArray();
            TestArrays.assertClose(ReferenceLlava.flatten(r.visionHiddenState(pixels, 0)),
                    ref.get("vision_hidden_states_0").toFloatArray(), TOL, "vision_hidden_states_0");
            TestArrays.assertClose(ReferenceLlava.flatten(r.visionHiddenState(pixels, 2)),
                    ref.get("vision_hidden_states_last").toFloatArray(), TOL, "vision_hidden_states_last");
            TestArrays.assertClose(ReferenceLlava.flatten(r.imageFeatures(pixels)),
                    ref.get("image_features").toFloatArray(), TOL, "image_features");
            TestArrays.assertClose(ReferenceLlava.flatten(r.textHidden(ids, pixels)),
                    ref.get("text_hidden_states_last").toFloatArray(), TOL, "text_hidden_states_last");
            TestArrays.assertClose(ReferenceLlava.flatten(r.logits(ids, pixels)), ref.get("logits").toFloatArray(), TOL,
                    "logits");
            assertArrayEquals(TestArrays.toInts(ref.get("greedy_new_tokens").toLongArray()), r.greedy(ids, pixels, 8));
        }
    }
}
