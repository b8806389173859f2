package org.qvlm4j.cli;

import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import org.qvlm4j.quant.calib.CalibrationStats;
import org.qvlm4j.quant.methods.SmoothedCheckpoint;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code qvlm4j smooth}: writes a floating-point checkpoint with SmoothQuant's scales folded into
 * its weights ({@link SmoothedCheckpoint}); the result computes the same function and is calibrated
 * and quantized like any other model. Exit code 2 for bad options or inputs.
 */
@Command(name = "smooth", mixinStandardHelpOptions = true,
        description = "Fold SmoothQuant's per-channel scales into a floating-point checkpoint (same function, "
                + "smoother linear inputs), to be calibrated and quantized like any model.")
public final class SmoothCommand implements Callable<Integer> {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Option(names = "--model", required = true, paramLabel = "DIR", description = "Floating-point model directory.")
    Path modelDir;

    @Option(names = "--stats", required = true, paramLabel = "STATS",
            description = "Calibration statistics of that model (channel_absmax of every linear's input).")
    Path statsDir;

    @Option(names = "--alpha", defaultValue = "0.5", paramLabel = "A",
            description = "Migration strength alpha in [0, 1] (default: ${DEFAULT-VALUE}).")
    double alpha;

    @Option(names = "--scope", defaultValue = "ALL", paramLabel = "WHAT",
            description = "llm (language model only) or all (vision tower too, CLIP fc2 excepted) (default: all).")
    SmoothedCheckpoint.Scope scope;

    @Option(names = "--out", required = true, paramLabel = "DIR", description = "Model directory to create.")
    Path out;

    @Override
    public Integer call() {
        PrintWriter err = spec.commandLine().getErr();
        PrintWriter stdout = spec.commandLine().getOut();
        try (CalibrationStats stats = CalibrationStats.load(statsDir)) {
            SmoothedCheckpoint.Summary s = SmoothedCheckpoint.write(modelDir, stats, alpha, scope, out);
            stdout.printf("smoothed %d linears (alpha %s, scope %s), left %d as they are; wrote %s%n", s.scales().size(),
                    alpha, scope.name().toLowerCase(java.util.Locale.ROOT), s.skipped().size(), s.out());
            stdout.flush();
            return 0;
        } catch (IllegalArgumentException | UncheckedIOException e) {
            err.println("qvlm4j smooth: " + e.getMessage());
            err.flush();
            return CalibrateCommand.EXIT_BAD_INPUT;
        }
    }
}
