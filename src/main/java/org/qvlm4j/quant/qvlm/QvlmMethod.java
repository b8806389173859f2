package org.qvlm4j.quant.qvlm;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.math.BigDecimal;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalInt;
import java.util.TreeMap;
import java.util.function.Consumer;
import java.util.function.Supplier;
import org.qvlm4j.io.AtomicFiles;
import org.qvlm4j.io.safetensors.SafeTensorsWriter;
import org.qvlm4j.kernels.DType;
import org.qvlm4j.kernels.WeightMatrix;
import org.qvlm4j.model.Linear;
import org.qvlm4j.model.LlavaModel;
import org.qvlm4j.quant.FakeQuantTap;
import org.qvlm4j.quant.LinearQuant;
import org.qvlm4j.quant.QuantPlan;
import org.qvlm4j.quant.QuantSpec;
import org.qvlm4j.quant.Ranges;
import org.qvlm4j.quant.TensorCategory;
import org.qvlm4j.quant.WeightFakeQuantizer;
import org.qvlm4j.quant.calib.CalibrationStats;
import org.qvlm4j.quant.export.QuantizedExport;
import org.qvlm4j.quant.methods.Gptq;
import org.qvlm4j.quant.methods.LayerReport;
import org.qvlm4j.quant.methods.QuantMethod;
import org.qvlm4j.quant.methods.QuantResult;
import org.qvlm4j.train.TrainableLlava;

/**
 * Q-VLM (Wang et al., NeurIPS 2024; qvlm-method.md §1.8 and §6) as one {@link QuantMethod}, in the
 * paper's order:
 *
 * <ol>
 *   <li>weights: round-to-nearest under the plan's weight specs (the CLI's qvlm plan: uniform
 *       asymmetric per output channel, §6.1), on the same grid by GPTQ on the calibration
 *       Hessians, or NF4 as the official code ({@link WeightRounding});</li>
 *   <li>calibrated static ranges for the vision tower and projector inputs (per token position at
 *       p = 1, per channel at a chosen percentile), or ranges given by the caller;</li>
 *   <li>with VEO: visual encoder optimisation ({@link VisualEncoderOptimizer}, §3.3) of the vision
 *       tower's ranges, on calibration pairs with images and answers ({@link VeoInputs}), the LLM's
 *       inputs at their calibrated min/max; its ranges stay fixed from here on (§6 item 8: VEO before
 *       partitioning);</li>
 *   <li>with CDM: the {@link Dependency} of consecutive decoder layers (entropy, or quantization error
 *       for the paper's Table 5 ablation), measured by default on the quantized forward that VEO
 *       leaves (RTN weights, VEO's vision ranges, LLM inputs at min/max), threshold h0 = multiplier ×
 *       the mean pair value, and a {@link Partition} (greedy Eq. 7, or the search-cost-aware DP);
 *       without CDM every layer is its own block (layer-wise search, the paper's baseline row);</li>
 *   <li>block by block, {@link BlockSearch}: the clipping percentiles of the block's LLM linear
 *       inputs searched jointly to minimise the block output's MSE against floating point, with
 *       inputs from the quantized blocks before it;</li>
 *   <li>the result: fake-quantized weights in the model and a {@link FakeQuantTap} with plain static
 *       ranges (percentile clipping already applied), which {@link #export} writes as a quantized
 *       checkpoint.</li>
 * </ol>
 * The four rows of the paper's Table 1 are {@link Config#label()}: baseline (no CDM, no VEO), +CDM,
 * +VEO and Q-VLM.
 *
 * <p>With a work directory ({@link WorkDir}) VEO's state is saved after every epoch, the quantized
 * dependency once, and each finished block; a killed run restarted with the same inputs resumes to
 * the same bytes. Progress goes to the given consumer, one line per stage, VEO epoch and block; the
 * report ({@link QvlmReport}) records stage times, partition, per-block search cost, VEO's loss
 * terms and the final-layer MSE. Optionally, after the search, {@link RangeRefinement}: our reading of
 * the paper's unspecified gradient refinement of the quantizer parameters ("10 epochs", §1.3),
 * off by default; its result is saved in the work directory.
 */
public final class QvlmMethod implements QuantMethod {
    public static final String NAME = "qvlm";
    public static final int FORMAT_VERSION = 2;
    /** The work directory's summary of a finished run. */
    public static final String RESULT_FILE = "result.json";
    /** The report beside a checkpoint or a {@link #searchOnly} output. */
    public static final String REPORT_FILE = "qvlm_report.json";
    /** Files of a {@link #searchOnly} output directory besides the report. */
    public static final String RANGES_FILE = "ranges.safetensors";
    public static final String PLAN_FILE = "plan.json";
    /** Largest relative difference between a replayed block's error and its recorded one. */
    static final double REPLAY_REL_TOL = 1e-5;
    /** Seconds between VEO progress lines within an epoch. */
    static final double VEO_PROGRESS_INTERVAL_S = 10.0;

    public enum PartitionStrategy { GREEDY, DP }

    /**
     * How the weights are rounded onto the plan's grid before the activation search: to nearest (the
     * paper's reading, §6.1), or by GPTQ's error-compensating column order on the calibration
     * Hessians ({@link Gptq}, same grid), which the activation search then works on top of; or to
     * the nearest of NF4's levels in absmax blocks (the official code's bitsandbytes weights, §2.2 and
     * §6.1 code-compat), for which the plan's weight specs must be NF4.
     */
    public enum WeightRounding { RTN, GPTQ, NF4 }

    /**
     * What the block search's output error (Eq. 3) is measured on. The paper says "output error" of
     * the block; in a pre-norm decoder every reader of a layer's output (the next layer's attention and
     * MLP, the final norm) sees it through an RMSNorm, which divides out the token's scale and weighs
     * the channels by the norm's gains.
     */
    public enum BlockError {
        /** Mean squared error of the residual stream after the block, as it leaves the last layer. */
        RESIDUAL,
        /**
         * Mean squared error after the RMSNorm that reads the block's output next: the next layer's
         * input_layernorm, or the final norm after the last layer. A few channels of very large
         * magnitude then no longer decide the error alone.
         */
        NORMED
    }

    /** The forward whose decoder-layer outputs the dependency is measured on. */
    public enum DependencyForward {
        /** The rounded weights, the vision ranges after VEO, LLM inputs at their calibrated min/max (§1.8 step 3). */
        QUANTIZED,
        /** The floating-point model (cached in the statistics directory, shared with {@code analyze}). */
        FP
    }

