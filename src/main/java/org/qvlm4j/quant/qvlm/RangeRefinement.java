package org.qvlm4j.quant.qvlm;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.function.Consumer;
import org.qvlm4j.io.config.LlavaConfig;
import org.qvlm4j.quant.QuantPlan;
import org.qvlm4j.quant.Ranges;
import org.qvlm4j.quant.TensorCategory;
import org.qvlm4j.tensor.Ops;
import org.qvlm4j.tensor.Tape;
import org.qvlm4j.tensor.Tensor;
import org.qvlm4j.train.TrainableLlava;
import org.qvlm4j.train.optim.AdamW;
import org.qvlm4j.train.optim.CosineSchedule;

/**
 * Gradient refinement of the LLM's static input ranges after the block-wise search: the paper's
 * quantizer parameters "updated for 10 epochs" on "64 pairs, batch 8" (§4.1), which it does not
 * specify further (qvlm-method.md §1.3). Our reading, beyond the paper:
 *
 * <ul>
 *   <li><b>Parameters</b>: per slot (input channel) of every LLM linear with a static input spec, the
 *       clipping factors α_lo, α_hi over the searched range ({@link VeoForward.Bounds}: lo = lo0·α_lo,
 *       hi = hi0·α_hi, start 1, kept ≥ 0), with LSQ+ gradients through the rounding
 *       ({@link VeoOps#fakeQuantize(Tape, Tensor, Tensor, Tensor, org.qvlm4j.quant.QuantSpec)}).
 *       Weights (round-to-nearest, as the search used them), the vision tower's and projector's
 *       ranges stay as they are.</li>
 *   <li><b>Objective</b> ({@link Objective}): Eq. 3's block errors, all at once: the sum over the
 *       partition's blocks of ||X_q − X_r|| / ||X_r|| at the block's last decoder layer output, X_q
 *       from the fully quantized forward and X_r from the floating-point one; or the floating-point
 *       model's decisions: the cross-entropy of the quantized logits against the floating-point
 *       model's greedy next token at every position, which is what greedy generation must keep.
 *       Both on the calibration prompts (by default with their train answers).</li>
 *   <li><b>Optimiser</b>: AdamW without weight decay, cosine schedule from the given rate to 0, the
 *       samples in a seeded order each epoch.</li>
 * </ul>
 * Deterministic for a given seed. Left out: AdaRound-style weight rounding (§6.3 advises against it).
 */
public final class RangeRefinement {
    /** What the refinement minimises. */
    public enum Objective {
        /** Σ over blocks of the relative L2 error at the block's last layer output (Eq. 3). */
        BLOCKS,
        /** Cross-entropy of the quantized logits against the FP model's argmax at every position. */
        DECISIONS
    }

    /**
     * @param objective what is minimised
     * @param epochs passes over the samples (0 = off)
     * @param batch  samples per step
     * @param lr     peak learning rate of the clipping factors
     * @param seed   seed of the sample order
     */
    public record Config(Objective objective, int epochs, int batch, double lr, long seed) {
        /**
         * Off: 0 epochs. With {@code --refine-epochs 10}, the paper's "batch 8, 10 epochs" at a rate
         * that moves a factor by about 1% per step. Off by default because on the reference model it
         * did not measurably change W4A4 accuracy (docs/qvlm.md).
         */
        public static final Config DEFAULT = new Config(Objective.BLOCKS, 0, 8, 1e-2, 0);

        public Config {
            if (objective == null) {
                throw new IllegalArgumentException("qvlm: --refine-objective must be set");
            }
            if (epochs < 0) {
                throw new IllegalArgumentException("qvlm: --refine-epochs must be >= 0, got " + epochs);
            }
            if (batch < 1) {
                throw new IllegalArgumentException("qvlm: --refine-batch must be >= 1, got " + batch);
            }
            if (!(lr > 0) || !Double.isFinite(lr)) {
                throw new IllegalArgumentException("qvlm: --refine-lr must be positive, got " + lr);
            }
        }

        public boolean on() {
            return epochs > 0;
        }

        public Config withEpochs(int e) {
            return new Config(objective, e, batch, lr, seed);
        }
    }

    /**
     * @param ranges      the refined ranges of the LLM's static input sites
     * @param epochLoss   mean objective over the samples before refinement (index 0) and after each epoch's
     *                    steps, as measured during that epoch (index e)
     * @param finalLoss   the objective over all samples at the refined ranges
     * @param seconds     wall time
     */
    public record Result(Map<String, Ranges> ranges, double[] epochLoss, double finalLoss, double seconds) {
        public double initialLoss() {
            return epochLoss[0];
        }
    }

    private final TrainableLlava model;
    private final VeoForward hook;
    private final List<CalibrationSamples.Sample> samples;
    private final int[] targets;
    private final Objective objective;
    private final List<Tensor[]> references = new ArrayList<>();
    private final List<int[]> decisions = new ArrayList<>();

