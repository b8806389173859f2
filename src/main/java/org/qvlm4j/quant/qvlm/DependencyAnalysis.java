package org.qvlm4j.quant.qvlm;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.function.Consumer;
import java.util.function.UnaryOperator;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.qvlm4j.io.AtomicFiles;
import org.qvlm4j.model.ActivationTap;
import org.qvlm4j.model.LlavaModel;
import org.qvlm4j.quant.calib.CalibrationStats;

/**
 * Measures the {@link Dependency} of a floating-point model's decoder layers: one full forward per
 * calibration prompt, a tap on every {@code llm.layers.<k>.out}, and for each consecutive pair the
 * joint histogram of soft-assigned quantization levels ({@link JointHistogram}) on a per-tensor grid
 * of M = 2^b_A levels spanning the output's calibration min and max (qvlm-method.md §6.5). The
 * histogram of all prompts is the sum of the per-prompt ones (so P is the mean over every element of
 * every prompt); per-prompt values come from the per-prompt histograms on the same grid. Only two
 * layer outputs are held at a time.
 *
 * <p>Results are cached in the statistics directory as {@code dependency-a<bits>.json} and reused
 * when the statistics, prompts and settings are the same; otherwise recomputed and replaced.
 * Left out: dependency of vision-tower layers (the search covers the LLM).
 */
public final class DependencyAnalysis {
    private static final Pattern LAYER_OUT = Pattern.compile("llm\\.layers\\.(\\d+)\\.out");
    private static final ObjectMapper JSON = new ObjectMapper();
    /** Seconds between progress lines. */
    static final double PROGRESS_INTERVAL_S = 2.0;

    private DependencyAnalysis() {
    }

    /** The cache file of a bit width in a statistics directory. */
    public static Path cacheFile(Path statsDir, int bits) {
        return statsDir.resolve(CalibrationStats.DERIVED_PREFIX + "-a" + bits + ".json");
    }

    /**
     * The dependency for these settings: read from the statistics directory's cache when it was
     * computed from the same statistics and prompts with the same settings, else computed and cached.
     * A cache that cannot be written is reported to progress, not fatal.
     */
    public static Dependency loadOrCompute(LlavaModel model, CalibrationStats stats, List<CalibrationSamples.Sample> samples,
                                           Dependency.Settings settings, Consumer<String> progress) {
        Path file = cacheFile(stats.directory(), settings.bits());
        JsonNode source = source(stats, samples);
        if (Files.isRegularFile(file)) {
            try {
                Dependency d = Dependency.read(file);
                if (d.settings().equals(settings) && d.source().equals(source)) {
                    progress.accept("dependency: reusing " + file);
                    return d;
                }
            } catch (IllegalArgumentException e) {
                progress.accept("dependency: recomputing, cache unreadable: " + e.getMessage());
            }
        }
        Dependency d = compute(model, stats, samples, settings, source, progress);
        try {
            AtomicFiles.writeString(file, d.toJson());
        } catch (RuntimeException e) {
            progress.accept("dependency: not cached (" + e.getMessage() + ")");
        }
        return d;
    }

    /** What a dependency was computed from: the model digest, calibration seed and prompt ids. */
    static JsonNode source(CalibrationStats stats, List<CalibrationSamples.Sample> samples) {
        ObjectNode n = JSON.createObjectNode();
        n.put("model_digest", stats.manifest().path("model").path("digest").asText());
        n.set("calibration_seed", stats.manifest().path("seed"));
        ArrayNode ids = n.putArray("samples");
        samples.forEach(s -> ids.add(s.id()));
        return WorkDir.canonical(n);
    }

    /** Computes the dependency on the model as it is (floating point), prompt by prompt. */
    public static Dependency compute(LlavaModel model, CalibrationStats stats, List<CalibrationSamples.Sample> samples,
                                     Dependency.Settings settings, JsonNode source, Consumer<String> progress) {
        return compute(model, stats, samples, settings, source, progress, UnaryOperator.identity());
    }