    /**
     * @param cdm               cross-layer dependency mining on; off = layer-wise search
     * @param veo               visual encoder optimisation on
     * @param maxDepth          most layers per block (the paper: 3)
     * @param grid              clipping percentiles to search, each in (0.5, 1]; kept distinct and
     *                          descending (ties go to the first)
     * @param h0Multiplier      h0 = this × the mean pair dependency
     * @param partition         greedy (Eq. 7) or dp (search-cost aware)
     * @param proxy             the dependency proxy: entropy (Eq. 4–5) or quantization error
     * @param dependencyForward the forward the dependency is measured on
     * @param perSite           after the per-layer search, coordinate descent over each layer's four sites
     * @param perSiteSweeps     most sweeps of that descent
     * @param visionPercentile  clipping percentile of the vision-tower and projector inputs (1 = min/max)
     * @param searchSamples     prompts the search runs on, a seeded subset of the calibration prompts
     *                          (0 = all; the dependency always uses all)
     * @param seed              seed of that subset
     * @param temperature       Eq. 5's temperature mode for the entropy
     * @param tau               temperature in grid steps for {@link SoftAssignment.Temperature#GRID}
     * @param veoConfig         VEO's settings; its seed and bits are replaced by the statistics' seed
     *                          and the LLM's activation bits when VEO runs
     * @param refine            the optional gradient refinement of the LLM's ranges after the search
     * @param weightRounding    how the weights are rounded (RTN, GPTQ on the calibration Hessians, or NF4)
     * @param blockError        what the block search's error is measured on: the raw residual stream
     *                          after the block, or that stream through the norm that reads it next
     */
    public record Config(boolean cdm, boolean veo, int maxDepth, double[] grid, double h0Multiplier,
                         PartitionStrategy partition, Dependency.Proxy proxy, DependencyForward dependencyForward,
                         boolean perSite, int perSiteSweeps, double visionPercentile, int searchSamples, long seed,
                         SoftAssignment.Temperature temperature, double tau, VeoConfig veoConfig,
                         RangeRefinement.Config refine, WeightRounding weightRounding, BlockError blockError) {
        /** The paper's candidates: 1.0 down to 0.98 in steps of 0.005 (§4.1). */
        public static final double[] PAPER_GRID = {1.0, 0.995, 0.99, 0.985, 0.98};
        /** Q-VLM: CDM and VEO on. */
        public static final Config DEFAULT = new Config(true, true, 3, PAPER_GRID, 1.0, PartitionStrategy.GREEDY,
                Dependency.Proxy.ENTROPY, DependencyForward.QUANTIZED, false, 2, 1.0, 0, 0,
                SoftAssignment.Temperature.GRID, Dependency.Settings.DEFAULT_TAU, VeoConfig.defaults(),
                RangeRefinement.Config.DEFAULT, WeightRounding.RTN, BlockError.RESIDUAL);

        public Config {
            if (maxDepth < 1) {
                throw new IllegalArgumentException("qvlm: --max-depth must be >= 1, got " + maxDepth);
            }
            grid = candidateGrid(grid);
            if (!(h0Multiplier >= 0) || !Double.isFinite(h0Multiplier)) {
                throw new IllegalArgumentException("qvlm: --h0 multiplier must be finite and >= 0, got " + h0Multiplier);
            }
            if (partition == null || proxy == null || dependencyForward == null || temperature == null
                    || veoConfig == null || refine == null || weightRounding == null || blockError == null) {
                throw new IllegalArgumentException("qvlm: partition strategy, proxy, dependency forward, temperature mode, "
                        + "VEO, refinement, weight rounding and block error settings must be set");
            }
            if (perSiteSweeps < 1) {
                throw new IllegalArgumentException("qvlm: per-site sweeps must be >= 1, got " + perSiteSweeps);
            }
            if (!(visionPercentile > 0.5 && visionPercentile <= 1)) {
                throw new IllegalArgumentException("qvlm: --vision-pct must be in (0.5, 1], got " + visionPercentile);
            }
            if (searchSamples < 0) {
                throw new IllegalArgumentException("qvlm: --search-samples must be >= 0 (0 = all), got " + searchSamples);
            }
            if (!(tau > 0) || !Double.isFinite(tau)) {
                throw new IllegalArgumentException("qvlm: entropy temperature tau must be positive, got " + tau);
            }
        }

        @Override
        public double[] grid() {
            return grid.clone();
        }

        /** The row of the paper's Table 1 this configuration is: baseline, +cdm, +veo or q-vlm. */
        public String label() {
            return cdm ? (veo ? "q-vlm" : "+cdm") : (veo ? "+veo" : "baseline");
        }

        public Config withCdm(boolean on) {
            return new Config(on, veo, maxDepth, grid, h0Multiplier, partition, proxy, dependencyForward, perSite,
                    perSiteSweeps, visionPercentile, searchSamples, seed, temperature, tau, veoConfig, refine, weightRounding, blockError);
        }

        public Config withVeo(boolean on) {
            return new Config(cdm, on, maxDepth, grid, h0Multiplier, partition, proxy, dependencyForward, perSite,
                    perSiteSweeps, visionPercentile, searchSamples, seed, temperature, tau, veoConfig, refine, weightRounding, blockError);
        }

        public Config withVeoConfig(VeoConfig v) {
            return new Config(cdm, veo, maxDepth, grid, h0Multiplier, partition, proxy, dependencyForward, perSite,
                    perSiteSweeps, visionPercentile, searchSamples, seed, temperature, tau, v, refine, weightRounding, blockError);
        }

        /** The block rule's settings replaced: depth, candidate grid and h0 multiplier. */
        public Config withBlocks(int depth, double[] g, double h0) {
            return new Config(cdm, veo, depth, g, h0, partition, proxy, dependencyForward, perSite, perSiteSweeps,
                    visionPercentile, searchSamples, seed, temperature, tau, veoConfig, refine, weightRounding, blockError);
        }

        /** The LLM range refinement's settings replaced (epochs 0: off). */
        public Config withRefine(RangeRefinement.Config r) {
            return new Config(cdm, veo, maxDepth, grid, h0Multiplier, partition, proxy, dependencyForward, perSite,
                    perSiteSweeps, visionPercentile, searchSamples, seed, temperature, tau, veoConfig, r, weightRounding, blockError);
        }

        /** The weights' rounding replaced. */
        public Config withWeightRounding(WeightRounding w) {
            return new Config(cdm, veo, maxDepth, grid, h0Multiplier, partition, proxy, dependencyForward, perSite,
                    perSiteSweeps, visionPercentile, searchSamples, seed, temperature, tau, veoConfig, refine, w, blockError);
        }

        /** The block search's error measure replaced. */
        public Config withBlockError(BlockError e) {
            return new Config(cdm, veo, maxDepth, grid, h0Multiplier, partition, proxy, dependencyForward, perSite,
                    perSiteSweeps, visionPercentile, searchSamples, seed, temperature, tau, veoConfig, refine, weightRounding, e);
        }

        public Config withDependencyForward(DependencyForward f) {
            return new Config(cdm, veo, maxDepth, grid, h0Multiplier, partition, proxy, f, perSite, perSiteSweeps,
                    visionPercentile, searchSamples, seed, temperature, tau, veoConfig, refine, weightRounding, blockError);
        }

        ObjectNode toJson() {
            ObjectNode n = WorkDir.JSON.createObjectNode();
            n.put("cdm", cdm);
            n.put("veo", veo);
            n.put("max_depth", maxDepth);
            n.set("grid", WorkDir.doubles(grid));
            n.put("h0_multiplier", h0Multiplier);
            n.put("partition", partition.name());
            n.put("proxy", proxy.name());
            n.put("dependency_forward", dependencyForward.name());
            n.put("per_site", perSite);
            n.put("per_site_sweeps", perSiteSweeps);
            n.put("vision_percentile", visionPercentile);
            n.put("search_samples", searchSamples);
            n.put("seed", seed);
            n.put("temperature", temperature.name());
            n.put("tau", tau);
            n.set("veo_config", veoJson(veoConfig));
            n.set("refine", refineJson(refine));
            n.put("weight_rounding", weightRounding.name());
            n.put("block_error", blockError.name());
            return n;
        }
    }

