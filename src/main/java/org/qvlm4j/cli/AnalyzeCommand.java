package org.qvlm4j.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import org.qvlm4j.model.LlavaModel;
import org.qvlm4j.quant.QuantPlan;
import org.qvlm4j.quant.calib.CalibrationStats;
import org.qvlm4j.quant.qvlm.CalibrationSamples;
import org.qvlm4j.quant.qvlm.DedAnalysis;
import org.qvlm4j.quant.qvlm.Dependency;
import org.qvlm4j.quant.qvlm.DependencyAnalysis;
import org.qvlm4j.quant.qvlm.QvlmMethod;
import org.qvlm4j.quant.qvlm.SoftAssignment;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code qvlm4j analyze}: Q-VLM's Fig. 2 analysis for one pair of decoder layers ({@link DedAnalysis}):
 * per calibration prompt the conditional entropy of the two layers' outputs, their quantization error
 * and the discretization error difference between layer-wise and joint percentile search; the R² of
 * each proxy against it; a table, a summary and a scatter plot. The model must be floating point.
 * Exit code 2 for bad options or inputs.
 */
@Command(name = "analyze", mixinStandardHelpOptions = true,
        description = "Per-prompt cross-layer dependency analysis (Q-VLM Fig. 2): entropy and quantization error "
                + "against the error difference of layer-wise and joint search for layers K and K+1.")
public final class AnalyzeCommand implements Callable<Integer> {
    static final int EXIT_BAD_INPUT = 2;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Option(names = "--model", required = true, paramLabel = "DIR", description = "Floating-point model directory.")
    Path modelDir;

    @Option(names = "--stats", required = true, paramLabel = "STATS", description = "Calibration statistics of this model.")
    Path stats;

    @Option(names = "--layer", required = true, paramLabel = "K", description = "First decoder layer of the pair (K, K+1).")
    int layer;

    @Option(names = "--out", required = true, paramLabel = "DIR", description = "Directory to create for the results.")
    Path out;

    @Option(names = "--wbits", defaultValue = "4", paramLabel = "W", description = "Weight bits (default: ${DEFAULT-VALUE}).")
    int wbits;

    @Option(names = "--abits", defaultValue = "4", paramLabel = "A",
            description = "Activation bits, also the entropy grid's 2^A levels (default: ${DEFAULT-VALUE}).")
    int abits;

    @Option(names = "--p-grid", defaultValue = "1.0,0.995,0.99,0.985,0.98", split = ",", paramLabel = "P,...",
            description = "Clipping percentiles to search (default: ${DEFAULT-VALUE}).")
    double[] pGrid;

    @Option(names = "--entropy-temperature", defaultValue = "grid", paramLabel = "MODE",
            description = "Eq. 5 temperature: grid or paper (default: ${DEFAULT-VALUE}).")
    String temperature;

    @Option(names = "--data", paramLabel = "DIR", description = "Calibration data directory, if it has moved since calibrate.")
    Path data;

    @Override
    public Integer call() {
        PrintWriter err = spec.commandLine().getErr();
        PrintWriter stdout = spec.commandLine().getOut();
        try {
            if (abits == 16) {
                throw new IllegalArgumentException("--abits 16: the analysis needs quantized activations (e.g. --abits 4)");
            }
            SoftAssignment.Temperature mode = switch (temperature.toLowerCase(Locale.ROOT)) {
                case "grid" -> SoftAssignment.Temperature.GRID;
                case "paper" -> SoftAssignment.Temperature.PAPER;
                default -> throw new IllegalArgumentException("--entropy-temperature: expected grid or paper, got '"
                        + temperature + "'");
            };
            double[] grid = QvlmMethod.candidateGrid(pGrid);
            QuantPlan plan = QvlmMethod.paperPlan(QuantizeCommand.plan(QvlmMethod.NAME, wbits, abits, 0, false,
                    org.qvlm4j.io.config.LlavaConfig.load(modelDir)), 1.0);
            Dependency.Settings settings = new Dependency.Settings(abits, mode, Dependency.Settings.DEFAULT_TAU,
                    SoftAssignment.DEFAULT_TAIL);
            long t0 = System.nanoTime();
            DedAnalysis.Result r;
            try (LlavaModel model = LlavaModel.load(modelDir);
                 CalibrationStats st = CalibrationStats.load(stats)) {
                st.checkModel(modelDir, model);
                List<CalibrationSamples.Sample> samples = CalibrationSamples.fromStats(modelDir, data).load(model, st);
                Dependency dep = DependencyAnalysis.loadOrCompute(model, st, samples, settings, line -> {
                    err.println(line);
                    err.flush();
                });
                r = DedAnalysis.run(model, plan, st, samples, dep, layer, grid, line -> {
                    err.println(line);
                    err.flush();
                });
            }
            ObjectNode setup = new ObjectMapper().createObjectNode();
            setup.put("model", modelDir.toString());
            setup.put("stats", stats.toString());
            setup.put("wbits", wbits);
            setup.put("abits", abits);
            setup.put("p_grid", Arrays.toString(grid));
            setup.put("entropy_temperature", mode.name());
            setup.put("input", "FP hidden state entering layer K; layers K and K+1 quantized; error = MSE of layer K+1 "
                    + "output vs FP");
            DedAnalysis.write(out, r, setup);
            stdout.printf(Locale.ROOT, "layers %d,%d over %d prompts: R^2 entropy %.4f, R^2 quantization error %.4f, "
                    + "mean DED %.4g, %.1f s; wrote %s%n", layer, layer + 1, r.rows().size(), r.entropyFit().r2(),
                    r.errorFit().r2(), r.rows().stream().mapToDouble(DedAnalysis.Row::ded).average().orElse(Double.NaN),
                    (System.nanoTime() - t0) / 1e9, out);
            stdout.flush();
            return 0;
        } catch (IllegalArgumentException | UncheckedIOException e) {
            err.println("qvlm4j analyze: " + e.getMessage());
            err.flush();
            return EXIT_BAD_INPUT;
        }
    }
}
