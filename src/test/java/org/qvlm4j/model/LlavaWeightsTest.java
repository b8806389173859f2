package org.qvlm4j.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.qvlm4j.kernels.DType;
import org.qvlm4j.model.TestCheckpoints.T;

/** Key translation and strict validation of checkpoints. */
class LlavaWeightsTest {

    @ParameterizedTest
    @CsvSource({
        "vision_tower.vision_model.embeddings.class_embedding, vision.embeddings.class_embedding",
        "vision_tower.vision_model.encoder.layers.3.self_attn.q_proj.weight, vision.layers.3.self_attn.q_proj.weight",
        "vision_tower.vision_model.pre_layrnorm.bias, vision.pre_layrnorm.bias",
        "model.vision_tower.encoder.layers.0.mlp.fc1.bias, vision.layers.0.mlp.fc1.bias",
        "model.vision_tower.vision_model.post_layernorm.weight, vision.post_layernorm.weight",
        "vision_tower.embeddings.patch_embedding.weight, vision.embeddings.patch_embedding.weight",
        "multi_modal_projector.linear_1.weight, projector.linear_1.weight",
        "model.multi_modal_projector.linear_2.bias, projector.linear_2.bias",
        "language_model.model.layers.0.mlp.down_proj.weight, llm.layers.0.mlp.down_proj.weight",
        "model.language_model.layers.1.self_attn.o_proj.weight, llm.layers.1.self_attn.o_proj.weight",
        "language_model.model.embed_tokens.weight, llm.embed_tokens.weight",
        "model.language_model.norm.weight, llm.norm.weight",
        "language_model.lm_head.weight, lm_head.weight",
        "lm_head.weight, lm_head.weight"
    })
    void translatesBothLayouts(String hf, String canonical) {
        assertEquals(canonical, LlavaWeights.canonicalName(hf));
    }

    @ParameterizedTest
    @CsvSource({"model.lm_head.weight", "image_newline", "model.embed_tokens.weight", "language_model.layers.0.x"})
    void unknownKeysHaveNoCanonicalName(String key) {
        assertNull(LlavaWeights.canonicalName(key));
    }

    static IllegalArgumentException loadFails(Path dir, Map<String, T> tensors) {
        Path d = TestCheckpoints.modelDir(dir, TestCheckpoints.fixtureConfig().toString(), tensors, DType.F32);
        return assertThrows(IllegalArgumentException.class, () -> LlavaModel.load(d).close());
    }

    @Test
    void missingTensorIsNamedWithItsShape(@TempDir Path tmp) {
        Map<String, T> m = TestCheckpoints.fixtureTensors();
        m.remove("language_model.model.layers.1.mlp.up_proj.weight");
        String msg = loadFails(tmp, m).getMessage();
        assertTrue(msg.contains("missing") && msg.contains("language_model.model.layers.1.mlp.up_proj.weight [37, 32]"),
                msg);
    }

    @Test
    void unexpectedTensorIsNamed(@TempDir Path tmp) {
        Map<String, T> m = TestCheckpoints.fixtureTensors();
        m.put("language_model.model.layers.2.mlp.up_proj.weight", new T(new long[] {37, 32}, new float[37 * 32]));
        String msg = loadFails(tmp.resolve("a"), m).getMessage();
        assertTrue(msg.contains("unexpected tensor 'language_model.model.layers.2.mlp.up_proj.weight'"), msg);
        Map<String, T> n = TestCheckpoints.fixtureTensors();
        n.put("image_newline", new T(new long[] {32}, new float[32]));
        String msg2 = loadFails(tmp.resolve("b"), n).getMessage();
        assertTrue(msg2.contains("unexpected tensor 'image_newline'"), msg2);
    }

    @Test
    void misShapedTensorNamesExpectedAndActual(@TempDir Path tmp) {
        Map<String, T> m = TestCheckpoints.fixtureTensors();
        m.put("language_model.model.layers.0.self_attn.k_proj.weight", new T(new long[] {16, 32}, new float[16 * 32]));
        String msg = loadFails(tmp, m).getMessage();
        assertTrue(msg.contains("'language_model.model.layers.0.self_attn.k_proj.weight' expected shape [32, 32], got [16, 32]"),
                msg);
    }

    @Test
    void mixedLayoutsNamingOneTensorTwiceAreRejected(@TempDir Path tmp) {
        Map<String, T> m = TestCheckpoints.fixtureTensors();
        m.put("model.language_model.norm.weight", m.get("language_model.model.norm.weight").copy());
        String msg = loadFails(tmp, m).getMessage();
        assertTrue(msg.contains("'language_model.model.norm.weight'") && msg.contains("'model.language_model.norm.weight'"),
                msg);
    }

    @Test
    void postLayernormIsOptional(@TempDir Path tmp) {
        Map<String, T> m = TestCheckpoints.fixtureTensors();
        m.remove("vision_tower.vision_model.post_layernorm.weight");
        m.remove("vision_tower.vision_model.post_layernorm.bias");
        Path d = TestCheckpoints.modelDir(tmp, TestCheckpoints.fixtureConfig().toString(), m, DType.F32);
        try (LlavaModel a = LlavaModel.load(d); LlavaModel b = LlavaModel.load(FixtureParityTest.DIR)) {
            int[] ids = {1, 5, 6};
            org.junit.jupiter.api.Assertions.assertArrayEquals(b.forward(ids, null), a.forward(ids, null));
        }
    }

    @Test
    void weightsStayMappedInTheirStoredDtype(@TempDir Path tmp) {
        Path d = TestCheckpoints.modelDir(tmp, TestCheckpoints.fixtureConfig().toString(),
                TestCheckpoints.fixtureTensors(), DType.BF16);
        try (LlavaModel m = LlavaModel.load(d)) {
            for (Linear l : m.linears()) {
                assertEquals(DType.BF16, l.weight().dtype(), l.name());
                assertTrue(l.weight().data().isNative(), l.name() + " should be a slice of the mapped file");
            }
            assertEquals(1 + 2 * 6 + 2 + 2 * 7 + 1, m.linears().size());
        }
    }

    @Test
    void replaceWeightChecksTheShape() {
        try (LlavaModel m = LlavaModel.load(FixtureParityTest.DIR)) {
            Linear l = m.linears().get(1);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> l.replaceWeight(org.qvlm4j.kernels.WeightMatrix.ofFloats(new float[6], 2, 3)));
            assertTrue(e.getMessage().contains(l.name()) && e.getMessage().contains("(2, 3)")
                    && e.getMessage().contains("(32, 32)"), e.getMessage());
        }
    }
}