    static ObjectNode refineJson(RangeRefinement.Config r) {
        ObjectNode n = WorkDir.JSON.createObjectNode();
        n.put("objective", r.objective().name());
        n.put("epochs", r.epochs());
        n.put("batch", r.batch());
        n.put("lr", r.lr());
        n.put("seed", r.seed());
        return n;
    }

    static ObjectNode veoJson(VeoConfig v) {
        ObjectNode n = WorkDir.JSON.createObjectNode();
        n.put("eta", v.eta());
        n.put("lambda1", v.lambda1());
        n.put("lambda2", v.lambda2());
        n.put("lr", v.lr());
        n.put("epochs", v.epochs());
        n.put("batch", v.batch());
        n.put("samples", v.samples());
        n.put("seed", v.seed());
        n.put("bits", v.bits());
        return n;
    }

    /** Candidate percentiles: each in (0.5, 1], duplicates dropped, in descending order (ties go to the first). */
    public static double[] candidateGrid(double[] g) {
        if (g == null || g.length == 0) {
            throw new IllegalArgumentException("qvlm: --p-grid must hold at least one percentile");
        }
        for (double p : g) {
            if (!(p > 0.5 && p <= 1)) {
                throw new IllegalArgumentException("qvlm: --p-grid values must be in (0.5, 1], got " + p);
            }
        }
        return Arrays.stream(g).boxed().distinct().sorted((a, b) -> Double.compare(b, a))
                .mapToDouble(Double::doubleValue).toArray();
    }

    /** One searched block, as reported (cost as recorded when it was first searched, also when resumed). */
    public record BlockResult(Partition.Block block, double[][] percentiles, double mse, long candidates, long forwards,
                              double seconds, boolean resumed) {
    }

    /**
     * What VEO ran on and produced.
     *
     * @param config    the settings it ran with (seed and bits as used)
     * @param samples   where its samples came from, with their ids
     * @param result    optimised vision ranges, loss terms before and after, epoch log, seconds
     * @param resumed   epochs taken from the work directory rather than run by this process
     */
    public record VeoRun(VeoConfig config, ObjectNode samples, VeoResult result, int resumed) {
    }

    /**
     * The outcome of the last {@link #apply}.
     *
     * @param label         the Table 1 row ({@link Config#label()})
     * @param prompts       calibration prompts (the dependency's); searchPrompts: those the search used
     * @param searchTokens  tokens of the search prompts
     * @param veo           VEO's run, or null when it did not run
     * @param dependency    null without CDM
     * @param stages        wall seconds of this process per stage, in order, and "total"
     */
    public record Summary(String label, int prompts, int searchPrompts, long searchTokens, VeoRun veo,
                          Partition partition, Dependency dependency, double h0, List<BlockResult> blocks,
                          RefineRun refine, Map<String, Ranges> ranges, double finalMse, Map<String, Double> stages) {
    }

    /**
     * What the LLM range refinement produced.
     *
     * @param targets decoder layers whose outputs it compared (each block's last)
     * @param resumed read from the work directory rather than run by this process
     */
    public record RefineRun(RangeRefinement.Config config, int[] targets, RangeRefinement.Result result,
                            boolean resumed) {
    }

    private final Config config;
    private final CalibrationSamples.Source source;
    private final VeoInputs.Source veoSource;
    private final Path workDir;
    private final Map<String, Ranges> visionRanges;
    private final Consumer<String> progress;
    private int stopAfterBlocks = -1;
    private int stopAfterVeoEpochs = -1;
    private Summary last;
    private Supplier<TrainableLlava> trainable;

    /**
     * @param source       where the calibration prompts come from
     * @param veoSource    where VEO's samples and trainable model come from (may be null when
     *                     config.veo() is off)
     * @param workDir      checkpoint directory, or null for none
     * @param visionRanges static ranges for vision-tower / projector input sites that replace the
     *                     calibrated ones (VEO then starts from them); empty for none
     * @param progress     receives one line per step
     */
    public QvlmMethod(Config config, CalibrationSamples.Source source, VeoInputs.Source veoSource, Path workDir,
                      Map<String, Ranges> visionRanges, Consumer<String> progress) {
        this.config = config;
        this.source = source;
        this.veoSource = veoSource;
        this.workDir = workDir;
        this.visionRanges = visionRanges == null ? Map.of() : Map.copyOf(visionRanges);
        this.progress = progress == null ? s -> { } : progress;
        if (config.veo() && veoSource == null) {
            throw new IllegalArgumentException("qvlm: VEO is on but no source of its samples was given");
        }
        for (String site : this.visionRanges.keySet()) {
            if (!(site.startsWith("vision.") || site.startsWith("projector.")) || !site.endsWith(".in")) {
                throw new IllegalArgumentException("qvlm: given range for site '" + site + "': expected a vision-tower or "
                        + "projector linear input such as vision.layers.0.self_attn.q_proj.in or projector.linear_1.in");
            }
        }
    }

    @Override
    public String name() {
        return NAME;
    }

    public Config config() {
        return config;
    }

    /** What the last {@link #apply} found, or null before it. */
    public Summary summary() {
        return last;
    }

    /**
     * Where the refinement's trainable copy of the model comes from (default: the model directory
     * the statistics' manifest names).
     */
    public QvlmMethod trainableModel(Supplier<TrainableLlava> source) {
        this.trainable = source;
        return this;
    }

    /** Test hook: throw after this many blocks have been searched and checkpointed. */
    QvlmMethod stopAfterBlocks(int n) {
        this.stopAfterBlocks = n;
        return this;
    }

    /** Test hook: throw after this many VEO epochs have been run and checkpointed (fewer than all). */
    QvlmMethod stopAfterVeoEpochs(int n) {
        this.stopAfterVeoEpochs = n;
        return this;
    }

    /** Thrown by the test hooks: a simulated kill. */
    static final class Stopped extends RuntimeException {
        Stopped(String what) {
            super("stopped after " + what);
        }
    }

