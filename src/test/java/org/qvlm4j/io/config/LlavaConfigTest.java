package org.qvlm4j.io.config;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Config parsing against transformers' defaults (LlamaConfig, CLIPVisionConfig, LlavaConfig) and
 * the spellings of 4.x and 5.x hub configs; malformed configs must name file, key and values.
 */
class LlavaConfigTest {

    @Test
    void fixtureConfig() {
        LlavaConfig c = LlavaConfig.load(Path.of("src/test/resources/fixtures/tiny-llava"));
        LlamaTextConfig t = c.textConfig();
        assertEquals(99, t.vocabSize());
        assertEquals(32, t.hiddenSize());
        assertEquals(8, t.headDim());
        assertEquals(Activation.GELU_ERF, t.hiddenAct());
        assertEquals(10000.0, t.ropeTheta());
        assertEquals(512, t.maxPositionEmbeddings());
        ClipVisionConfig v = c.visionConfig();
        assertEquals(8, v.imageSize());
        assertEquals(2, v.patchSize());
        assertEquals(16, v.numPatches());
        assertEquals(0, c.imageTokenIndex());
        assertEquals(-1, c.visionFeatureLayer());
        assertEquals(2, c.visionFeatureLayerIndex());
        assertEquals(16, c.imageSeqLength());
        assertEquals("float32", c.dtype());
    }

    /** The shape of llava-hf/llava-1.5-7b-hf's config.json: only non-default keys present (4.x spelling). */
    @Test
    void sparseLlava15HubConfigGetsHfDefaults() {
        String json = """
                {"architectures": ["LlavaForConditionalGeneration"], "ignore_index": -100, "image_token_index": 32000,
                 "model_type": "llava", "pad_token_id": 32001, "projector_hidden_act": "gelu",
                 "text_config": {"architectures": ["LlamaForCausalLM"], "max_position_embeddings": 4096,
                   "model_type": "llama", "rms_norm_eps": 1e-05, "torch_dtype": "float16", "vocab_size": 32064},
                 "tie_word_embeddings": false, "torch_dtype": "float16",
                 "vision_config": {"hidden_size": 1024, "image_size": 336, "intermediate_size": 4096,
                   "model_type": "clip_vision_model", "num_attention_heads": 16, "num_hidden_layers": 24,
                   "patch_size": 14, "projection_dim": 768, "vocab_size": 32000},
                 "vision_feature_layer": -2, "vision_feature_select_strategy": "default", "vocab_size": 32064}
                """;
        LlavaConfig c = LlavaConfig.parse(json, "llava-1.5-7b/config.json");
        LlamaTextConfig t = c.textConfig();
        assertEquals(new LlamaTextConfig(32064, 4096, 11008, 32, 32, 32, 128, Activation.SILU, 4096, 1e-5, 10000.0,
                false, false, 1, new int[] {2}), t);
        assertEquals(new ClipVisionConfig(1024, 4096, 24, 16, 3, 336, 14, Activation.QUICK_GELU, 1e-5, 768),
                c.visionConfig());
        assertEquals(576, c.imageSeqLength());
        assertEquals(23, c.visionFeatureLayerIndex());
        assertEquals(32000, c.imageTokenIndex());
        assertEquals(Activation.GELU_ERF, c.projectorHiddenAct());
        assertTrue(c.multimodalProjectorBias());
        assertFalse(c.tieWordEmbeddings());
        assertEquals("float16", c.dtype());
    }

    @Test
    void absentSubConfigsUseLlavaConfigDefaults() {
        LlavaConfig c = LlavaConfig.parse("{\"model_type\": \"llava\"}", "empty.json");
        assertEquals(new LlamaTextConfig(32000, 4096, 11008, 32, 32, 32, 128, Activation.SILU, 2048, 1e-6, 10000.0,
                false, false, 1, new int[] {2}), c.textConfig());
        assertEquals(new ClipVisionConfig(1024, 4096, 24, 16, 3, 336, 14, Activation.QUICK_GELU, 1e-5, 768),
                c.visionConfig());
        assertEquals(32000, c.imageTokenIndex());
        assertEquals(-2, c.visionFeatureLayer());
        assertEquals(LlavaConfig.FeatureSelectStrategy.DEFAULT, c.visionFeatureSelectStrategy());
        assertNull(c.dtype());
    }

    @Test
    void emptyVisionConfigUsesClipVisionConfigDefaults() {
        LlavaConfig c = LlavaConfig.parse("{\"vision_config\": {}, \"text_config\": {}}", "x.json");
        assertEquals(new ClipVisionConfig(768, 3072, 12, 12, 3, 224, 32, Activation.QUICK_GELU, 1e-5, 512),
                c.visionConfig());
    }

