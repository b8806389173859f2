package org.qvlm4j.bench;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qvlm4j.io.config.LlavaConfig;
import org.qvlm4j.io.text.LlavaTokenizer;
import org.qvlm4j.model.LlavaModel;

/** The benchmark's prompt (the model's own tokenizer and preprocessing, or synthetic input) and one in-process measurement. */
class ModelBenchTest {
    private static final int IMAGE_TOKENS = 16;
    private static final int IMAGE_SIZE = 8;
    private static final int VOCAB = 99;
    private static final int BOS = 1;

    private static ModelBench.Options options(long seed, int decode) {
        return new ModelBench.Options(5, decode, 1, 0, seed, ModelBench.DEFAULT_PROMPT, null);
    }

    private static int count(int[] ids, int id) {
        return (int) Arrays.stream(ids).filter(i -> i == id).count();
    }

    @Test
    void tokenizedPromptHoldsTheQuestionAndOneRunOfImageTokens() {
        LlavaConfig cfg = LlavaConfig.load(BenchFixtures.TINY);
        ModelBench.Prompt p = ModelBench.prompt(BenchFixtures.TINY, cfg, options(3, 1));
        int[] ids = p.ids();
        assertEquals(BOS, ids[0]);
        int first = Arrays.stream(ids).boxed().toList().indexOf(cfg.imageTokenIndex());
        assertEquals(IMAGE_TOKENS, count(ids, cfg.imageTokenIndex()));
        for (int i = first; i < first + IMAGE_TOKENS; i++) {
            assertEquals(cfg.imageTokenIndex(), ids[i], "image tokens form one run");
        }
        long[] text = Arrays.stream(ids).filter(i -> i != cfg.imageTokenIndex()).asLongStream().toArray();
        try (LlavaTokenizer tok = LlavaTokenizer.load(BenchFixtures.TINY)) {
            String decoded = tok.decode(text, true);
            assertTrue(decoded.contains(ModelBench.DEFAULT_PROMPT), decoded);
        }
        assertEquals(3 * IMAGE_SIZE * IMAGE_SIZE, p.pixels().length);
        assertTrue(p.promptSource().contains("tokenizer.json") && p.imageSource().contains("preprocessor_config.json"));
        // the seed changes the random image, not the tokenized prompt
        ModelBench.Prompt again = ModelBench.prompt(BenchFixtures.TINY, cfg, options(3, 1));
        ModelBench.Prompt other = ModelBench.prompt(BenchFixtures.TINY, cfg, options(4, 1));
        assertArrayEquals(p.pixels(), again.pixels());
        assertArrayEquals(ids, other.ids());
        assertFalse(Arrays.equals(p.pixels(), other.pixels()));
    }

    @Test
    void withoutTokenizerOrPreprocessorTheInputIsSynthetic(@TempDir Path tmp) throws IOException {
        Files.copy(BenchFixtures.TINY.resolve("config.json"), tmp.resolve("config.json"));
        Files.copy(BenchFixtures.TINY.resolve("model.safetensors"), tmp.resolve("model.safetensors"));
        LlavaConfig cfg = LlavaConfig.load(tmp);
        ModelBench.Options o = options(7, 1);
        ModelBench.Prompt p = ModelBench.prompt(tmp, cfg, o);
        int[] ids = p.ids();
        assertEquals(1 + IMAGE_TOKENS + o.textTokens(), ids.length);
        assertEquals(BOS, ids[0]);
        for (int i = 1; i <= IMAGE_TOKENS; i++) {
            assertEquals(cfg.imageTokenIndex(), ids[i]);
        }
        for (int i = 1 + IMAGE_TOKENS; i < ids.length; i++) {
            assertTrue(ids[i] >= 3 && ids[i] < VOCAB && ids[i] != cfg.imageTokenIndex(), "text id " + ids[i]);
        }
        assertEquals(3 * IMAGE_SIZE * IMAGE_SIZE, p.pixels().length);
        for (float v : p.pixels()) {
            assertTrue(v >= -2 && v < 2, "pixel " + v);
        }
        assertTrue(p.promptSource().contains("random") && p.imageSource().contains("random pixel values"));
    }

    @Test
    void inProcessMeasurementReportsItsPromptFootprintAndMemory() {
        int decode = 3;
        ModelBench.Report r = ModelBench.measure(BenchFixtures.TINY, options(1, decode));
        LlavaConfig cfg = LlavaConfig.load(BenchFixtures.TINY);
        assertEquals(ModelBench.prompt(BenchFixtures.TINY, cfg, options(1, decode)).ids().length, r.promptTokens());
        assertEquals(IMAGE_TOKENS, r.imageTokens());
        assertEquals(decode, r.decodeTokens());
        assertEquals(1, r.reps());
        try (LlavaModel m = LlavaModel.load(BenchFixtures.TINY)) {
            assertEquals(ModelFootprint.of(BenchFixtures.TINY, m), r.footprint());
        }
        assertFalse(r.quantized());
        for (ResidentMemory m : new ResidentMemory[] {r.beforeLoad(), r.afterLoad(), r.afterGenerate()}) {
            assertTrue(m.known() && m.vmRss() <= m.vmHwm(), m.toString());
        }
        // the peak only grows
        assertTrue(r.beforeLoad().vmHwm() <= r.afterLoad().vmHwm() && r.afterLoad().vmHwm() <= r.afterGenerate().vmHwm());
        assertEquals(r.promptTokens() / r.prefillSeconds(), r.prefillTokensPerSecond());
        assertEquals(decode / r.decodeSeconds(), r.decodeTokensPerSecond());
    }

    @Test
    void rejectsBadOptionsAndDirectories(@TempDir Path tmp) throws IOException {
        assertThrows(IllegalArgumentException.class, () -> options(1, 0));
        IllegalArgumentException missing = assertThrows(IllegalArgumentException.class,
                () -> ModelBench.checkModelDir(tmp.resolve("nope"), "--vs"));
        assertTrue(missing.getMessage().startsWith("--vs ") && missing.getMessage().contains("no such directory"),
                missing.getMessage());
        Files.writeString(tmp.resolve("config.json"), "{}");
        IllegalArgumentException noWeights = assertThrows(IllegalArgumentException.class,
                () -> ModelBench.checkModelDir(tmp, "--model"));
        assertTrue(noWeights.getMessage().contains("model.safetensors"), noWeights.getMessage());
    }
}