    /**
     * The paper-mode plan derived from a preset-style plan: LLM inputs static per input channel (as the
     * presets have them), vision-tower and projector inputs static instead of dynamic per token: per
     * token position at visionPercentile 1 (§6.2), per channel otherwise (position percentiles are not
     * recorded). Weights and FP categories are unchanged.
     */
    public static QuantPlan paperPlan(QuantPlan base, double visionPercentile) {
        QuantPlan.Builder b = base.toBuilder();
        for (Map.Entry<TensorCategory, LinearQuant> e : base.entries().entrySet()) {
            QuantSpec in = e.getValue().input();
            TensorCategory.Family f = e.getKey().family();
            if (in == null || f == TensorCategory.Family.LLM) {
                continue;
            }
            QuantSpec.Granularity g = visionPercentile == 1.0 ? QuantSpec.Granularity.PER_TOKEN
                    : QuantSpec.Granularity.PER_CHANNEL;
            b.input(e.getKey(), QuantSpec.activation(in.bits(), in.symmetric(), g, false));
        }
        return b.build();
    }

    /**
     * Whether some LLM input is static per input channel: its percentiles exist only on the
     * statistics' grid (per-tensor ones also come from the stored histogram).
     */
    private static boolean perChannelLlmInputs(QuantPlan plan) {
        for (TensorCategory c : TensorCategory.values()) {
            QuantSpec in = plan.entry(c).input();
            if (c.family() == TensorCategory.Family.LLM && in != null && !in.dynamic()
                    && in.granularity() == QuantSpec.Granularity.PER_CHANNEL) {
                return true;
            }
        }
        return false;
    }

    @Override
    public QuantResult apply(LlavaModel model, QuantPlan plan, CalibrationStats stats) {
        Stages stages = new Stages();
        int layers = model.config().textConfig().numHiddenLayers();
        OptionalInt bits = llmInputBits(plan, layers);
        progress.accept("qvlm: " + config.label() + " (CDM " + (config.cdm() ? "on" : "off") + ", VEO "
                + (config.veo() ? "on" : "off") + ")");
        if (bits.isPresent() && perChannelLlmInputs(plan)) {
            for (double p : config.grid()) {
                SiteRanges.gridIndex(stats, p); // refuse a grid the statistics lack before any work
            }
        }
        // a weight-only plan has nothing to search and needs no prompts
        List<CalibrationSamples.Sample> all = bits.isPresent() ? source.load(model, stats) : List.of();
        List<CalibrationSamples.Sample> searchSet = CalibrationSamples.subset(all, config.searchSamples(), config.seed());
        Map<String, WeightMatrix> qWeights = quantizeWeights(model, plan, stats, config.weightRounding());
        Map<String, Ranges> ranges = fixedRanges(model, plan, stats);
        stages.end("prompts_and_weights");

        VeoConfig veoCfg = null;
        VeoInputs.Loaded veoIn = null;
        if (config.veo() && bits.isPresent()) {
            if (ranges.keySet().stream().anyMatch(s -> VeoForward.isLearnable(s.substring(0, s.length() - 3)))) {
                veoCfg = config.veoConfig().withSeed(stats.manifest().path("seed").asLong(0)).withBits(bits.getAsInt());
                veoIn = veoSource.load(model, stats, veoCfg.samples(), veoCfg.seed());
            } else {
                progress.accept("qvlm: VEO skipped: the plan gives no vision-tower linear a static input spec");
            }
        }
        WorkDir work = workDir == null ? WorkDir.none()
                : WorkDir.open(workDir, runIdentity(plan, stats, all, searchSet, veoCfg, veoIn));

        VeoRun veo = null;
        if (veoIn != null) {
            veo = visualEncoderOptimisation(model, plan, stats, ranges, veoCfg, veoIn, work);
            ranges.putAll(veo.result().ranges());
            stages.end("veo");
        }

        Dependency dep = null;
        double h0 = Double.NaN;
        Partition partition = Partition.singletons(layers);
        if (bits.isPresent() && config.cdm()) {
            dep = dependency(model, plan, stats, all, qWeights, ranges, bits.getAsInt(), work);
            stages.end("dependency");
            double[] pairs = dep.pairs(config.proxy());
            h0 = config.h0Multiplier() * Partition.meanPair(pairs);
            partition = config.partition() == PartitionStrategy.GREEDY
                    ? Partition.greedy(pairs, config.maxDepth(), h0)
                    : Partition.dp(pairs, config.maxDepth(), h0, config.grid().length);
            progress.accept(String.format(Locale.ROOT, "qvlm: %s D(k,k+1) = %s on the %s forward, h0 = %.4g",
                    config.proxy().name().toLowerCase(Locale.ROOT), Arrays.stream(pairs)
                            .mapToObj(d -> String.format(Locale.ROOT, "%.4g", d)).toList(),
                    config.dependencyForward().name().toLowerCase(Locale.ROOT), h0));
        }
        work.save(WorkDir.PARTITION_FILE, partitionJson(partition, dep, h0, config.dependencyForward()));
        progress.accept("qvlm: partition " + partition.describe());
        stages.end("partition");

        List<BlockResult> results = new ArrayList<>();
        double finalMse = Double.NaN;
        if (bits.isPresent()) {
            BlockSearch search = new BlockSearch(model, plan, stats, config.grid(), qWeights, searchSet, config.blockError());
            search.startAtEmbeddings(new FakeQuantTap(plan, ranges));
            List<Partition.Block> blocks = partition.blocks();
            for (int i = 0; i < blocks.size(); i++) {
                Partition.Block b = blocks.get(i);
                Optional<JsonNode> done = work.block(i);
                BlockResult r;
                BlockSearch.Outcome o;
                if (done.isPresent()) {
                    o = search.commit(b, recordedChoice(work, i, b, done.get(), search));
                    checkReplay(work, i, done.get(), o);
                    JsonNode d = done.get();
                    r = new BlockResult(b, percentiles(o.choice(), search), o.mse(), d.path("candidates").asLong(),
                            d.path("forwards").asLong(), d.path("seconds").asDouble(), true);
                } else {
                    o = search.search(b, config.perSite(), config.perSiteSweeps());
                    r = new BlockResult(b, percentiles(o.choice(), search), o.mse(), o.candidates(), o.forwards(),
                            o.seconds(), false);
                    work.saveBlock(i, blockJson(i, o, search));
                }
                results.add(r);
                for (int d = 0; d < b.size(); d++) {
                    ranges.putAll(search.ranges(b.first() + d, o.choice()[d]));
                }
                finalMse = o.mse();
                progress.accept(progressLine(i, blocks.size(), r));
                if (!r.resumed() && stopAfterBlocks >= 0 && i + 1 >= stopAfterBlocks) {
                    throw new Stopped((i + 1) + " blocks");
                }
            }
        }
        stages.end("search");

        RefineRun refined = null;
        if (bits.isPresent() && config.refine().on()) {
            refined = refinement(model, plan, stats, ranges, searchSet, partition, work);
            ranges.putAll(refined.result().ranges());
            stages.end("refine");
        }

        Map<String, WeightMatrix> installed = new LinkedHashMap<>();
        List<LayerReport> report = new ArrayList<>();
        for (Linear l : model.linears()) {
            WeightMatrix w = qWeights.get(l.name());
            if (w == null) {
                continue;
            }
            report.add(new LayerReport(l.name(), weightMse(l.weight(), w), Double.NaN, "none", detail(l.name(), results)));
            l.replaceWeight(w);
            installed.put(l.name(), w);
        }
        boolean anyInput = plan.entries().values().stream().anyMatch(e -> e.input() != null);
        FakeQuantTap tap = anyInput ? new FakeQuantTap(plan, ranges) : null;
        last = new Summary(config.label(), all.size(), searchSet.size(),
                searchSet.stream().mapToLong(CalibrationSamples.Sample::tokens).sum(), veo, partition, dep, h0,
                List.copyOf(results), refined, Map.copyOf(ranges), finalMse, stages.total());
        work.save(RESULT_FILE, QvlmReport.json(this, last));
        progress.accept(String.format(Locale.ROOT, "qvlm: %s done: %d blocks, final-layer MSE %.4g, %.1f s",
                config.label(), results.size(), finalMse, last.stages().get(Stages.TOTAL)));
        return new QuantResult(NAME, installed, tap, Map.of(), report);
    }

