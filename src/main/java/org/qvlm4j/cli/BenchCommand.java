package org.qvlm4j.cli;

import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.function.Consumer;
import org.qvlm4j.bench.KernelBench;
import org.qvlm4j.bench.ModelBench;
import org.qvlm4j.bench.ModelComparison;
import org.qvlm4j.bench.ModelFootprint;
import org.qvlm4j.bench.QuantKernelBench;
import org.qvlm4j.bench.WeightOnlyQuantization;
import org.qvlm4j.io.AtomicFiles;
import org.qvlm4j.kernels.Parallel;
import org.qvlm4j.model.LlavaModel;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

/**
 * {@code qvlm4j bench}: a model's size on disk, weight bytes, resident memory and prefill / decode
 * tokens/s, optionally against a baseline model ({@code --vs}, e.g. the floating-point model a
 * quantized checkpoint came from) measured in the same run, each model in its own child JVM unless
 * {@code --in-process}; then kernel throughput against the memory bandwidth measured in the same
 * run: for a quantized {@code --model} GEMV and GEMM of its packed formats against F32 and BF16
 * ({@link QuantKernelBench}), otherwise fp32 GEMM and BF16 / F32 GEMV ({@link KernelBench}).
 * Without {@code --model} the model is a random llava-1.5-7b-shaped BF16 checkpoint with 2 vision
 * and 2 decoder layers at full width, created on first use. {@code --quantize SPEC} measures a
 * weight-only round-to-nearest copy of that model (or of {@code --model}), lm_head included,
 * against the model itself ({@link WeightOnlyQuantization}). {@code --json} writes everything for
 * results scripts.
 */
@Command(name = "bench", mixinStandardHelpOptions = true,
        description = "Measure a model (size, weight bytes, resident memory, prefill/decode tokens/s), optionally "
                + "against a baseline model in the same run, and the kernels against the measured memory bandwidth.")
final class BenchCommand implements Callable<Integer> {
    /** The bandwidth measurement streams 4 MiB chunks; its buffer needs at least one. */
    private static final int STREAM_MIB_MIN = 4;

    @Option(names = "--model", paramLabel = "DIR",
            description = "Model to measure. Default: a random llava-1.5-7b-shaped BF16 checkpoint made in --work-dir.")
    Path modelDir;

    @Option(names = "--vs", paramLabel = "DIR",
            description = "Baseline model measured in the same run (e.g. the floating-point model of a quantized --model); "
                    + "the table gives model / vs for every metric.")
    Path vsDir;

    @Option(names = "--quantize", paramLabel = "SPEC",
            description = "Measure a round-to-nearest, weight-only copy of the floating-point model (--model, or the "
                    + "default random one) against that model: SPEC (a weight spec, e.g. w4-asym-g128) for every "
                    + "linear the presets quantize and for lm_head; the copy is made in --work-dir on first use.")
    String quantize;

    @Option(names = "--json", paramLabel = "FILE", description = "Also write every metric, both reports and the kernel "
            + "results as JSON (written to a temporary file, then renamed).")
    Path jsonFile;

    @Option(names = "--in-process", description = "Measure the models in this JVM instead of one child JVM each.")
    boolean inProcess;

    @Option(names = "--work-dir", defaultValue = "target/bench", paramLabel = "DIR",
            description = "Where the random checkpoint is kept between runs (default: ${DEFAULT-VALUE}).")
    Path workDir;

    @Option(names = "--vision-layers", defaultValue = "2", description = "Depth of the random model's vision tower (default: ${DEFAULT-VALUE}).")
    int visionLayers;

    @Option(names = "--text-layers", defaultValue = "2", description = "Depth of the random model's LLaMA (default: ${DEFAULT-VALUE}).")
    int textLayers;

    @Option(names = "--prompt", defaultValue = ModelBench.DEFAULT_PROMPT, paramLabel = "TEXT",
            description = "Question of the prompt when the model has a tokenizer (default: ${DEFAULT-VALUE}).")
    String prompt;

    @Option(names = "--image", paramLabel = "IMG",
            description = "Image of the prompt. Default: a seeded random image through the model's preprocessor, "
                    + "or random pixel values when it has none.")
    Path image;

    @Option(names = "--text-tokens", defaultValue = "40",
            description = "Random text tokens after the image when the model has no tokenizer (default: ${DEFAULT-VALUE}).")
    int textTokens;

    @Option(names = "--decode-tokens", defaultValue = "32", description = "Greedy decode steps timed (default: ${DEFAULT-VALUE}).")
    int decodeTokens;

    @Option(names = "--reps", defaultValue = "3", description = "Timed repetitions; medians are reported (default: ${DEFAULT-VALUE}).")
    int reps;

    @Option(names = "--warmup", defaultValue = "1", description = "Untimed repetitions first (default: ${DEFAULT-VALUE}).")
    int warmup;

    @Option(names = "--kernel-size", split = ",", paramLabel = "N,K",
            description = "Weight shape (N, K) of the kernel measurements (default: 11008,4096, a LLaMA-7B MLP projection).")
    int[] kernelSize;

