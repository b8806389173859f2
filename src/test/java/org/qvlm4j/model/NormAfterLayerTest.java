package org.qvlm4j.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.qvlm4j.io.safetensors.SafeTensors;

/**
 * {@link LlamaModel#normAfterLayer} against what a full forward computes from a layer's output: the
 * next layer's q_proj input (its input_layernorm) and, after the last layer, the final hidden states.
 * The norm vectors are set to distinct values first, so taking the wrong one shows.
 */
class NormAfterLayerTest {

    @Test
    void normsAsTheNextReaderSeesThem() {
        try (LlavaModel model = LlavaModel.load(FixtureParityTest.DIR);
             SafeTensors ref = SafeTensors.open(FixtureParityTest.DIR.resolve("reference_forward.safetensors"))) {
            int[] ids = TestArrays.toInts(ref.get("input_ids").toLongArray());
            float[] pixels = ref.get("pixel_values").toFloatArray();
            LlamaModel lm = model.language();
            int layers = lm.layers().size();
            int d = lm.config().hiddenSize();
            for (int k = 0; k < layers; k++) {
                float[] in = lm.layers().get(k).normVector("input_layernorm.weight");
                float[] post = lm.layers().get(k).normVector("post_attention_layernorm.weight");
                for (int c = 0; c < d; c++) {
                    in[c] = 0.5f + 0.03f * ((c * 7 + k) % 11);
                    post[c] = 1.5f - 0.02f * ((c * 5 + k) % 13);
                }
            }
            Map<String, float[]> seen = new HashMap<>();
            model.setActivationTap((site, data, rows, cols) -> seen.putIfAbsent(site, Arrays.copyOf(data, rows * cols)));
            float[] last;
            try {
                last = model.hiddenStates(ids, pixels);
            } finally {
                model.setActivationTap(null);
            }
            int T = last.length / d;
            for (int k = 0; k < layers; k++) {
                float[] out = new float[T * d];
                lm.normAfterLayer(k, seen.get("llm.layers." + k + ".out"), out, T);
                float[] expected = k + 1 < layers ? seen.get("llm.layers." + (k + 1) + ".self_attn.q_proj.in") : last;
                assertArrayEquals(expected, out, "layer " + k);
            }
            assertEquals(layers, lm.layers().size());
            assertThrows(IllegalArgumentException.class, () -> lm.normAfterLayer(layers, last, new float[last.length], T));
        }
    }
}
