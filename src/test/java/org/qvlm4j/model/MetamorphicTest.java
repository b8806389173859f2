package org.qvlm4j.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qvlm4j.io.config.LlavaConfig;
import org.qvlm4j.io.safetensors.SafeTensors;
import org.qvlm4j.kernels.DType;
import org.qvlm4j.model.TestCheckpoints.T;

/** Relations between models that must hold exactly or nearly: key layouts, GQA, sparse configs. */
class MetamorphicTest {
    /** Same arithmetic in a different head arrangement; only summation order may differ. */
    static final double GQA_TOL = 1e-5;

    static int[] ids;
    static float[] pixels;

    @BeforeAll
    static void input() {
        try (SafeTensors ref = SafeTensors.open(FixtureParityTest.DIR.resolve("reference_forward.safetensors"))) {
            ids = TestArrays.toInts(ref.get("input_ids").toLongArray());
            pixels = ref.get("pixel_values").toFloatArray();
        }
    }

    static float[] logits(Path dir) {
        try (LlavaModel m = LlavaModel.load(dir)) {
            return m.forward(ids, pixels);
        }
    }

    /** The transformers-5 name of a llava-hf hub key; keepVisionModel keeps {@code vision_model.}. */
    static String v5Name(String key, boolean keepVisionModel) {
        if (key.startsWith("language_model.model.")) {
            return "model.language_model." + key.substring("language_model.model.".length());
        }
        if (key.startsWith("language_model.lm_head.")) {
            return key.substring("language_model.".length());
        }
        if (key.startsWith("vision_tower.vision_model.") && !keepVisionModel) {
            return "model.vision_tower." + key.substring("vision_tower.vision_model.".length());
        }
        return "model." + key;
    }

    @Test
    void transformers5KeyLayoutsGiveIdenticalLogits(@TempDir Path tmp) {
        float[] expected = logits(FixtureParityTest.DIR);
        String cfg = TestCheckpoints.fixtureConfig().toString();
        for (boolean keep : new boolean[] {false, true}) {
            Map<String, T> renamed = new LinkedHashMap<>();
            TestCheckpoints.fixtureTensors().forEach((k, v) -> renamed.put(v5Name(k, keep), v));
            Path dir = TestCheckpoints.modelDir(tmp.resolve("v5-" + keep), cfg, renamed, DType.F32);
            assertArrayEquals(expected, logits(dir), "transformers-5 layout, vision_model kept: " + keep);
        }
    }

    @Test
    void gqaWithSharedKvHeadsEqualsMhaWithDuplicatedHeads(@TempDir Path tmp) {
        int hd = 8;
        int d = 32;
        SplittableRandom rnd = new SplittableRandom(7);
        Map<String, T> mha = TestCheckpoints.fixtureTensors();
        Map<String, T> gqa = TestCheckpoints.copy(mha);
        for (int i = 0; i < 2; i++) {
            for (String p : new String[] {"k_proj", "v_proj"}) {
                String key = VariantParityTest.LM + i + ".self_attn." + p + ".weight";
                float[] kv2 = TestCheckpoints.random(rnd, 2 * hd * d, 0.2); // (2*Hd, D)
                float[] kv4 = new float[4 * hd * d]; // heads 0,1 share kv head 0; heads 2,3 kv head 1
                for (int h = 0; h < 4; h++) {
                    System.arraycopy(kv2, (h / 2) * hd * d, kv4, h * hd * d, hd * d);
                }
                gqa.put(key, new T(new long[] {2 * hd, d}, kv2));
                mha.put(key, new T(new long[] {4 * hd, d}, kv4));
            }
        }
        ObjectNode gqaCfg = TestCheckpoints.fixtureConfig();
        VariantParityTest.text(gqaCfg).put("num_key_value_heads", 2);
        Path mhaDir = TestCheckpoints.modelDir(tmp.resolve("mha"), TestCheckpoints.fixtureConfig().toString(), mha,
                DType.F32);
        Path gqaDir = TestCheckpoints.modelDir(tmp.resolve("gqa"), gqaCfg.toString(), gqa, DType.F32);
        TestArrays.assertClose(logits(mhaDir), logits(gqaDir), GQA_TOL, "GQA vs duplicated MHA");
    }

    /** The fixture config with every key that equals its transformers default removed. */
    static ObjectNode sparseFixtureConfig() {
        ObjectNode c = TestCheckpoints.fixtureConfig();
        c.remove("multimodal_projector_bias");
        c.remove("projector_hidden_act");
        c.remove("tie_word_embeddings");
        c.remove("vision_feature_select_strategy");
        ObjectNode t = (ObjectNode) c.get("text_config");
        for (String k : new String[] {"attention_bias", "mlp_bias", "bos_token_id", "eos_token_id", "head_dim",
                "num_key_value_heads", "rms_norm_eps", "rope_parameters", "tie_word_embeddings", "model_type"}) {
            t.remove(k);
        }
        ObjectNode v = (ObjectNode) c.get("vision_config");
        for (String k : new String[] {"hidden_act", "layer_norm_eps", "num_channels", "model_type"}) {
            v.remove(k);
        }
        return c;
    }

    @Test
    void sparseConfigEqualsExplicitConfig(@TempDir Path tmp) {
        String sparse = sparseFixtureConfig().toString();
        LlavaConfig explicit = LlavaConfig.load(FixtureParityTest.DIR);
        assertEquals(explicit, LlavaConfig.parse(sparse, "sparse"));
        Path dir = TestCheckpoints.modelDir(tmp.resolve("sparse"), sparse, TestCheckpoints.fixtureTensors(), DType.F32);
        assertArrayEquals(logits(FixtureParityTest.DIR), logits(dir));
    }
}