    /**
     * Runs the method on the FP model at modelDir and writes the quantized checkpoint out
     * ({@link QuantizedExport}) with {@value #REPORT_FILE} beside it, in the same atomic rename.
     */
    public QuantizedExport.Summary export(Path modelDir, Path statsDir, Path out, QuantPlan plan) {
        return QuantizedExport.run(new QuantizedExport.Request(modelDir, statsDir, out, this, plan), tmp -> {
            ObjectNode report = QvlmReport.json(this, last);
            report.set("checkpoint", QvlmReport.checkpointJson(tmp, modelDir));
            Files.write(tmp.resolve(REPORT_FILE), WorkDir.JSON.writeValueAsBytes(report));
        });
    }

    /**
     * Runs the search on the FP model at modelDir without building a packed checkpoint and writes,
     * into the new directory out, {@value #REPORT_FILE}, {@value #RANGES_FILE} (the static ranges,
     * {@code <site>.lo} / {@code <site>.hi} F32) and {@value #PLAN_FILE}.
     */
    public Summary searchOnly(Path modelDir, Path statsDir, Path out, QuantPlan plan) {
        if (Files.exists(out)) {
            throw new IllegalArgumentException("--out " + out + ": already exists; refusing to overwrite it");
        }
        try (LlavaModel model = LlavaModel.load(modelDir);
             CalibrationStats stats = CalibrationStats.load(statsDir)) {
            stats.checkModel(modelDir, model);
            apply(model, plan, stats);
        }
        Summary s = last;
        SafeTensorsWriter w = new SafeTensorsWriter().metadata("format", "qvlm4j-qvlm-ranges");
        new TreeMap<>(s.ranges()).forEach((site, r) -> {
            w.addFloats(site + ".lo", DType.F32, new long[] {r.size()}, r.lo());
            w.addFloats(site + ".hi", DType.F32, new long[] {r.size()}, r.hi());
        });
        Path tmp = null;
        try {
            Path abs = out.toAbsolutePath().normalize();
            Files.createDirectories(abs.getParent());
            tmp = AtomicFiles.tempSiblingDirectory(abs);
            w.write(tmp.resolve(RANGES_FILE));
            Files.write(tmp.resolve(REPORT_FILE), WorkDir.JSON.writeValueAsBytes(QvlmReport.json(this, s)));
            Files.writeString(tmp.resolve(PLAN_FILE), plan.toJson());
            Files.move(tmp, abs);
            tmp = null;
        } catch (IOException e) {
            throw new UncheckedIOException(out + ": cannot write the search result: " + e.getMessage(), e);
        } finally {
            if (tmp != null) {
                for (String f : List.of(RANGES_FILE, REPORT_FILE, PLAN_FILE)) {
                    tmp.resolve(f).toFile().delete();
                }
                tmp.toFile().delete();
            }
        }
        return s;
    }

    /** Wall seconds per stage of one apply, measured from the previous stage's end. */
    static final class Stages {
        static final String TOTAL = "total";
        private final long start = System.nanoTime();
        private long mark = start;
        private final Map<String, Double> seconds = new LinkedHashMap<>();

        void end(String stage) {
            long now = System.nanoTime();
            seconds.put(stage, (now - mark) / 1e9);
            mark = now;
        }

        Map<String, Double> total() {
            Map<String, Double> out = new LinkedHashMap<>(seconds);
            out.put(TOTAL, (System.nanoTime() - start) / 1e9);
            return out;
        }
    }

    // ------------------------------------------------------------------ refinement

    /** The work directory's record of a finished refinement. */
    static final String REFINE_FILE = "refine.json";

    /**
     * Runs {@link RangeRefinement} from the searched ranges on the search prompts, comparing each
     * block's last layer output, or reads its result from the work directory.
     */
    private RefineRun refinement(LlavaModel model, QuantPlan plan, CalibrationStats stats, Map<String, Ranges> ranges,
                                 List<CalibrationSamples.Sample> samples, Partition partition, WorkDir work) {
        int[] targets = partition.blocks().stream().mapToInt(Partition.Block::last).toArray();
        RangeRefinement.Config rc = config.refine();
        Path saved = work.enabled() ? work.path().resolve(REFINE_FILE) : null;
        if (saved != null && Files.isRegularFile(saved)) {
            RangeRefinement.Result r = refineResult(WorkDir.read(saved), saved);
            progress.accept(String.format(Locale.ROOT, "qvlm: refinement resumed from %s, objective %.5g -> %.5g",
                    saved, r.initialLoss(), r.finalLoss()));
            return new RefineRun(rc, targets, r, true);
        }
        progress.accept(String.format(Locale.ROOT, "qvlm: refinement of the LLM input ranges: %d epochs, batch %d, "
                + "lr %s, %d prompts, block outputs %s", rc.epochs(), rc.batch(), rc.lr(), samples.size(),
                Arrays.toString(targets)));
        TrainableLlava trainable = trainableModel(stats).frozen();
        RangeRefinement.Result r = new RangeRefinement(trainable, plan, ranges, samples, targets, rc.objective()).run(rc,
                progress);
        if (saved != null) {
            work.save(REFINE_FILE, refineJson(r));
        }
        return new RefineRun(rc, targets, r, false);
    }

    private TrainableLlava trainableModel(CalibrationStats stats) {
        if (trainable != null) {
            return trainable.get();
        }
        Path manifest = stats.directory().resolve(CalibrationStats.MANIFEST_FILE);
        String dir = CalibrationSamples.text(stats.manifest(), manifest, "model", "dir");
        return TrainableLlava.load(Path.of(dir));
    }

