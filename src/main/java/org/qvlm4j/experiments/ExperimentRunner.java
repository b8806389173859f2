package org.qvlm4j.experiments;

import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.math.BigDecimal;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.function.Consumer;
import java.util.stream.Stream;
import org.qvlm4j.bench.ModelBench;
import org.qvlm4j.bench.ModelComparison;
import org.qvlm4j.data.ScienceQaDataset;
import org.qvlm4j.eval.EvalRun;
import org.qvlm4j.eval.PairedComparison;
import org.qvlm4j.eval.ScienceQaEvaluator;
import org.qvlm4j.eval.ScienceQaMetrics;
import org.qvlm4j.io.AtomicFiles;
import org.qvlm4j.io.image.PadMode;
import org.qvlm4j.io.text.PromptTemplate;
import org.qvlm4j.kernels.Parallel;
import org.qvlm4j.quant.calib.Calibrator;
import org.qvlm4j.quant.calib.ModelFingerprint;
import org.qvlm4j.quant.qvlm.QvlmMethod;

/**
 * Runs an {@link Experiment}: calibrates once, then for each configuration quantizes, evaluates and
 * measures it, and writes the tables ({@link ResultTables}). Everything lands under the output
 * directory, and every step is skipped when its output is already complete, so a killed run
 * continues where it stopped and tables share work (a second experiment into the same directory
 * reuses the first one's checkpoints):
 *
 * <pre>
 * OUT/experiment.json        the settings that decide the numbers; a resumed run must repeat them
 * OUT/stats/                 calibration statistics (calibrate; Hessians of every linear, for GPTQ)
 * OUT/models/&lt;id&gt;/           quantized checkpoint (quantize; complete once the directory exists)
 * OUT/work/&lt;id&gt;/             Q-VLM's search checkpoints (quantize --work; resumes a killed search)
 * OUT/eval/&lt;id&gt;/             evaluation run (EvalRun; complete once report.json exists, else it resumes)
 * OUT/bench/&lt;id&gt;.json        size, weight bytes, resident memory, prefill / decode speed (bench JSON)
 * OUT/steps/&lt;id&gt;.json        quantize command, its wall time and search cost; machine load per timed step
 * OUT/&lt;table&gt;.md, .json, fig3.png
 * </pre>
 *
 * <p>A configuration that cannot exist (NF4 at 8 bits, an option quantize lacks) is reported with
 * the reason; one whose quantize refuses its input, or whose step fails, is reported with the
 * message and left for a later run, and the others go on. Progress goes to the given consumer, one
 * line per configuration and step. Each model is measured in its own child JVM
 * ({@link ModelBench#inChildJvm}) unless the settings ask for this one. Leaves out: running configurations in parallel (they would
 * distort each other's timings), deleting outputs of configurations no longer asked for.
 */
public final class ExperimentRunner {
    public static final String SETTINGS_FILE = "experiment.json";
    public static final String STATS_DIR = "stats";
    public static final String MODELS_DIR = "models";
    public static final String WORK_DIR = "work";
    public static final String EVAL_DIR = "eval";
    public static final String BENCH_DIR = "bench";
    public static final String STEPS_DIR = "steps";
    /** Q-VLM's report beside its checkpoint (search cost, stage timings), when quantize writes one. */
    public static final String QVLM_REPORT = "qvlm_report.json";
    static final String FIG3_PNG = "fig3.png";
    /** Written into a new output directory (unless one is there) to keep the large intermediates out of git. */
    static final String GITIGNORE = ".gitignore";
    /** Output paths that hold large intermediate files, kept out of version control. */
    static final List<String> IGNORED = List.of(STATS_DIR + "/", MODELS_DIR + "/", WORK_DIR + "/", "data-seed-*/");
    /** quantize's option for the number of VEO training samples. */
    static final String VEO_SAMPLES = "--veo-samples";
    /** Seed of the --limit sample of the evaluation (the eval command's default). */
    public static final long EVAL_SEED = 0;
    /** Seconds between progress lines of a long step. */
    private static final double PROGRESS_INTERVAL_S = 10;
    /** The split calibration samples come from. */
    private static final String CALIB_SPLIT = Calibrator.DEFAULT_SPLIT;

