package org.qvlm4j.cli;

import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import org.qvlm4j.eval.EvalRun;
import org.qvlm4j.eval.ScienceQaEvaluator;
import org.qvlm4j.eval.ScienceQaMetrics;
import org.qvlm4j.io.image.PadMode;
import org.qvlm4j.io.text.PromptTemplate;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code qvlm4j eval}: LLaVA-1.5's ScienceQA evaluation ({@link EvalRun}) of a model directory on a
 * ScienceQA-format dataset. Progress (done/total, accuracy so far, ETA) goes to stderr; the
 * accuracy table in the paper's layout goes to stdout at the end. Exit code 2 for bad options or
 * inputs (missing directories, unknown split, model and tokenizer that do not match, a run
 * directory holding something else).
 */
@Command(name = "eval", mixinStandardHelpOptions = true,
        description = "Evaluate a LLaVA model on a ScienceQA-format dataset (LLaVA-1.5 protocol: CQM-A prompt, "
                + "greedy answer, letter parsing of eval_science_qa.py).")
public final class EvalCommand implements Callable<Integer> {

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

    @Option(names = "--split", defaultValue = "test", description = "Split of pid_splits.json (default: ${DEFAULT-VALUE}).")
    String split;

    @Option(names = "--limit", defaultValue = "0", paramLabel = "N",
            description = "Evaluate a seeded random sample of N problems, in dataset order; 0 = all (default: ${DEFAULT-VALUE}).")
    int limit;

    @Option(names = "--threads", paramLabel = "N",
            description = "Worker threads, each with its own KV cache (default: available processors). Results do not depend on it.")
    Integer threads;

    @Option(names = "--max-new-tokens", defaultValue = "" + ScienceQaEvaluator.DEFAULT_MAX_NEW_TOKENS, paramLabel = "N",
            description = "Greedy generation limit per problem (default: ${DEFAULT-VALUE}).")
    int maxNewTokens;

    @Option(names = "--seed", defaultValue = "0", paramLabel = "S",
            description = "Seed of the --limit sample and of --random-fallback; recorded only otherwise (default: ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = "--template", defaultValue = "VICUNA_V1", paramLabel = "NAME",
            description = "Conversation template: ${COMPLETION-CANDIDATES} (default: ${DEFAULT-VALUE}, as LLaVA's science eval).")
    PromptTemplate template;

    @Option(names = "--pad-mode", defaultValue = "PAD_TO_SQUARE", paramLabel = "MODE",
            description = "Image aspect handling: ${COMPLETION-CANDIDATES} (default: ${DEFAULT-VALUE}, LLaVA-1.5's 'pad').")
    PadMode padMode;

    @Option(names = "--random-fallback",
            description = "Score a failed parse as a seeded random choice, as an older eval_science_qa.py did (failures are still reported).")
    boolean randomFallback;

    @Option(names = "--out", required = true, paramLabel = "RUN_DIR", description = "Run directory; an interrupted run with the same settings resumes.")
    Path out;

    @Option(names = "--overwrite", description = "Replace an earlier run in RUN_DIR instead of refusing or resuming.")
    boolean overwrite;

    @Override
    public Integer call() {
        PrintWriter err = spec.commandLine().getErr();
        PrintWriter stdout = spec.commandLine().getOut();
        try {
            int nThreads = threads == null ? Runtime.getRuntime().availableProcessors() : threads;
            ScienceQaEvaluator.Settings settings = new ScienceQaEvaluator.Settings(template, maxNewTokens, padMode,
                    randomFallback, seed);
            EvalRun.Request req = new EvalRun.Request(modelDir, dataDir, split, limit, seed, nThreads, settings, out, overwrite);
            long[] last = {0};
            EvalRun.Result res = EvalRun.run(req, p -> {
                long now = System.nanoTime();
                if (p.done() == p.total() || (now - last[0]) / 1e9 >= PROGRESS_INTERVAL_S) {
                    last[0] = now;
                    err.printf("eval: %d/%d problems, accuracy %.2f%%, parse failures %d, ETA %s%n", p.done(), p.total(),
                            p.accuracy(), p.parseFailures(), eta(p.etaSeconds()));
                    err.flush();
                }
            });
            ScienceQaMetrics m = res.metrics();
            stdout.print(m.markdownTable());
            stdout.printf("%d problems (%d resumed), %d parse failures, %.1f s; see %s%n", res.problems(), res.resumed(),
                    m.parseFailures(), res.wallSeconds(), out.resolve(EvalRun.REPORT_JSON));
            stdout.flush();
            return 0;
        } catch (IllegalArgumentException | UncheckedIOException e) {
            err.println("qvlm4j eval: " + e.getMessage());
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
