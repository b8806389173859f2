package org.qvlm4j.quant.qvlm;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.function.Consumer;
import org.qvlm4j.data.ScienceQaDataset;
import org.qvlm4j.data.ScienceQaProblem;
import org.qvlm4j.io.config.LlavaConfig;
import org.qvlm4j.io.image.PadMode;
import org.qvlm4j.io.text.PromptTemplate;
import org.qvlm4j.model.LlavaModel;
import org.qvlm4j.quant.QuantPlan;
import org.qvlm4j.quant.Ranges;
import org.qvlm4j.quant.calib.CalibrationStats;
import org.qvlm4j.quant.calib.Calibrator;
import org.qvlm4j.tensor.Ops;
import org.qvlm4j.tensor.Tape;
import org.qvlm4j.tensor.Tensor;
import org.qvlm4j.train.QcmExampleEncoder;
import org.qvlm4j.train.TrainableLlava;
import org.qvlm4j.train.TrainingExample;
import org.qvlm4j.train.optim.AdamW;
import org.qvlm4j.train.optim.CosineSchedule;

/**
 * Visual encoder optimisation (VEO) of Q-VLM (Wang et al., NeurIPS 2024, §3.3, Eq. 8-10), by
 * gradient: the vision tower's static activation clipping bounds are trained, through the
 * fake-quantized vision tower and LLM of {@link VeoForward} (straight-through / LSQ+ gradients), to
 * minimise per calibration sample
 * <pre>
 *   L = L_reg + λ1 Σ_k w_k H(X^(k+1) | X^(k)) + λ2 (||Xv_q − Xv_r|| / ||Xv_r|| + η ||X^(n)_q − X^(n)_r|| / ||X^(n)_r||)
 * </pre>
 * <ul>
 *   <li>L_reg: next-token cross-entropy of the quantized model on the sample's supervised answer.</li>
 *   <li>X^(0) is the decoder input (text embeddings with the image features spliced in) and X^(k)
 *       the output of decoder layer k − 1, k = 1 .. n. H is {@link VeoOps#softConditionalEntropy} on
 *       the quantized model's hidden states, each X^(k) on a fixed grid of 2^bits levels spanning
 *       its floating-point min/max over the calibration samples. The sign is that of a conditional
 *       entropy to be minimised (Eq. 8 as printed lacks the minus).</li>
 *   <li>w_k = ||∂E/∂X^(k)|| with E = mean((X^(n)_q − X^(n)_r)²), the final layer's quantization
 *       error, from one backward pass of E through the quantized model per sample; normalised to
 *       sum 1 per sample, averaged over samples (sum 1), recomputed at the start of every epoch at
 *       the current bounds and held constant during it (uniform if E is 0 everywhere).</li>
 *   <li>Xv is the vision tower's output, the rows of the selected hidden state the projector
 *       reads; X^(n) is the last decoder layer's output. _r is the floating-point model, _q the
 *       quantized one; the references are computed once.</li>
 * </ul>
 * Each epoch visits the samples in a seeded random order, in batches whose gradients are averaged,
 * with one AdamW update (no weight decay, learning rate cosine-decayed from {@code lr} to 0 over
 * all updates) per batch; factors are clamped to ≥ 0 after each update. Which parameters move is
 * stated in {@link VeoForward}: the per-slot clipping factors of the vision sites, nothing else.
 *
 * <p>Deterministic: the same model, plan, ranges, samples and config give the same bytes (every
 * parallel kernel used by the forward owns each output element on one thread). With a
 * {@link VeoCheckpoint.Store} the state is saved after every epoch and a rerun continues after the
 * last saved one, to the same bytes.
 *
 * <p>Left out: a joint entropy over a whole batch (each sample's entropy is its own; the mean over
 * the batch is optimised), projector and LLM ranges (fixed: the LLM's search is cross-layer
 * dependency mining's job), weight rounding (RTN, constant).
 */
public final class VisualEncoderOptimizer {
    /** Weight decay of the factors: none, so only the loss decides where the bounds go. */
    static final double WEIGHT_DECAY = 0.0;

