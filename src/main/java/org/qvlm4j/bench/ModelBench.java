package org.qvlm4j.bench;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.function.Consumer;
import org.qvlm4j.eval.ScienceQaEvaluator;
import org.qvlm4j.io.AtomicFiles;
import org.qvlm4j.io.config.LlavaConfig;
import org.qvlm4j.io.image.ClipImageProcessor;
import org.qvlm4j.io.image.ClipPreprocessConfig;
import org.qvlm4j.io.image.PadMode;
import org.qvlm4j.io.image.RgbImage;
import org.qvlm4j.io.safetensors.Checkpoint;
import org.qvlm4j.io.text.ImageTokens;
import org.qvlm4j.io.text.LlavaTokenizer;
import org.qvlm4j.io.text.PromptTemplate;
import org.qvlm4j.kernels.DType;
import org.qvlm4j.model.LlavaModel;
import org.qvlm4j.model.QuantizedLayouts;
import org.qvlm4j.model.Sampler;

/**
 * One model's costs, measured in one process: its {@link ModelFootprint}, resident memory
 * ({@link ResidentMemory}) before and after the load and after the timed generations, and prefill
 * and greedy decode throughput on a prompt with one image.
 *
 * <p>The prompt: with a {@code tokenizer.json}, the question in the VICUNA_V1 template (as
 * {@code generate} and the evaluation), tokenized, its image placeholder expanded to the image's
 * feature count, tokenizer and preprocessing checked against the config as the evaluator does
 * ({@link ScienceQaEvaluator#checkCompatible}); without one, BOS, the image tokens and seeded random
 * text ids. The image: the given file, else a seeded random image, through the model's CLIP
 * preprocessing (its {@code preprocessor_config.json}, or llava-1.5's); with neither a tokenizer
 * nor a preprocessor config nor an image file, seeded random pixel values of the vision tower's
 * shape. Prompt and image are prepared before the first memory reading, so the load's
 * resident delta is the model's own. Each repetition opens a fresh KV cache, times the prefill
 * (vision tower, projector and the prompt through LLaMA, up to the first token) and then a fixed
 * number of greedy decode steps (EOS does not stop them); medians over the repetitions, after
 * untimed warm-up repetitions.
 *
 * <p>{@link #inChildJvm} runs the same measurement in a new JVM ({@link #main}) with this JVM's
 * options, so that each model starts from the same fresh heap and its resident memory is its own:
 * in one JVM the second model would inherit the first one's heap growth and compiled code, and
 * resident memory hardly ever shrinks. The random llava-1.5-7b-shaped checkpoint of
 * {@link RandomLlavaCheckpoint} serves when no model is given. Leaves out: batching, sampling,
 * statistics beyond the median, page-cache state (a checkpoint read in an earlier run may be in the
 * page cache, which makes a first load faster but not its resident set smaller).
 */
public final class ModelBench {
    /** The question asked when a tokenizer is present and no prompt is given. */
    public static final String DEFAULT_PROMPT = "Describe the image in detail.";
    /** Marks the line of a child's stderr that carries its error message. */
    static final String ERROR_MARK = "qvlm4j-bench-error: ";
    /** Exit code of a child whose input was bad (as the CLI's). */
    static final int EXIT_BAD_INPUT = 2;
    /** Width of the synthetic image, over the vision tower's input size (resizing and cropping both run). */
    private static final double SYNTHETIC_ASPECT = 4.0 / 3.0;

    /** The prompt template of the evaluation and of {@code generate}. */
    static final PromptTemplate TEMPLATE = PromptTemplate.VICUNA_V1;

    private static final ObjectMapper JSON = new ObjectMapper();

    private ModelBench() {
    }

    /**
     * What to run.
     *
     * @param textTokens random text tokens after the image when the model has no tokenizer
     * @param decodeTokens greedy decode steps timed per repetition
     * @param warmup untimed repetitions first
     * @param prompt question in the template when the model has a tokenizer
     * @param image image file, or null for a seeded random one
     */
    public record Options(int textTokens, int decodeTokens, int reps, int warmup, long seed, String prompt,
                          String image) {
        public Options {
            if (textTokens < 0 || decodeTokens < 1 || reps < 1 || warmup < 0 || prompt == null) {
                throw new IllegalArgumentException("model bench options: need text tokens >= 0, decode tokens >= 1, "
                        + "reps >= 1, warm-up >= 0 and a prompt, got " + textTokens + ", " + decodeTokens + ", "
                        + reps + ", " + warmup + ", " + prompt);
            }
        }
    }