    @Option(names = "--stream-mib", defaultValue = "1024", paramLabel = "MIB",
            description = "Buffer of the bandwidth measurement, MiB; keep it far above the caches (default: ${DEFAULT-VALUE}).")
    int streamMib;

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
        if (reps < 1 || decodeTokens < 1 || textTokens < 0 || warmup < 0 || visionLayers < 1 || textLayers < 1) {
            throw new IllegalArgumentException("--reps, --decode-tokens, --vision-layers and --text-layers must be >= 1"
                    + " and --text-tokens, --warmup >= 0");
        }
        if (kernelSize != null && (kernelSize.length != 2 || kernelSize[0] < 1 || kernelSize[1] < 1)) {
            throw new IllegalArgumentException("--kernel-size: expected N,K with both >= 1, got "
                    + Arrays.toString(kernelSize));
        }
        if (streamMib < STREAM_MIB_MIN) {
            throw new IllegalArgumentException("--stream-mib: expected >= " + STREAM_MIB_MIN + ", got " + streamMib);
        }
        if (vsDir != null && modelDir == null) {
            throw new IllegalArgumentException("--vs " + vsDir + " needs --model: the model to compare with it");
        }
        if (skipModel && (vsDir != null || jsonFile != null || quantize != null)) {
            throw new IllegalArgumentException("--skip-model leaves nothing to compare or write: drop --vs, --json and "
                    + "--quantize, or --skip-model");
        }
        if (quantize != null) {
            if (vsDir != null) {
                throw new IllegalArgumentException("--quantize " + quantize + " measures the quantized copy against "
                        + "the model it came from; drop --vs " + vsDir);
            }
            WeightOnlyQuantization.weightSpec(quantize);
        }
        if (modelDir != null) {
            ModelBench.checkModelDir(modelDir, "--model");
        }
        if (vsDir != null) {
            ModelBench.checkModelDir(vsDir, "--vs");
        }
        if (image != null && !Files.isRegularFile(image)) {
            throw new IllegalArgumentException("--image " + image + ": no such file");
        }
        if (jsonFile != null) {
            Path parent = jsonFile.toAbsolutePath().getParent();
            if (!Files.isDirectory(parent)) {
                throw new IllegalArgumentException("--json " + jsonFile + ": directory " + parent + " does not exist");
            }
        }
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        int threads = Parallel.threadsFromProperty();
        out.printf("threads %d (set with QVLM4J_JAVA_OPTS=-Dqvlm4j.threads=N)%n", threads);
        out.flush();
        ModelBench.Options options = new ModelBench.Options(textTokens, decodeTokens, reps, warmup, seed, prompt,
                image == null ? null : image.toString());
        ModelBench.Isolation isolation = inProcess ? ModelBench.Isolation.IN_PROCESS : ModelBench.Isolation.CHILD_JVM;
        ModelBench.Report model = null;
        ModelBench.Report vs = null;
        if (!skipModel) {
            Consumer<String> progress = m -> {
                err.println(m);
                err.flush();
            };
            Path dir = modelDir != null ? modelDir
                    : ModelBench.ensureRandom7bShaped(workDir, visionLayers, textLayers, seed, progress);
            Path baseline = vsDir;
            if (quantize != null) {
                baseline = dir;
                dir = WeightOnlyQuantization.ensure(dir, workDir, quantize, progress);
            }
            model = measure(dir, options, isolation, err);
            if (baseline != null) {
                vs = measure(baseline, options, isolation, err);
            }
            out.println(ModelComparison.table(model, vs, isolation));
            if (vs != null) {
                out.println(ModelComparison.headline(model, vs));
            }
            if (vs != null && model.promptTokens() != vs.promptTokens()) {
                out.printf("note: the prompts differ (%d and %d tokens): the tokenizers differ%n", model.promptTokens(),
                        vs.promptTokens());
            }
            out.flush();
        }
        Object kernels = null;
        if (!skipKernels) {
            List<QuantKernelBench.PackedCase> cases = model != null ? model.footprint().packedCases()
                    : modelDir != null && ModelBench.isQuantized(modelDir) ? packedCases(modelDir) : List.of();
            long streamBytes = (long) streamMib << 20;
            if (!cases.isEmpty()) {
                QuantKernelBench.Config d = QuantKernelBench.Config.withCases(cases, false);
                QuantKernelBench.Result r = QuantKernelBench.run(new QuantKernelBench.Config(d.threads(), warmup, reps,
                        d.seed(), streamBytes, kernelSize == null ? d.N() : kernelSize[0],
                        kernelSize == null ? d.K() : kernelSize[1], d.gemmT(), d.packed(), d.integerCases()));
                out.println("kernels of the formats of " + (model != null ? model.model() : modelDir)
                        + ", against F32 and BF16:");
                out.println(r.summary());
                kernels = r;
            } else {
                KernelBench.Config d = KernelBench.Config.defaults();
                int n = kernelSize == null ? d.gemvN() : kernelSize[0];
                int k = kernelSize == null ? d.gemvK() : kernelSize[1];
                KernelBench.Result r = KernelBench.run(new KernelBench.Config(d.threads(), warmup, reps, d.seed(),
                        streamBytes, d.gemmT(), kernelSize == null ? d.gemmK() : k, kernelSize == null ? d.gemmN() : n,
                        n, k));
                out.println(r.summary());
                kernels = r;
            }
            out.flush();
        }
        if (jsonFile != null) {
            AtomicFiles.writeString(jsonFile, ModelComparison.json(model, vs, isolation, threads, options, kernels));
            out.println("wrote " + jsonFile);
        }
        out.flush();
        return 0;
    }

    private static ModelBench.Report measure(Path dir, ModelBench.Options options, ModelBench.Isolation isolation,
                                             PrintWriter err) {
        err.println("bench: measuring " + dir + " (" + isolation.key + ")");
        err.flush();
        return ModelBench.measure(dir, options, isolation);
    }

    /** The packed layouts of a quantized checkpoint, for the kernel section when the model is not measured. */
    private static List<QuantKernelBench.PackedCase> packedCases(Path dir) {
        try (LlavaModel m = LlavaModel.load(dir)) {
            return ModelFootprint.of(dir, m).packedCases();
        }
    }
}
