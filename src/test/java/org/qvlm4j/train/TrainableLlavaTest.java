package org.qvlm4j.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.qvlm4j.io.config.Activation;
import org.qvlm4j.io.config.ClipVisionConfig;
import org.qvlm4j.io.config.LlamaTextConfig;
import org.qvlm4j.io.config.LlavaConfig;
import org.qvlm4j.io.safetensors.SafeTensorsWriter;
import org.qvlm4j.kernels.DType;
import org.qvlm4j.model.LlavaModel;
import org.qvlm4j.tensor.Tape;
import org.qvlm4j.tensor.Tensor;

/**
 * TrainableLlava against the inference runtime: a saved model loaded by {@link LlavaModel} gives
 * the same logits, for several architecture variants; save/load round trip; the documented
 * initialisation; strict loading.
 */
class TrainableLlavaTest {
    /** Logit difference allowed relative to the largest logit: two float32 implementations of the same graph. */
    static final double PARITY_REL_TOL = 1e-4;
    /** Amplitude of the random weights, large enough that every layer changes the logits. */
    static final double WEIGHT_AMP = 0.4;

    @TempDir
    Path tmp;

    static Stream<Arguments> variants() {
        LlavaConfig base = TinyModels.config();
        LlamaTextConfig t = base.textConfig();
        ClipVisionConfig v = base.visionConfig();
        LlamaTextConfig biased = new LlamaTextConfig(t.vocabSize(), t.hiddenSize(), t.intermediateSize(), 2, 4, 2, 6,
                Activation.GELU_TANH, 64, 1e-6, 500.0, true, true, 1, new int[] {2});
        ClipVisionConfig vision3 = new ClipVisionConfig(v.hiddenSize(), 24, 3, 4, 3, 12, 4, Activation.GELU_ERF, 1e-5, 16);
        return Stream.of(
                Arguments.of("base (GQA, last layer, default strategy)", base, TinyModels.PAD),
                Arguments.of("biases, head_dim 6, tied, full strategy, layer -2", new LlavaConfig(biased, vision3, 4,
                        Activation.GELU_TANH, LlavaConfig.FeatureSelectStrategy.FULL, -2, false, true, "float32"),
                        TrainableLlava.NO_PAD),
                Arguments.of("vision layer 0 (embeddings only)", new LlavaConfig(t, v, 4, Activation.SILU,
                        LlavaConfig.FeatureSelectStrategy.DEFAULT, 0, true, false, "float32"), TinyModels.PAD));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("variants")
    void runtimeLoadsTheSavedModelAndGivesTheSameLogits(String name, LlavaConfig cfg, int pad) {
        TrainableLlava m = TrainableLlava.initialize(cfg, pad, 7);
        TinyModels.randomise(m, 11, WEIGHT_AMP);
        Path dir = tmp.resolve("model");
        m.save(dir);
        SplittableRandom rng = new SplittableRandom(3);
        int F = cfg.imageSeqLength();
        int[] ids = new int[F + 9];
        ids[0] = 1;
        for (int i = 1; i < ids.length; i++) {
            ids[i] = 5 + rng.nextInt(cfg.textConfig().vocabSize() - 5);
        }
        int[] textIds = ids.clone();
        for (int i = 0; i < F; i++) {
            ids[3 + i] = cfg.imageTokenIndex();
        }
        float[] pixels = TinyModels.pixels(cfg, rng);
        try (LlavaModel runtime = LlavaModel.load(dir)) {
            assertClose(runtime.forward(ids, pixels), m.logits(Tape.disabled(), ids, pixels).data());
            assertClose(runtime.forward(textIds, null), m.logits(Tape.disabled(), textIds, null).data());
        }
    }

    private static void assertClose(float[] expected, float[] actual) {
        assertEquals(expected.length, actual.length);
        double max = 0;
        for (float e : expected) {
            max = Math.max(max, Math.abs(e));
        }
        assertTrue(max > 0.1, "logits should be far from zero, max " + max);
        for (int i = 0; i < expected.length; i++) {
            assertEquals(expected[i], actual[i], PARITY_REL_TOL * max, "logit " + i);
        }
    }

    @Test
    void saveThenLoadRestoresEveryParameterAndTheConfig() {
        TrainableLlava m = TrainableLlava.initialize(TinyModels.config(), TinyModels.PAD, 5);
        m.save(tmp.resolve("a"));
        TrainableLlava back = TrainableLlava.load(tmp.resolve("a"));
        assertEquals(List.of(), TrainableLlava.differingParameters(m, back));
        assertEquals(m.parameters().keySet(), back.parameters().keySet());
        assertEquals(TinyModels.PAD, back.padTokenId());
        assertEquals(TrainableLlava.configJson(m.config(), m.padTokenId()),
                TrainableLlava.configJson(back.config(), back.padTokenId()));
    }

    @Test
    void initialisationFollowsTheDocumentedSchemeAndTheSeed() {
        LlavaConfig cfg = TinyModels.shape().toConfig(TinyModels.VOCAB, TinyModels.IMAGE, 1, 2);
        TrainableLlava a = TrainableLlava.initialize(cfg, TinyModels.PAD, 1);
        TrainableLlava b = TrainableLlava.initialize(cfg, TinyModels.PAD, 1);
        TrainableLlava c = TrainableLlava.initialize(cfg, TinyModels.PAD, 2);
        assertEquals(List.of(), TrainableLlava.differingParameters(a, b));
        assertNotEquals(List.of(), TrainableLlava.differingParameters(a, c));
        double ss = 0;
        long n = 0;
        for (Tensor p : a.parameters().values()) {
            String name = p.name();
            if (name.endsWith(".bias")) {
                assertArrayEquals(new float[p.numel()], p.data(), name);
            } else if (p.rank() == 1 && !name.endsWith("class_embedding")) {
                for (float x : p.data()) {
                    assertEquals(1f, x, name);
                }
            } else {
                for (float x : p.data()) {
                    ss += (double) x * x;
                    n++;
                }
            }
        }
        float[] embed = a.parameters().get("language_model.model.embed_tokens.weight").data();
        int d = cfg.textConfig().hiddenSize();
        for (int i = 0; i < d; i++) {
            assertEquals(0f, embed[TinyModels.PAD * d + i], "padding row");
        }
        assertEquals(TrainableLlava.INIT_STD, Math.sqrt(ss / n), 0.1 * TrainableLlava.INIT_STD, "std of the normal init");
    }

    @Test
    void loadRejectsMissingAndMisshapenTensorsNamingThem() throws Exception {
        TrainableLlava m = TrainableLlava.initialize(TinyModels.config(), TinyModels.PAD, 5);
        Path dir = tmp.resolve("bad");
        m.save(dir);
        SafeTensorsWriter w = new SafeTensorsWriter();
        for (Tensor p : m.parameters().values()) {
            if (!p.name().equals("language_model.model.norm.weight")) {
                w.addFloats(p.name(), DType.F32, java.util.Arrays.stream(p.shape()).asLongStream().toArray(), p.data());
            }
        }
        w.write(dir.resolve("model.safetensors"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> TrainableLlava.load(dir));
        assertTrue(e.getMessage().contains("language_model.model.norm.weight"), e.getMessage());

        w = new SafeTensorsWriter();
        for (Tensor p : m.parameters().values()) {
            long[] shape = java.util.Arrays.stream(p.shape()).asLongStream().toArray();
            float[] data = p.data();
            if (p.name().equals("language_model.model.norm.weight")) {
                shape = new long[] {shape[0] + 1};
                data = new float[data.length + 1];
            }
            w.addFloats(p.name(), DType.F32, shape, data);
        }
        w.write(dir.resolve("model.safetensors"));
        e = assertThrows(IllegalArgumentException.class, () -> TrainableLlava.load(dir));
        assertTrue(e.getMessage().contains("language_model.model.norm.weight") && e.getMessage().contains("[16]")
                && e.getMessage().contains("[17]"), e.getMessage());
        assertTrue(Files.exists(dir.resolve("config.json")));
    }
}