    /**
     * As {@link #compute(LlavaModel, CalibrationStats, List, Dependency.Settings, JsonNode, Consumer)}
     * with the measuring tap wrapped by around, e.g. into a fake quantizer that passes every site on to
     * it: then the layer outputs measured are those of the quantized forward (the grids stay the
     * floating-point calibration's).
     */
    static Dependency compute(LlavaModel model, CalibrationStats stats, List<CalibrationSamples.Sample> samples,
                              Dependency.Settings settings, JsonNode source, Consumer<String> progress,
                              UnaryOperator<ActivationTap> around) {
        int L = model.config().textConfig().numHiddenLayers();
        double[] lo = new double[L];
        double[] hi = new double[L];
        SoftAssignment[] grids = new SoftAssignment[L];
        for (int k = 0; k < L; k++) {
            String site = "llm.layers." + k + ".out";
            if (!stats.sites().contains(site)) {
                throw new IllegalArgumentException(stats.directory() + ": no statistics for site '" + site + "'; the "
                        + "cross-layer dependency needs every decoder layer's output range (calibrate with qvlm4j calibrate)");
            }
            lo[k] = stats.floats(site, "min")[0];
            hi[k] = stats.floats(site, "max")[0];
            grids[k] = settings.grid(lo[k], hi[k]);
        }
        int M = settings.levels();
        int n = samples.size();
        JointHistogram[] total = new JointHistogram[Math.max(0, L - 1)];
        for (int k = 0; k < total.length; k++) {
            total[k] = new JointHistogram(M, M);
        }
        double[] sse = new double[L];
        double[] ss = new double[L];
        double[][] sampleEntropy = new double[n][Math.max(0, L - 1)];
        double[][] sampleError = new double[n][L];
        long[] tokens = new long[n];
        List<String> ids = new ArrayList<>();
        ActivationTap previous = model.activationTap();
        long lastReport = System.nanoTime();
        try {
            for (int s = 0; s < n; s++) {
                CalibrationSamples.Sample sample = samples.get(s);
                PairTap tap = new PairTap(grids, M);
                model.setActivationTap(around.apply(tap));
                model.hiddenStates(sample.ids(), sample.pixels());
                if (tap.seen != L) {
                    throw new IllegalStateException("dependency: saw " + tap.seen + " decoder-layer outputs, expected " + L);
                }
                for (int k = 0; k < total.length; k++) {
                    sampleEntropy[s][k] = tap.pairs[k].conditionalEntropy();
                    total[k].merge(tap.pairs[k]);
                }
                for (int k = 0; k < L; k++) {
                    sampleError[s][k] = tap.ss[k] > 0 ? tap.sse[k] / tap.ss[k] : 0;
                    sse[k] += tap.sse[k];
                    ss[k] += tap.ss[k];
                }
                tokens[s] = sample.tokens();
                ids.add(sample.id());
                long now = System.nanoTime();
                if (s + 1 == n || (now - lastReport) / 1e9 >= PROGRESS_INTERVAL_S) {
                    lastReport = now;
                    progress.accept(String.format(Locale.ROOT, "dependency: %d/%d prompts", s + 1, n));
                }
            }
        } finally {
            model.setActivationTap(previous);
        }
        double[] entropy = new double[total.length];
        for (int k = 0; k < total.length; k++) {
            entropy[k] = total[k].conditionalEntropy();
        }
        double[] qe = new double[L];
        for (int k = 0; k < L; k++) {
            qe[k] = ss[k] > 0 ? sse[k] / ss[k] : 0;
        }
        return new Dependency(settings, source, lo, hi, entropy, qe, List.copyOf(ids), tokens, sampleEntropy, sampleError);
    }

    /** Per prompt: the pair histograms, and per layer the hard-rounding error against the grid. */
    private static final class PairTap implements ActivationTap {
        final SoftAssignment[] grids;
        final JointHistogram[] pairs;
        final double[] sse;
        final double[] ss;
        float[] prev; // (T, D) output of the previous layer
        int seen;

        PairTap(SoftAssignment[] grids, int levels) {
            this.grids = grids;
            this.pairs = new JointHistogram[Math.max(0, grids.length - 1)];
            for (int k = 0; k < pairs.length; k++) {
                pairs[k] = new JointHistogram(levels, levels);
            }
            this.sse = new double[grids.length];
            this.ss = new double[grids.length];
        }

        @Override
        public void onActivation(String site, float[] data, int rows, int cols) {
            Matcher m = LAYER_OUT.matcher(site);
            if (!m.matches()) {
                return;
            }
            int k = Integer.parseInt(m.group(1));
            int n = rows * cols;
            SoftAssignment g = grids[k];
            for (int i = 0; i < n; i++) {
                double x = data[i];
                double d = g.level(g.nearest(x)) - x;
                sse[k] += d * d;
                ss[k] += x * x;
            }
            if (k > 0) {
                pairs[k - 1].add(grids[k - 1], prev, g, data, n);
            }
            prev = Arrays.copyOf(data, n);
            seen++;
        }
    }
}
