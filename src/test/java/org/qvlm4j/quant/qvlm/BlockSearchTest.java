package org.qvlm4j.quant.qvlm;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.qvlm4j.kernels.WeightMatrix;
import org.qvlm4j.model.ActivationTap;
import org.qvlm4j.model.Linear;
import org.qvlm4j.model.LlavaModel;
import org.qvlm4j.quant.FakeQuantTap;
import org.qvlm4j.quant.QuantPlan;
import org.qvlm4j.quant.Ranges;
import org.qvlm4j.quant.calib.CalibrationStats;

/**
 * The block search against a brute force written independently: full-model forwards with the block's
 * weights and input quantizers set by hand from the statistics' percentile tables.
 */
class BlockSearchTest {
    private static final double[] GRID = {1.0, 0.99, 0.98};
    /** Block forwards and full-model forwards run the same kernels on the same values. */
    private static final double SAME_ARITHMETIC = 1e-12;

    static QvlmFixture fx;
    static LlavaModel model;
    static CalibrationStats stats;
    static List<CalibrationSamples.Sample> samples;
    static QuantPlan plan;
    static Map<String, WeightMatrix> qWeights;

    @BeforeAll
    static void setUp() {
        fx = QvlmFixture.shared();
        model = fx.load();
        stats = fx.loadStats();
        samples = fx.samples(model, stats);
        plan = QvlmFixture.w4a4();
        qWeights = QvlmMethod.quantizeWeights(model, plan);
    }

    @AfterAll
    static void tearDown() {
        stats.close();
        model.close();
    }

    private static BlockSearch search() {
        return search(QvlmMethod.BlockError.RESIDUAL);
    }

    private static BlockSearch search(QvlmMethod.BlockError error) {
        return new BlockSearch(model, plan, stats, GRID, qWeights, samples, error);
    }

    /** Ranges of one site at p read straight from the statistics' tables (p = 1: channel min/max). */
    private static Ranges tableRanges(String site, double p) {
        if (p == 1.0) {
            return new Ranges(stats.floats(site, "channel_min"), stats.floats(site, "channel_max"));
        }
        double[] g = stats.percentiles();
        int row = -1;
        for (int i = 0; i < g.length; i++) {
            if (Math.abs(g[i] - p) < 1e-12) {
                row = i;
            }
        }
        int k = stats.cols(site);
        return new Ranges(Arrays.copyOfRange(stats.floats(site, "channel_pct_lo"), row * k, (row + 1) * k),
                Arrays.copyOfRange(stats.floats(site, "channel_pct_hi"), row * k, (row + 1) * k));
    }

    /**
     * MSE of layer `last`'s output between a full forward with layers first..last quantized (weights
     * and inputs at the given p per layer) and the FP forward, over all prompts.
     */
    private static double bruteForce(int first, int last, double[] p) {
        return bruteForce(first, last, p, "llm.layers." + last + ".out");
    }

    /**
     * As above, with the error taken on what the model computes from layer `last`'s output: the
     * next layer's q_proj input (its input_layernorm of that output), or the final hidden states.
     */
    private static double bruteForceNormed(int first, int last, double[] p) {
        return bruteForce(first, last, p, last + 1 < QvlmFixture.TEXT_LAYERS
                ? "llm.layers." + (last + 1) + ".self_attn.q_proj.in" : FINAL);
    }

    /** Stands for the final-normed hidden states in {@link #capture}. */
    private static final String FINAL = "<final hidden states>";

    private static double bruteForce(int first, int last, double[] p, String site) {
        Map<String, Ranges> ranges = new HashMap<>();
        List<Linear> swapped = new ArrayList<>();
        Map<String, WeightMatrix> fp = new HashMap<>();
        for (Linear l : model.linears()) {
            for (int k = first; k <= last; k++) {
                if (l.name().startsWith("llm.layers." + k + ".")) {
                    ranges.put(l.name() + ".in", tableRanges(l.name() + ".in", p[k - first]));
                    fp.put(l.name(), l.weight());
                    l.replaceWeight(qWeights.get(l.name()));
                    swapped.add(l);
                }
            }
        }
        FakeQuantTap fq = new FakeQuantTap(plan, ranges);
        List<float[]> quant = capture((s, data, rows, cols) -> {
            if (ranges.containsKey(s)) {
                fq.onActivation(s, data, rows, cols);
            }
        }, site);
        swapped.forEach(l -> l.replaceWeight(fp.get(l.name())));
        List<float[]> ref = capture(null, site);
        return BlockSearch.mse(quant, ref);
    }

    private static List<float[]> capture(ActivationTap inner, String site) {
        List<float[]> out = new ArrayList<>();
        model.setActivationTap((s, data, rows, cols) -> {
            if (inner != null) {
                inner.onActivation(s, data, rows, cols);
            }
            if (s.equals(site)) {
                out.add(Arrays.copyOf(data, rows * cols));
            }
        });
        try {
            for (CalibrationSamples.Sample s : samples) {
                float[] h = model.hiddenStates(s.ids(), s.pixels());
                if (site.equals(FINAL)) {
                    out.add(h);
                }
            }
        } finally {
            model.setActivationTap(null);
        }
        return out;
    }

