package org.qvlm4j.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.stream.Stream;
import org.qvlm4j.io.AtomicFiles;
import org.qvlm4j.io.safetensors.SafeTensors;
import org.qvlm4j.io.safetensors.SafeTensorsWriter;
import org.qvlm4j.io.safetensors.TensorEntry;
import org.qvlm4j.kernels.DType;
import org.qvlm4j.tensor.Tape;
import org.qvlm4j.tensor.Tensor;
import org.qvlm4j.train.optim.AdamW;
import org.qvlm4j.train.optim.CosineSchedule;
import org.qvlm4j.train.optim.GradClip;

/**
 * The training loop for a {@link TrainableLlava}: mini-batches drawn by a seeded shuffle per
 * epoch, HF's token-averaged causal-LM loss over each batch, global-norm gradient clipping,
 * {@link AdamW} (decay on matrices and embeddings, none on norms, biases and the class embedding)
 * with a {@link CosineSchedule} after linear warm-up, progress through a {@link Listener}, and
 * periodic checkpoints that a later run resumes from.
 *
 * <p>Determinism: a batch is cut into packs of {@code pack} consecutive examples; every pack's
 * gradient is computed on its own (one packed forward in a {@link TrainableLlava#replica} with fresh
 * gradient buffers, on one of {@code workers} threads) and the gradients are summed into the model in
 * pack order, each weighted by its share of the batch's supervised tokens. The sum therefore does not
 * depend on the number of workers (it does on the pack size, which changes the summation order), and
 * all ops are bit-identical for any thread count, so a run is a pure function of (model
 * initialisation, data, options).
 *
 * <p>Checkpoints: directory {@code step-NNNNNNN} under the checkpoint directory holding
 * {@code model.safetensors} and {@code config.json} (an ordinary HF directory), {@code optimizer.safetensors}
 * (AdamW moments as {@code exp_avg.NAME} / {@code exp_avg_sq.NAME}), {@code trainer_state.json}
 * (step, per-parameter AdamW step counts, the options and a fingerprint of the data) and the loss
 * log so far. Each is written into a temporary sibling directory renamed into place when complete;
 * older checkpoints are deleted afterwards. The random state is the pair (seed, step): the shuffle
 * of epoch e is a pure function of (seed, e), so resuming at a step needs nothing else, and a resumed
 * run ends with the same bytes as an uninterrupted one.
 *
 * <p>Left out: gradient accumulation across steps, mixed precision, evaluation during training.
 */
public final class Trainer {

