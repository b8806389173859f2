package org.qvlm4j.quant.qvlm;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.function.Supplier;
import org.qvlm4j.data.ScienceQaDataset;
import org.qvlm4j.data.ScienceQaProblem;
import org.qvlm4j.eval.ScienceQaPrompt;
import org.qvlm4j.io.config.LlavaConfig;
import org.qvlm4j.io.image.ClipImageProcessor;
import org.qvlm4j.io.image.PadMode;
import org.qvlm4j.io.text.LlavaTokenizer;
import org.qvlm4j.io.text.PromptTemplate;
import org.qvlm4j.model.LlavaModel;
import org.qvlm4j.quant.calib.CalibrationStats;
import org.qvlm4j.quant.calib.Calibrator;
import org.qvlm4j.train.QcmExampleEncoder;
import org.qvlm4j.train.TrainableLlava;
import org.qvlm4j.train.TrainingExample;

/**
 * What visual encoder optimisation trains on inside {@link QvlmMethod}: the model in its trainable
 * form and calibration pairs with an image and a supervised answer (L_reg needs answers, the vision
 * bounds need images; Q-VLM §4.1: 64 image-question pairs). {@link #fromStats} draws them as
 * {@link VisualEncoderOptimizer.Request} does: n problems with an image from the train split of the
 * data directory the statistics were computed on (or an override whose problems file hashes the
 * same), with a given seed ({@link Calibrator#sample}), encoded with the statistics' prompt template
 * and pad mode and an answer style (by default the model's {@code train_manifest.json}
 * {@code answer_style}, else the letter alone). The trainable model is loaded only when asked for,
 * so a run whose VEO is already checkpointed does not load it.
 *
 * <p>Left out: prompts without an image (they give the vision bounds no gradient), several images per prompt.
 */
public final class VeoInputs {
    /**
     * Samples for one run.
     *
     * @param ids         an id per sample (problem pids), for the run's identity and the report
     * @param samples     each with pixels and supervised answer tokens
     * @param model       loads the model as a {@link TrainableLlava} (called at most once per run)
     * @param description where the samples came from, for the report
     */
    public record Loaded(List<String> ids, List<TrainingExample> samples, Supplier<TrainableLlava> model,
                         ObjectNode description) {
        public Loaded {
            ids = List.copyOf(ids);
            samples = List.copyOf(samples);
            if (ids.size() != samples.size()) {
                throw new IllegalArgumentException("VEO inputs: " + ids.size() + " ids for " + samples.size() + " samples");
            }
        }
    }

    /** Where VEO's samples come from, resolved once the model and its statistics are open. */
    @FunctionalInterface
    public interface Source {
        /** n samples drawn with seed (a source of fixed samples may ignore both). */
        Loaded load(LlavaModel model, CalibrationStats stats, int n, long seed);
    }

    private VeoInputs() {
    }

    /** Fixed samples and model (tests, or samples prepared elsewhere); n and seed are ignored. */
    public static Source of(TrainableLlava model, List<TrainingExample> samples) {
        List<TrainingExample> copy = List.copyOf(samples);
        return (m, stats, n, seed) -> {
            List<String> ids = new ArrayList<>();
            for (int i = 0; i < copy.size(); i++) {
                ids.add("given-" + i);
            }
            ObjectNode d = WorkDir.JSON.createObjectNode();
            d.put("source", "given");
            return new Loaded(ids, copy, () -> model, d);
        };
    }

    /**
     * Samples drawn from the statistics' data directory (or dataOverride), train split, with the
     * model directory's tokenizer and preprocessor; answerStyle null means the model's training
     * manifest's style, else {@link QcmExampleEncoder.AnswerStyle#LETTER}.
     */
    public static Source fromStats(Path modelDir, Path dataOverride, QcmExampleEncoder.AnswerStyle answerStyle) {
        return (model, stats, n, seed) -> {
            Path dataDir = CalibrationSamples.dataDir(stats, dataOverride);
            Path manifestFile = stats.directory().resolve(CalibrationStats.MANIFEST_FILE);
            PromptTemplate template = PromptTemplate.valueOf(CalibrationSamples.text(stats.manifest(), manifestFile,
                    "template"));
            PadMode pad = PadMode.valueOf(CalibrationSamples.text(stats.manifest(), manifestFile, "pad_mode"));
            QcmExampleEncoder.AnswerStyle style = answerStyle != null ? answerStyle : QcmExampleEncoder.AnswerStyle.ofModel(modelDir);
            List<ScienceQaProblem> drawn = draw(dataDir, n, seed);
            List<TrainingExample> samples = encode(modelDir, model.config(), drawn, template, pad, style);
            ObjectNode d = WorkDir.JSON.createObjectNode();
            d.put("source", "data");
            d.put("data", dataDir.toAbsolutePath().normalize().toString());
            d.put("split", Calibrator.DEFAULT_SPLIT);
            d.put("filter", "problems with an image");
            d.put("n", n);
            d.put("seed", seed);
            d.put("template", template.name());
            d.put("pad_mode", pad.name());
            d.put("answer_style", style.name());
            d.put("supervised_tokens", samples.stream().mapToLong(TrainingExample::supervisedTokens).sum());
            return new Loaded(drawn.stream().map(ScienceQaProblem::pid).toList(), samples,
                    () -> TrainableLlava.load(modelDir), d);
        };
    }

    /** n problems with an image from the train split of dataDir, drawn with seed. */
    static List<ScienceQaProblem> draw(Path dataDir, int n, long seed) {
        if (!Files.isDirectory(dataDir)) {
            throw new IllegalArgumentException(dataDir + ": data directory does not exist (expected "
                    + ScienceQaDataset.PROBLEMS_FILE + " and " + ScienceQaDataset.SPLITS_FILE + " there)");
        }
        List<ScienceQaProblem> withImage = ScienceQaDataset.load(dataDir).split(Calibrator.DEFAULT_SPLIT).stream()
                .filter(ScienceQaProblem::hasImage).toList();
        if (n > withImage.size()) {
            throw new IllegalArgumentException("VEO config key samples: expected at most " + withImage.size()
                    + " (problems with an image in split " + Calibrator.DEFAULT_SPLIT + " of " + dataDir + "), got " + n);
        }
        return Calibrator.sample(withImage, n, seed);
    }

    /** The problems as training examples: evaluation prompt, image, supervised answer. */
    static List<TrainingExample> encode(Path modelDir, LlavaConfig cfg, List<ScienceQaProblem> problems,
                                        PromptTemplate template, PadMode pad, QcmExampleEncoder.AnswerStyle style) {
        List<TrainingExample> out = new ArrayList<>();
        try (LlavaTokenizer tok = LlavaTokenizer.load(modelDir)) {
            QcmExampleEncoder encoder = new QcmExampleEncoder(tok, cfg, ClipImageProcessor.forModelDir(modelDir, pad),
                    template, ScienceQaPrompt::message, style);
            for (ScienceQaProblem p : problems) {
                out.add(encoder.encode(p));
            }
        }
        return out;
    }

    /** An answer style by name ({@link QcmExampleEncoder.AnswerStyle#parse}). */
    public static QcmExampleEncoder.AnswerStyle answerStyle(String where, String value) {
        return QcmExampleEncoder.AnswerStyle.parse(where, value);
    }

    /** The ids as a JSON array. */
    static ArrayNode idArray(List<String> ids) {
        ArrayNode a = WorkDir.JSON.createArrayNode();
        ids.forEach(a::add);
        return a;
    }
}