    private final TrainableLlava quantized;
    private final VeoForward hook;
    private final List<TrainingExample> samples;
    private final VeoConfig cfg;
    private final int layers;
    private final String visionOut;
    private final boolean dropCls;
    private final List<Tensor> fpVision = new ArrayList<>();
    private final List<Tensor> fpLast = new ArrayList<>();
    private final VeoOps.Grid[] grids;

    /**
     * Runs VEO from a model directory, a ScienceQA data directory and calibration statistics of
     * that model: {@code config.samples()} problems with an image are drawn from the train split
     * with {@code config.seed()} ({@link Calibrator#sample}), encoded with their supervised answers
     * by {@link QcmExampleEncoder}, and the starting ranges come from the statistics
     * ({@link VeoRanges#fromStats}).
     */
    public record Request(Path modelDir, Path dataDir, CalibrationStats stats, QuantPlan plan, VeoConfig config,
                          PromptTemplate template, PadMode padMode, QcmExampleEncoder.AnswerStyle answerStyle) {
        public Request {
            if (modelDir == null || dataDir == null || stats == null || plan == null || config == null
                    || template == null || padMode == null || answerStyle == null) {
                throw new IllegalArgumentException("VEO request: every field must be given");
            }
        }
    }

    private VisualEncoderOptimizer(TrainableLlava model, QuantPlan plan, Map<String, Ranges> initial,
                                   List<TrainingExample> samples, VeoConfig cfg) {
        LlavaConfig c = model.config();
        this.quantized = model.frozen();
        this.hook = new VeoForward(c, plan, initial);
        if (hook.learnable().isEmpty()) {
            throw new IllegalArgumentException("VEO: the plan has no vision-tower linear with a static input spec, so "
                    + "there is no clipping bound to optimise; expected e.g. vision=w4-asym-channel+a4-asym-token-static");
        }
        if (samples.isEmpty()) {
            throw new IllegalArgumentException("VEO: expected at least one calibration sample, got none");
        }
        for (int i = 0; i < samples.size(); i++) {
            if (samples.get(i).pixels() == null) {
                throw new IllegalArgumentException("VEO: calibration sample " + i + " has no image; the vision tower's"
                        + " bounds only receive gradients from samples with one");
            }
        }
        this.samples = List.copyOf(samples);
        this.cfg = cfg;
        this.layers = c.textConfig().numHiddenLayers();
        this.visionOut = "vision.layers." + (c.visionFeatureLayerIndex() - 1) + ".out";
        this.dropCls = c.visionFeatureSelectStrategy() == LlavaConfig.FeatureSelectStrategy.DEFAULT;
        this.grids = references(model.frozen(), c);
    }

    /** Runs VEO as described by the request. */
    public static VeoResult run(Request r, Consumer<VeoResult.Progress> progress) {
        if (!Files.isDirectory(r.modelDir())) {
            throw new IllegalArgumentException(r.modelDir() + ": model directory does not exist");
        }
        if (!Files.isDirectory(r.dataDir())) {
            throw new IllegalArgumentException(r.dataDir() + ": data directory does not exist (expected "
                    + ScienceQaDataset.PROBLEMS_FILE + " and " + ScienceQaDataset.SPLITS_FILE + " there)");
        }
        TrainableLlava model = TrainableLlava.load(r.modelDir());
        try (LlavaModel runtime = LlavaModel.load(r.modelDir())) {
            r.stats().checkModel(r.modelDir(), runtime);
        }
        List<ScienceQaProblem> drawn = VeoInputs.draw(r.dataDir(), r.config().samples(), r.config().seed());
        List<TrainingExample> examples = VeoInputs.encode(r.modelDir(), model.config(), drawn, r.template(),
                r.padMode(), r.answerStyle());
        return run(model, r.plan(), VeoRanges.fromStats(r.stats(), r.plan(), model.config()), examples, r.config(),
                progress);
    }