    @Test
    void transformers5Spellings() {
        String json = """
                {"image_token_id": 7, "dtype": "bfloat16",
                 "text_config": {"rope_parameters": {"rope_theta": 500000.0, "rope_type": "default"},
                   "num_key_value_heads": 8, "head_dim": 64, "tie_word_embeddings": true, "eos_token_id": [2, 9],
                   "hidden_act": "gelu_pytorch_tanh"},
                 "vision_feature_select_strategy": "full", "vision_feature_layer": 3,
                 "multimodal_projector_bias": false, "projector_hidden_act": "quick_gelu"}
                """;
        LlavaConfig c = LlavaConfig.parse(json, "v5.json");
        assertEquals(7, c.imageTokenIndex());
        assertEquals("bfloat16", c.dtype());
        assertEquals(500000.0, c.textConfig().ropeTheta());
        assertEquals(8, c.textConfig().numKeyValueHeads());
        assertEquals(64, c.textConfig().headDim());
        assertTrue(c.tieWordEmbeddings());
        assertArrayEquals(new int[] {2, 9}, c.textConfig().eosTokenIds());
        assertTrue(c.textConfig().isEos(9));
        assertEquals(Activation.GELU_TANH, c.textConfig().hiddenAct());
        assertEquals(LlavaConfig.FeatureSelectStrategy.FULL, c.visionFeatureSelectStrategy());
        assertEquals(577, c.imageSeqLength());
        assertEquals(3, c.visionFeatureLayerIndex());
        assertFalse(c.multimodalProjectorBias());
        assertEquals(Activation.QUICK_GELU, c.projectorHiddenAct());
    }

    @Test
    void topLevelTieOverridesTextConfig() {
        LlavaConfig c = LlavaConfig.parse(
                "{\"tie_word_embeddings\": false, \"text_config\": {\"tie_word_embeddings\": true}}", "x.json");
        assertFalse(c.tieWordEmbeddings());
    }

    @Test
    void gelUNewIsTheTanhApproximation() {
        LlavaConfig c = LlavaConfig.parse("{\"text_config\": {\"hidden_act\": \"gelu_new\"}}", "x.json");
        assertEquals(Activation.GELU_TANH, c.textConfig().hiddenAct());
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', textBlock = """
            {"text_config": {"hidden_size": "4096"}}           | text_config.hidden_size | an integer | string "4096"
            {"text_config": {"hidden_act": "relu"}}            | text_config.hidden_act  | one of     | "relu"
            {"vision_config": {"hidden_act": "tanh"}}          | vision_config.hidden_act | one of    | "tanh"
            {"projector_hidden_act": 3}                        | projector_hidden_act    | a string   | number 3
            {"vision_feature_layer": [-2, -5]}                 | vision_feature_layer    | not supported | [-2,-5]
            {"vision_feature_layer": 30}                       | vision_feature_layer    | -25 .. 24  | 30
            {"vision_feature_select_strategy": "cls"}          | vision_feature_select_strategy | "full" | "cls"
            {"text_config": {"model_type": "mistral"}}         | text_config.model_type  | "llama"    | "mistral"
            {"vision_config": {"model_type": "siglip_vision_model"}} | vision_config.model_type | clip_vision_model | siglip
            {"text_config": {"rope_scaling": {"rope_type": "linear", "factor": 2.0}}} | rope_type | "default" | "linear"
            {"text_config": {"num_attention_heads": 32, "num_key_value_heads": 5}} | num_key_value_heads | divide | 5
            {"text_config": []}                                | text_config             | an object  | array
            {"tie_word_embeddings": "yes"}                     | tie_word_embeddings     | a boolean  | "yes"
            {"model_type": "llava_next"}                       | model_type              | "llava"    | "llava_next"
            """)
    void badValuesNameFileKeyExpectedAndActual(String json, String key, String expected, String actual) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> LlavaConfig.parse(json, "/models/bad/config.json"));
        String m = e.getMessage();
        assertTrue(m.startsWith("/models/bad/config.json: "), m);
        assertTrue(m.contains(key), m);
        assertTrue(m.contains(expected), m);
        assertTrue(m.contains(actual), m);
    }

    @Test
    void invalidJsonNamesTheFile() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> LlavaConfig.parse("{\"text_config\": {", "/m/config.json"));
        assertTrue(e.getMessage().startsWith("/m/config.json: not valid JSON"), e.getMessage());
        IllegalArgumentException top = assertThrows(IllegalArgumentException.class,
                () -> LlavaConfig.parse("[1, 2]", "/m/config.json"));
        assertTrue(top.getMessage().contains("expected a JSON object"), top.getMessage());
    }

    @Test
    void missingFileNamesThePath() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> LlavaConfig.load(Path.of("does/not/exist")));
        assertTrue(e.getMessage().contains("does/not/exist"), e.getMessage());
    }
}