    static ObjectNode refineJson(RangeRefinement.Result r) {
        ObjectNode n = WorkDir.JSON.createObjectNode();
        n.set("epoch_loss", WorkDir.doubles(r.epochLoss()));
        n.put("final_loss", r.finalLoss());
        n.put("seconds", r.seconds());
        ObjectNode sites = n.putObject("ranges");
        new TreeMap<>(r.ranges()).forEach((site, rg) -> {
            ObjectNode o = sites.putObject(site);
            ArrayNode lo = o.putArray("lo");
            ArrayNode hi = o.putArray("hi");
            for (int i = 0; i < rg.size(); i++) {
                lo.add(rg.lo()[i]);
                hi.add(rg.hi()[i]);
            }
        });
        return n;
    }

    private static RangeRefinement.Result refineResult(JsonNode n, Path file) {
        JsonNode sites = n.path("ranges");
        if (!sites.isObject() || !n.path("epoch_loss").isArray()) {
            throw new IllegalArgumentException(file + ": expected keys ranges and epoch_loss of a finished refinement");
        }
        Map<String, Ranges> ranges = new LinkedHashMap<>();
        sites.properties().forEach(e -> {
            JsonNode lo = e.getValue().path("lo");
            JsonNode hi = e.getValue().path("hi");
            if (!lo.isArray() || !hi.isArray() || lo.size() != hi.size()) {
                throw new IllegalArgumentException(file + ": key ranges." + e.getKey() + ": expected arrays lo and hi of "
                        + "equal length");
            }
            float[] l = new float[lo.size()];
            float[] h = new float[hi.size()];
            for (int i = 0; i < l.length; i++) {
                l[i] = (float) lo.get(i).asDouble();
                h[i] = (float) hi.get(i).asDouble();
            }
            ranges.put(e.getKey(), new Ranges(l, h));
        });
        double[] losses = new double[n.path("epoch_loss").size()];
        for (int i = 0; i < losses.length; i++) {
            losses[i] = n.path("epoch_loss").get(i).asDouble();
        }
        return new RangeRefinement.Result(ranges, losses, n.path("final_loss").asDouble(), n.path("seconds").asDouble());
    }

    // ------------------------------------------------------------------ VEO and dependency

    /**
     * VEO of the vision ranges, started from ranges (vision and projector as calibrated or given)
     * with the LLM's inputs at their calibrated min/max; resumed from, and checkpointed per epoch
     * into, the work directory.
     */
    private VeoRun visualEncoderOptimisation(LlavaModel model, QuantPlan plan, CalibrationStats stats,
                                             Map<String, Ranges> ranges, VeoConfig cfg, VeoInputs.Loaded in,
                                             WorkDir work) {
        Map<String, Ranges> initial = new LinkedHashMap<>(ranges);
        initial.putAll(llmCalibrated(model, plan, stats));
        ObjectNode samples = in.description().deepCopy();
        samples.set("ids", VeoInputs.idArray(in.ids()));
        VeoCheckpoint.Store store = null;
        if (work.enabled()) {
            VeoCheckpoint.Store file = VeoCheckpoint.at(work.path().resolve(WorkDir.VEO_FILE));
            Optional<VeoResult> done = VeoCheckpoint.finished(file, model.config(), plan, initial, cfg.epochs());
            if (done.isPresent()) {
                progress.accept(veoLine(done.get()) + " [resumed]");
                return new VeoRun(cfg, samples, done.get(), cfg.epochs());
            }
            store = stopping(file);
        }
        int resumed = store == null ? 0 : store.load().map(VeoCheckpoint.State::epochsDone).orElse(0);
        progress.accept(String.format(Locale.ROOT, "qvlm: VEO on %d samples, %d epochs of batch %d, lr %.3g, eta %.3g, "
                        + "lambda1 %.3g, lambda2 %.3g, seed %d%s", in.samples().size(), cfg.epochs(), cfg.batch(),
                cfg.lr(), cfg.eta(), cfg.lambda1(), cfg.lambda2(), cfg.seed(),
                resumed > 0 ? ", resuming after epoch " + resumed : ""));
        long[] lastLine = {System.nanoTime()};
        int batches = (in.samples().size() + cfg.batch() - 1) / cfg.batch();
        VeoResult r = VisualEncoderOptimizer.run(in.model().get(), plan, initial, in.samples(), cfg, p -> {
            long now = System.nanoTime();
            if (p.step() % batches == 0 || (now - lastLine[0]) / 1e9 >= VEO_PROGRESS_INTERVAL_S) {
                lastLine[0] = now;
                progress.accept(String.format(Locale.ROOT, "qvlm: VEO epoch %d/%d, update %d/%d, batch loss %.5g, "
                                + "%.1f s, ETA %.0f s", p.epoch(), p.epochs(), p.step(), p.steps(), p.batchLoss(),
                        p.elapsedSeconds(), p.etaSeconds()));
            }
        }, store);
        progress.accept(veoLine(r));
        return new VeoRun(cfg, samples, r, resumed);
    }

    private static String veoLine(VeoResult r) {
        return String.format(Locale.ROOT, "qvlm: VEO loss %.5g -> %.5g (L_reg %.5g -> %.5g, L_ent %.5g -> %.5g, "
                        + "vision error %.4g -> %.4g, final-layer error %.4g -> %.4g), %.1f s", r.initial().total(),
                r.last().total(), r.initial().reg(), r.last().reg(), r.initial().ent(), r.last().ent(),
                r.initial().errVision(), r.last().errVision(), r.initial().errLlm(), r.last().errLlm(), r.seconds());
    }

    /** A store that throws {@link Stopped} once the test hook's epoch count is saved. */
    private VeoCheckpoint.Store stopping(VeoCheckpoint.Store s) {
        return new VeoCheckpoint.Store() {
            @Override
            public Optional<VeoCheckpoint.State> load() {
                return s.load();
            }

            @Override
            public void save(VeoCheckpoint.State st) {
                s.save(st);
                if (!st.finished() && st.epochsDone() == stopAfterVeoEpochs) {
                    throw new Stopped(st.epochsDone() + " VEO epochs");
                }
            }

            @Override
            public Path file() {
                return s.file();
            }
        };
    }

