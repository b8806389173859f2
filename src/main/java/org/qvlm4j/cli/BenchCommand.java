package org.qvlm4j.cli;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import org.qvlm4j.bench.KernelBench;
import org.qvlm4j.bench.ModelBench;
import org.qvlm4j.kernels.Parallel;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

/**
 * {@code qvlm4j bench}: kernel throughput against the machine's memory bandwidth, and prefill and
 * decode tokens/s of a model (by default a random llava-1.5-7b-shaped BF16 checkpoint with 2
 * vision and 2 decoder layers at full width, created on first use).
 */
@Command(name = "bench", mixinStandardHelpOptions = true,
        description = "Measure kernel GFLOP/s and bandwidth, and model prefill/decode tokens/s.")
final class BenchCommand implements Callable<Integer> {

    @Option(names = "--model", paramLabel = "DIR",
            description = "Model to time. Default: a random llava-1.5-7b-shaped BF16 checkpoint made in --work-dir.")
    Path modelDir;

    @Option(names = "--work-dir", defaultValue = "target/bench", paramLabel = "DIR",
            description = "Where the random checkpoint is kept between runs (default: ${DEFAULT-VALUE}).")
    Path workDir;

    @Option(names = "--vision-layers", defaultValue = "2", description = "Depth of the random model's vision tower (default: ${DEFAULT-VALUE}).")
    int visionLayers;

    @Option(names = "--text-layers", defaultValue = "2", description = "Depth of the random model's LLaMA (default: ${DEFAULT-VALUE}).")
    int textLayers;

    @Option(names = "--text-tokens", defaultValue = "40", description = "Text tokens after the image in the prompt (default: ${DEFAULT-VALUE}).")
    int textTokens;

    @Option(names = "--decode-tokens", defaultValue = "32", description = "Decode steps timed (default: ${DEFAULT-VALUE}).")
    int decodeTokens;

    @Option(names = "--reps", defaultValue = "3", description = "Repetitions; medians are reported (default: ${DEFAULT-VALUE}).")
    int reps;

    @Option(names = "--skip-kernels", description = "Skip the kernel measurements.")
    boolean skipKernels;

    @Option(names = "--skip-model", description = "Skip the model measurements.")
    boolean skipModel;

    @Option(names = "--seed", defaultValue = "0", description = "Seed of the random weights and inputs (default: ${DEFAULT-VALUE}).")
    long seed;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() {
        if (reps < 1 || decodeTokens < 1 || textTokens < 0 || visionLayers < 1 || textLayers < 1) {
            throw new IllegalArgumentException("--reps, --decode-tokens, --vision-layers and --text-layers must be >= 1"
                    + " and --text-tokens >= 0");
        }
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        out.printf("threads %d (set with QVLM4J_JAVA_OPTS=-Dqvlm4j.threads=N)%n", Parallel.threadsFromProperty());
        if (!skipKernels) {
            out.println(KernelBench.run(KernelBench.Config.defaults()).summary());
            out.flush();
        }
        if (!skipModel) {
            Path dir = modelDir != null ? modelDir
                    : ModelBench.ensureRandom7bShaped(workDir, visionLayers, textLayers, seed, m -> {
                        err.println(m);
                        err.flush();
                    });
            ModelBench.Result r = ModelBench.run(dir, textTokens, decodeTokens, reps, seed);
            out.printf("model %s: %,d weight bytes%n", r.model(), r.weightBytes());
            out.printf("  prefill  %d tokens (%d image) in %.3f s = %.1f tokens/s%n", r.promptTokens(), r.imageTokens(),
                    r.prefillSeconds(), r.prefillTokensPerSecond());
            out.printf("  decode   %d tokens in %.3f s = %.2f tokens/s%n", r.decodeTokens(), r.decodeSeconds(),
                    r.decodeTokensPerSecond());
        }
        out.flush();
        return 0;
    }
}
