package org.qvlm4j.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.function.BiConsumer;
import java.util.function.Consumer;
import java.util.stream.Stream;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.qvlm4j.io.safetensors.SafeTensors;
import org.qvlm4j.kernels.DType;
import org.qvlm4j.model.TestCheckpoints.T;

/**
 * The runtime against the float64 {@link ReferenceLlava} on checkpoints derived from the fixture:
 * each variant changes one architectural option (new random weights where shapes change, seeded).
 */
class VariantParityTest {
    static final double TOL = 1e-4;
    static final int GREEDY_TOKENS = 4;
    static final String LM = "language_model.model.layers.";

    record Variant(String name, Consumer<ObjectNode> config, BiConsumer<Map<String, T>, SplittableRandom> tensors,
            DType dtype) {
        @Override
        public String toString() {
            return name;
        }
    }

    static ObjectNode text(ObjectNode c) {
        return (ObjectNode) c.get("text_config");
    }

    static void replace(Map<String, T> m, String name, SplittableRandom rnd, long... shape) {
        int n = 1;
        for (long d : shape) {
            n *= (int) d;
        }
        m.put(name, new T(shape, TestCheckpoints.random(rnd, n, 0.2)));
    }

    static Stream<Variant> variants() {
        Consumer<ObjectNode> none = c -> { };
        BiConsumer<Map<String, T>, SplittableRandom> same = (m, r) -> { };
        return Stream.of(
                new Variant("gqa with 2 kv heads", c -> text(c).put("num_key_value_heads", 2), (m, r) -> {
                    for (int i = 0; i < 2; i++) {
                        replace(m, LM + i + ".self_attn.k_proj.weight", r, 16, 32);
                        replace(m, LM + i + ".self_attn.v_proj.weight", r, 16, 32);
                    }
                }, DType.F32),
                new Variant("head_dim 16 unequal to hidden/heads", c -> text(c).put("head_dim", 16), (m, r) -> {
                    for (int i = 0; i < 2; i++) {
                        for (String p : List.of("q_proj", "k_proj", "v_proj")) {
                            replace(m, LM + i + ".self_attn." + p + ".weight", r, 64, 32);
                        }
                        replace(m, LM + i + ".self_attn.o_proj.weight", r, 32, 64);
                    }
                }, DType.F32),
                new Variant("vision_feature_layer -2", c -> c.put("vision_feature_layer", -2), same, DType.F32),
                new Variant("vision_feature_layer 0", c -> c.put("vision_feature_layer", 0), same, DType.F32),
                new Variant("full strategy keeps CLS", c -> c.put("vision_feature_select_strategy", "full"), same,
                        DType.F32),
                new Variant("silu text activation", c -> text(c).put("hidden_act", "silu"), same, DType.F32),
                new Variant("gelu_pytorch_tanh projector, gelu vision", c -> {
                    c.put("projector_hidden_act", "gelu_pytorch_tanh");
                    ((ObjectNode) c.get("vision_config")).put("hidden_act", "gelu");
                }, same, DType.F32),
                new Variant("rope_theta 500000 in 4.x spelling", c -> {
                    text(c).remove("rope_parameters");
                    text(c).put("rope_theta", 500000.0);
                }, same, DType.F32),
                new Variant("attention and mlp biases, no projector bias", c -> {
                    text(c).put("attention_bias", true).put("mlp_bias", true);
                    c.put("multimodal_projector_bias", false);
                }, (m, r) -> {
                    m.remove("multi_modal_projector.linear_1.bias");
                    m.remove("multi_modal_projector.linear_2.bias");
                    for (int i = 0; i < 2; i++) {
                        for (String p : List.of("q_proj", "k_proj", "v_proj", "o_proj")) {
                            replace(m, LM + i + ".self_attn." + p + ".bias", r, 32);
                        }
                        replace(m, LM + i + ".mlp.gate_proj.bias", r, 37);
                        replace(m, LM + i + ".mlp.up_proj.bias", r, 37);
                        replace(m, LM + i + ".mlp.down_proj.bias", r, 32);
                    }
                }, DType.F32),
                new Variant("tied word embeddings", c -> c.put("tie_word_embeddings", true),
                        (m, r) -> m.remove("language_model.lm_head.weight"), DType.F32),
                new Variant("bf16 weights", none, same, DType.BF16),
                new Variant("f16 weights", none, same, DType.F16));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("variants")
    void runtimeMatchesReference(Variant v, @TempDir Path tmp) {
        ObjectNode cfg = TestCheckpoints.fixtureConfig();
        v.config().accept(cfg);
        Map<String, T> tensors = TestCheckpoints.fixtureTensors();
        v.tensors().accept(tensors, new SplittableRandom(v.name().hashCode()));
        Path dir = TestCheckpoints.modelDir(tmp.resolve("model"), cfg.toString(), tensors, v.dtype());
        float[] pixels;
        try (SafeTensors ref = SafeTensors.open(FixtureParityTest.DIR.resolve("reference_forward.safetensors"))) {
            pixels = ref.get("pixel_values").toFloatArray();
        }
        try (LlavaModel model = LlavaModel.load(dir); ReferenceLlava ref = new ReferenceLlava(dir)) {
            int[] ids = prompt(model.config().imageTokenIndex(), model.config().imageSeqLength());
            TestArrays.assertClose(ReferenceLlava.flatten(ref.imageFeatures(pixels)), model.imageFeatures(pixels), TOL,
                    v + ": image features");
            TestArrays.assertClose(ReferenceLlava.flatten(ref.logits(ids, pixels)), model.forward(ids, pixels), TOL,
                    v + ": logits");
            assertArrayEquals(ref.greedy(ids, pixels, GREEDY_TOKENS),
                    new Generator(model).generate(ids, pixels, GenerationConfig.greedy(GREEDY_TOKENS), null),
                    v + ": greedy tokens");
        }
    }

    /** BOS, the image tokens, then four text tokens, like the fixture's prompt. */
    static int[] prompt(int imageToken, int imageTokens) {
        int[] ids = new int[1 + imageTokens + 4];
        ids[0] = 1;
        for (int i = 0; i < imageTokens; i++) {
            ids[1 + i] = imageToken;
        }
        for (int i = 0; i < 4; i++) {
            ids[1 + imageTokens + i] = 5 + i;
        }
        return ids;
    }
}