    /**
     * The dependency of consecutive decoder layers: on the floating-point model (cached with the
     * statistics), or on the quantized forward of RTN weights and the current ranges, the LLM's inputs
     * at their calibrated min/max (cached in the work directory).
     */
    private Dependency dependency(LlavaModel model, QuantPlan plan, CalibrationStats stats,
                                  List<CalibrationSamples.Sample> all, Map<String, WeightMatrix> qWeights,
                                  Map<String, Ranges> ranges, int bits, WorkDir work) {
        Dependency.Settings settings = new Dependency.Settings(bits, config.temperature(), config.tau(),
                SoftAssignment.DEFAULT_TAIL);
        if (config.dependencyForward() == DependencyForward.FP) {
            return DependencyAnalysis.loadOrCompute(model, stats, all, settings, progress);
        }
        Path cache = work.enabled() ? work.path().resolve(WorkDir.DEPENDENCY_FILE) : null;
        if (cache != null && Files.isRegularFile(cache)) {
            progress.accept("dependency: reusing " + cache);
            return Dependency.read(cache);
        }
        ObjectNode source = ((ObjectNode) DependencyAnalysis.source(stats, all)).deepCopy();
        source.put("forward", "quantized");
        Map<String, Ranges> quantized = new LinkedHashMap<>(ranges);
        quantized.putAll(llmCalibrated(model, plan, stats));
        Map<String, WeightMatrix> fp = new LinkedHashMap<>();
        Dependency d;
        try {
            for (Linear l : model.linears()) {
                WeightMatrix q = qWeights.get(l.name());
                if (q != null) {
                    fp.put(l.name(), l.weight());
                    l.replaceWeight(q);
                }
            }
            d = DependencyAnalysis.compute(model, stats, all, settings, WorkDir.canonical(source), progress,
                    tap -> new FakeQuantTap(plan, quantized, tap));
        } finally {
            for (Linear l : model.linears()) {
                WeightMatrix w = fp.get(l.name());
                if (w != null) {
                    l.replaceWeight(w);
                }
            }
        }
        if (cache != null) {
            AtomicFiles.writeString(cache, d.toJson());
        }
        return d;
    }

    /** Calibrated min/max ranges (p = 1) of every static input site of the decoder layers. */
    private static Map<String, Ranges> llmCalibrated(LlavaModel model, QuantPlan plan, CalibrationStats stats) {
        Map<String, Ranges> out = new LinkedHashMap<>();
        for (Linear l : model.linears()) {
            QuantSpec spec = plan.forLinear(l.name()).input();
            if (spec != null && !spec.dynamic() && l.name().startsWith("llm.layers.")) {
                out.put(l.name() + ".in", SiteRanges.of(stats, l.name() + ".in", spec, 1.0));
            }
        }
        return out;
    }

    // ------------------------------------------------------------------ parts of apply

    /** The activation bits of the LLM decoder layers' static inputs (they must agree), if any are quantized. */
    private static OptionalInt llmInputBits(QuantPlan plan, int layers) {
        Integer bits = null;
        for (TensorCategory c : List.of(TensorCategory.LLM_Q, TensorCategory.LLM_K, TensorCategory.LLM_V,
                TensorCategory.LLM_O, TensorCategory.LLM_GATE, TensorCategory.LLM_UP, TensorCategory.LLM_DOWN)) {
            QuantSpec in = plan.entry(c).input();
            if (in == null) {
                continue;
            }
            if (in.dynamic()) {
                throw new IllegalArgumentException("qvlm: plan entry " + c.key() + " has a dynamic input spec " + in
                        + "; Q-VLM searches stored ranges, expected a static spec (e.g. a4-asym-channel-static)");
            }
            if (bits != null && bits != in.bits()) {
                throw new IllegalArgumentException("qvlm: plan entry " + c.key() + " quantizes inputs to " + in.bits()
                        + " bits, another LLM entry to " + bits + "; expected one activation bit width for the LLM");
            }
            bits = in.bits();
        }
        return bits == null || layers == 0 ? OptionalInt.empty() : OptionalInt.of(bits);
    }

    /** The round-to-nearest images of the planned weights (the DED analysis's). */
    static Map<String, WeightMatrix> quantizeWeights(LlavaModel model, QuantPlan plan) {
        return quantizeWeights(model, plan, null, WeightRounding.RTN);
    }

    /** The quantized image of every planned linear's weight; GPTQ reads each linear's Hessian from stats. */
    static Map<String, WeightMatrix> quantizeWeights(LlavaModel model, QuantPlan plan, CalibrationStats stats,
                                                     WeightRounding rounding) {
        if (plan.entry(TensorCategory.EMBEDDINGS).weight() != null) {
            throw new IllegalArgumentException("qvlm: plan quantizes EMBEDDINGS, which is not a linear");
        }
        Map<String, WeightMatrix> out = new LinkedHashMap<>();
        for (Linear l : model.linears()) {
            QuantSpec spec = plan.forLinear(l.name()).weight();
            if (spec != null && (spec.format() == QuantSpec.Format.NF4) != (rounding == WeightRounding.NF4)) {
                throw new IllegalArgumentException("qvlm: weight rounding " + rounding + " needs "
                        + (rounding == WeightRounding.NF4 ? "NF4" : "uniform") + " weight specs; the plan gives "
                        + l.name() + " " + spec);
            }
            if (spec != null) {
                WeightMatrix w = l.weight();
                float[] q = rounding == WeightRounding.GPTQ
                        ? Gptq.image(model, l, spec, stats, NAME, Gptq.Config.DEFAULT)
                        : WeightFakeQuantizer.fakeQuantized(w, spec);
                out.put(l.name(), WeightMatrix.ofFloats(q, w.rows(), w.cols()));
            }
        }
        return out;
    }

    /**
     * Static ranges of every quantized input outside the decoder layers: given vision ranges first,
     * else the calibration at the vision percentile (vision tower, projector) or at p = 1 (others,
     * e.g. lm_head when planned).
     */
    private Map<String, Ranges> fixedRanges(LlavaModel model, QuantPlan plan, CalibrationStats stats) {
        Map<String, Ranges> out = new LinkedHashMap<>();
        for (Linear l : model.linears()) {
            QuantSpec spec = plan.forLinear(l.name()).input();
            String site = l.name() + ".in";
            if (spec == null || spec.dynamic() || l.name().startsWith("llm.layers.")) {
                if (visionRanges.containsKey(site)) {
                    throw new IllegalArgumentException("qvlm: a range was given for site " + site + " but the plan's input "
                            + "spec there is " + (spec == null ? "floating point" : spec) + "; expected a static spec");
                }
                continue;
            }
            boolean vision = l.name().startsWith("vision.") || l.name().startsWith("projector.");
            Ranges given = visionRanges.get(site);
            if (given != null) {
                out.put(site, given);
            } else if (stats.sites().contains(site) || !vision) {
                out.put(site, SiteRanges.of(stats, site, spec, vision ? config.visionPercentile() : 1.0));
            }
            // else: a vision layer past vision_feature_layer, which no forward runs and calibration never saw
        }
        for (String site : visionRanges.keySet()) {
            if (!out.containsKey(site)) {
                throw new IllegalArgumentException("qvlm: a range was given for site " + site + ", which is not a linear "
                        + "input of this model");
            }
        }
        return out;
    }