    /**
     * Training options.
     *
     * @param epochs          passes over the data
     * @param batchSize       examples per optimizer step (the last batch of an epoch may be smaller)
     * @param peakLr          learning rate after warm-up
     * @param minLrRatio      final learning rate as a fraction of the peak
     * @param warmupFraction  fraction of all steps spent in linear warm-up
     * @param weightDecay     AdamW decoupled weight decay for matrices and embeddings
     * @param clipNorm        global gradient-norm limit
     * @param seed            seed of the per-epoch shuffles
     * @param checkpointEvery steps between checkpoints (0: only at the end)
     * @param workers         threads computing examples' gradients concurrently (results do not depend on it)
     * @param stopAfterStep   stop (with a checkpoint) once this many steps are done; 0 runs to the end
     * @param pack            examples per forward: a batch is cut into packs of this many consecutive examples,
     *                        each run as one packed forward (1: one example per forward)
     */
    public record Options(int epochs, int batchSize, double peakLr, double minLrRatio, double warmupFraction,
                          double weightDecay, double clipNorm, long seed, int checkpointEvery, int workers,
                          int stopAfterStep, int pack) {
        public Options {
            if (epochs < 1 || batchSize < 1 || workers < 1 || checkpointEvery < 0 || stopAfterStep < 0 || pack < 1) {
                throw new IllegalArgumentException("training options: need epochs >= 1, batch >= 1, workers >= 1, "
                        + "checkpointEvery >= 0, stopAfterStep >= 0, pack >= 1; got epochs=" + epochs + " batch=" + batchSize
                        + " workers=" + workers + " checkpointEvery=" + checkpointEvery + " stopAfterStep=" + stopAfterStep
                        + " pack=" + pack);
            }
            if (!(peakLr > 0) || !(minLrRatio >= 0 && minLrRatio <= 1) || !(warmupFraction >= 0 && warmupFraction < 1)
                    || !(weightDecay >= 0) || !(clipNorm > 0)) {
                throw new IllegalArgumentException("training options: need lr > 0, minLrRatio in [0, 1], warmup in [0, 1), "
                        + "weightDecay >= 0, clipNorm > 0; got lr=" + peakLr + " minLrRatio=" + minLrRatio + " warmup="
                        + warmupFraction + " weightDecay=" + weightDecay + " clipNorm=" + clipNorm);
            }
        }

        /**
         * Defaults for training from scratch: lr 1e-3 to 10%, 5% warm-up, decay 0.01, clip 1, checkpoints
         * every 200 steps, one example per forward.
         */
        public static Options defaults(int epochs, int batchSize, long seed) {
            return new Options(epochs, batchSize, 1e-3, 0.1, 0.05, 0.01, 1.0, seed, 200,
                    Runtime.getRuntime().availableProcessors(), 0, 1);
        }

        public Options withLr(double lr) {
            return new Options(epochs, batchSize, lr, minLrRatio, warmupFraction, weightDecay, clipNorm, seed,
                    checkpointEvery, workers, stopAfterStep, pack);
        }

        public Options withWorkers(int n) {
            return new Options(epochs, batchSize, peakLr, minLrRatio, warmupFraction, weightDecay, clipNorm, seed,
                    checkpointEvery, n, stopAfterStep, pack);
        }

        public Options withCheckpointEvery(int n) {
            return new Options(epochs, batchSize, peakLr, minLrRatio, warmupFraction, weightDecay, clipNorm, seed,
                    n, workers, stopAfterStep, pack);
        }

        public Options withStopAfterStep(int n) {
            return new Options(epochs, batchSize, peakLr, minLrRatio, warmupFraction, weightDecay, clipNorm, seed,
                    checkpointEvery, workers, n, pack);
        }

        public Options withPack(int n) {
            return new Options(epochs, batchSize, peakLr, minLrRatio, warmupFraction, weightDecay, clipNorm, seed,
                    checkpointEvery, workers, stopAfterStep, n);
        }
    }

    /** One optimizer step as reported to the listener. */
    public record Progress(int step, int totalSteps, int epoch, double loss, double lr, double gradNorm,
                           double tokensPerSecond, double examplesPerSecond, double elapsedSeconds, double etaSeconds,
                           double attentionLoss, double copyAttentionLoss) {
        /** Progress with a slot attention loss only (copy attention loss NaN). */
        public Progress(int step, int totalSteps, int epoch, double loss, double lr, double gradNorm,
                        double tokensPerSecond, double examplesPerSecond, double elapsedSeconds, double etaSeconds,
                        double attentionLoss) {
            this(step, totalSteps, epoch, loss, lr, gradNorm, tokensPerSecond, examplesPerSecond, elapsedSeconds, etaSeconds,
                    attentionLoss, Double.NaN);
        }

        /** Progress of a step without attention targets (attention losses NaN). */
        public Progress(int step, int totalSteps, int epoch, double loss, double lr, double gradNorm,
                        double tokensPerSecond, double examplesPerSecond, double elapsedSeconds, double etaSeconds) {
            this(step, totalSteps, epoch, loss, lr, gradNorm, tokensPerSecond, examplesPerSecond, elapsedSeconds, etaSeconds,
                    Double.NaN);
        }
    }

    /** Receives progress after every step and the path of every checkpoint written. */
    public interface Listener {
        void onStep(Progress p);

        default void onCheckpoint(int step, Path dir) {
        }
    }

    /** One row of the loss log ({@value #LOG_HEADER}); step counts from 1. */
    public record LogRow(int step, int epoch, double loss, double lr, double gradNorm, double tokensPerSecond,
                         double elapsedSeconds) {
    }

    /** What {@link #train} did: the log of every step so far and whether the run reached its last step. */
    public record Result(List<LogRow> log, int stepsDone, int totalSteps, boolean finished, double secondsThisRun,
                         long examplesThisRun, long tokensThisRun) {
    }

    /** Header of the loss-log CSV. */
    public static final String LOG_HEADER = "step,epoch,loss,lr,grad_norm,tokens_per_s,elapsed_s";
    /** Name of the loss log inside a checkpoint (and the command's output directory). */
    public static final String LOG_FILE = "training_log.csv";
    private static final String STATE_FILE = "trainer_state.json";
    private static final String OPTIMIZER_FILE = "optimizer.safetensors";
    private static final String CHECKPOINT_PREFIX = "step-";
    private static final ObjectMapper JSON = new ObjectMapper();