    @Test
    void jointOptimumEqualsBruteForceOverTheGrid() {
        BlockSearch s = search();
        s.startAtLayer(1);
        BlockSearch.Outcome o = s.search(new Partition.Block(1, 2), false, 1);
        double best = Double.POSITIVE_INFINITY;
        int[] arg = null;
        for (int a = 0; a < GRID.length; a++) {
            for (int b = 0; b < GRID.length; b++) {
                double m = bruteForce(1, 2, new double[] {GRID[a], GRID[b]});
                if (m < best) {
                    best = m;
                    arg = new int[] {a, b};
                }
            }
        }
        assertEquals(best, o.mse(), SAME_ARITHMETIC * best);
        assertArrayEquals(new int[] {arg[0], arg[0], arg[0], arg[0]}, o.choice()[0]);
        assertArrayEquals(new int[] {arg[1], arg[1], arg[1], arg[1]}, o.choice()[1]);
        assertEquals(GRID.length * GRID.length, o.candidates());
        // shared prefixes: G + G^2 single-layer forwards per prompt, plus the FP pass through 2 layers
        assertEquals((GRID.length + GRID.length * GRID.length + 2L) * samples.size(), o.forwards());
    }

    @Test
    void normedErrorIsTheErrorOfWhatTheNextNormHandsOn() {
        int last = QvlmFixture.TEXT_LAYERS - 1;
        for (int[] block : new int[][] {{1, 2}, {last - 1, last}}) {
            BlockSearch s = search(QvlmMethod.BlockError.NORMED);
            s.startAtLayer(block[0]);
            BlockSearch.Outcome o = s.search(new Partition.Block(block[0], block[1]), false, 1);
            double best = Double.POSITIVE_INFINITY;
            int[] arg = null;
            for (int a = 0; a < GRID.length; a++) {
                for (int b = 0; b < GRID.length; b++) {
                    double m = bruteForceNormed(block[0], block[1], new double[] {GRID[a], GRID[b]});
                    if (m < best) {
                        best = m;
                        arg = new int[] {a, b};
                    }
                }
            }
            assertEquals(best, o.mse(), 1e-6 * best, "block " + Arrays.toString(block));
            assertEquals(arg[0], o.choice()[0][0], "block " + Arrays.toString(block));
            assertEquals(arg[1], o.choice()[1][0], "block " + Arrays.toString(block));
            // the same choice scored on the raw residual stream is another number
            BlockSearch r = search(QvlmMethod.BlockError.RESIDUAL);
            r.startAtLayer(block[0]);
            double raw = r.evaluate(new Partition.Block(block[0], block[1]), o.choice());
            assertEquals(bruteForce(block[0], block[1], new double[] {GRID[arg[0]], GRID[arg[1]]}), raw,
                    SAME_ARITHMETIC * raw);
            assertTrue(Math.abs(raw - o.mse()) > 1e-3 * raw, "normed " + o.mse() + " vs residual " + raw);
        }
    }

    @Test
    void jointSearchIsNeverWorseThanLayerWiseOnTheBlockObjective() {
        for (int first = 0; first + 1 < QvlmFixture.TEXT_LAYERS; first += 2) {
            Partition.Block block = new Partition.Block(first, first + 1);
            BlockSearch s = search();
            s.startAtLayer(first);
            BlockSearch.State start = s.snapshot();
            BlockSearch.Outcome a = s.search(new Partition.Block(first, first), false, 1);
            BlockSearch.Outcome b = s.search(new Partition.Block(first + 1, first + 1), false, 1);
            s.restore(start);
            int[][] layerWise = {a.choice()[0], b.choice()[0]};
            double chained = s.evaluate(block, layerWise);
            assertEquals(b.mse(), chained, SAME_ARITHMETIC * chained, "layer-wise chain re-evaluated as a block");
            BlockSearch.Outcome joint = s.search(block, false, 1);
            assertTrue(joint.mse() <= chained, "joint " + joint.mse() + " > layer-wise " + chained);
            s.restore(start);
            BlockSearch.Outcome sites = s.search(block, true, 2);
            assertTrue(sites.mse() <= joint.mse(), "per-site " + sites.mse() + " > per-layer " + joint.mse());
        }
    }

    @Test
    void commitReplaysTheSearchBitForBit() {
        BlockSearch s = search();
        s.startAtEmbeddings(null);
        BlockSearch.State start = s.snapshot();
        Partition.Block b = new Partition.Block(0, 2);
        BlockSearch.Outcome o = s.search(b, true, 1);
        List<float[]> searched = s.quantizedStates();
        s.restore(start);
        BlockSearch.Outcome r = s.commit(b, o.choice());
        assertEquals(o.mse(), r.mse());
        List<float[]> replayed = s.quantizedStates();
        for (int i = 0; i < searched.size(); i++) {
            assertArrayEquals(searched.get(i), replayed.get(i));
        }
        // the model's weights are floating point again afterwards
        for (Linear l : model.linears()) {
            assertTrue(l.weight() != qWeights.get(l.name()), l.name());
        }
    }
}
