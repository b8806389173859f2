package org.qvlm4j.quant.calib;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Objects;
import java.util.Set;
import java.util.function.Consumer;
import java.util.function.Function;
import java.util.regex.Pattern;
import org.qvlm4j.data.ScienceQaDataset;
import org.qvlm4j.data.ScienceQaProblem;
import org.qvlm4j.data.SynthBenchmark;
import org.qvlm4j.eval.ScienceQaEvaluator;
import org.qvlm4j.eval.ScienceQaPrompt;
import org.qvlm4j.train.QcmExampleEncoder;
import org.qvlm4j.io.image.ClipImageProcessor;
import org.qvlm4j.io.image.PadMode;
import org.qvlm4j.io.text.LlavaTokenizer;
import org.qvlm4j.io.text.PromptTemplate;
import org.qvlm4j.kernels.Parallel;
import org.qvlm4j.model.Linear;
import org.qvlm4j.model.LlavaModel;

/**
 * One calibration run: a seeded sample of n ScienceQA problems of a split (train unless explicitly
 * allowed otherwise), each turned into input ids and pixels as the evaluation does
 * ({@link ScienceQaEvaluator#promptIds}: the prompt up to "ASSISTANT:"), followed by default by the
 * problem's answer in the style the model was trained to give and the EOS token ({@link Inputs}),
 * run through the model's full forward with a {@link CalibrationTap}, and written as a
 * {@link CalibrationStats} directory.
 *
 * <p>Why the answer by default: static input ranges are frozen at calibration and then serve every
 * token the model generates. Q-VLM's code calibrates on prefill tokens only, but widens the ranges
 * at every decode step; with frozen ranges (the paper's "stored rounding parameters") a model that
 * writes a reasoned answer of dozens of tokens meets activations the prompt never produced, and
 * clipping them breaks the generation (W8A8 round-to-nearest of the reference model lost a third
 * of its accuracy, with one answer in five unparseable). Teacher-forcing the train split's answer
 * shows the observers the tokens generation will produce, without touching the test split.
 *
 * <p>Observed sites: every linear layer's input ({@code <linear>.in}: basics, histogram, exact
 * channel tails for the selected sites, Hessian for the selected sites) and every transformer
 * layer's residual stream ({@code vision|llm.layers.<i>.{in,out}}: basics and histogram, for
 * entropy). Vision-tower and projector sites also get per-token-position ranges. Samples run one
 * after another in dataset order; the Hessian updates are spread over {@code threads} threads with
 * every element owned by one thread, so the output bytes depend on the seed and inputs only.
 *
 * <p>Why train only: the statistics choose clipping ranges, scales and GPTQ updates, so calibrating
 * on the split the quantized model is then scored on would leak the test set into the model.
 */
public final class Calibrator {
    /** Bins of every site's value histogram. */
    public static final int HISTOGRAM_BINS = 4096;
    /** Smallest percentile of the grid; the exact channel tails are sized for it. */
    public static final double MIN_PERCENTILE = 0.98;
    /**
     * The percentile grid: 0.980, 0.981, ..., 1.000, Q-VLM's search range at a step that holds its
     * 0.005-spaced candidates.
     */
    public static final double[] PERCENTILE_GRID = grid();
    /** Part of the JVM's maximum heap the planned statistics may take. */
    static final double HEAP_FRACTION = 0.8;
    public static final String DEFAULT_SPLIT = "train";

    /**
     * @param hessian            "none", "all" or comma-separated linear names or globs ({@code *}),
     *                           with or without the ".in" suffix
     * @param channelPercentiles the same choice for the exact per-channel tails
     * @param allowSplit         accept a split other than train
     */
    public record Request(Path modelDir, Path dataDir, String split, boolean allowSplit, int n, long seed,
                          String hessian, String channelPercentiles, int threads, PromptTemplate template,
                          PadMode padMode, Inputs inputs, Path out, boolean overwrite) {
        public Request {
            Objects.requireNonNull(inputs, "inputs");
            if (n < 1) {
                throw new IllegalArgumentException("--n must be >= 1, got " + n);
            }
            if (threads < 1) {
                throw new IllegalArgumentException("--threads must be >= 1, got " + threads);
            }
            if (!DEFAULT_SPLIT.equals(split) && !allowSplit) {
                throw new IllegalArgumentException("--split " + split + ": calibration uses the train split only, so that "
                        + "the quantized model is not tuned on the data it is evaluated on; pass --allow-split to use '"
                        + split + "' anyway");
            }
        }
    }