    private final TrainableLlava model;
    private final List<TrainingExample> data;
    private final Options options;
    private final Path checkpointDir;
    private final List<Tensor> params;
    private final AdamW optimizer;
    private final CosineSchedule schedule;
    private final int stepsPerEpoch;
    private final int totalSteps;
    private SlotAttention.Settings attention;
    private SlotAttention.Settings copy;

    /**
     * @param checkpointDir where checkpoints go (created if needed), or null for none
     */
    public Trainer(TrainableLlava model, List<TrainingExample> data, Options options, Path checkpointDir) {
        if (data.isEmpty()) {
            throw new IllegalArgumentException("training data is empty");
        }
        this.model = model;
        this.data = List.copyOf(data);
        this.options = options;
        this.checkpointDir = checkpointDir;
        this.params = new ArrayList<>(model.parameters().values());
        List<Tensor> decay = new ArrayList<>();
        List<Tensor> noDecay = new ArrayList<>();
        for (Tensor p : params) {
            if (p.requiresGrad()) { // frozen parameters (TrainableLlava#freezing) are left out
                (p.rank() >= 2 ? decay : noDecay).add(p);
            }
        }
        this.optimizer = new AdamW(List.of(new AdamW.Group(decay, options.weightDecay()), new AdamW.Group(noDecay, 0.0)),
                AdamW.DEFAULT_BETA1, AdamW.DEFAULT_BETA2, AdamW.DEFAULT_EPS);
        this.stepsPerEpoch = (data.size() + options.batchSize() - 1) / options.batchSize();
        this.totalSteps = stepsPerEpoch * options.epochs();
        this.schedule = new CosineSchedule(options.peakLr(), (int) Math.round(options.warmupFraction() * totalSteps),
                totalSteps, options.minLrRatio());
    }

    public int totalSteps() {
        return totalSteps;
    }

    public int stepsPerEpoch() {
        return stepsPerEpoch;
    }

    public AdamW optimizer() {
        return optimizer;
    }

