package org.qvlm4j.quant.qvlm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qvlm4j.bench.RandomLlavaCheckpoint;
import org.qvlm4j.data.ScienceQaDataset;
import org.qvlm4j.data.ScienceQaProblem;
import org.qvlm4j.data.SynthBenchmark;
import org.qvlm4j.data.WordLevelTokenizerBuilder;
import org.qvlm4j.io.AtomicFiles;
import org.qvlm4j.io.config.LlavaConfig;
import org.qvlm4j.io.image.ClipPreprocessConfig;
import org.qvlm4j.io.image.PadMode;
import org.qvlm4j.io.text.PromptTemplate;
import org.qvlm4j.kernels.DType;
import org.qvlm4j.quant.QuantPlan;
import org.qvlm4j.quant.QuantPreset;
import org.qvlm4j.quant.Ranges;
import org.qvlm4j.quant.calib.CalibrationStats;
import org.qvlm4j.quant.calib.Calibrator;
import org.qvlm4j.train.QcmExampleEncoder;

/**
 * The directory-level entry point on a small synthetic ScienceQA benchmark with a random tiny LLaVA
 * whose tokenizer covers it: calibration statistics from the calibrator, image problems drawn from
 * the train split, answers supervised, ranges back for every vision site; and the errors for too
 * many samples and for statistics of another model.
 */
class VeoRequestTest {
    static final int IMAGE_SIZE = 48;
    static final int PATCH = 16;
    static final int TRAIN = 12;
    static final int SAMPLES = 2;
    static final int CALIBRATION = 3;

    @TempDir
    Path tmp;

    private Path data() {
        Path dir = tmp.resolve("data");
        SynthBenchmark.write(dir, new SynthBenchmark.Options(11, TRAIN, 0, 2, IMAGE_SIZE), null);
        return dir;
    }

    private static Path model(Path dir, Path data, long seed) {
        WordLevelTokenizerBuilder.writeForBenchmark(dir, data);
        int vocab = WordLevelTokenizerBuilder.tokens(
                WordLevelTokenizerBuilder.readVocabulary(data.resolve(SynthBenchmark.VOCAB_FILE))).size();
        RandomLlavaCheckpoint.write(dir, new RandomLlavaCheckpoint.Shape(32, 64, 2, 2, IMAGE_SIZE, PATCH, 32, 64, 2, 2,
                1, vocab, WordLevelTokenizerBuilder.IMAGE_TOKEN_ID), DType.F32, seed);
        AtomicFiles.writeString(dir.resolve("preprocessor_config.json"), ClipPreprocessConfig.squareJson(IMAGE_SIZE));
        return dir;
    }

    /** Statistics of CALIBRATION train problems, drawn with the first seed whose draw holds an image problem. */
    private static CalibrationStats calibrate(Path model, Path data, Path out) {
        List<ScienceQaProblem> train = ScienceQaDataset.load(data).split(Calibrator.DEFAULT_SPLIT);
        long seed = 0;
        while (Calibrator.sample(train, CALIBRATION, seed).stream().noneMatch(ScienceQaProblem::hasImage)) {
            seed++;
        }
        Calibrator.run(new Calibrator.Request(model, data, Calibrator.DEFAULT_SPLIT, false, CALIBRATION, seed, "none",
                "none", 1, PromptTemplate.VICUNA_V1, PadMode.PAD_TO_SQUARE, Calibrator.Inputs.ANSWER, out, false), null);
        return CalibrationStats.load(out);
    }

    private static VisualEncoderOptimizer.Request request(Path model, Path data, CalibrationStats stats, VeoConfig cfg) {
        QuantPlan plan = QuantPlan.builder().preset(QuantPreset.W8A8)
                .override("vision=w8-asym-channel+a8-asym-token-static").build();
        return new VisualEncoderOptimizer.Request(model, data, stats, plan, cfg, PromptTemplate.VICUNA_V1,
                PadMode.PAD_TO_SQUARE, QcmExampleEncoder.AnswerStyle.LETTER);
    }

    @Test
    void runsFromDirectoriesAndStatistics() {
        Path data = data();
        Path model = model(tmp.resolve("model"), data, 5);
        VeoConfig cfg = VeoConfig.defaults().withSamples(SAMPLES).withEpochs(1).withBatch(2);
        try (CalibrationStats stats = calibrate(model, data, tmp.resolve("stats"))) {
            VeoResult r = VisualEncoderOptimizer.run(request(model, data, stats, cfg), null);
            int positions = (IMAGE_SIZE / PATCH) * (IMAGE_SIZE / PATCH) + 1;
            int layers = LlavaConfig.load(model).visionFeatureLayerIndex();
            assertEquals(6 * layers, r.ranges().size(), "six linears per encoder layer up to the feature layer");
            for (Map.Entry<String, Ranges> e : r.ranges().entrySet()) {
                assertEquals(positions, e.getValue().size(), e.getKey());
            }
            assertTrue(r.initial().reg() > 0, "answer tokens are supervised: " + r.initial());
            assertTrue(Double.isFinite(r.last().total()));

            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> VisualEncoderOptimizer.run(
                    request(model, data, stats, cfg.withSamples(TRAIN + 1)), null));
            assertTrue(e.getMessage().contains("key samples") && e.getMessage().contains("got " + (TRAIN + 1)),
                    e.getMessage());

            Path other = model(tmp.resolve("other"), data, 6);
            e = assertThrows(IllegalArgumentException.class, () -> VisualEncoderOptimizer.run(
                    request(other, data, stats, cfg), null));
            assertTrue(e.getMessage().contains("model.digest"), e.getMessage());
        }
    }
}
