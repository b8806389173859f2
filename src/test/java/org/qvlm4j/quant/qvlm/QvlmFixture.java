package org.qvlm4j.quant.qvlm;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.stream.Stream;
import java.util.ArrayList;
import java.util.List;
import org.qvlm4j.bench.RandomLlavaCheckpoint;
import org.qvlm4j.data.SynthBenchmark;
import org.qvlm4j.data.WordLevelTokenizerBuilder;
import org.qvlm4j.io.AtomicFiles;
import org.qvlm4j.io.image.ClipPreprocessConfig;
import org.qvlm4j.io.image.PadMode;
import org.qvlm4j.io.text.PromptTemplate;
import org.qvlm4j.kernels.DType;
import org.qvlm4j.model.LlavaModel;
import org.qvlm4j.quant.QuantPlan;
import org.qvlm4j.quant.QuantPreset;
import org.qvlm4j.quant.calib.CalibrationStats;
import org.qvlm4j.quant.calib.Calibrator;

/**
 * A synthetic ScienceQA-format benchmark, a random LLaVA with five decoder layers and a word-level
 * tokenizer for it, and calibration statistics from the real {@code calibrate} pipeline: enough
 * layers for multi-layer blocks, small enough for millisecond forwards.
 */
final class QvlmFixture {
    static final long DATA_SEED = 21;
    static final long WEIGHT_SEED = 4;
    static final long CALIB_SEED = 2;
    static final int IMAGE_SIZE = 48;
    static final int PATCH = 16;
    static final int TEXT_LAYERS = 5;
    static final int CALIB_SAMPLES = 4;

    private static QvlmFixture shared;

    final Path data;
    final Path model;
    final Path stats;

    /**
     * One fixture for every test class of the JVM (building it dominates their run time), in a
     * temporary directory removed at exit. Tests only read it.
     */
    static synchronized QvlmFixture shared() {
        if (shared == null) {
            try {
                Path dir = Files.createTempDirectory("qvlm-fixture");
                Runtime.getRuntime().addShutdownHook(new Thread(() -> deleteTree(dir)));
                shared = new QvlmFixture(dir);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
        return shared;
    }

    private static void deleteTree(Path dir) {
        try (Stream<Path> s = Files.walk(dir)) {
            s.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        } catch (IOException ignored) {
            // a temporary directory; nothing more to do at exit
        }
    }

    QvlmFixture(Path dir) {
        data = dir.resolve("bench");
        SynthBenchmark.write(data, new SynthBenchmark.Options(DATA_SEED, 10, 0, 2, IMAGE_SIZE), null);
        model = dir.resolve("model");
        WordLevelTokenizerBuilder.writeForBenchmark(model, data);
        int vocab = WordLevelTokenizerBuilder.tokens(
                WordLevelTokenizerBuilder.readVocabulary(data.resolve(SynthBenchmark.VOCAB_FILE))).size();
        RandomLlavaCheckpoint.write(model, new RandomLlavaCheckpoint.Shape(16, 32, 2, 2, IMAGE_SIZE, PATCH, 16, 32,
                TEXT_LAYERS, 2, 1, vocab, WordLevelTokenizerBuilder.IMAGE_TOKEN_ID), DType.F32, WEIGHT_SEED);
        AtomicFiles.writeString(model.resolve("preprocessor_config.json"), ClipPreprocessConfig.squareJson(IMAGE_SIZE));
        stats = dir.resolve("stats");
        Calibrator.run(new Calibrator.Request(model, data, Calibrator.DEFAULT_SPLIT, false, CALIB_SAMPLES, CALIB_SEED,
                "all", "all", 1, PromptTemplate.VICUNA_V1, PadMode.PAD_TO_SQUARE, Calibrator.Inputs.ANSWER, stats, false), null);
    }

    LlavaModel load() {
        return LlavaModel.load(model);
    }

    CalibrationStats loadStats() {
        return CalibrationStats.load(stats);
    }

    /** The calibration prompts of the statistics. */
    List<CalibrationSamples.Sample> samples(LlavaModel m, CalibrationStats st) {
        return new ArrayList<>(CalibrationSamples.fromStats(model, null).load(m, st));
    }

    /** W4A4 in paper mode: LLM inputs per channel, vision inputs per token position, all static. */
    static QuantPlan w4a4() {
        return QvlmMethod.paperPlan(QuantPlan.preset(QuantPreset.W4A4), 1.0);
    }
}