    private ObjectNode runIdentity(QuantPlan plan, CalibrationStats stats, List<CalibrationSamples.Sample> all,
                                   List<CalibrationSamples.Sample> searchSet, VeoConfig veoCfg, VeoInputs.Loaded veoIn) {
        ObjectNode n = WorkDir.JSON.createObjectNode();
        n.put("method", NAME);
        n.put("version", FORMAT_VERSION);
        n.set("config", config.toJson());
        try {
            n.set("plan", WorkDir.JSON.readTree(plan.toJson()));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        n.set("calibration", DependencyAnalysis.source(stats, all));
        ArrayNode ids = n.putArray("search_samples");
        searchSet.forEach(s -> ids.add(s.id()));
        ObjectNode given = n.putObject("vision_ranges");
        new TreeMap<>(visionRanges).forEach((site, r) -> given.put(site, digest(r)));
        if (veoIn != null) {
            ObjectNode v = n.putObject("veo");
            v.set("config", veoJson(veoCfg));
            v.set("source", veoIn.description());
            v.set("samples", VeoInputs.idArray(veoIn.ids()));
        }
        return n;
    }

    private static String digest(Ranges r) {
        ByteBuffer b = ByteBuffer.allocate(8 * r.size()).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < r.size(); i++) {
            b.putFloat(r.lo()[i]).putFloat(r.hi()[i]);
        }
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(b.array()));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    static ObjectNode partitionJson(Partition p, Dependency dep, double h0, DependencyForward forward) {
        ObjectNode n = WorkDir.JSON.createObjectNode();
        n.put("strategy", p.strategy());
        if (dep != null) {
            n.put("dependency_forward", forward.name());
        }
        if (Double.isFinite(h0)) {
            n.put("h0", h0);
        }
        if (dep != null) {
            n.set("entropy", WorkDir.doubles(dep.pairs(Dependency.Proxy.ENTROPY)));
            n.set("quant_error", WorkDir.doubles(dep.pairs(Dependency.Proxy.QUANT_ERROR)));
        }
        ArrayNode blocks = n.putArray("blocks");
        for (Partition.Block b : p.blocks()) {
            blocks.addArray().add(b.first()).add(b.last());
        }
        return n;
    }

    private static ObjectNode blockJson(int i, BlockSearch.Outcome o, BlockSearch search) {
        ObjectNode n = WorkDir.JSON.createObjectNode();
        n.put("block", i);
        n.put("first", o.block().first());
        n.put("last", o.block().last());
        ArrayNode idx = n.putArray("choice");
        for (int[] layer : o.choice()) {
            ArrayNode a = idx.addArray();
            for (int g : layer) {
                a.add(g);
            }
        }
        ArrayNode ps = n.putArray("percentiles");
        for (double[] layer : percentiles(o.choice(), search)) {
            ps.add(WorkDir.doubles(layer));
        }
        n.put("mse", o.mse());
        n.put("candidates", o.candidates());
        n.put("forwards", o.forwards());
        n.put("seconds", o.seconds());
        return n;
    }

    private static int[][] recordedChoice(WorkDir work, int i, Partition.Block b, JsonNode n, BlockSearch search) {
        Path f = work.blockFile(i);
        if (n.path("first").asInt(-1) != b.first() || n.path("last").asInt(-1) != b.last()) {
            throw new IllegalArgumentException(f + ": keys first/last: records block [" + n.path("first").asText() + ", "
                    + n.path("last").asText() + "], this run's block " + i + " is " + b);
        }
        JsonNode c = n.path("choice");
        int[][] out = new int[b.size()][BlockSearch.GROUPS];
        if (!c.isArray() || c.size() != b.size()) {
            throw new IllegalArgumentException(f + ": key choice: expected " + b.size() + " layers of "
                    + BlockSearch.GROUPS + " grid indices");
        }
        for (int d = 0; d < b.size(); d++) {
            for (int g = 0; g < BlockSearch.GROUPS; g++) {
                int gi = c.get(d).path(g).asInt(-1);
                if (gi < 0 || gi >= search.gridSize()) {
                    throw new IllegalArgumentException(f + ": key choice[" + d + "][" + g + "]: expected a grid index in 0 .. "
                            + (search.gridSize() - 1) + ", got " + c.get(d).path(g));
                }
                out[d][g] = gi;
            }
        }
        return out;
    }

    /**
     * A replayed block must reproduce its recorded error, or the checkpoint is not this run's. Not
     * bit for bit: a fresh JVM's first forwards may reduce in another order than compiled kernels.
     */
    private static void checkReplay(WorkDir work, int i, JsonNode n, BlockSearch.Outcome o) {
        double recorded = n.path("mse").asDouble(Double.NaN);
        if (!(Math.abs(recorded - o.mse()) <= REPLAY_REL_TOL * Math.max(Math.abs(recorded), Double.MIN_NORMAL))) {
            throw new IllegalStateException(work.blockFile(i) + ": key mse: recorded " + recorded + ", replaying the "
                    + "recorded choice gives " + o.mse() + "; the work directory does not match this model and data");
        }
    }

    static double[][] percentiles(int[][] choice, BlockSearch search) {
        double[][] out = new double[choice.length][];
        for (int d = 0; d < choice.length; d++) {
            out[d] = new double[choice[d].length];
            for (int g = 0; g < choice[d].length; g++) {
                out[d][g] = search.p(choice[d][g]);
            }
        }
        return out;
    }

    private static String progressLine(int i, int n, BlockResult r) {
        StringBuilder ps = new StringBuilder();
        for (double[] layer : r.percentiles()) {
            ps.append(ps.isEmpty() ? "" : " ").append(formatLayer(layer));
        }
        return String.format(Locale.ROOT, "qvlm: block %d/%d %s p=%s mse %.4g (%d candidates, %d layer forwards, %.1f s)%s",
                i + 1, n, r.block(), ps, r.mse(), r.candidates(), r.forwards(), r.seconds(), r.resumed() ? " [resumed]" : "");
    }

    private static String formatLayer(double[] layer) {
        boolean same = Arrays.stream(layer).allMatch(p -> p == layer[0]);
        if (same) {
            return fmt(layer[0]);
        }
        StringBuilder sb = new StringBuilder("(");
        for (int g = 0; g < layer.length; g++) {
            sb.append(g == 0 ? "" : ",").append(fmt(layer[g]));
        }
        return sb.append(')').toString();
    }

    private static String fmt(double p) {
        return new BigDecimal(Double.toString(p)).stripTrailingZeros().toPlainString();
    }

    private static String detail(String linear, List<BlockResult> results) {
        for (BlockResult r : results) {
            for (int d = 0; d < r.block().size(); d++) {
                String prefix = "llm.layers." + (r.block().first() + d) + ".";
                if (!linear.startsWith(prefix)) {
                    continue;
                }
                String local = linear.substring(prefix.length());
                for (BlockSearch.Group g : BlockSearch.Group.values()) {
                    if (g.linears.contains(local)) {
                        return "block " + r.block() + " p=" + fmt(r.percentiles()[d][g.ordinal()]);
                    }
                }
            }
        }
        return "rtn";
    }

    private static double weightMse(WeightMatrix original, WeightMatrix quantized) {
        float[] a = original.toFloatArray();
        float[] b = quantized.toFloatArray();
        double s = 0;
        for (int i = 0; i < a.length; i++) {
            double d = (double) a[i] - b[i];
            s += d * d;
        }
        return s / a.length;
    }
}