    /**
     * One model's measurement; times are medians over the repetitions, in seconds.
     *
     * @param promptSource how the prompt ids were made
     * @param imageSource how the pixel values were made
     */
    public record Report(String model, ModelFootprint footprint, ResidentMemory beforeLoad,
                         ResidentMemory afterLoad, ResidentMemory afterGenerate, int promptTokens, int imageTokens,
                         String promptSource, String imageSource, int reps, double prefillSeconds, int decodeTokens,
                         double decodeSeconds) {
        public double prefillTokensPerSecond() {
            return promptTokens / prefillSeconds;
        }

        public double decodeTokensPerSecond() {
            return decodeTokens / decodeSeconds;
        }

        /** Whether the model holds packed low-bit linears. */
        public boolean quantized() {
            return footprint.packedLinearCount() > 0;
        }
    }

    /** Where the models are measured. */
    public enum Isolation {
        CHILD_JVM("child-jvm", "each model in its own child JVM with this JVM's options, one after the other "
                + "(resident memory is that JVM's: a fresh heap plus the model)"),
        IN_PROCESS("in-process", "in this JVM, one model after the other (resident memory of a later model includes "
                + "what earlier ones left in the heap; compare the growth row)");

        /** The JSON spelling. */
        public final String key;
        /** One sentence for the table header. */
        public final String description;

        Isolation(String key, String description) {
            this.key = key;
            this.description = description;
        }
    }

    /** Measures the model in this JVM or in a child JVM. */
    public static Report measure(Path modelDir, Options o, Isolation isolation) {
        return isolation == Isolation.IN_PROCESS ? measure(modelDir, o) : inChildJvm(modelDir, o);
    }

    /** The model input: ids (T), pixels (3, S, S) and where they came from. */
    record Prompt(int[] ids, float[] pixels, String promptSource, String imageSource) {}

    /**
     * Checks that dir is a model directory (config.json and safetensors weights), naming the
     * option in the message.
     */
    public static void checkModelDir(Path dir, String option) {
        if (!Files.isDirectory(dir)) {
            throw new IllegalArgumentException(option + " " + dir + ": no such directory");
        }
        if (!Files.isRegularFile(dir.resolve(LlavaConfig.FILE_NAME))) {
            throw new IllegalArgumentException(option + " " + dir + ": not a model directory: expected "
                    + LlavaConfig.FILE_NAME + " there");
        }
        if (!Files.isRegularFile(dir.resolve(Checkpoint.SINGLE_FILE))
                && !Files.isRegularFile(dir.resolve(Checkpoint.INDEX_FILE))) {
            throw new IllegalArgumentException(option + " " + dir + ": not a model directory: expected "
                    + Checkpoint.SINGLE_FILE + " or " + Checkpoint.INDEX_FILE + " there");
        }
    }

    /** Whether the directory holds a packed quantized checkpoint. */
    public static boolean isQuantized(Path dir) {
        return Files.isRegularFile(dir.resolve(QuantizedLayouts.FILE));
    }

    /**
     * Creates (unless already there) the random llava-1.5-7b-shaped BF16 checkpoint with the given
     * depths in dir and returns its path. A finished checkpoint is recognised by its config.json,
     * which is written last.
     */
    public static Path ensureRandom7bShaped(Path dir, int visionLayers, int textLayers, long seed,
                                            Consumer<String> progress) {
        Path modelDir = dir.resolve("llava15-7b-shaped-v" + visionLayers + "-t" + textLayers + "-seed" + seed);
        if (Files.isRegularFile(modelDir.resolve("config.json"))) {
            return modelDir;
        }
        progress.accept("writing random BF16 llava-1.5-7b-shaped checkpoint (" + visionLayers + " vision, " + textLayers
                + " decoder layers) to " + modelDir);
        RandomLlavaCheckpoint.write(modelDir, RandomLlavaCheckpoint.Shape.llava15_7b(visionLayers, textLayers), DType.BF16, seed);
        return modelDir;
    }

