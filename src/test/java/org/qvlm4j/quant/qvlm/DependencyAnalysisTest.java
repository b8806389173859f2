package org.qvlm4j.quant.qvlm;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qvlm4j.io.AtomicFiles;
import org.qvlm4j.model.LlavaModel;
import org.qvlm4j.quant.calib.CalibrationStats;

/**
 * The dependency pass against plug-in entropies of hard-rounded levels computed here from captured
 * layer outputs (the τ → 0 limit of Eq. 5), the quantization-error proxy against a direct sum, and the
 * cache in the statistics directory.
 */
class DependencyAnalysisTest {
    private static final double TOL = 1e-9;
    /** A temperature far below one grid step: soft assignment is hard rounding. */
    private static final double HARD_TAU = 1e-9;
    private static final Pattern LAYER_OUT = Pattern.compile("llm\\.layers\\.(\\d+)\\.out");

    @TempDir
    static Path tmp;
    static QvlmFixture fx;
    static LlavaModel model;
    static CalibrationStats stats;
    static List<CalibrationSamples.Sample> samples;

    @BeforeAll
    static void setUp() {
        fx = QvlmFixture.shared();
        model = fx.load();
        stats = fx.loadStats();
        samples = fx.samples(model, stats);
    }

    @AfterAll
    static void tearDown() {
        stats.close();
        model.close();
    }

    /** Every prompt's decoder-layer outputs, [sample][layer] → (T, D) values. */
    private static float[][][] outputs() {
        int L = QvlmFixture.TEXT_LAYERS;
        float[][][] out = new float[samples.size()][L][];
        for (int s = 0; s < samples.size(); s++) {
            float[][] dst = out[s];
            model.setActivationTap((site, data, rows, cols) -> {
                Matcher m = LAYER_OUT.matcher(site);
                if (m.matches()) {
                    dst[Integer.parseInt(m.group(1))] = Arrays.copyOf(data, rows * cols);
                }
            });
            model.hiddenStates(samples.get(s).ids(), samples.get(s).pixels());
        }
        model.setActivationTap(null);
        return out;
    }

    private static int level(double x, double lo, double hi, int levels) {
        double step = (hi - lo) / (levels - 1);
        return (int) Math.max(0, Math.min(levels - 1, Math.rint((x - lo) / step)));
    }

    /** H(Y|X) = H(X,Y) − H(X) of counted level pairs. */
    private static double plugIn(Map<Long, Long> joint, Map<Integer, Long> marginal, long n) {
        double hxy = 0;
        for (long c : joint.values()) {
            hxy -= (double) c / n * Math.log((double) c / n);
        }
        double hx = 0;
        for (long c : marginal.values()) {
            hx -= (double) c / n * Math.log((double) c / n);
        }
        return hxy - hx;
    }

    @Test
    void hardLimitEqualsPlugInEntropyOfRoundedLevels() {
        int bits = 3;
        int M = 1 << bits;
        Dependency.Settings settings = new Dependency.Settings(bits, SoftAssignment.Temperature.GRID, HARD_TAU, 1e-6);
        Dependency d = DependencyAnalysis.compute(model, stats, samples, settings,
                DependencyAnalysis.source(stats, samples), s -> { });
        float[][][] out = outputs();
        int L = QvlmFixture.TEXT_LAYERS;
        double[] lo = new double[L];
        double[] hi = new double[L];
        for (int k = 0; k < L; k++) {
            lo[k] = stats.floats("llm.layers." + k + ".out", "min")[0];
            hi[k] = stats.floats("llm.layers." + k + ".out", "max")[0];
        }
        assertArrayEquals(lo, d.lo());
        for (int k = 0; k + 1 < L; k++) {
            Map<Long, Long> pooled = new HashMap<>();
            Map<Integer, Long> pooledX = new HashMap<>();
            long pooledN = 0;
            for (int s = 0; s < samples.size(); s++) {
                Map<Long, Long> joint = new HashMap<>();
                Map<Integer, Long> mx = new HashMap<>();
                float[] x = out[s][k];
                float[] y = out[s][k + 1];
                for (int i = 0; i < x.length; i++) {
                    int a = level(x[i], lo[k], hi[k], M);
                    int b = level(y[i], lo[k + 1], hi[k + 1], M);
                    joint.merge((long) a * M + b, 1L, Long::sum);
                    mx.merge(a, 1L, Long::sum);
                    pooled.merge((long) a * M + b, 1L, Long::sum);
                    pooledX.merge(a, 1L, Long::sum);
                }
                pooledN += x.length;
                assertEquals(plugIn(joint, mx, x.length), d.sampleEntropy()[s][k], TOL, "sample " + s + " pair " + k);
            }
            assertEquals(plugIn(pooled, pooledX, pooledN), d.entropy()[k], TOL, "pair " + k);
        }
        for (int k = 0; k < L; k++) {
            double sse = 0;
            double ss = 0;
            double step = (hi[k] - lo[k]) / (M - 1);
            for (int s = 0; s < samples.size(); s++) {
                for (float v : out[s][k]) {
                    double e = lo[k] + level(v, lo[k], hi[k], M) * step - v;
                    sse += e * e;
                    ss += (double) v * v;
                }
            }
            assertEquals(sse / ss, d.quantError()[k], TOL * sse / ss, "layer " + k);
            assertEquals((d.quantError()[0] + d.quantError()[1]) / 2, d.pairs(Dependency.Proxy.QUANT_ERROR)[0], TOL);
        }
        assertTrue(Arrays.stream(d.entropy()).allMatch(v -> v > 0), Arrays.toString(d.entropy()));
    }

