package org.qvlm4j.cli;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.io.Writer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import java.util.function.Consumer;
import org.qvlm4j.data.ScienceQaDataset;
import org.qvlm4j.data.SynthBenchmark;
import org.qvlm4j.experiments.Experiment;
import org.qvlm4j.experiments.ExperimentRunner;
import org.qvlm4j.experiments.Outcome;
import org.qvlm4j.experiments.QuantizeStep;
import org.qvlm4j.experiments.Settings;
import org.qvlm4j.quant.QuantSpec;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * {@code qvlm4j experiment NAME}: regenerates a results table ({@link Experiment}: the baselines,
 * the Q-VLM paper's Tables 1, 2, 4, 5, 6, Fig. 3, or all of them) on a model, through
 * {@link ExperimentRunner}, with {@code quantize} run in-process through its own option parsing
 * ({@link InProcessQuantize}). Progress goes to stderr, the files written and a count of
 * configurations by status to stdout. Exit code 2 for bad options or inputs (before any work), 1
 * when a configuration failed for another reason than its input (the tables are still written).
 */
@Command(name = "experiment", mixinStandardHelpOptions = true,
        description = "Regenerate a results table on a model: calibrate once, quantize, evaluate and measure each "
                + "configuration (resumable), and write OUT/<name>.md and .json (fig3 also a PNG).")
public final class ExperimentCommand implements Callable<Integer> {
    static final int EXIT_BAD_INPUT = 2;
    static final int EXIT_FAILED = 1;
    /** Train problems of a --synth-seed benchmark: the calibration and VEO pool. */
    static final int SYNTH_TRAIN = 2000;
    /** Test problems of a --synth-seed benchmark. */
    static final int SYNTH_TEST = 1000;
    /** Picture size of a --synth-seed benchmark (the synth default). */
    static final int SYNTH_IMAGE_SIZE = 64;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Parameters(index = "0", paramLabel = "NAME",
            description = "baselines, table1, table2, table4, table5, table6, fig3, headline or all.")
    String name;

    @Option(names = "--model", required = true, paramLabel = "DIR", description = "Floating-point model directory.")
    Path model;

    @Option(names = "--data", paramLabel = "DIR",
            description = "ScienceQA-format data (train split for calibration, --eval-split for evaluation).")
    Path data;

    @Option(names = "--synth-seed", paramLabel = "S",
            description = "Instead of --data: draw a fresh benchmark with this seed (" + SYNTH_TRAIN + " train problems "
                    + "for calibration, --synth-test test problems) into OUT/data-seed-S, or reuse it there.")
    Long synthSeed;

    @Option(names = "--synth-test", defaultValue = "" + SYNTH_TEST, paramLabel = "N",
            description = "Test problems of the --synth-seed benchmark (default: ${DEFAULT-VALUE}); more problems give "
                    + "narrower intervals in the paired comparisons. A benchmark already in OUT must have this many.")
    int synthTest;

    @Option(names = "--out", required = true, paramLabel = "DIR",
            description = "Output directory: tables, and the checkpoints, evaluations and measurements behind them.")
    Path out;

    @Option(names = "--calib-n", defaultValue = "" + Settings.DEFAULT_CALIB_N, paramLabel = "N",
            description = "Calibration prompts from the train split (default: ${DEFAULT-VALUE}).")
    int calibN;

    @Option(names = "--calib-seed", defaultValue = "0", paramLabel = "S",
            description = "Seed of the calibration sample (default: ${DEFAULT-VALUE}).")
    long calibSeed;

    @Option(names = "--eval-split", defaultValue = Settings.DEFAULT_SPLIT, paramLabel = "SPLIT",
            description = "Split to evaluate on (default: ${DEFAULT-VALUE}).")
    String evalSplit;

    @Option(names = "--limit", defaultValue = "0", paramLabel = "N",
            description = "Evaluate a seeded sample of N problems; 0 = the whole split (default: ${DEFAULT-VALUE}).")
    int limit;

    @Option(names = "--max-new-tokens", defaultValue = "" + Settings.DEFAULT_MAX_NEW_TOKENS, paramLabel = "N",
            description = "Greedy generation limit per problem (default: ${DEFAULT-VALUE}).")
    int maxNewTokens;

    @Option(names = "--threads", paramLabel = "N",
            description = "Evaluation and calibration workers (default: available processors). Results do not depend "
                    + "on it.")
    Integer threads;

    @Option(names = "--bench-reps", defaultValue = "" + Settings.DEFAULT_BENCH_REPS, paramLabel = "N",
            description = "Timed repetitions of each model's measurement (default: ${DEFAULT-VALUE}).")
    int benchReps;

    @Option(names = "--decode-tokens", defaultValue = "" + Settings.DEFAULT_DECODE_TOKENS, paramLabel = "N",
            description = "Greedy decode steps timed per repetition (default: ${DEFAULT-VALUE}).")
    int decodeTokens;

    @Option(names = "--bench-in-process",
            description = "Measure every model in this JVM instead of one child JVM each: quicker, but a later model's "
                    + "resident memory includes what earlier ones left in the heap.")
    boolean benchInProcess;

    @Option(names = "--only", split = ",", paramLabel = "CONFIG,...",
            description = "Run only these configurations (ids such as fp, rtn-w8a8, qvlm-w4a4); the others show what "
                    + "an earlier run left in --out, or stay in the table as not selected.")
    List<String> only;

    @Option(names = "--llm-inputs", defaultValue = "channel", paramLabel = "GRANULARITY",
            description = "Ranges of the LLM's quantized linear inputs for every method: channel (the presets' static "
                    + "range per input channel) or tensor (one static range per linear input, the harder testbed; "
                    + "Q-VLM then searches a grid with 0.999 and 0.998, measures its block error normed and runs on a "
                    + "copy smoothed at alpha " + Settings.TENSOR_SMOOTH_ALPHA + ") "
                    + "(default: ${DEFAULT-VALUE}).")
    String llmInputs;

    @Option(names = "--resume",
            description = "Continue the experiment in --out, reusing its calibration, checkpoints, evaluations and "
                    + "measurements.")
    boolean resume;

    @Override
    public Integer call() {
        PrintWriter err = spec.commandLine().getErr();
        PrintWriter stdout = spec.commandLine().getOut();
        try {
            Experiment e = Experiment.parse(name);
            Path dataDir = dataDirectory(err);
            Settings s = new Settings(model, dataDir, out, calibN, calibSeed, evalSplit, limit, maxNewTokens,
                    threads == null ? Runtime.getRuntime().availableProcessors() : threads, benchReps, decodeTokens,
                    benchInProcess, only == null ? List.of() : only, resume,
                    QuantizeCommand.llmInputGranularity(llmInputs) == QuantSpec.Granularity.PER_TENSOR);
            ExperimentRunner.Result r = ExperimentRunner.run(e, s, new InProcessQuantize(), line -> {
                err.println(line);
                err.flush();
            });
            int[] counts = new int[Outcome.Status.values().length];
            r.outcomes().forEach(o -> counts[o.status().ordinal()]++);
            for (Path p : r.written()) {
                stdout.println("wrote " + p);
            }
            List<String> parts = new ArrayList<>();
            for (Outcome.Status st : Outcome.Status.values()) {
                parts.add(counts[st.ordinal()] + " " + st.name().toLowerCase(Locale.ROOT).replace('_', ' '));
            }
            stdout.println(r.outcomes().size() + " configurations: " + String.join(", ", parts));
            if (e == Experiment.HEADLINE) {
                stdout.println();
                stdout.print(Files.readString(out.resolve(e.key + ".md")));
            }
            stdout.flush();
            if (r.internalFailures() > 0) {
                err.println("qvlm4j experiment: " + r.internalFailures() + " configuration(s) failed with an internal "
                        + "error (see the notes in the tables); rerun with --resume after fixing it");
                err.flush();
                return EXIT_FAILED;
            }
            return 0;
        } catch (IllegalArgumentException | UncheckedIOException ex) {
            err.println("qvlm4j experiment: " + ex.getMessage());
            err.flush();
            return EXIT_BAD_INPUT;
        } catch (IOException ex) {
            throw new UncheckedIOException(ex);
        }
    }

    /** --data, or the --synth-seed benchmark under --out (drawn unless it is there from an earlier run). */
    private Path dataDirectory(PrintWriter err) {
        if ((data == null) == (synthSeed == null)) {
            throw new IllegalArgumentException("expected exactly one of --data DIR and --synth-seed S, got "
                    + (data == null ? "neither" : "both"));
        }
        if (data != null) {
            return data;
        }
        if (!Files.isRegularFile(model.resolve("config.json"))) {
            // Checked before drawing, so a wrong --model leaves nothing behind.
            throw new IllegalArgumentException("--model " + model + ": expected a model directory with config.json");
        }
        if (synthTest < 1) {
            throw new IllegalArgumentException("--synth-test must be >= 1, got " + synthTest);
        }
        Path dir = out.resolve("data-seed-" + synthSeed);
        // The model's own solution style: calibration and VEO teacher-force train answers built on it.
        SynthBenchmark.Solutions solutions = SynthBenchmark.Solutions.ofModel(model);
        String style = solutions.name().toLowerCase(Locale.ROOT);
        if (Files.isRegularFile(dir.resolve(ScienceQaDataset.PROBLEMS_FILE))) {
            SynthBenchmark.Solutions.requireModelsOwn(dir, model, "use another --out");
            SynthBenchmark.requireTestCount(dir, synthTest, "use another --out or --synth-test");
            err.println("experiment: reusing the seed-" + synthSeed + " benchmark in " + dir);
        } else {
            err.println("experiment: drawing a benchmark with seed " + synthSeed + " (" + SYNTH_TRAIN + " train, "
                    + synthTest + " test problems, " + style + " solutions) into " + dir);
            SynthBenchmark.write(dir, new SynthBenchmark.Options(synthSeed, SYNTH_TRAIN, 0, synthTest,
                    SYNTH_IMAGE_SIZE, solutions), (done, total) -> { });
        }
        err.flush();
        return dir;
    }

    /**
     * {@link QuantizeCommand} run in this JVM through picocli: its progress and summary lines go to
     * the experiment's progress, an option it lacks or a refused input is {@link QuantizeStep.Refused}
     * with its message, any other failure an {@link IllegalStateException}.
     */
    static final class InProcessQuantize implements QuantizeStep {
        private static final String PREFIX = "qvlm4j quantize: ";

        @Override
        public boolean knowsOption(String option) {
            return new CommandLine(new QuantizeCommand()).getCommandSpec().findOption(option) != null;
        }

        @Override
        public void run(List<String> args, Consumer<String> progress) {
            String[] refused = {null};
            LineWriter errLines = new LineWriter(line -> {
                if (line.startsWith(PREFIX)) {
                    refused[0] = line.substring(PREFIX.length());
                }
                progress.accept(line);
            });
            PrintWriter err = new PrintWriter(errLines, true);
            PrintWriter out = new PrintWriter(new LineWriter(progress), true);
            CommandLine cl = new CommandLine(new QuantizeCommand());
            cl.setOut(out);
            cl.setErr(err);
            cl.setParameterExceptionHandler((ex, a) -> {
                refused[0] = ex.getMessage();
                return EXIT_BAD_INPUT;
            });
            cl.setExecutionExceptionHandler((ex, c, parsed) -> {
                throw new IllegalStateException("quantize " + String.join(" ", args) + ": " + ex, ex);
            });
            int code = cl.execute(args.toArray(String[]::new));
            out.flush();
            err.flush();
            errLines.flushLine();
            if (code == EXIT_BAD_INPUT) {
                throw new Refused(refused[0] != null ? refused[0] : "exit code 2 for " + String.join(" ", args));
            }
            if (code != 0) {
                throw new IllegalStateException("quantize " + String.join(" ", args) + " exited with " + code);
            }
        }
    }

    /** A writer that hands each complete line to a consumer. */
    static final class LineWriter extends Writer {
        private final Consumer<String> lines;
        private final StringBuilder pending = new StringBuilder();

        LineWriter(Consumer<String> lines) {
            this.lines = lines;
        }

        @Override
        public synchronized void write(char[] buf, int off, int len) {
            for (char c : Arrays.copyOfRange(buf, off, off + len)) {
                if (c == '\n') {
                    flushLine();
                } else if (c != '\r') {
                    pending.append(c);
                }
            }
        }

        synchronized void flushLine() {
            if (!pending.isEmpty()) {
                lines.accept(pending.toString());
                pending.setLength(0);
            }
        }

        @Override
        public void flush() {
        }

        @Override
        public void close() {
            flushLine();
        }
    }
}
