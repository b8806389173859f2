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
import org.qvlm4j.quant.methods.LayerReport;
import org.qvlm4j.quant.methods.QuantMethod;
import org.qvlm4j.quant.methods.QuantResult;

/**
 * Q-VLM's cross-layer dependency mining (Wang et al., NeurIPS 2024, §3.2; qvlm-method.md §6) as a
 * {@link QuantMethod}:
 *
 * <ol>
 *   <li>weights: round-to-nearest under the plan's weight specs (the CLI's qvlm plan: uniform
 *       asymmetric per output channel, §6.1);</li>
 *   <li>vision tower and projector inputs: static ranges from the calibration (per token position at
 *       p = 1, per channel at a chosen percentile), or ranges given by the caller, e.g. tuned by a
 *       visual-encoder optimisation, which override the calibration per site;</li>
 *   <li>with CDM: the {@link Dependency} of consecutive decoder layers (entropy, or quantization
 *       error for the paper's Table 5 ablation), threshold h0 = multiplier × the mean pair value,
 *       and a {@link Partition} (greedy Eq. 7, or the search-cost-aware DP); without CDM every layer
 *       is its own block (layer-wise search, the paper's baseline row);</li>
 *   <li>block by block, {@link BlockSearch}: the clipping percentiles of the block's LLM linear
 *       inputs searched jointly to minimise the block output's MSE against floating point, with
 *       inputs from the quantized blocks before it;</li>
 *   <li>the result: fake-quantized weights in the model and a {@link FakeQuantTap} with the searched
 *       static ranges, like the baselines'.</li>
 * </ol>
 *
 * <p>With a work directory each finished block is checkpointed ({@link WorkDir}) and a rerun
 * resumes, replaying finished blocks with their recorded choice, to the same bytes. Progress goes
 * to the given consumer, one line per block. Left out: the paper's unspecified gradient refinement
 * of quantizer parameters ("10 epochs", §1.3; not implemented), VEO itself (it plugs in through the
 * vision ranges), NF4 code-compat mode.
 */
public final class QvlmMethod implements QuantMethod {
    public static final String NAME = "qvlm";
    public static final int FORMAT_VERSION = 1;
    /** Files of a {@link #searchOnly} output directory. */
    public static final String RESULT_FILE = "result.json";
    public static final String RANGES_FILE = "ranges.safetensors";
    public static final String PLAN_FILE = "plan.json";
    /** Largest relative difference between a replayed block's error and its recorded one. */
    static final double REPLAY_REL_TOL = 1e-5;

    public enum PartitionStrategy { GREEDY, DP }

