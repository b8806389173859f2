package org.qvlm4j.cli;

import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import org.qvlm4j.io.image.PadMode;
import org.qvlm4j.io.text.PromptTemplate;
import org.qvlm4j.quant.calib.CalibrationStats;
import org.qvlm4j.quant.calib.Calibrator;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code qvlm4j calibrate}: activation statistics for the quantizers ({@link Calibrator}) from a
 * seeded sample of train-split ScienceQA prompts, written as a {@link CalibrationStats} directory.
 * Progress goes to stderr, a one-line summary to stdout. Exit code 2 for bad options or inputs
 * (a non-train split without --allow-split, an existing output without --overwrite, an unknown
 * site in --hessian, a model and tokenizer that do not match).
 */
@Command(name = "calibrate", mixinStandardHelpOptions = true,
        description = "Collect activation statistics (ranges, per-channel scales, percentiles, GPTQ Hessians) "
                + "on ScienceQA train prompts for post-training quantization.")
public final class CalibrateCommand implements Callable<Integer> {

    /** Exit code for bad input, the same as Main's. */
    static final int EXIT_BAD_INPUT = 2;
    /** Seconds between progress lines. */
    static final double PROGRESS_INTERVAL_S = 2.0;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Option(names = "--model", required = true, paramLabel = "DIR", description = "Model directory (config, weights, tokenizer).")
    Path modelDir;

    @Option(names = "--data", required = true, paramLabel = "DIR", description = "Dataset directory (problems.json, pid_splits.json, images/).")
    Path dataDir;

    @Option(names = "--n", defaultValue = "64", paramLabel = "N", description = "Problems to sample (default: ${DEFAULT-VALUE}).")
    int n;

    @Option(names = "--seed", defaultValue = "0", paramLabel = "S", description = "Seed of the sample (default: ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = "--split", defaultValue = Calibrator.DEFAULT_SPLIT,
            description = "Split of pid_splits.json (default: ${DEFAULT-VALUE}; others need --allow-split).")
    String split;

    @Option(names = "--allow-split",
            description = "Allow a split other than train (calibrating on evaluation data leaks it into the quantized model).")
    boolean allowSplit;

    @Option(names = "--hessian", defaultValue = "none", paramLabel = "SITES",
            description = "Linear layers whose input Hessian (K x K) to collect: all, none, or comma-separated names/globs "
                    + "such as 'llm.layers.*.mlp.down_proj' (default: ${DEFAULT-VALUE}).")
    String hessian;

    @Option(names = "--channel-percentiles", defaultValue = "all", paramLabel = "SITES",
            description = "Linear layers whose exact per-channel percentiles to collect: all, none, or names/globs "
                    + "(default: ${DEFAULT-VALUE}).")
    String channelPercentiles;

    @Option(names = "--threads", paramLabel = "N",
            description = "Threads for the Hessian updates (default: available processors; the model's kernels use the "
                    + "shared pool, -Dqvlm4j.threads). Results do not depend on it.")
    Integer threads;

    @Option(names = "--template", defaultValue = "VICUNA_V1", paramLabel = "NAME",
            description = "Conversation template: ${COMPLETION-CANDIDATES} (default: ${DEFAULT-VALUE}, as the evaluation).")
    PromptTemplate template;

    @Option(names = "--pad-mode", defaultValue = "PAD_TO_SQUARE", paramLabel = "MODE",
            description = "Image aspect handling: ${COMPLETION-CANDIDATES} (default: ${DEFAULT-VALUE}, as the evaluation).")
    PadMode padMode;

    @Option(names = "--inputs", defaultValue = "ANSWER", paramLabel = "WHAT",
            description = "Tokens each problem runs: PROMPT (up to ASSISTANT:, as Q-VLM's code) or ANSWER (the prompt, "
                    + "then the train answer in the model's answer style and EOS, so that frozen ranges cover the "
                    + "tokens generation produces) (default: ${DEFAULT-VALUE}).")
    Calibrator.Inputs inputs;

    @Option(names = "--out", required = true, paramLabel = "STATS", description = "Statistics directory to create.")
    Path out;

    @Option(names = "--overwrite", description = "Replace an existing statistics directory.")
    boolean overwrite;

    @Override
    public Integer call() {
        PrintWriter err = spec.commandLine().getErr();
        PrintWriter stdout = spec.commandLine().getOut();
        try {
            int nThreads = threads == null ? Runtime.getRuntime().availableProcessors() : threads;
            Calibrator.Request req = new Calibrator.Request(modelDir, dataDir, split, allowSplit, n, seed, hessian,
                    channelPercentiles, nThreads, template, padMode, inputs, out, overwrite);
            long[] last = {0};
            Calibrator.Result res = Calibrator.run(req, p -> {
                long now = System.nanoTime();
                if (p.done() == p.total() || (now - last[0]) / 1e9 >= PROGRESS_INTERVAL_S) {
                    last[0] = now;
                    err.printf("calibrate: %d/%d samples, %d tokens, ETA %s%n", p.done(), p.total(), p.tokens(),
                            eta(p.etaSeconds()));
                    err.flush();
                }
            });
            stdout.printf("%d samples, %d tokens, %d sites, %.1f s; wrote %s%n", res.samples(), res.tokens(), res.sites(),
                    res.seconds(), res.out());
            stdout.flush();
            return 0;
        } catch (IllegalArgumentException | UncheckedIOException e) {
            err.println("qvlm4j calibrate: " + e.getMessage());
            err.flush();
            return EXIT_BAD_INPUT;
        }
    }

    private static String eta(double seconds) {
        if (!Double.isFinite(seconds)) {
            return "?";
        }
        long s = Math.round(seconds);
        return s >= 3600 ? String.format("%dh%02dm", s / 3600, s % 3600 / 60)
                : s >= 60 ? String.format("%dm%02ds", s / 60, s % 60) : s + "s";
    }
}