    /**
     * Runs VEO on a loaded model (its weights are read, never changed).
     *
     * @param initial  static ranges of every planned static input site ({@link VeoRanges#fromStats});
     *                 the vision ones are where the optimisation starts, the others stay fixed
     * @param samples  calibration samples, each with an image and supervised answer tokens
     * @param progress called after every update, or null
     */
    public static VeoResult run(TrainableLlava model, QuantPlan plan, Map<String, Ranges> initial,
                                List<TrainingExample> samples, VeoConfig cfg, Consumer<VeoResult.Progress> progress) {
        return prepare(model, plan, initial, samples, cfg).optimise(progress, null);
    }

    /**
     * As {@link #run(TrainableLlava, QuantPlan, Map, List, VeoConfig, Consumer)}, saving the state to
     * store after every epoch and starting from the state it holds, if any: a run killed after epoch
     * e and restarted with the same inputs continues with epoch e + 1 and ends with the same bytes.
     */
    static VeoResult run(TrainableLlava model, QuantPlan plan, Map<String, Ranges> initial,
                         List<TrainingExample> samples, VeoConfig cfg, Consumer<VeoResult.Progress> progress,
                         VeoCheckpoint.Store store) {
        return prepare(model, plan, initial, samples, cfg).optimise(progress, store);
    }

    /** The optimiser with its references computed, before any update (for tests of its parts). */
    static VisualEncoderOptimizer prepare(TrainableLlava model, QuantPlan plan, Map<String, Ranges> initial,
                                          List<TrainingExample> samples, VeoConfig cfg) {
        return new VisualEncoderOptimizer(model, plan, initial, samples, cfg);
    }

    /** The quantized forward, whose factors the optimisation moves. */
    VeoForward hook() {
        return hook;
    }

    private VeoResult optimise(Consumer<VeoResult.Progress> progress, VeoCheckpoint.Store store) {
        long t0 = System.nanoTime();
        List<Tensor> params = hook.parameters();
        AdamW opt = AdamW.of(params, WEIGHT_DECAY);
        int batches = (samples.size() + cfg.batch() - 1) / cfg.batch();
        int steps = batches * cfg.epochs();
        CosineSchedule schedule = new CosineSchedule(cfg.lr(), 0, steps, 0.0);
        SplittableRandom order = new SplittableRandom(cfg.seed());
        VeoCheckpoint.State saved = store == null ? null : store.load().orElse(null);
        double[] weights;
        VeoResult.Terms initial;
        List<VeoResult.Epoch> log = new ArrayList<>();
        int step = 0;
        int firstEpoch = 1;
        double secondsBefore = 0;
        if (saved != null) {
            if (saved.epochs() != cfg.epochs() || saved.epochsDone() > cfg.epochs()) {
                throw new IllegalArgumentException("VEO checkpoint: keys epochs/epochs_done: recorded " + saved.epochsDone()
                        + " of " + saved.epochs() + " epochs, this run has " + cfg.epochs());
            }
            VeoCheckpoint.restore(saved, params, opt, store.file());
            for (int e = 0; e < saved.epochsDone(); e++) {
                permutation(samples.size(), order); // the orders of the epochs done, so the rest draw the same
            }
            initial = saved.initial();
            log.addAll(saved.log());
            step = saved.step();
            firstEpoch = saved.epochsDone() + 1;
            secondsBefore = saved.seconds();
            weights = log.isEmpty() ? jacobianWeights() : log.getLast().weights();
        } else {
            weights = jacobianWeights();
            initial = evaluate(weights);
        }
        for (int epoch = firstEpoch; epoch <= cfg.epochs(); epoch++) {
            if (epoch > 1) {
                weights = jacobianWeights();
            }
            int[] perm = permutation(samples.size(), order);
            Accumulator acc = new Accumulator(layers);
            double lr = 0;
            for (int b = 0; b < batches; b++) {
                int from = b * cfg.batch();
                int to = Math.min(samples.size(), from + cfg.batch());
                double batchLoss = 0;
                for (int j = from; j < to; j++) {
                    Tape tape = new Tape();
                    Loss l = loss(tape, perm[j], weights);
                    tape.backward(l.total(), new float[] {1f / (to - from)});
                    acc.add(l);
                    batchLoss += l.total().item();
                }
                lr = schedule.lr(step);
                opt.step(lr);
                opt.zeroGrad();
                hook.project();
                step++;
                if (progress != null) {
                    progress.accept(new VeoResult.Progress(epoch, cfg.epochs(), step, steps, batchLoss / (to - from),
                            (System.nanoTime() - t0) / 1e9));
                }
            }
            log.add(new VeoResult.Epoch(epoch, weights, acc.mean(), lr));
            if (store != null && epoch < cfg.epochs()) {
                store.save(VeoCheckpoint.capture(epoch, cfg.epochs(), step, params, opt, initial, null, log,
                        secondsBefore + (System.nanoTime() - t0) / 1e9));
            }
        }
        VeoResult.Terms last = saved != null && saved.finished() ? saved.last() : evaluate(weights);
        double seconds = saved != null && saved.finished() ? saved.seconds() : secondsBefore + (System.nanoTime() - t0) / 1e9;
        if (store != null && (saved == null || !saved.finished())) {
            store.save(VeoCheckpoint.capture(cfg.epochs(), cfg.epochs(), step, params, opt, initial, last, log, seconds));
        }
        return new VeoResult(hook.ranges(), initial, last, log, seconds);
    }