    /**
     * @param cdm               cross-layer dependency mining on; off = layer-wise search
     * @param maxDepth          most layers per block (the paper: 3)
     * @param grid              clipping percentiles to search, each in (0.5, 1]; kept distinct and
     *                          descending (ties go to the first)
     * @param h0Multiplier      h0 = this × the mean pair dependency
     * @param partition         greedy (Eq. 7) or dp (search-cost aware)
     * @param proxy             the dependency proxy: entropy (Eq. 4–5) or quantization error
     * @param perSite           after the per-layer search, coordinate descent over each layer's four sites
     * @param perSiteSweeps     most sweeps of that descent
     * @param visionPercentile  clipping percentile of the vision-tower and projector inputs (1 = min/max)
     * @param searchSamples     prompts the search runs on, a seeded subset of the calibration prompts
     *                          (0 = all; the dependency always uses all)
     * @param seed              seed of that subset
     * @param temperature       Eq. 5's temperature mode for the entropy
     * @param tau               temperature in grid steps for {@link SoftAssignment.Temperature#GRID}
     */
    public record Config(boolean cdm, int maxDepth, double[] grid, double h0Multiplier, PartitionStrategy partition,
                         Dependency.Proxy proxy, boolean perSite, int perSiteSweeps, double visionPercentile,
                         int searchSamples, long seed, SoftAssignment.Temperature temperature, double tau) {
        /** The paper's candidates: 1.0 down to 0.98 in steps of 0.005 (§4.1). */
        public static final double[] PAPER_GRID = {1.0, 0.995, 0.99, 0.985, 0.98};
        public static final Config DEFAULT = new Config(true, 3, PAPER_GRID, 1.0, PartitionStrategy.GREEDY,
                Dependency.Proxy.ENTROPY, false, 2, 1.0, 0, 0, SoftAssignment.Temperature.GRID,
                Dependency.Settings.DEFAULT_TAU);

        public Config {
            if (maxDepth < 1) {
                throw new IllegalArgumentException("qvlm: --max-depth must be >= 1, got " + maxDepth);
            }
            grid = candidateGrid(grid);
            if (!(h0Multiplier >= 0) || !Double.isFinite(h0Multiplier)) {
                throw new IllegalArgumentException("qvlm: --h0 multiplier must be finite and >= 0, got " + h0Multiplier);
            }
            if (partition == null || proxy == null || temperature == null) {
                throw new IllegalArgumentException("qvlm: partition strategy, proxy and temperature mode must be set");
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

        ObjectNode toJson() {
            ObjectNode n = WorkDir.JSON.createObjectNode();
            n.put("cdm", cdm);
            n.put("max_depth", maxDepth);
            n.set("grid", WorkDir.doubles(grid));
            n.put("h0_multiplier", h0Multiplier);
            n.put("partition", partition.name());
            n.put("proxy", proxy.name());
            n.put("per_site", perSite);
            n.put("per_site_sweeps", perSiteSweeps);
            n.put("vision_percentile", visionPercentile);
            n.put("search_samples", searchSamples);
            n.put("seed", seed);
            n.put("temperature", temperature.name());
            n.put("tau", tau);
            return n;
        }
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

    /** One searched block, as reported. */
    public record BlockResult(Partition.Block block, double[][] percentiles, double mse, long candidates, long forwards,
                              double seconds, boolean resumed) {
    }

    /** The outcome of the last {@link #apply}: partition, dependency (null without CDM) and the blocks. */
    public record Summary(Partition partition, Dependency dependency, double h0, List<BlockResult> blocks,
                          Map<String, Ranges> ranges, double finalMse) {
    }

    private final Config config;
    private final CalibrationSamples.Source source;
    private final Path workDir;
    private final Map<String, Ranges> visionRanges;
    private final Consumer<String> progress;
    private int stopAfterBlocks = -1;
    private Summary last;

    /**
     * @param source       where the calibration prompts come from
     * @param workDir      checkpoint directory, or null for none
     * @param visionRanges static ranges for vision-tower / projector input sites that replace the
     *                     calibrated ones (e.g. from VEO); empty for none
     * @param progress     receives one line per step
     */
    public QvlmMethod(Config config, CalibrationSamples.Source source, Path workDir,
                      Map<String, Ranges> visionRanges, Consumer<String> progress) {
        this.config = config;
        this.source = source;
        this.workDir = workDir;
        this.visionRanges = visionRanges == null ? Map.of() : Map.copyOf(visionRanges);
        this.progress = progress == null ? s -> { } : progress;
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

    /** Test hook: throw after this many blocks have been searched and checkpointed. */
    QvlmMethod stopAfterBlocks(int n) {
        this.stopAfterBlocks = n;
        return this;
    }

    /** Thrown by the test hook {@link #stopAfterBlocks}: a simulated kill. */
    static final class Stopped extends RuntimeException {
        Stopped(int blocks) {
            super("stopped after " + blocks + " blocks");
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

    @Override
    public QuantResult apply(LlavaModel model, QuantPlan plan, CalibrationStats stats) {
        int layers = model.config().textConfig().numHiddenLayers();
        OptionalInt bits = llmInputBits(plan, layers);
        // a weight-only plan has nothing to search and needs no prompts
        List<CalibrationSamples.Sample> all = bits.isPresent() ? source.load(model, stats) : List.of();
        List<CalibrationSamples.Sample> searchSet = CalibrationSamples.subset(all, config.searchSamples(), config.seed());
        Map<String, WeightMatrix> qWeights = quantizeWeights(model, plan);
        Map<String, Ranges> ranges = fixedRanges(model, plan, stats);
        WorkDir work = workDir == null ? WorkDir.none() : WorkDir.open(workDir, runIdentity(plan, stats, all, searchSet));

        Dependency dep = null;
        double h0 = Double.NaN;
        Partition partition = Partition.singletons(layers);
        if (bits.isPresent() && config.cdm()) {
            dep = DependencyAnalysis.loadOrCompute(model, stats, all, new Dependency.Settings(bits.getAsInt(),
                    config.temperature(), config.tau(), SoftAssignment.DEFAULT_TAIL), progress);
            double[] pairs = dep.pairs(config.proxy());
            h0 = config.h0Multiplier() * Partition.meanPair(pairs);
            partition = config.partition() == PartitionStrategy.GREEDY
                    ? Partition.greedy(pairs, config.maxDepth(), h0)
                    : Partition.dp(pairs, config.maxDepth(), h0, config.grid().length);
        }
        work.save(WorkDir.PARTITION_FILE, partitionJson(partition, dep, h0));
        if (dep != null) {
            progress.accept(String.format(Locale.ROOT, "qvlm: %s D(k,k+1) = %s, h0 = %.4g", config.proxy().name()
                    .toLowerCase(Locale.ROOT), Arrays.stream(dep.pairs(config.proxy()))
                    .mapToObj(d -> String.format(Locale.ROOT, "%.4g", d)).toList(), h0));
        }
        progress.accept("qvlm: partition " + partition.describe());

        List<BlockResult> results = new ArrayList<>();
        double finalMse = Double.NaN;
        if (bits.isPresent()) {
            BlockSearch search = new BlockSearch(model, plan, stats, config.grid(), qWeights, searchSet);
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
                    throw new Stopped(i + 1);
                }
            }
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
        last = new Summary(partition, dep, h0, List.copyOf(results), Map.copyOf(ranges), finalMse);
        work.save(RESULT_FILE, resultJson(last));
        return new QuantResult(NAME, installed, tap, Map.of(), report);
    }

    /**
     * Runs the search on the FP model at modelDir without building a packed checkpoint and writes,
     * into the new directory out, {@value #RESULT_FILE} (the summary), {@value #RANGES_FILE} (the
     * static ranges, {@code <site>.lo} / {@code <site>.hi} F32) and {@value #PLAN_FILE}.
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
            Files.write(tmp.resolve(RESULT_FILE), WorkDir.JSON.writeValueAsBytes(resultJson(s)));
            Files.writeString(tmp.resolve(PLAN_FILE), plan.toJson());
            Files.move(tmp, abs);
            tmp = null;
        } catch (IOException e) {
            throw new UncheckedIOException(out + ": cannot write the search result: " + e.getMessage(), e);
        } finally {
            if (tmp != null) {
                for (String f : List.of(RANGES_FILE, RESULT_FILE, PLAN_FILE)) {
                    tmp.resolve(f).toFile().delete();
                }
                tmp.toFile().delete();
            }
        }
        return s;
    }

    /** The summary as JSON (what {@code result.json} holds). */
    public ObjectNode resultJson(Summary s) {
        ObjectNode n = WorkDir.JSON.createObjectNode();
        n.put("method", NAME);
        n.put("version", FORMAT_VERSION);
        n.set("config", config.toJson());
        n.set("partition", partitionJson(s.partition(), s.dependency(), s.h0()));
        ArrayNode blocks = n.putArray("blocks");
        double seconds = 0;
        long forwards = 0;
        long candidates = 0;
        for (BlockResult r : s.blocks()) {
            ObjectNode o = blocks.addObject();
            o.put("first", r.block().first());
            o.put("last", r.block().last());
            ArrayNode ps = o.putArray("percentiles");
            for (double[] layer : r.percentiles()) {
                ps.add(WorkDir.doubles(layer));
            }
            o.put("mse", r.mse());
            o.put("candidates", r.candidates());
            o.put("forwards", r.forwards());
            o.put("seconds", r.seconds());
            seconds += r.seconds();
            forwards += r.forwards();
            candidates += r.candidates();
        }
        n.put("final_mse", s.finalMse());
        ObjectNode cost = n.putObject("search_cost");
        cost.put("seconds", seconds);
        cost.put("forwards", forwards);
        cost.put("candidates", candidates);
        return n;
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

    static Map<String, WeightMatrix> quantizeWeights(LlavaModel model, QuantPlan plan) {
        if (plan.entry(TensorCategory.EMBEDDINGS).weight() != null) {
            throw new IllegalArgumentException("qvlm: plan quantizes EMBEDDINGS, which is not a linear");
        }
        Map<String, WeightMatrix> out = new LinkedHashMap<>();
        for (Linear l : model.linears()) {
            QuantSpec spec = plan.forLinear(l.name()).weight();
            if (spec != null) {
                WeightMatrix w = l.weight();
                out.put(l.name(), WeightMatrix.ofFloats(WeightFakeQuantizer.fakeQuantized(w, spec), w.rows(), w.cols()));
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
                                   List<CalibrationSamples.Sample> searchSet) {
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

    private static ObjectNode partitionJson(Partition p, Dependency dep, double h0) {
        ObjectNode n = WorkDir.JSON.createObjectNode();
        n.put("strategy", p.strategy());
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

    private static double[][] percentiles(int[][] choice, BlockSearch search) {
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