    /** Which tokens of a calibration problem run through the model. */
    public enum Inputs {
        /** The evaluation prompt up to "ASSISTANT:" (prefill tokens, as Q-VLM's code calibrates). */
        PROMPT("prompt tokens up to ASSISTANT:, no answer; full forward"),
        /**
         * The prompt, then the problem's answer in the model's trained answer style
         * ({@link QcmExampleEncoder.AnswerStyle#ofModel}) and EOS, teacher-forced in one forward.
         */
        ANSWER("prompt tokens, then the train answer in the model's answer style and EOS; full forward");

        private final String description;

        Inputs(String description) {
            this.description = description;
        }

        public String description() {
            return description;
        }

        /**
         * The inputs a statistics manifest records under {@code inputs}: the enum name, or (statistics
         * written before the choice existed) the prompt-only description.
         */
        public static Inputs fromManifest(String where, String value) {
            for (Inputs i : values()) {
                if (i.name().equals(value) || i.description.equals(value)) {
                    return i;
                }
            }
            throw new IllegalArgumentException(where + ": expected one of PROMPT, ANSWER, got '" + value + "'");
        }

        /** The input ids of one problem. */
        public int[] ids(ScienceQaEvaluator evaluator, QcmExampleEncoder answers, ScienceQaProblem p) {
            return this == PROMPT ? evaluator.promptIds(p) : answers.inputIds(p);
        }
    }

    /** Progress after each sample. */
    public record Progress(int done, int total, long tokens, double elapsedSeconds) {
        public double etaSeconds() {
            return done == 0 ? Double.NaN : elapsedSeconds / done * (total - done);
        }
    }

    /** What a finished run produced. */
    public record Result(int samples, long tokens, int sites, double seconds, Path out) {
    }

    private Calibrator() {
    }

    /**
     * With answers teacher-forced, the data's solutions must be written as those the model learned
     * (synth's plain or steps): an answer in another style gives activations the model never makes.
     * Data without a synth manifest (a ScienceQA download) is taken as it is.
     */
    static void checkSolutions(Request r) {
        if (r.inputs() != Inputs.ANSWER || QcmExampleEncoder.AnswerStyle.ofModel(r.modelDir())
                == QcmExampleEncoder.AnswerStyle.LETTER) {
            return;
        }
        SynthBenchmark.Solutions.requireModelsOwn(r.dataDir(), r.modelDir(), "the teacher-forced answers would not "
                + "be the model's: draw the data with synth --solutions " + SynthBenchmark.Solutions.ofModel(r.modelDir())
                .name().toLowerCase(Locale.ROOT) + " or calibrate with --inputs prompt");
    }

    /**
     * The request that repeats the calibration behind stats (data, split, sample size and seed,
     * template, pad mode, inputs, Hessian and percentile sites) on another model, writing to out.
     * The data directory must still hold the problems the manifest records.
     */
    public static Request repeat(CalibrationStats stats, Path modelDir, Path out, int threads) {
        JsonNode m = stats.manifest();
        Path where = stats.directory().resolve(CalibrationStats.MANIFEST_FILE);
        Path data = Path.of(required(m.path("data"), "dir", where).asText());
        String recorded = required(m.path("data"), ScienceQaDataset.PROBLEMS_FILE, where).asText();
        Path problems = data.resolve(ScienceQaDataset.PROBLEMS_FILE);
        if (!Files.isRegularFile(problems)) {
            throw new IllegalArgumentException(where + ": key data.dir: " + data + " no longer holds "
                    + ScienceQaDataset.PROBLEMS_FILE + "; cannot repeat the calibration");
        }
        String actual = sha256(problems);
        if (!recorded.equals(actual)) {
            throw new IllegalArgumentException(where + ": key data." + ScienceQaDataset.PROBLEMS_FILE + ": expected sha256 "
                    + recorded + ", but " + problems + " has " + actual + "; cannot repeat the calibration");
        }
        String split = required(m, "split", where).asText();
        JsonNode o = m.path("options");
        return new Request(modelDir, data, split, !DEFAULT_SPLIT.equals(split), required(m, "n", where).asInt(),
                required(m, "seed", where).asLong(), o.path("hessian").asText("none"),
                o.path("channel_percentiles").asText("all"), threads,
                PromptTemplate.valueOf(required(m, "template", where).asText()),
                PadMode.valueOf(required(m, "pad_mode", where).asText()),
                Inputs.fromManifest(where + ": key inputs", required(m, "inputs", where).asText()), out, false);
    }

    private static JsonNode required(JsonNode node, String key, Path where) {
        JsonNode v = node.get(key);
        if (v == null || v.isNull()) {
            throw new IllegalArgumentException(where + ": key " + key + " is missing; cannot repeat the calibration");
        }
        return v;
    }