    /** Reads decimals exactly, keeping the trailing zeros the evaluation prints ("50.00"). */
    static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT)
            .enable(DeserializationFeature.USE_BIG_DECIMAL_FOR_FLOATS)
            .setNodeFactory(JsonNodeFactory.withExactBigDecimals(true));

    /**
     * What a run produced.
     *
     * @param internalFailures configurations whose step failed for a reason other than bad input
     */
    public record Result(List<Outcome> outcomes, List<Path> written, int internalFailures) {
    }

    private final Settings s;
    private final QuantizeStep quantize;
    private final Consumer<String> log;
    private final Path out;
    private int internalFailures;

    private ExperimentRunner(Settings s, QuantizeStep quantize, Consumer<String> log) {
        this.s = s;
        this.quantize = quantize;
        this.log = log;
        this.out = s.out();
    }

    /**
     * Runs the experiment with these settings. Bad settings or inputs are an
     * {@link IllegalArgumentException} before any work starts.
     */
    public static Result run(Experiment e, Settings s, QuantizeStep quantize, Consumer<String> log) {
        return new ExperimentRunner(s, quantize, log).run(e);
    }

    private Result run(Experiment e) {
        List<ConfigSpec> configs = e.configs();
        Set<String> selected = selection(e, configs);
        ObjectNode identity = checkInputs();
        prepareOut(identity);
        boolean needStats = configs.stream().anyMatch(c -> selected.contains(c.id()) && !c.isFp()
                && c.unavailable() == null);
        if (needStats) {
            calibrate();
        }
        Map<String, Outcome> outcomes = new LinkedHashMap<>();
        int i = 0;
        for (ConfigSpec c : configs) {
            i++;
            String tag = String.format(Locale.ROOT, "experiment %s [%d/%d] %s", e.key, i, configs.size(), c.id());
            Outcome o = unavailable(c);
            if (o == null) {
                o = selected.contains(c.id()) ? runConfig(c, flagArgs(c), tag) : completed(c, tag);
            }
            if (o.status() != Outcome.Status.DONE && o.status() != Outcome.Status.NOT_SELECTED) {
                log.accept(tag + ": " + o.status().name().toLowerCase(Locale.ROOT) + ": " + o.reason());
            }
            outcomes.put(c.id(), o);
        }
        List<Path> written = new ArrayList<>();
        ResultTables.Provenance prov = new ResultTables.Provenance(s, identity.path("model_fingerprint").asText(),
                identity.path("problems_sha256").asText(), Machine.describe());
        for (Experiment t : e.tables()) {
            written.addAll(ResultTables.write(t, outcomes, prov, out));
        }
        return new Result(List.copyOf(outcomes.values()), written, internalFailures);
    }

    // ------------------------------------------------------------------ checks and the output directory

    private Set<String> selection(Experiment e, List<ConfigSpec> configs) {
        Set<String> ids = new LinkedHashSet<>();
        configs.forEach(c -> ids.add(c.id()));
        if (s.only().isEmpty()) {
            return ids;
        }
        Set<String> sel = new LinkedHashSet<>();
        for (String id : s.only()) {
            String t = id.strip();
            if (!ids.contains(t)) {
                throw new IllegalArgumentException("--only: experiment " + e.key + " has no configuration '" + t
                        + "'; expected some of " + String.join(", ", ids));
            }
            sel.add(t);
        }
        return sel;
    }

    /** Checks model and data before any work, and returns the settings' identity for experiment.json. */
    private ObjectNode checkInputs() {
        ModelBench.checkModelDir(s.model(), "--model");
        if (ModelBench.isQuantized(s.model())) {
            throw new IllegalArgumentException("--model " + s.model() + ": a quantized checkpoint; expected the "
                    + "floating-point model the configurations are made from");
        }
        if (!Files.isDirectory(s.data())) {
            throw new IllegalArgumentException("--data " + s.data() + ": no such directory (expected "
                    + ScienceQaDataset.PROBLEMS_FILE + " and " + ScienceQaDataset.SPLITS_FILE + " there)");
        }
        ScienceQaDataset data = ScienceQaDataset.load(s.data());
        if (!data.splitNames().contains(s.evalSplit())) {
            throw new IllegalArgumentException("--eval-split " + s.evalSplit() + ": " + s.data().resolve(
                    ScienceQaDataset.SPLITS_FILE) + " has splits " + data.splitNames() + ", not this one");
        }
        if (data.split(s.evalSplit()).isEmpty()) {
            throw new IllegalArgumentException("--eval-split " + s.evalSplit() + ": the split of " + s.data()
                    + " is empty");
        }
        int train = data.splitNames().contains(CALIB_SPLIT) ? data.split(CALIB_SPLIT).size() : 0;
        if (s.calibN() > train) {
            throw new IllegalArgumentException("--calib-n " + s.calibN() + ": the " + CALIB_SPLIT + " split of "
                    + s.data() + " has only " + train + " problems");
        }
        Path outAbs = s.out().toAbsolutePath().normalize();
        if (outAbs.startsWith(s.model().toAbsolutePath().normalize())) {
            throw new IllegalArgumentException("--out " + s.out() + ": inside the model directory " + s.model()
                    + "; choose a directory outside it");
        }
        ObjectNode o = JSON.createObjectNode();
        return s.identity(o, ModelFingerprint.of(s.model()).digest(),
                Calibrator.sha256(s.data().resolve(ScienceQaDataset.PROBLEMS_FILE)));
    }

    /** Creates the output directory, or checks that a resumed one was made with the same settings. */
    private void prepareOut(ObjectNode identity) {
        Path f = out.resolve(SETTINGS_FILE);
        try {
            if (Files.exists(out) && !Files.isDirectory(out)) {
                throw new IllegalArgumentException("--out " + out + ": exists and is not a directory");
            }
            if (Files.isRegularFile(f)) {
                if (!s.resume()) {
                    throw new IllegalArgumentException("--out " + out + ": holds an earlier experiment (" + SETTINGS_FILE
                            + "); pass --resume to continue it and reuse its results, or choose another --out");
                }
                JsonNode earlier;
                try {
                    earlier = JSON.readTree(f.toFile());
                } catch (IOException e) {
                    throw new IllegalArgumentException(f + ": not valid JSON (" + e.getMessage() + ")", e);
                }
                String diff = Settings.firstDifference(earlier, identity);
                if (diff != null) {
                    throw new IllegalArgumentException(f + ": the earlier run differs in " + diff
                            + "; repeat its settings to resume, or choose another --out");
                }
                return;
            }
            for (String name : ownNames()) {
                if (Files.exists(out.resolve(name))) {
                    throw new IllegalArgumentException("--out " + out + ": holds " + name + " but no " + SETTINGS_FILE
                            + " of an earlier experiment; choose another directory or remove it");
                }
            }
            Files.createDirectories(out);
            Path ignore = out.resolve(GITIGNORE);
            if (!Files.exists(ignore)) {
                AtomicFiles.writeString(ignore, String.join("\n", IGNORED) + "\n");
            }
            AtomicFiles.writeString(f, JSON.writeValueAsString(identity) + "\n");
        } catch (IOException e) {
            throw new UncheckedIOException("--out " + out + ": " + e.getMessage(), e);
        }
    }

    /** The names this class writes directly under the output directory (other files there are left alone). */
    private static List<String> ownNames() {
        List<String> l = new ArrayList<>(List.of(STATS_DIR, MODELS_DIR, WORK_DIR, EVAL_DIR, BENCH_DIR, STEPS_DIR,
                FIG3_PNG));
        for (Experiment e : Experiment.ALL.tables()) {
            l.add(e.key + ".md");
            l.add(e.key + ".json");
        }
        return l;
    }

    private void calibrate() {
        Path stats = out.resolve(STATS_DIR);
        if (Files.isDirectory(stats)) {
            log.accept("experiment: calibration statistics " + stats + " (reused)");
            return;
        }
        log.accept(String.format(Locale.ROOT, "experiment: calibrating on %d %s prompts (seed %d) into %s", s.calibN(),
                CALIB_SPLIT, s.calibSeed(), stats));
        Ticker t = new Ticker();
        Calibrator.Result r = Calibrator.run(new Calibrator.Request(s.model(), s.data(), CALIB_SPLIT, false, s.calibN(),
                s.calibSeed(), "all", "all", s.threads(), PromptTemplate.VICUNA_V1, PadMode.PAD_TO_SQUARE,
                Calibrator.Inputs.ANSWER, stats, false), p -> t.tick(p.done() == p.total(), () -> String.format(Locale.ROOT,
                "  calibrate: %d/%d prompts", p.done(), p.total())));
        log.accept(String.format(Locale.ROOT, "experiment: calibrated %d prompts, %d tokens in %.1f s", r.samples(),
                r.tokens(), r.seconds()));
    }

    // ------------------------------------------------------------------ one configuration

    /** Why the configuration cannot exist (its format, or an option quantize lacks), or null. */
    private Outcome unavailable(ConfigSpec c) {
        if (c.unavailable() != null) {
            return Outcome.of(c, Outcome.Status.UNAVAILABLE, c.unavailable());
        }
        for (ConfigSpec.Flag f : c.flags()) {
            if (f.required() && !quantize.knowsOption(f.probe())) {
                return Outcome.of(c, Outcome.Status.UNAVAILABLE, "quantize has no option " + f.probe()
                        + " (needed for " + String.join(" ", f.tokens()) + ")");
            }
        }
        return null;
    }

    /** The configuration's option tokens that quantize knows (an unknown optional one switches a missing feature off). */
    private List<String> flagArgs(ConfigSpec c) {
        List<String> args = new ArrayList<>();
        for (ConfigSpec.Flag f : c.flags()) {
            if (quantize.knowsOption(f.probe())) {
                args.addAll(f.tokens());
            }
        }
        return args;
    }

    /**
     * A configuration --only leaves out: its results when an earlier run completed every step, else
     * not selected. Nothing is run.
     */
    private Outcome completed(ConfigSpec c, String tag) {
        Path modelDir = c.isFp() ? s.model() : out.resolve(MODELS_DIR).resolve(c.id());
        Path report = out.resolve(EVAL_DIR).resolve(c.id()).resolve(EvalRun.REPORT_JSON);
        Path bench = out.resolve(BENCH_DIR).resolve(c.id() + ".json");
        JsonNode steps = readSteps(c);
        JsonNode q = steps.get("quantize");
        if (!Files.isDirectory(modelDir) || !Files.isRegularFile(report) || !Files.isRegularFile(bench)
                || (!c.isFp() && q == null)) {
            return Outcome.of(c, Outcome.Status.NOT_SELECTED, "not selected (--only)");
        }
        log.accept(tag + ": not selected; results of an earlier run (reused)");
        return new Outcome(c, Outcome.Status.DONE, null, c.isFp() ? null : quantizedFromJson(q),
                evaluated(report, loadFromJson(steps.path("eval").path("load"))),
                benched(bench, loadFromJson(steps.path("bench").path("load"))));
    }

    private Outcome runConfig(ConfigSpec c, List<String> flagArgs, String tag) {
        Outcome.Quantized q = null;
        Outcome.Evaluated ev = null;
        Outcome.Benched b = null;
        try {
            Path modelDir = c.isFp() ? s.model() : out.resolve(MODELS_DIR).resolve(c.id());
            if (!c.isFp()) {
                q = quantizeStep(c, flagArgs, modelDir, tag);
            }
            ev = evalStep(c, modelDir, tag);
            b = benchStep(c, modelDir, tag);
            return new Outcome(c, Outcome.Status.DONE, null, q, ev, b);
        } catch (QuantizeStep.Refused e) {
            return new Outcome(c, Outcome.Status.FAILED, "quantize refused: " + e.getMessage(), q, ev, b);
        } catch (IllegalArgumentException | UncheckedIOException e) {
            return new Outcome(c, Outcome.Status.FAILED, e.getMessage(), q, ev, b);
        } catch (RuntimeException e) {
            internalFailures++;
            return new Outcome(c, Outcome.Status.FAILED, "internal error: " + e, q, ev, b);
        }
    }

    /**
     * quantize's arguments that put configuration c on the settings' testbed: none on the default one;
     * with per-tensor LLM inputs {@code --llm-inputs tensor} for every configuration that quantizes
     * inputs, and for Q-VLM also its grid for such tensors (unless the configuration sets its own), the
     * normed block error and a smoothed copy of the model (SmoothQuant's scales at
     * {@value Settings#TENSOR_SMOOTH_ALPHA} folded in, the calibration repeated on it; unless the
     * configuration sets its own alpha).
     */
    static List<String> testbedArgs(Settings s, ConfigSpec c, List<String> flagArgs) {
        List<String> args = new ArrayList<>();
        if (s.tensorInputs() && !c.isFp() && c.abits() < ConfigSpec.FLOAT_BITS) {
            args.addAll(List.of("--llm-inputs", "tensor"));
            if (c.method().equals(QvlmMethod.NAME)) {
                args.addAll(List.of("--block-error", "normed"));
                if (!flagArgs.contains("--p-grid")) {
                    args.addAll(List.of("--p-grid", Settings.TENSOR_GRID));
                }
                if (!flagArgs.contains("--smooth-alpha")) {
                    args.addAll(List.of("--smooth-alpha", Settings.TENSOR_SMOOTH_ALPHA));
                }
            }
        }
        return args;
    }

    private Outcome.Quantized quantizeStep(ConfigSpec c, List<String> flagArgs, Path modelDir, String tag) {
        Path work = out.resolve(WORK_DIR).resolve(c.id());
        List<String> args = new ArrayList<>(List.of("--model", s.model().toString(), "--stats",
                out.resolve(STATS_DIR).toString()));
        args.addAll(c.baseArgs());
        args.addAll(flagArgs);
        List<String> testbed = testbedArgs(s, c, flagArgs);
        args.addAll(testbed);
        if (c.method().equals(QvlmMethod.NAME)) {
            args.addAll(List.of("--data", s.data().toString(), "--work", work.toString()));
            if (c.veo() && quantize.knowsOption(VEO_SAMPLES)) {
                // VEO trains on the calibration sample's size, as the paper uses its 64 pairs for both
                args.addAll(List.of(VEO_SAMPLES, Integer.toString(s.calibN())));
            }
        }
        args.addAll(List.of("--out", modelDir.toString()));
        ObjectNode steps = readSteps(c);
        if (Files.isDirectory(modelDir)) {
            log.accept(tag + ": checkpoint " + modelDir + " (reused)");
            JsonNode rec = steps.get("quantize");
            if (rec != null) {
                return quantizedFromJson(rec);
            }
            // killed between the checkpoint and its record: the time is lost, the search cost is not
            Outcome.Quantized qd = withSearchCost(new Outcome.Quantized(args, Double.NaN, Double.NaN, -1,
                    Double.NaN, Outcome.Load.UNKNOWN), modelDir, work);
            steps.set("quantize", quantizedJson(qd));
            writeSteps(c, steps);
            return qd;
        }
        deleteStaleTemporaries(modelDir);
        List<String> shown = new ArrayList<>(flagArgs);
        shown.addAll(testbed);
        log.accept(tag + ": quantize " + String.join(" ", c.baseArgs()) + (shown.isEmpty() ? ""
                : " " + String.join(" ", shown)));
        Outcome.Load load = Machine.load();
        long t0 = System.nanoTime();
        try {
            Files.createDirectories(modelDir.getParent());
        } catch (IOException e) {
            throw new UncheckedIOException(modelDir.getParent() + ": " + e.getMessage(), e);
        }
        quantize.run(args, line -> log.accept("  " + line));
        double seconds = (System.nanoTime() - t0) / 1e9;
        Outcome.Quantized qd = withSearchCost(new Outcome.Quantized(args, seconds, Double.NaN, -1, Double.NaN, load),
                modelDir, work);
        steps.set("quantize", quantizedJson(qd));
        writeSteps(c, steps);
        log.accept(String.format(Locale.ROOT, "%s: quantized in %.1f s", tag, seconds));
        return qd;
    }

    /** Q-VLM's search cost from its report beside the checkpoint, else from the work directory's result. */
    private static Outcome.Quantized withSearchCost(Outcome.Quantized q, Path modelDir, Path work) {
        for (Path f : List.of(modelDir.resolve(QVLM_REPORT), work.resolve(QvlmMethod.RESULT_FILE))) {
            if (!Files.isRegularFile(f)) {
                continue;
            }
            try {
                JsonNode report = JSON.readTree(f.toFile());
                JsonNode cost = report.path("search_cost");
                if (cost.has("seconds")) {
                    JsonNode veo = report.path("veo").path("seconds");
                    return new Outcome.Quantized(q.args(), q.seconds(), cost.path("seconds").asDouble(),
                            cost.path("forwards").asLong(-1), veo.isNumber() ? veo.asDouble() : Double.NaN, q.load());
                }
            } catch (IOException e) {
                throw new UncheckedIOException(f + ": cannot read the search cost: " + e.getMessage(), e);
            }
        }
        return q;
    }

    /** Removes what a killed quantize left beside the checkpoint (its temporary directories). */
    private static void deleteStaleTemporaries(Path modelDir) {
        Path parent = modelDir.toAbsolutePath().getParent();
        if (!Files.isDirectory(parent)) {
            return;
        }
        String prefix = modelDir.getFileName() + ".tmp-";
        try (Stream<Path> l = Files.list(parent)) {
            for (Path p : l.filter(p -> p.getFileName().toString().startsWith(prefix)).toList()) {
                deleteTree(p);
            }
        } catch (IOException e) {
            throw new UncheckedIOException(parent + ": " + e.getMessage(), e);
        }
    }

    private static void deleteTree(Path dir) throws IOException {
        try (Stream<Path> w = Files.walk(dir)) {
            for (Path p : w.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        }
    }

    private Outcome.Evaluated evalStep(ConfigSpec c, Path modelDir, String tag) {
        Path dir = out.resolve(EVAL_DIR).resolve(c.id());
        Path report = dir.resolve(EvalRun.REPORT_JSON);
        ObjectNode steps = readSteps(c);
        if (Files.isRegularFile(report)) {
            log.accept(tag + ": evaluation " + dir + " (reused)");
            return evaluated(report, loadFromJson(steps.path("eval").path("load")));
        }
        Outcome.Load load = Machine.load();
        log.accept(tag + ": evaluate on " + s.evalSplit() + (s.limit() > 0 ? " (" + s.limit() + " problems)" : ""));
        ScienceQaEvaluator.Settings es = new ScienceQaEvaluator.Settings(PromptTemplate.VICUNA_V1, s.maxNewTokens(),
                PadMode.PAD_TO_SQUARE, false, EVAL_SEED);
        Ticker t = new Ticker();
        EvalRun.Result r = EvalRun.run(new EvalRun.Request(modelDir, s.data(), s.evalSplit(), s.limit(), EVAL_SEED,
                s.threads(), es, dir, false), p -> t.tick(p.done() == p.total(), () -> String.format(Locale.ROOT,
                "  eval: %d/%d problems, accuracy %.2f%%, parse failures %d", p.done(), p.total(), p.accuracy(),
                p.parseFailures())));
        steps.set("eval", JSON.createObjectNode().set("load", loadJson(load)));
        writeSteps(c, steps);
        log.accept(String.format(Locale.ROOT, "%s: evaluated %d problems (%d resumed) in %.1f s, Avg %s", tag,
                r.problems(), r.resumed(), r.wallSeconds(), r.metrics().accuracy("Avg")));
        return evaluated(report, load);
    }

    private Outcome.Benched benchStep(ConfigSpec c, Path modelDir, String tag) {
        Path f = out.resolve(BENCH_DIR).resolve(c.id() + ".json");
        ObjectNode steps = readSteps(c);
        if (Files.isRegularFile(f)) {
            log.accept(tag + ": measurement " + f + " (reused)");
            return benched(f, loadFromJson(steps.path("bench").path("load")));
        }
        Outcome.Load load = Machine.load();
        ModelBench.Isolation isolation = s.benchInProcess() ? ModelBench.Isolation.IN_PROCESS
                : ModelBench.Isolation.CHILD_JVM;
        log.accept(tag + ": measure size, memory and speed (" + isolation.key + ", " + s.benchReps() + " repetitions)");
        ModelBench.Options o = new ModelBench.Options(0, s.decodeTokens(), s.benchReps(), 1, 0,
                ModelBench.DEFAULT_PROMPT, null);
        ModelBench.Report r = ModelBench.measure(modelDir, o, isolation);
        try {
            Files.createDirectories(f.getParent());
        } catch (IOException e) {
            throw new UncheckedIOException(f.getParent() + ": " + e.getMessage(), e);
        }
        AtomicFiles.writeString(f, ModelComparison.json(r, null, isolation,
                Parallel.threadsFromProperty(), o, null));
        steps.set("bench", JSON.createObjectNode().set("load", loadJson(load)));
        writeSteps(c, steps);
        log.accept(String.format(Locale.ROOT, "%s: %d bytes on disk, decode %.1f tokens/s", tag,
                r.footprint().safetensorsBytes(), r.decodeTokensPerSecond()));
        return benched(f, load);
    }

    // ------------------------------------------------------------------ records on disk

    /** The evaluation's report.json as an outcome record. */
    static Outcome.Evaluated evaluated(Path report, Outcome.Load load) {
        JsonNode r = readJson(report);
        Map<String, BigDecimal> acc = new LinkedHashMap<>();
        Map<String, Integer> count = new LinkedHashMap<>();
        for (String col : ScienceQaMetrics.COLUMNS) {
            JsonNode a = r.path("accuracy").get(col);
            acc.put(col, a == null || a.isNull() ? null : a.decimalValue());
            count.put(col, r.path("count").path(col).asInt());
        }
        int problems = r.path("problems").asInt();
        double pps = r.path("run").path("problems_per_second").asDouble();
        Path predictions = report.resolveSibling(EvalRun.PREDICTIONS);
        return new Outcome.Evaluated(acc, count, r.path("parse_failures").asInt(), problems,
                pps > 0 ? problems / pps : Double.NaN, load,
                Files.exists(predictions) ? PairedComparison.readCorrect(predictions) : Map.of());
    }

    /** The bench JSON's metrics as an outcome record. */
    static Outcome.Benched benched(Path f, Outcome.Load load) {
        JsonNode r = readJson(f);
        Map<String, Double> m = new LinkedHashMap<>();
        for (JsonNode n : r.path("metrics")) {
            m.put(n.path("key").asText(), n.path("model").isNull() ? Double.NaN : n.path("model").asDouble());
        }
        return new Outcome.Benched(metric(m, f, "disk.safetensors_bytes").longValue(),
                metric(m, f, "weights.total_bytes").longValue(), metric(m, f, "memory.rss_peak_bytes").longValue(),
                metric(m, f, "prefill.tokens_per_s"), metric(m, f, "decode.tokens_per_s"), r.path("threads").asInt(),
                load);
    }

    private static Double metric(Map<String, Double> m, Path f, String key) {
        Double v = m.get(key);
        if (v == null) {
            throw new IllegalArgumentException(f + ": bench JSON has no metric " + key);
        }
        return v;
    }

    static JsonNode readJson(Path f) {
        try {
            return JSON.readTree(f.toFile());
        } catch (IOException e) {
            throw new IllegalArgumentException(f + ": cannot read JSON: " + e.getMessage(), e);
        }
    }

    private ObjectNode readSteps(ConfigSpec c) {
        Path f = out.resolve(STEPS_DIR).resolve(c.id() + ".json");
        return Files.isRegularFile(f) ? (ObjectNode) readJson(f) : JSON.createObjectNode();
    }

    private void writeSteps(ConfigSpec c, ObjectNode steps) {
        Path f = out.resolve(STEPS_DIR).resolve(c.id() + ".json");
        try {
            Files.createDirectories(f.getParent());
            AtomicFiles.writeString(f, JSON.writeValueAsString(steps) + "\n");
        } catch (IOException e) {
            throw new UncheckedIOException(f + ": " + e.getMessage(), e);
        }
    }

    static ObjectNode quantizedJson(Outcome.Quantized q) {
        ObjectNode o = JSON.createObjectNode();
        ArrayNode a = o.putArray("args");
        q.args().forEach(a::add);
        putDouble(o, "seconds", q.seconds());
        putDouble(o, "search_seconds", q.searchSeconds());
        o.put("search_forwards", q.searchForwards());
        putDouble(o, "veo_seconds", q.veoSeconds());
        o.set("load", loadJson(q.load()));
        return o;
    }

    private static Outcome.Quantized quantizedFromJson(JsonNode o) {
        List<String> args = new ArrayList<>();
        o.path("args").forEach(n -> args.add(n.asText()));
        return new Outcome.Quantized(args, doubleOf(o.get("seconds")), doubleOf(o.get("search_seconds")),
                o.path("search_forwards").asLong(-1), doubleOf(o.get("veo_seconds")), loadFromJson(o.path("load")));
    }

    static ObjectNode loadJson(Outcome.Load l) {
        ObjectNode o = JSON.createObjectNode();
        putDouble(o, "other_busy_cores", l.otherBusyCores());
        putDouble(o, "load_average", l.loadAverage());
        o.put("cores", l.cores());
        return o;
    }

    private static Outcome.Load loadFromJson(JsonNode o) {
        if (o == null || o.isMissingNode() || o.isNull()) {
            return Outcome.Load.UNKNOWN;
        }
        return new Outcome.Load(doubleOf(o.get("other_busy_cores")), doubleOf(o.get("load_average")),
                o.path("cores").asInt());
    }

    static void putDouble(ObjectNode o, String key, double v) {
        if (Double.isFinite(v)) {
            o.put(key, v);
        } else {
            o.putNull(key);
        }
    }

    private static double doubleOf(JsonNode n) {
        return n == null || n.isNull() ? Double.NaN : n.asDouble();
    }

    /** Emits a progress line at most every {@value #PROGRESS_INTERVAL_S} s, and always the last one. */
    private final class Ticker {
        private long last = System.nanoTime();

        synchronized void tick(boolean done, java.util.function.Supplier<String> line) {
            long now = System.nanoTime();
            if (done || (now - last) / 1e9 >= PROGRESS_INTERVAL_S) {
                last = now;
                log.accept(line.get());
            }
        }
    }
}