    @Test
    void cacheIsReusedOnlyForTheSameSettingsAndPrompts() throws Exception {
        Path dir = tmp.resolve("stats");
        Files.createDirectories(dir);
        for (String f : List.of(CalibrationStats.TENSORS_FILE, CalibrationStats.MANIFEST_FILE)) {
            Files.copy(fx.stats.resolve(f), dir.resolve(f));
        }
        try (CalibrationStats st = CalibrationStats.load(dir)) {
            List<String> log = new ArrayList<>();
            Dependency.Settings settings = Dependency.Settings.defaults(4);
            Dependency a = DependencyAnalysis.loadOrCompute(model, st, samples, settings, log::add);
            Path file = DependencyAnalysis.cacheFile(dir, 4);
            assertTrue(Files.isRegularFile(file));
            assertFalse(log.stream().anyMatch(l -> l.contains("reusing")), log.toString());
            log.clear();
            Dependency b = DependencyAnalysis.loadOrCompute(model, st, samples, settings, log::add);
            assertTrue(log.stream().anyMatch(l -> l.contains("reusing")), log.toString());
            assertEquals(a.toJson(), b.toJson());
            log.clear();
            Dependency.Settings other = new Dependency.Settings(4, SoftAssignment.Temperature.PAPER, 1, 1e-6);
            Dependency c = DependencyAnalysis.loadOrCompute(model, st, samples, other, log::add);
            assertFalse(log.stream().anyMatch(l -> l.contains("reusing")), log.toString());
            assertEquals(other, Dependency.read(file).settings());
            assertFalse(Arrays.equals(a.entropy(), c.entropy()));
            // fewer prompts are another source: recomputed too
            log.clear();
            DependencyAnalysis.loadOrCompute(model, st, samples.subList(0, 2), other, log::add);
            assertFalse(log.stream().anyMatch(l -> l.contains("reusing")), log.toString());
        }
        // the cached file does not stop the directory from being replaced by calibrate --overwrite
        CalibrationStats.checkTarget(dir, true);
    }

    @Test
    void jsonRoundTripsExactly() {
        Dependency d = DependencyAnalysis.compute(model, stats, samples, Dependency.Settings.defaults(4),
                DependencyAnalysis.source(stats, samples), s -> { });
        Path f = tmp.resolve("dep.json");
        AtomicFiles.writeString(f, d.toJson());
        Dependency r = Dependency.read(f);
        assertArrayEquals(d.entropy(), r.entropy());
        assertArrayEquals(d.quantError(), r.quantError());
        assertArrayEquals(d.sampleEntropy()[1], r.sampleEntropy()[1]);
        assertEquals(d.sampleIds(), r.sampleIds());
        assertEquals(d.toJson(), r.toJson());
        assertEquals(d.entropy()[1] + d.entropy()[2], Dependency.span(d.entropy(), 1, 3), TOL);
        assertEquals(0, Dependency.span(d.entropy(), 2, 2));
    }
}