    /** Runs the calibration and writes the statistics directory. */
    public static Result run(Request r, Consumer<Progress> progress) {
        long t0 = System.nanoTime();
        if (!Files.isDirectory(r.dataDir())) {
            throw new IllegalArgumentException(r.dataDir() + ": data directory does not exist (expected "
                    + ScienceQaDataset.PROBLEMS_FILE + " and " + ScienceQaDataset.SPLITS_FILE + " there)");
        }
        if (!Files.isDirectory(r.modelDir())) {
            throw new IllegalArgumentException(r.modelDir() + ": model directory does not exist");
        }
        CalibrationStats.checkTarget(r.out(), r.overwrite());
        checkSolutions(r);
        ScienceQaDataset data = ScienceQaDataset.load(r.dataDir());
        List<ScienceQaProblem> split = data.split(r.split());
        if (r.n() > split.size()) {
            throw new IllegalArgumentException("--n " + r.n() + ": split " + r.split() + " of " + r.dataDir() + " has only "
                    + split.size() + " problems");
        }
        List<ScienceQaProblem> samples = sample(split, r.n(), r.seed());
        ModelFingerprint fingerprint = ModelFingerprint.of(r.modelDir());

        try (LlavaTokenizer tok = LlavaTokenizer.load(r.modelDir());
             LlavaModel model = LlavaModel.load(r.modelDir())) {
            ClipImageProcessor proc = ClipImageProcessor.forModelDir(r.modelDir(), r.padMode());
            ScienceQaEvaluator evaluator = new ScienceQaEvaluator(model, tok, proc,
                    new ScienceQaEvaluator.Settings(r.template(), 1, r.padMode(), false, 0));
            List<String> linearSites = model.linears().stream().map(l -> l.name() + ".in").toList();
            Set<String> hessianSites = selectSites("--hessian", r.hessian(), model);
            Set<String> tailSites = selectSites("--channel-percentiles", r.channelPercentiles(), model);

            int[][] ids = new int[samples.size()][];
            long maxRows = 0;
            int visionRows = model.config().visionConfig().gridSize() * model.config().visionConfig().gridSize() + 1;
            QcmExampleEncoder.AnswerStyle style = QcmExampleEncoder.AnswerStyle.ofModel(r.modelDir());
            QcmExampleEncoder answers = new QcmExampleEncoder(tok, model.config(), proc, r.template(),
                    ScienceQaPrompt::message, style);
            for (int i = 0; i < ids.length; i++) {
                ids[i] = r.inputs().ids(evaluator, answers, samples.get(i));
                maxRows += Math.max(ids[i].length, samples.get(i).hasImage() ? visionRows : 0);
            }
            int capacity = ChannelTails.capacityFor(MIN_PERCENTILE, maxRows);
            checkMemory(model, hessianSites, tailSites, capacity);

            Set<String> linearSet = Set.copyOf(linearSites);
            Pattern layerSite = Pattern.compile("(vision|llm)\\.layers\\.\\d+\\.(in|out)");
            Function<String, SiteStats.Options> plan = site -> {
                boolean positions = site.startsWith("vision.") || site.startsWith("projector.");
                if (linearSet.contains(site)) {
                    return new SiteStats.Options(HISTOGRAM_BINS, tailSites.contains(site) ? capacity : 0,
                            hessianSites.contains(site), positions);
                }
                if (layerSite.matcher(site).matches()) {
                    return new SiteStats.Options(HISTOGRAM_BINS, 0, false, positions);
                }
                return null;
            };

            long tokens = 0;
            int images = 0;
            long start = System.nanoTime();
            CalibrationTap tap;
            try (Parallel par = new Parallel(r.threads())) {
                tap = new CalibrationTap(plan, par);
                model.setActivationTap(tap);
                for (int i = 0; i < samples.size(); i++) {
                    ScienceQaProblem p = samples.get(i);
                    float[] pixels = null; // (3, S, S)
                    if (p.hasImage()) {
                        pixels = proc.preprocess(p.imagePath()).data();
                        images++;
                    }
                    model.forward(ids[i], pixels);
                    tokens += ids[i].length;
                    if (progress != null) {
                        progress.accept(new Progress(i + 1, samples.size(), tokens, (System.nanoTime() - start) / 1e9));
                    }
                }
            } finally {
                model.setActivationTap(null);
            }

            ObjectNode m = CalibrationStats.JSON.createObjectNode();
            m.put("format", CalibrationStats.FORMAT);
            m.put("version", CalibrationStats.FORMAT_VERSION);
            String v = Calibrator.class.getPackage().getImplementationVersion();
            m.put("tool_version", v == null ? "dev" : v);
            ObjectNode mm = fingerprint.toJson(CalibrationStats.JSON);
            mm.put("dir", r.modelDir().toAbsolutePath().normalize().toString());
            m.set("model", mm);
            ObjectNode d = m.putObject("data");
            d.put("dir", r.dataDir().toAbsolutePath().normalize().toString());
            d.put(ScienceQaDataset.PROBLEMS_FILE, sha256(r.dataDir().resolve(ScienceQaDataset.PROBLEMS_FILE)));
            d.put(ScienceQaDataset.SPLITS_FILE, sha256(r.dataDir().resolve(ScienceQaDataset.SPLITS_FILE)));
            m.put("split", r.split());
            m.put("seed", r.seed());
            m.put("n", r.n());
            m.put("template", r.template().name());
            m.put("pad_mode", r.padMode().name());
            m.put("inputs", r.inputs().name());
            m.put("inputs_description", r.inputs().description());
            if (r.inputs() == Inputs.ANSWER) {
                m.put("answer_style", style.name());
            }
            m.put("tokens", tokens);
            m.put("images", images);
            ArrayNode pids = m.putArray("samples");
            samples.forEach(p -> pids.add(p.pid()));
            ObjectNode o = m.putObject("options");
            o.put("histogram_bins", HISTOGRAM_BINS);
            ArrayNode g = o.putArray("percentiles");
            Arrays.stream(PERCENTILE_GRID).forEach(g::add);
            o.put("channel_tail_capacity", capacity);
            o.put("hessian", r.hessian());
            o.put("channel_percentiles", r.channelPercentiles());
            CalibrationStats.write(r.out(), m, tap.stats(), PERCENTILE_GRID, r.overwrite());
            return new Result(samples.size(), tokens, tap.stats().size(), (System.nanoTime() - t0) / 1e9, r.out());
        }
    }