    /** Measures the model in this JVM. */
    public static Report measure(Path modelDir, Options o) {
        LlavaConfig cfg = LlavaConfig.load(modelDir);
        Prompt p = prompt(modelDir, cfg, o);
        ResidentMemory before = ResidentMemory.now();
        try (LlavaModel model = LlavaModel.load(modelDir)) {
            ResidentMemory afterLoad = ResidentMemory.now();
            ModelFootprint footprint = ModelFootprint.of(modelDir, model);
            int vocab = cfg.textConfig().vocabSize();
            double[] prefill = new double[o.reps()];
            double[] decode = new double[o.reps()];
            for (int r = -o.warmup(); r < o.reps(); r++) {
                LlavaModel.Session s = model.newSession(p.ids().length + o.decodeTokens() + 1);
                long t0 = System.nanoTime();
                int next = Sampler.argmax(s.prefill(p.ids(), p.pixels()), vocab);
                long t1 = System.nanoTime();
                for (int i = 0; i < o.decodeTokens(); i++) {
                    next = Sampler.argmax(s.decode(next), vocab);
                }
                long t2 = System.nanoTime();
                if (r >= 0) {
                    prefill[r] = (t1 - t0) / 1e9;
                    decode[r] = (t2 - t1) / 1e9;
                }
            }
            ResidentMemory afterGenerate = ResidentMemory.now();
            return new Report(modelDir.toString(), footprint, before, afterLoad, afterGenerate, p.ids().length,
                    cfg.imageSeqLength(), p.promptSource(), p.imageSource(), o.reps(), KernelBench.median(prefill),
                    o.decodeTokens(), KernelBench.median(decode));
        }
    }

    /** The prompt ids and pixels for the model (see the class comment). */
    static Prompt prompt(Path modelDir, LlavaConfig cfg, Options o) {
        int S = cfg.visionConfig().imageSize();
        int F = cfg.imageSeqLength();
        SplittableRandom rng = new SplittableRandom(o.seed());
        Path preprocessor = modelDir.resolve(ClipPreprocessConfig.FILE_NAME);
        boolean hasTokenizer = Files.isRegularFile(modelDir.resolve(LlavaTokenizer.TOKENIZER_FILE));
        if (!hasTokenizer && o.image() == null && !Files.isRegularFile(preprocessor)) {
            float[] pixels = new float[3 * S * S]; // (3, S, S)
            for (int i = 0; i < pixels.length; i++) {
                pixels[i] = (float) (rng.nextDouble() * 4 - 2);
            }
            return new Prompt(syntheticIds(cfg, o, rng), pixels, "BOS, image tokens and " + o.textTokens()
                    + " random text ids (no " + LlavaTokenizer.TOKENIZER_FILE + ")",
                    "random pixel values (3, " + S + ", " + S + ") (no " + ClipPreprocessConfig.FILE_NAME + ")");
        }
        ClipImageProcessor proc = ClipImageProcessor.forModelDir(modelDir, PadMode.NONE);
        String how = Files.isRegularFile(preprocessor) ? "through " + ClipPreprocessConfig.FILE_NAME
                : "through llava-1.5's CLIP preprocessing (no " + ClipPreprocessConfig.FILE_NAME + ")";
        float[] pixels; // (3, S, S)
        String imageSource;
        if (o.image() != null) {
            pixels = proc.preprocess(Path.of(o.image())).data();
            imageSource = o.image() + " " + how;
        } else {
            int w = (int) Math.round(S * SYNTHETIC_ASPECT);
            byte[] rgb = new byte[w * S * RgbImage.CHANNELS];
            rng.nextBytes(rgb);
            pixels = proc.preprocess(new RgbImage(w, S, rgb)).data();
            imageSource = "random " + w + "x" + S + " image " + how;
        }
        if (pixels.length != 3 * S * S) {
            throw new IllegalArgumentException(modelDir + ": preprocessing gives " + pixels.length
                    + " pixel values, the vision tower expects 3 x " + S + " x " + S + " (check "
                    + ClipPreprocessConfig.FILE_NAME + "'s crop size against config.json's image_size)");
        }
        if (!hasTokenizer) {
            return new Prompt(syntheticIds(cfg, o, rng), pixels, "BOS, image tokens and " + o.textTokens()
                    + " random text ids (no " + LlavaTokenizer.TOKENIZER_FILE + ")", imageSource);
        }
        try (LlavaTokenizer tok = LlavaTokenizer.load(modelDir)) {
            int imageTokenId = ScienceQaEvaluator.checkCompatible(cfg, tok, proc);
            long[] expanded = ImageTokens.expand(tok.encode(TEMPLATE.render(o.prompt(), 1)), imageTokenId, 1, F);
            int[] ids = new int[expanded.length];
            for (int i = 0; i < ids.length; i++) {
                ids[i] = Math.toIntExact(expanded[i]);
            }
            return new Prompt(ids, pixels, TEMPLATE + " template of '" + o.prompt() + "' through "
                    + LlavaTokenizer.TOKENIZER_FILE, imageSource);
        }
    }