    /**
     * @param model   the floating-point trainable model, {@link TrainableLlava#frozen}
     * @param plan    the quantization plan (weights round-to-nearest, inputs as planned)
     * @param ranges  static ranges of every planned static input site: the searched ones
     * @param samples the calibration prompts
     * @param targets decoder layers whose outputs are compared (each block's last layer)
     */
    public RangeRefinement(TrainableLlava model, QuantPlan plan, Map<String, Ranges> ranges,
                           List<CalibrationSamples.Sample> samples, int[] targets, Objective objective) {
        if (samples.isEmpty()) {
            throw new IllegalArgumentException("qvlm refinement: no calibration samples");
        }
        LlavaConfig cfg = model.config();
        this.model = model;
        this.samples = List.copyOf(samples);
        this.targets = targets.clone();
        this.objective = objective;
        this.hook = new VeoForward(cfg, plan, ranges,
                linear -> TensorCategory.of(linear).family() == TensorCategory.Family.LLM);
        if (hook.learnable().isEmpty()) {
            throw new IllegalArgumentException("qvlm refinement: the plan gives no LLM linear a static input spec");
        }
        VeoForward fp = new VeoForward(cfg, QuantPlan.none(), Map.of());
        for (CalibrationSamples.Sample s : this.samples) {
            fp.clearResiduals();
            Tensor logits = model.logits(new Tape(), s.ids(), s.pixels(), fp); // (T, V)
            decisions.add(argmax(logits));
            Tensor[] refs = new Tensor[targets.length];
            for (int i = 0; i < targets.length; i++) {
                Tensor r = fp.residual(outputSite(targets[i]));
                refs[i] = Tensor.of(r.data().clone(), r.dim(0), r.dim(1));
            }
            references.add(refs);
        }
    }

    private static int[] argmax(Tensor logits) {
        int T = logits.dim(0);
        int V = logits.dim(1);
        float[] d = logits.data();
        int[] out = new int[T];
        for (int t = 0; t < T; t++) {
            int best = 0;
            for (int v = 1; v < V; v++) {
                if (d[t * V + v] > d[t * V + best]) {
                    best = v;
                }
            }
            out[t] = best;
        }
        return out;
    }

    private static String outputSite(int layer) {
        return "llm.layers." + layer + ".out";
    }

    /** The objective of sample i at the current factors, recorded on the tape. */
    Tensor loss(Tape tape, int i) {
        CalibrationSamples.Sample s = samples.get(i);
        hook.clearResiduals();
        Tensor logits = model.logits(tape, s.ids(), s.pixels(), hook); // (T, V)
        if (objective == Objective.DECISIONS) {
            return Ops.crossEntropy(tape, logits, decisions.get(i));
        }
        Tensor total = null;
        Tensor[] refs = references.get(i);
        for (int t = 0; t < targets.length; t++) {
            Tensor e = VeoOps.relativeL2(tape, hook.residual(outputSite(targets[t])), refs[t]);
            total = total == null ? e : Ops.add(tape, total, e);
        }
        return total;
    }

    /** The mean objective over all samples at the current factors. */
    double meanLoss() {
        double sum = 0;
        for (int i = 0; i < samples.size(); i++) {
            sum += loss(new Tape(), i).item();
        }
        Tape.zeroGrad(hook.parameters());
        return sum / samples.size();
    }

    /** The current ranges of the LLM's static input sites. */
    Map<String, Ranges> ranges() {
        return hook.ranges();
    }

    /** Runs the refinement; progress gets one line per epoch. */
    public Result run(Config cfg, Consumer<String> progress) {
        long t0 = System.nanoTime();
        List<Tensor> params = hook.parameters();
        AdamW opt = AdamW.of(params, 0.0);
        int n = samples.size();
        int batches = (n + cfg.batch() - 1) / cfg.batch();
        int steps = batches * cfg.epochs();
        CosineSchedule schedule = new CosineSchedule(cfg.lr(), 0, Math.max(steps, 1), 0.0);
        SplittableRandom order = new SplittableRandom(cfg.seed());
        double[] epochLoss = new double[cfg.epochs() + 1];
        epochLoss[0] = meanLoss();
        int step = 0;
        for (int epoch = 1; epoch <= cfg.epochs(); epoch++) {
            int[] perm = VisualEncoderOptimizer.permutation(n, order);
            double sum = 0;
            for (int b = 0; b < batches; b++) {
                int from = b * cfg.batch();
                int to = Math.min(n, from + cfg.batch());
                for (int j = from; j < to; j++) {
                    Tape tape = new Tape();
                    Tensor l = loss(tape, perm[j]);
                    tape.backward(l, new float[] {1f / (to - from)});
                    sum += l.item();
                }
                opt.step(schedule.lr(step++));
                opt.zeroGrad();
                hook.project();
            }
            epochLoss[epoch] = sum / n;
            if (progress != null) {
                progress.accept(String.format(Locale.ROOT, "qvlm: refinement epoch %d/%d, objective %.5g (start %.5g)",
                        epoch, cfg.epochs(), epochLoss[epoch], epochLoss[0]));
            }
        }
        double last = meanLoss();
        return new Result(hook.ranges(), epochLoss, last, (System.nanoTime() - t0) / 1e9);
    }
}
