package org.qvlm4j.eval;

import java.nio.file.Path;
import org.qvlm4j.bench.RandomLlavaCheckpoint;
import org.qvlm4j.data.SynthBenchmark;
import org.qvlm4j.data.WordLevelTokenizerBuilder;
import org.qvlm4j.kernels.DType;

/** A tiny synthetic benchmark and a random tiny LLaVA whose word-level tokenizer covers it. */
final class EvalFixture {
    static final long DATA_SEED = 11;
    static final long WEIGHT_SEED = 3;
    static final int IMAGE_SIZE = 48;
    static final int PATCH = 16;
    static final int TEST_PROBLEMS = 12;

    final Path data;
    final Path model;

    private EvalFixture(Path data, Path model) {
        this.data = data;
        this.model = model;
    }

    static EvalFixture create(Path root) {
        Path data = root.resolve("bench");
        SynthBenchmark.write(data, new SynthBenchmark.Options(DATA_SEED, 30, 0, TEST_PROBLEMS, IMAGE_SIZE), null);
        Path model = root.resolve("model");
        WordLevelTokenizerBuilder.writeForBenchmark(model, data);
        int vocab = WordLevelTokenizerBuilder.tokens(
                WordLevelTokenizerBuilder.readVocabulary(data.resolve(SynthBenchmark.VOCAB_FILE))).size();
        RandomLlavaCheckpoint.write(model, new RandomLlavaCheckpoint.Shape(32, 64, 2, 2, IMAGE_SIZE, PATCH, 32, 64, 2,
                2, 1, vocab, WordLevelTokenizerBuilder.IMAGE_TOKEN_ID), DType.F32, WEIGHT_SEED);
        writePreprocessor(model, IMAGE_SIZE);
        return new EvalFixture(data, model);
    }

    static void writePreprocessor(Path model, int size) {
        org.qvlm4j.io.AtomicFiles.writeString(model.resolve("preprocessor_config.json"),
                org.qvlm4j.io.image.ClipPreprocessConfig.squareJson(size));
    }
}
