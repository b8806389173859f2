package org.qvlm4j.quant.qvlm;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.IntStream;
import org.qvlm4j.data.ScienceQaDataset;
import org.qvlm4j.data.ScienceQaProblem;
import org.qvlm4j.eval.ScienceQaEvaluator;
import org.qvlm4j.eval.ScienceQaPrompt;
import org.qvlm4j.io.image.ClipImageProcessor;
import org.qvlm4j.io.image.PadMode;
import org.qvlm4j.io.text.LlavaTokenizer;
import org.qvlm4j.io.text.PromptTemplate;
import org.qvlm4j.model.LlavaModel;
import org.qvlm4j.quant.calib.CalibrationStats;
import org.qvlm4j.quant.calib.Calibrator;
import org.qvlm4j.train.QcmExampleEncoder;

/**
 * The calibration prompts Q-VLM searches on: the very problems a {@link CalibrationStats} directory
 * was computed from (its manifest's sample pids, data directory, template and pad mode), turned into
 * input ids and pixels exactly as {@code qvlm4j calibrate} did (the manifest's {@code inputs}: the
 * prompt up to "ASSISTANT:", followed by the train answer in the recorded answer style unless the
 * statistics were computed on prompts only, {@link Calibrator.Inputs}). The data directory may be
 * given explicitly when it has moved; its problems file must still hash to the manifest's value.
 *
 * <p>Left out: several images per prompt.
 */
public final class CalibrationSamples {

    /** One calibration prompt: an id for reports (the problem's pid), its input ids and pixels (C, S, S) or null. */
    public record Sample(String id, int[] ids, float[] pixels) {
        public Sample {
            if (ids == null || ids.length == 0) {
                throw new IllegalArgumentException("calibration sample " + id + ": expected at least one input id");
            }
        }

        public int tokens() {
            return ids.length;
        }
    }

    /** Where the samples come from, resolved once the model and its statistics are open. */
    @FunctionalInterface
    public interface Source {
        List<Sample> load(LlavaModel model, CalibrationStats stats);
    }

    private CalibrationSamples() {
    }

    /** Fixed samples (tests, or prompts prepared elsewhere). */
    public static Source of(List<Sample> samples) {
        List<Sample> copy = List.copyOf(samples);
        return (model, stats) -> copy;
    }

    /**
     * The samples named by the statistics' manifest, read from dataOverride or else the manifest's
     * {@code data.dir}, tokenized with the model directory's tokenizer.
     */
    public static Source fromStats(Path modelDir, Path dataOverride) {
        return (model, stats) -> load(modelDir, dataOverride, model, stats);
    }

    private static List<Sample> load(Path modelDir, Path dataOverride, LlavaModel model, CalibrationStats stats) {
        JsonNode m = stats.manifest();
        Path manifestFile = stats.directory().resolve(CalibrationStats.MANIFEST_FILE);
        JsonNode pids = m.path("samples");
        if (!pids.isArray() || pids.isEmpty()) {
            throw new IllegalArgumentException(manifestFile + ": key samples: expected the calibration pids (written by "
                    + "qvlm4j calibrate), got " + (pids.isMissingNode() ? "nothing" : pids.toString()));
        }
        Path dataDir = dataDir(stats, dataOverride);
        PromptTemplate template = PromptTemplate.valueOf(text(m, manifestFile, "template"));
        PadMode pad = PadMode.valueOf(text(m, manifestFile, "pad_mode"));
        ScienceQaDataset data = ScienceQaDataset.load(dataDir);
        List<Sample> out = new ArrayList<>();
        try (LlavaTokenizer tok = LlavaTokenizer.load(modelDir)) {
            ClipImageProcessor proc = ClipImageProcessor.forModelDir(modelDir, pad);
            ScienceQaEvaluator ev = new ScienceQaEvaluator(model, tok, proc,
                    new ScienceQaEvaluator.Settings(template, 1, pad, false, 0));
            Calibrator.Inputs inputs = Calibrator.Inputs.fromManifest(manifestFile + " key inputs",
                    text(m, manifestFile, "inputs"));
            QcmExampleEncoder.AnswerStyle style = inputs == Calibrator.Inputs.ANSWER
                    ? QcmExampleEncoder.AnswerStyle.parse(manifestFile + " key answer_style",
                    text(m, manifestFile, "answer_style"))
                    : QcmExampleEncoder.AnswerStyle.LETTER;
            QcmExampleEncoder answers = new QcmExampleEncoder(tok, model.config(), proc, template,
                    ScienceQaPrompt::message, style);
            for (JsonNode pid : pids) {
                ScienceQaProblem p = data.problem(pid.asText());
                float[] pixels = p.hasImage() ? proc.preprocess(p.imagePath()).data() : null; // (3, S, S)
                out.add(new Sample(p.pid(), inputs.ids(ev, answers, p), pixels));
            }
        }
        return out;
    }

    /**
     * A seeded subset of n samples kept in their original order (all of them when n is 0 or at
     * least their count): the search may run on fewer prompts than the statistics saw.
     */
    public static List<Sample> subset(List<Sample> all, int n, long seed) {
        if (n < 0) {
            throw new IllegalArgumentException("search sample count must be >= 0 (0 = all), got " + n);
        }
        if (n == 0 || n >= all.size()) {
            return all;
        }
        List<Integer> order = new ArrayList<>(IntStream.range(0, all.size()).boxed().toList());
        Collections.shuffle(order, new SplittableRandom(seed));
        return order.subList(0, n).stream().sorted().map(all::get).toList();
    }

    /**
     * The data directory the statistics were computed on: dataOverride, else the manifest's
     * {@code data.dir}; its problems file must hash to the manifest's value.
     */
    static Path dataDir(CalibrationStats stats, Path dataOverride) {
        JsonNode m = stats.manifest();
        Path manifestFile = stats.directory().resolve(CalibrationStats.MANIFEST_FILE);
        Path dataDir = dataOverride != null ? dataOverride : Path.of(text(m, manifestFile, "data", "dir"));
        if (!Files.isDirectory(dataDir)) {
            throw new IllegalArgumentException(dataDir + ": calibration data directory does not exist (named by "
                    + manifestFile + " key data.dir; pass --data if it has moved)");
        }
        Path problems = dataDir.resolve(ScienceQaDataset.PROBLEMS_FILE);
        String want = text(m, manifestFile, "data", ScienceQaDataset.PROBLEMS_FILE);
        String got = Calibrator.sha256(problems);
        if (!want.equals(got)) {
            throw new IllegalArgumentException(problems + ": sha256 " + got + " differs from " + manifestFile + " key data."
                    + ScienceQaDataset.PROBLEMS_FILE + " = " + want + " (not the data the statistics were computed on)");
        }
        return dataDir;
    }

    /** A string of the manifest; the error names the file and key. */
    static String text(JsonNode m, Path file, String... path) {
        JsonNode n = m;
        for (String k : path) {
            n = n.path(k);
        }
        if (!n.isTextual()) {
            throw new IllegalArgumentException(file + ": key " + String.join(".", path) + ": expected a string, got "
                    + (n.isMissingNode() ? "nothing" : n.toString()));
        }
        return n.asText();
    }
}