    /** A seeded sample of n problems of the split, kept in split order. */
    public static List<ScienceQaProblem> sample(List<ScienceQaProblem> split, int n, long seed) {
        return ScienceQaDataset.sample(split, n, seed);
    }

    /**
     * The linear-input sites a selection names: "none", "all", or comma-separated linear names or
     * globs ({@code *} matches within and across dots), each with or without ".in"; a name that
     * matches no linear layer is an error.
     */
    public static Set<String> selectSites(String option, String spec, LlavaModel model) {
        List<String> names = model.linears().stream().map(Linear::name).toList();
        Set<String> out = new LinkedHashSet<>();
        String s = spec == null ? "" : spec.strip();
        if (s.equals("none")) {
            return out;
        }
        if (s.equals("all")) {
            names.forEach(n -> out.add(n + ".in"));
            return out;
        }
        for (String item : s.split(",")) {
            String name = item.strip();
            if (name.endsWith(".in")) {
                name = name.substring(0, name.length() - 3);
            }
            if (name.isEmpty()) {
                throw new IllegalArgumentException(option + " '" + spec + "': empty site name; expected all, none or "
                        + "comma-separated linear names such as " + names.getLast());
            }
            Pattern p = Pattern.compile(Arrays.stream(name.split("\\*", -1)).map(Pattern::quote)
                    .reduce((a, b) -> a + ".*" + b).orElse(""));
            boolean any = false;
            for (String n : names) {
                if (p.matcher(n).matches()) {
                    out.add(n + ".in");
                    any = true;
                }
            }
            if (!any) {
                throw new IllegalArgumentException(option + ": unknown site '" + item.strip() + "'; expected all, none "
                        + "or linear layers of the model such as " + names.getFirst() + " or " + names.getLast()
                        + " (globs with * allowed)");
            }
        }
        return out;
    }

    /** Refuses a plan whose Hessians and channel tails would not fit the heap. */
    static void checkMemory(LlavaModel model, Set<String> hessianSites, Set<String> tailSites, int capacity) {
        long bytes = 0;
        for (Linear l : model.linears()) {
            long K = l.inFeatures();
            String site = l.name() + ".in";
            if (hessianSites.contains(site)) {
                bytes += 8 * K * K;
            }
            if (tailSites.contains(site)) {
                bytes += 16L * capacity * K;
            }
        }
        long max = Runtime.getRuntime().maxMemory();
        if (bytes > HEAP_FRACTION * max) {
            throw new IllegalArgumentException(String.format("the selected Hessians and channel percentiles need about "
                    + "%.1f GiB but the heap allows %.1f GiB; select fewer sites with --hessian / --channel-percentiles "
                    + "or raise -Xmx", bytes / (double) (1L << 30), max / (double) (1L << 30)));
        }
    }

    private static double[] grid() {
        double[] g = new double[21];
        for (int i = 0; i < g.length; i++) {
            g[i] = (980 + i) / 1000.0;
        }
        return g;
    }

    /** Hex SHA-256 of a file's bytes, as the manifest records the data files. */
    public static String sha256(Path f) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(f)));
        } catch (IOException e) {
            throw new UncheckedIOException(f + ": " + e.getMessage(), e);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
