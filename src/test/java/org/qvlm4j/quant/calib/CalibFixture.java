package org.qvlm4j.quant.calib;

import java.nio.file.Path;
import org.qvlm4j.bench.RandomLlavaCheckpoint;
import org.qvlm4j.data.SynthBenchmark;
import org.qvlm4j.data.WordLevelTokenizerBuilder;
import org.qvlm4j.kernels.DType;

/** A tiny synthetic ScienceQA-format benchmark and random tiny LLaVA models whose word-level tokenizer covers it. */
final class CalibFixture {
    static final long DATA_SEED = 11;
    static final int IMAGE_SIZE = 48;
    static final int PATCH = 16;

    private CalibFixture() {
    }

    /** Writes the benchmark with the given split sizes. */
    static Path data(Path dir, int train, int test) {
        SynthBenchmark.write(dir, new SynthBenchmark.Options(DATA_SEED, train, 0, test, IMAGE_SIZE), null);
        return dir;
    }

    /** Writes a random model (weights from weightSeed) with a tokenizer for the benchmark at data. */
    static Path model(Path dir, Path data, long weightSeed) {
        WordLevelTokenizerBuilder.writeForBenchmark(dir, data);
        int vocab = WordLevelTokenizerBuilder.tokens(
                WordLevelTokenizerBuilder.readVocabulary(data.resolve(SynthBenchmark.VOCAB_FILE))).size();
        RandomLlavaCheckpoint.write(dir, new RandomLlavaCheckpoint.Shape(32, 64, 2, 2, IMAGE_SIZE, PATCH, 32, 64, 2,
                2, 1, vocab, WordLevelTokenizerBuilder.IMAGE_TOKEN_ID), DType.F32, weightSeed);
        org.qvlm4j.io.AtomicFiles.writeString(dir.resolve("preprocessor_config.json"),
                org.qvlm4j.io.image.ClipPreprocessConfig.squareJson(IMAGE_SIZE));
        return dir;
    }
}