    /** The order in which epoch {@code epoch} visits the examples: a seeded Fisher-Yates shuffle. */
    public static int[] epochOrder(long seed, int epoch, int n) {
        SplittableRandom rng = new SplittableRandom(seed ^ (0x9E3779B97F4A7C15L * (epoch + 1L)));
        int[] order = new int[n];
        for (int i = 0; i < n; i++) {
            order[i] = i;
        }
        for (int i = n - 1; i > 0; i--) {
            int j = rng.nextInt(i + 1);
            int t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        return order;
    }

    /**
     * Trains to the last step (or {@code stopAfterStep}). With {@code resume}, first restores the
     * model, optimizer and log from the latest checkpoint in the checkpoint directory, if there is
     * one, after checking that it was made with the same options and data.
     */
    public Result train(boolean resume, Listener listener) {
        List<LogRow> log = new ArrayList<>();
        int start = 0;
        if (resume) {
            if (checkpointDir == null) {
                throw new IllegalArgumentException("resume needs a checkpoint directory");
            }
            Path latest = latestCheckpoint(checkpointDir);
            if (latest != null) {
                start = restore(latest, log);
            }
        }
        int end = options.stopAfterStep() > 0 ? Math.min(totalSteps, options.stopAfterStep()) : totalSteps;
        double elapsedBefore = log.isEmpty() ? 0 : log.getLast().elapsedSeconds();
        long t0 = System.nanoTime();
        long tokensThisRun = 0;
        long examplesThisRun = 0;
        int[] order = null;
        int orderEpoch = -1;
        TrainableLlava[] replicas = new TrainableLlava[options.workers()];
        for (int w = 0; w < replicas.length; w++) {
            replicas[w] = model.replica();
        }
        ExecutorService pool = options.workers() > 1 ? Executors.newFixedThreadPool(options.workers(), r -> {
            Thread t = new Thread(r, "qvlm4j-train-worker");
            t.setDaemon(true);
            return t;
        }) : null;
        try {
            for (int step = start; step < end; step++) {
                int epoch = step / stepsPerEpoch;
                if (epoch != orderEpoch) {
                    order = epochOrder(options.seed(), epoch, data.size());
                    orderEpoch = epoch;
                }
                int from = (step % stepsPerEpoch) * options.batchSize();
                int to = Math.min(data.size(), from + options.batchSize());
                List<TrainingExample> batch = new ArrayList<>();
                for (int i = from; i < to; i++) {
                    batch.add(data.get(order[i]));
                }
                long stepStart = System.nanoTime();
                double[] parts = accumulateGradients(batch, replicas, pool);
                double loss = parts[0];
                double norm = GradClip.clipByGlobalNorm(params, options.clipNorm());
                if (!Double.isFinite(loss) || !Double.isFinite(norm)) {
                    throw new IllegalStateException("training diverged at step " + (step + 1) + ": loss " + loss
                            + ", gradient norm " + norm + "; lower the learning rate");
                }
                double lr = schedule.lr(step);
                optimizer.step(lr);
                optimizer.zeroGrad();
                int tokens = 0;
                for (TrainingExample ex : batch) {
                    tokens += ex.length();
                }
                tokensThisRun += tokens;
                examplesThisRun += batch.size();
                long now = System.nanoTime();
                double runSeconds = (now - t0) / 1e9;
                double stepSeconds = (now - stepStart) / 1e9;
                LogRow row = new LogRow(step + 1, epoch + 1, loss, lr, norm, tokens / stepSeconds, elapsedBefore + runSeconds);
                log.add(row);
                int doneThisRun = step + 1 - start;
                double eta = runSeconds / doneThisRun * (end - step - 1);
                if (listener != null) {
                    listener.onStep(new Progress(step + 1, totalSteps, epoch + 1, loss, lr, norm,
                            tokensThisRun / runSeconds, examplesThisRun / runSeconds, elapsedBefore + runSeconds, eta,
                            parts[1], parts[2]));
                }
                boolean last = step + 1 == end;
                boolean periodic = options.checkpointEvery() > 0 && (step + 1) % options.checkpointEvery() == 0;
                if (checkpointDir != null && (last || periodic)) {
                    Path dir = saveCheckpoint(step + 1, log);
                    if (listener != null) {
                        listener.onCheckpoint(step + 1, dir);
                    }
                }
            }
        } finally {
            if (pool != null) {
                pool.shutdownNow();
            }
        }
        return new Result(List.copyOf(log), Math.max(start, end), totalSteps, end == totalSteps,
                (System.nanoTime() - t0) / 1e9, examplesThisRun, tokensThisRun);
    }

    /**
     * Sums the batch's gradient into the model's parameters: the batch is cut into packs of
     * {@code options.pack} consecutive examples, and pack j contributes the gradient of its mean token
     * loss times n_j / N (n_j its supervised tokens, N the batch's), in pack order. Returns the batch
     * loss, the same weighted sum of the packs' losses, and the mean attention loss of the packs that
     * have attention targets (NaN when none has; see {@link #superviseAttention}).
     */
    private double[] accumulateGradients(List<TrainingExample> batch, TrainableLlava[] replicas, ExecutorService pool) {
        long total = 0;
        for (TrainingExample ex : batch) {
            total += ex.supervisedTokens();
        }
        List<List<TrainingExample>> packs = new ArrayList<>();
        for (int i = 0; i < batch.size(); i += options.pack()) {
            packs.add(batch.subList(i, Math.min(batch.size(), i + options.pack())));
        }
        double loss = 0;
        double attentionSum = 0;
        int attentionPacks = 0;
        double copySum = 0;
        int copyPacks = 0;
        int W = replicas.length;
        for (int r = 0; r < packs.size(); r += W) {
            int n = Math.min(W, packs.size() - r);
            List<Future<float[]>> futures = new ArrayList<>();
            float[] weights = new float[n];
            for (int w = 0; w < n; w++) {
                List<TrainingExample> pack = packs.get(r + w);
                long supervised = 0;
                for (TrainingExample ex : pack) {
                    supervised += ex.supervisedTokens();
                }
                weights[w] = total == 0 ? 0f : (float) ((double) supervised / total);
                TrainableLlava rep = replicas[w];
                float weight = weights[w];
                if (pool == null) {
                    futures.add(java.util.concurrent.CompletableFuture.completedFuture(packGradient(rep, pack, weight, attention, copy)));
                } else {
                    futures.add(pool.submit(() -> packGradient(rep, pack, weight, attention, copy)));
                }
            }
            for (int w = 0; w < n; w++) {
                float[] l = join(futures.get(w));
                loss += (double) weights[w] * l[0];
                if (!Float.isNaN(l[1])) {
                    attentionSum += l[1];
                    attentionPacks++;
                }
                if (!Float.isNaN(l[2])) {
                    copySum += l[2];
                    copyPacks++;
                }
                addGradients(replicas[w]);
            }
        }
        return new double[] {loss, attentionPacks == 0 ? Double.NaN : attentionSum / attentionPacks,
                copyPacks == 0 ? Double.NaN : copySum / copyPacks};
    }

    /**
     * {loss, slot attention loss or NaN, copy attention loss or NaN} of one pack, its gradient times
     * weight left in the replica's parameters.
     */
    private static float[] packGradient(TrainableLlava replica, List<TrainingExample> pack, float weight,
                                        SlotAttention.Settings attention, SlotAttention.Settings copy) {
        for (Tensor p : replica.parameters().values()) {
            p.zeroGrad();
        }
        Tape tape = new Tape();
        Tensor[] parts = replica.lossParts(tape, pack, attention, copy);
        Tensor l = parts[0];
        if (l.requiresGrad()) {
            tape.backward(l, new float[] {weight});
        }
        return new float[] {l.item(), parts[2] == null ? Float.NaN : parts[2].item(),
                parts[3] == null ? Float.NaN : parts[3].item()};
    }

    /**
     * Also teach one attention head the lookups the examples' {@link TrainingExample#attend} targets
     * name ({@link TrainableLlava#loss(Tape, List, SlotAttention.Settings)}); null (the default) trains
     * on the next-token loss alone. Returns this trainer.
     */
    public Trainer superviseAttention(SlotAttention.Settings settings) {
        this.attention = settings;
        return this;
    }

    /**
     * Also teach a head the copies the examples' {@link TrainingExample#copy} targets name ({@link
     * CopyAttention}); null (the default) leaves them out. Returns this trainer.
     */
    public Trainer superviseCopy(SlotAttention.Settings settings) {
        this.copy = settings;
        return this;
    }

    private void addGradients(TrainableLlava replica) {
        int i = 0;
        for (Tensor rp : replica.parameters().values()) {
            Tensor p = params.get(i++);
            float[] g = rp.grad();
            if (g == null) {
                continue;
            }
            float[] acc = p.gradOrCreate();
            for (int k = 0; k < acc.length; k++) {
                acc[k] += g[k];
            }
        }
    }

    private static <T> T join(Future<T> f) {
        try {
            return f.get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while computing gradients", e);
        } catch (ExecutionException e) {
            if (e.getCause() instanceof RuntimeException re) {
                throw re;
            }
            if (e.getCause() instanceof Error err) {
                throw err;
            }
            throw new IllegalStateException(e.getCause());
        }
    }

    // ---------------------------------------------------------------- checkpoints

    /** The checkpoint directory with the highest step under dir, or null when there is none. */
    public static Path latestCheckpoint(Path dir) {
        if (!Files.isDirectory(dir)) {
            return null;
        }
        try (Stream<Path> s = Files.list(dir)) {
            return s.filter(p -> p.getFileName().toString().matches(CHECKPOINT_PREFIX + "\\d+") && Files.isDirectory(p))
                    .max(Comparator.comparingInt(Trainer::checkpointStep)).orElse(null);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot list " + dir + ": " + e.getMessage(), e);
        }
    }

    private static int checkpointStep(Path p) {
        return Integer.parseInt(p.getFileName().toString().substring(CHECKPOINT_PREFIX.length()));
    }

    private Path saveCheckpoint(int step, List<LogRow> log) {
        Path target = checkpointDir.resolve(String.format(Locale.ROOT, CHECKPOINT_PREFIX + "%07d", step));
        Path tmp = null;
        try {
            Files.createDirectories(checkpointDir);
            tmp = AtomicFiles.tempSiblingDirectory(target);
            model.save(tmp);
            SafeTensorsWriter w = new SafeTensorsWriter().metadata("format", "pt");
            ObjectNode state = JSON.createObjectNode();
            state.put("step", step);
            state.put("total_steps", totalSteps);
            state.put("data_examples", data.size());
            state.put("data_fingerprint", fingerprint(data));
            state.set("options", JSON.valueToTree(options));
            state.put("frozen_parameters", frozenParameters());
            ObjectNode adamSteps = state.putObject("adam_steps");
            for (Tensor p : params) {
                AdamW.ParamState s = optimizer.state(p);
                if (s == null) {
                    continue;
                }
                long[] shape = Arrays.stream(p.shape()).asLongStream().toArray();
                w.addFloats("exp_avg." + p.name(), DType.F32, shape, s.m());
                w.addFloats("exp_avg_sq." + p.name(), DType.F32, shape, s.v());
                adamSteps.put(p.name(), s.step());
            }
            w.write(tmp.resolve(OPTIMIZER_FILE));
            Files.writeString(tmp.resolve(STATE_FILE), JSON.writerWithDefaultPrettyPrinter().writeValueAsString(state));
            writeLog(tmp.resolve(LOG_FILE), log);
            try {
                Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(tmp, target);
            }
            tmp = null;
            try (DirectoryStream<Path> old = Files.newDirectoryStream(checkpointDir, CHECKPOINT_PREFIX + "*")) {
                for (Path p : old) {
                    if (!p.equals(target) && p.getFileName().toString().matches(CHECKPOINT_PREFIX + "\\d+")) {
                        deleteTree(p);
                    }
                }
            }
            return target;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write checkpoint " + target + ": " + e.getMessage(), e);
        } finally {
            if (tmp != null) {
                try {
                    deleteTree(tmp);
                } catch (IOException ignored) {
                    // a hidden-named leftover is harmless and never taken for a checkpoint
                }
            }
        }
    }

    /** Loads a checkpoint into the model and optimizer; returns its step and fills log. */
    private int restore(Path dir, List<LogRow> log) {
        JsonNode state;
        try {
            state = JSON.readTree(Files.readString(dir.resolve(STATE_FILE)));
        } catch (IOException e) {
            throw new IllegalArgumentException(dir.resolve(STATE_FILE) + ": cannot read: " + e.getMessage(), e);
        }
        JsonNode saved = state.path("options");
        Options o = options;
        checkSame(dir, "options.seed", saved.path("seed").asLong(), o.seed());
        checkSame(dir, "options.epochs", saved.path("epochs").asLong(), o.epochs());
        checkSame(dir, "options.batchSize", saved.path("batchSize").asLong(), o.batchSize());
        checkSame(dir, "options.pack", saved.path("pack").asLong(1), o.pack());
        checkSame(dir, "data_examples", state.path("data_examples").asLong(), data.size());
        String frozen = state.path("frozen_parameters").asText("");
        if (!frozen.equals(frozenParameters())) {
            throw new IllegalArgumentException(dir.resolve(STATE_FILE) + ": key 'frozen_parameters' is '" + frozen
                    + "' in the checkpoint but '" + frozenParameters() + "' in this run; resume needs the same frozen parameters");
        }
        checkSame(dir, "data_fingerprint", state.path("data_fingerprint").asLong(), fingerprint(data));
        if (saved.path("peakLr").asDouble() != o.peakLr() || saved.path("weightDecay").asDouble() != o.weightDecay()
                || saved.path("warmupFraction").asDouble() != o.warmupFraction()
                || saved.path("minLrRatio").asDouble() != o.minLrRatio() || saved.path("clipNorm").asDouble() != o.clipNorm()) {
            throw new IllegalArgumentException(dir.resolve(STATE_FILE) + ": optimizer options " + saved
                    + " differ from this run's " + o);
        }
        String cfg = TrainableLlava.configJson(model.config(), model.padTokenId());
        String savedCfg;
        try {
            savedCfg = Files.readString(dir.resolve("config.json"));
        } catch (IOException e) {
            throw new IllegalArgumentException(dir + ": cannot read config.json: " + e.getMessage(), e);
        }
        if (!cfg.equals(savedCfg)) {
            throw new IllegalArgumentException(dir.resolve("config.json") + ": model config differs from this run's model");
        }
        TrainableLlava loaded = TrainableLlava.load(dir);
        for (Tensor p : params) {
            float[] src = loaded.parameters().get(p.name()).data();
            System.arraycopy(src, 0, p.data(), 0, src.length);
        }
        JsonNode adamSteps = state.path("adam_steps");
        try (SafeTensors opt = SafeTensors.open(dir.resolve(OPTIMIZER_FILE))) {
            for (Tensor p : params) {
                JsonNode n = adamSteps.get(p.name());
                if (n == null) {
                    continue;
                }
                TensorEntry m = opt.get("exp_avg." + p.name());
                TensorEntry v = opt.get("exp_avg_sq." + p.name());
                optimizer.setState(p, m.toFloatArray(), v.toFloatArray(), n.asLong());
            }
        }
        log.addAll(readLog(dir.resolve(LOG_FILE)));
        int step = state.path("step").asInt();
        if (log.size() != step) {
            throw new IllegalArgumentException(dir.resolve(LOG_FILE) + ": expected " + step + " rows, got " + log.size());
        }
        return step;
    }

    /** The model's parameters held constant (no gradient), space-separated in model order; empty when none. */
    private String frozenParameters() {
        StringBuilder sb = new StringBuilder();
        for (Map.Entry<String, Tensor> e : model.parameters().entrySet()) {
            if (!e.getValue().requiresGrad()) {
                sb.append(sb.isEmpty() ? "" : " ").append(e.getKey());
            }
        }
        return sb.toString();
    }

    private static void checkSame(Path dir, String key, long saved, long now) {
        if (saved != now) {
            throw new IllegalArgumentException(dir.resolve(STATE_FILE) + ": key '" + key + "' is " + saved
                    + " in the checkpoint but " + now + " in this run; resume needs the same data and options");
        }
    }

    /** A 64-bit FNV-1a hash of every example's ids, labels and pixel bits. */
    static long fingerprint(List<TrainingExample> data) {
        long h = 0xcbf29ce484222325L;
        for (TrainingExample ex : data) {
            for (int id : ex.inputIds()) {
                h = (h ^ id) * 0x100000001b3L;
            }
            for (int l : ex.labels()) {
                h = (h ^ l) * 0x100000001b3L;
            }
            if (ex.pixels() != null) {
                for (float f : ex.pixels()) {
                    h = (h ^ Float.floatToRawIntBits(f)) * 0x100000001b3L;
                }
            }
        }
        return h;
    }

    private static void deleteTree(Path p) throws IOException {
        if (!Files.exists(p)) {
            return;
        }
        try (Stream<Path> s = Files.walk(p)) {
            for (Path q : s.sorted(Comparator.reverseOrder()).toList()) {
                Files.delete(q);
            }
        }
    }

    // ---------------------------------------------------------------- loss log

    /** Writes the loss log as CSV ({@value #LOG_HEADER}), atomically. */
    public static void writeLog(Path file, List<LogRow> log) {
        StringBuilder sb = new StringBuilder(LOG_HEADER).append('\n');
        for (LogRow r : log) {
            sb.append(r.step()).append(',').append(r.epoch()).append(',').append(r.loss()).append(',').append(r.lr())
                    .append(',').append(r.gradNorm()).append(',').append(String.format(Locale.ROOT, "%.1f", r.tokensPerSecond()))
                    .append(',').append(String.format(Locale.ROOT, "%.3f", r.elapsedSeconds())).append('\n');
        }
        AtomicFiles.writeString(file, sb.toString());
    }

    /** Reads a loss log written by {@link #writeLog}. */
    public static List<LogRow> readLog(Path file) {
        List<String> lines;
        try {
            lines = Files.readAllLines(file);
        } catch (IOException e) {
            throw new IllegalArgumentException(file + ": cannot read loss log: " + e.getMessage(), e);
        }
        if (lines.isEmpty() || !lines.getFirst().equals(LOG_HEADER)) {
            throw new IllegalArgumentException(file + ": expected header '" + LOG_HEADER + "', got '"
                    + (lines.isEmpty() ? "" : lines.getFirst()) + "'");
        }
        List<LogRow> rows = new ArrayList<>();
        for (int i = 1; i < lines.size(); i++) {
            String[] f = lines.get(i).split(",");
            if (f.length != 7) {
                throw new IllegalArgumentException(file + ": line " + (i + 1) + ": expected 7 fields, got " + f.length);
            }
            rows.add(new LogRow(Integer.parseInt(f[0]), Integer.parseInt(f[1]), Double.parseDouble(f[2]),
                    Double.parseDouble(f[3]), Double.parseDouble(f[4]), Double.parseDouble(f[5]), Double.parseDouble(f[6])));
        }
        return rows;
    }
}