    /** Floating-point references per sample and the entropy grids, from forwards of the FP model. */
    private VeoOps.Grid[] references(TrainableLlava fp, LlavaConfig c) {
        VeoForward record = new VeoForward(c, QuantPlan.none(), Map.of());
        double[] min = new double[layers + 1];
        double[] max = new double[layers + 1];
        Arrays.fill(min, Double.POSITIVE_INFINITY);
        Arrays.fill(max, Double.NEGATIVE_INFINITY);
        Tape off = Tape.disabled();
        for (TrainingExample ex : samples) {
            record.clearResiduals();
            fp.logits(off, ex.inputIds(), ex.pixels(), record);
            fpVision.add(visionFeatures(off, record));
            fpLast.add(record.residual(layerSite(layers)));
            for (int k = 0; k <= layers; k++) {
                for (float v : record.residual(layerSite(k)).data()) {
                    min[k] = Math.min(min[k], v);
                    max[k] = Math.max(max[k], v);
                }
            }
        }
        VeoOps.Grid[] g = new VeoOps.Grid[layers + 1];
        for (int k = 0; k <= layers; k++) {
            g[k] = VeoOps.Grid.spanning(min[k], max[k], cfg.bits());
        }
        return g;
    }

    /** X^(0) is the decoder input, X^(k) the output of decoder layer k − 1. */
    private static String layerSite(int k) {
        return k == 0 ? "llm.layers.0.in" : "llm.layers." + (k - 1) + ".out";
    }

    /** The rows of the recorded vision hidden state that the projector reads (F, Dv). */
    private Tensor visionFeatures(Tape tape, VeoForward h) {
        Tensor v = h.residual(visionOut); // (P+1, Dv)
        return dropCls ? Ops.sliceRows(tape, v, 1, v.dim(0)) : v;
    }

    /** The terms of one sample as tensors on the tape. */
    record Loss(Tensor total, Tensor reg, Tensor ent, Tensor err, Tensor errVision, Tensor errLlm, Tensor[] entropies) {
    }

    /** The loss of sample i at the current factors, recorded on tape. */
    Loss loss(Tape tape, int i, double[] weights) {
        TrainingExample ex = samples.get(i);
        hook.clearResiduals();
        Tensor logits = quantized.logits(tape, ex.inputIds(), ex.pixels(), hook); // (T, V)
        Tensor reg = Ops.crossEntropy(tape, logits, ex.shiftedTargets());
        Tensor errVision = VeoOps.relativeL2(tape, visionFeatures(tape, hook), fpVision.get(i));
        Tensor errLlm = VeoOps.relativeL2(tape, hook.residual(layerSite(layers)), fpLast.get(i));
        Tensor err = Ops.add(tape, errVision, Ops.scale(tape, errLlm, (float) cfg.eta()));
        Tensor[] h = new Tensor[layers];
        Tensor ent = null;
        for (int k = 0; k < layers; k++) {
            h[k] = VeoOps.softConditionalEntropy(tape, hook.residual(layerSite(k)), hook.residual(layerSite(k + 1)),
                    grids[k], grids[k + 1]);
            Tensor wk = Ops.scale(tape, h[k], (float) weights[k]);
            ent = ent == null ? wk : Ops.add(tape, ent, wk);
        }
        Tensor total = Ops.add(tape, reg, Ops.add(tape, Ops.scale(tape, ent, (float) cfg.lambda1()),
                Ops.scale(tape, err, (float) cfg.lambda2())));
        return new Loss(total, reg, ent, err, errVision, errLlm, h);
    }