    /** BOS, the image tokens, then textTokens random text ids. */
    private static int[] syntheticIds(LlavaConfig cfg, Options o, SplittableRandom rng) {
        int F = cfg.imageSeqLength();
        int vocab = cfg.textConfig().vocabSize();
        int[] ids = new int[1 + F + o.textTokens()];
        ids[0] = cfg.textConfig().bosTokenId();
        for (int i = 0; i < F; i++) {
            ids[1 + i] = cfg.imageTokenIndex();
        }
        for (int i = 0; i < o.textTokens(); i++) {
            ids[1 + F + i] = pickText(rng, vocab, cfg.imageTokenIndex());
        }
        return ids;
    }

    private static int pickText(SplittableRandom rng, int vocab, int imageToken) {
        int t;
        do {
            t = rng.nextInt(3, vocab);
        } while (t == imageToken);
        return t;
    }

    /**
     * Measures the model in a new JVM started with this JVM's options and class path. A bad model
     * or option in the child is an {@link IllegalArgumentException} with the child's message.
     */
    public static Report inChildJvm(Path modelDir, Options o) {
        Path tmp = null;
        try {
            tmp = Files.createTempDirectory("qvlm4j-bench-");
            Path result = tmp.resolve("report.json");
            Path stderr = tmp.resolve("stderr.txt");
            Process proc = new ProcessBuilder(childCommand(modelDir, o, result))
                    .redirectOutput(ProcessBuilder.Redirect.DISCARD)
                    .redirectError(stderr.toFile())
                    .start();
            // a parent stopped with Ctrl-C must not leave its child measuring in the background
            Thread reaper = new Thread(proc::destroyForcibly);
            Runtime.getRuntime().addShutdownHook(reaper);
            int code;
            try {
                code = proc.waitFor();
            } finally {
                proc.destroyForcibly();
                try {
                    Runtime.getRuntime().removeShutdownHook(reaper);
                } catch (IllegalStateException shuttingDown) {
                    // the JVM is exiting and the hook has run or is running: nothing left to undo
                }
            }
            if (code != 0) {
                String err = Files.readString(stderr);
                String message = err.lines().filter(l -> l.startsWith(ERROR_MARK))
                        .map(l -> l.substring(ERROR_MARK.length())).findFirst().orElse(err.strip());
                if (code == EXIT_BAD_INPUT) {
                    throw new IllegalArgumentException(message);
                }
                throw new IllegalStateException("bench child JVM for " + modelDir + " exited with " + code + ": "
                        + message);
            }
            return JSON.readValue(result.toFile(), Report.class);
        } catch (IOException e) {
            throw new UncheckedIOException("bench child JVM for " + modelDir + ": " + e.getMessage(), e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while the bench child JVM measured " + modelDir, e);
        } finally {
            AtomicFiles.deleteTreeQuietly(tmp);
        }
    }

    /** java, this JVM's options (less debugger and agent hooks), class path, {@link #main} and its arguments. */
    static List<String> childCommand(Path modelDir, Options o, Path result) throws JsonProcessingException {
        List<String> cmd = new ArrayList<>();
        cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        for (String a : ManagementFactory.getRuntimeMXBean().getInputArguments()) {
            if (!a.startsWith("-agentlib:") && !a.startsWith("-javaagent:") && !a.startsWith("-Xrunjdwp")) {
                cmd.add(a);
            }
        }
        cmd.add("-cp");
        cmd.add(System.getProperty("java.class.path"));
        cmd.add(ModelBench.class.getName());
        cmd.add(modelDir.toString());
        cmd.add(JSON.writeValueAsString(o));
        cmd.add(result.toString());
        return cmd;
    }

    /** Removes a temporary directory tree (null: nothing), ignoring failures. */
    /**
     * The child JVM's entry point: {@code MODEL_DIR OPTIONS_JSON REPORT_FILE}. Writes the report as
     * JSON (atomically); on bad input prints the message on stderr after {@value #ERROR_MARK} and
     * exits with {@value #EXIT_BAD_INPUT}. Run with {@code --add-modules jdk.incubator.vector}.
     */
    public static void main(String[] args) {
        if (args.length != 3) {
            System.err.println(ERROR_MARK + "usage: ModelBench MODEL_DIR OPTIONS_JSON REPORT_FILE");
            System.exit(EXIT_BAD_INPUT);
        }
        try {
            Options o = JSON.readValue(args[1], Options.class);
            Report r = measure(Path.of(args[0]), o);
            AtomicFiles.writeString(Path.of(args[2]), JSON.writeValueAsString(r));
        } catch (IllegalArgumentException | UncheckedIOException | JsonProcessingException e) {
            System.err.println(ERROR_MARK + e.getMessage());
            System.exit(EXIT_BAD_INPUT);
        }
    }
}