    /**
     * w_k = ||∂E/∂X^(k)|| for k = 0 .. n−1, E = mean((X^(n)_q − X^(n)_r)²), normalised per sample and
     * averaged over samples (uniform when E has no gradient anywhere).
     */
    double[] jacobianWeights() {
        double[] w = new double[layers];
        int counted = 0;
        for (int i = 0; i < samples.size(); i++) {
            double[] norms = gradientNorms(i);
            double sum = Arrays.stream(norms).sum();
            if (sum > 0) {
                for (int k = 0; k < layers; k++) {
                    w[k] += norms[k] / sum;
                }
                counted++;
            }
        }
        if (counted == 0) {
            Arrays.fill(w, 1.0 / layers);
        } else {
            for (int k = 0; k < layers; k++) {
                w[k] /= counted;
            }
        }
        return w;
    }

    /** ||∂E/∂X^(k)|| for k = 0 .. n−1 on sample i, E the final layer's mean squared quantization error. */
    double[] gradientNorms(int i) {
        TrainingExample ex = samples.get(i);
        Tape tape = new Tape();
        hook.clearResiduals();
        quantized.logits(tape, ex.inputIds(), ex.pixels(), hook);
        Tensor e = Ops.mse(tape, hook.residual(layerSite(layers)), fpLast.get(i));
        double[] norms = new double[layers];
        if (e.requiresGrad() && e.item() > 0) {
            tape.backward(e);
            for (int k = 0; k < layers; k++) {
                float[] g = hook.residual(layerSite(k)).grad();
                double s = 0;
                if (g != null) {
                    for (float v : g) {
                        s += (double) v * v;
                    }
                }
                norms[k] = Math.sqrt(s);
            }
        }
        Tape.zeroGrad(hook.parameters());
        return norms;
    }

    /** The terms over all samples at the current factors, without recording. */
    private VeoResult.Terms evaluate(double[] weights) {
        Accumulator acc = new Accumulator(layers);
        Tape off = Tape.disabled();
        for (int i = 0; i < samples.size(); i++) {
            acc.add(loss(off, i, weights));
        }
        return acc.mean();
    }

    static int[] permutation(int n, SplittableRandom rng) {
        int[] p = new int[n];
        for (int i = 0; i < n; i++) {
            p[i] = i;
        }
        for (int i = n - 1; i > 0; i--) {
            int j = rng.nextInt(i + 1);
            int t = p[i];
            p[i] = p[j];
            p[j] = t;
        }
        return p;
    }

    /** Sums of the terms over samples, in double. */
    private static final class Accumulator {
        private final double[] sums = new double[6];
        private final double[] entropies;
        private int count;

        Accumulator(int layers) {
            entropies = new double[layers];
        }

        void add(Loss l) {
            Tensor[] t = {l.total(), l.reg(), l.ent(), l.err(), l.errVision(), l.errLlm()};
            for (int i = 0; i < t.length; i++) {
                sums[i] += t[i].item();
            }
            for (int k = 0; k < entropies.length; k++) {
                entropies[k] += l.entropies()[k].item();
            }
            count++;
        }

        VeoResult.Terms mean() {
            double[] e = entropies.clone();
            for (int k = 0; k < e.length; k++) {
                e[k] /= count;
            }
            return new VeoResult.Terms(sums[0] / count, sums[1] / count, sums[2] / count, sums[3] / count,
                    sums[4] / count, sums[5] / count, e);
        }
    }
}
