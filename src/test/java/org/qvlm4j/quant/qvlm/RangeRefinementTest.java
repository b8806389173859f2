package org.qvlm4j.quant.qvlm;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qvlm4j.model.LlavaModel;
import org.qvlm4j.quant.FakeQuantTap;
import org.qvlm4j.quant.QuantPlan;
import org.qvlm4j.quant.Ranges;
import org.qvlm4j.quant.WeightFakeQuantizer;
import org.qvlm4j.quant.calib.CalibrationStats;
import org.qvlm4j.train.TrainableLlava;

/**
 * The LLM range refinement on the 5-layer random fixture: its starting objective is what the
 * runtime's ordinary fake-quantized forward gives (an independent path: runtime kernels and
 * {@link FakeQuantTap} rather than the autograd), the epochs lower it, the same seed gives the same
 * ranges, only LLM sites move, and inside Q-VLM a finished refinement is read back from the work
 * directory bit for bit.
 */
class RangeRefinementTest {
    /** The autograd forward and the runtime forward agree to float rounding over a few layers. */
    private static final double FORWARD_REL_TOL = 1e-4;
    private static final RangeRefinement.Config CFG = new RangeRefinement.Config(RangeRefinement.Objective.BLOCKS, 4, 2, 5e-2, 3);

    @TempDir
    static Path tmp;
    static QvlmFixture fx;

    @BeforeAll
    static void setUp() {
        fx = QvlmFixture.shared();
    }

    private static int[] targets() {
        return new int[] {1, 3, QvlmFixture.TEXT_LAYERS - 1};
    }

    /** Runtime-forward objective: Σ over targets of ||X_q − X_r|| / ||X_r||, averaged over prompts. */
    private static double runtimeObjective(QuantPlan plan, Map<String, Ranges> ranges,
                                           List<CalibrationSamples.Sample> samples) {
        List<List<float[]>> fp = outputs(null, null, samples);
        List<List<float[]>> q = outputs(plan, ranges, samples);
        double sum = 0;
        for (int i = 0; i < samples.size(); i++) {
            for (int t = 0; t < targets().length; t++) {
                float[] a = q.get(i).get(t);
                float[] r = fp.get(i).get(t);
                double d = 0;
                double n = 0;
                for (int j = 0; j < a.length; j++) {
                    d += (a[j] - (double) r[j]) * (a[j] - (double) r[j]);
                    n += (double) r[j] * r[j];
                }
                sum += Math.sqrt(d / n);
            }
        }
        return sum / samples.size();
    }

    private static List<List<float[]>> outputs(QuantPlan plan, Map<String, Ranges> ranges,
                                               List<CalibrationSamples.Sample> samples) {
        List<List<float[]>> out = new ArrayList<>();
        try (LlavaModel m = fx.load()) {
            if (plan != null) {
                WeightFakeQuantizer.apply(m, plan);
            }
            FakeQuantTap quant = plan == null ? null : new FakeQuantTap(plan, ranges);
            for (CalibrationSamples.Sample s : samples) {
                List<float[]> got = new ArrayList<>();
                for (int t : targets()) {
                    got.add(null);
                }
                m.setActivationTap((site, data, rows, cols) -> {
                    if (quant != null) {
                        quant.onActivation(site, data, rows, cols);
                    }
                    for (int t = 0; t < targets().length; t++) {
                        if (site.equals("llm.layers." + targets()[t] + ".out")) {
                            got.set(t, java.util.Arrays.copyOf(data, rows * cols));
                        }
                    }
                });
                m.hiddenStates(s.ids(), s.pixels());
                out.add(got);
            }
        }
        return out;
    }

    @Test
    void startsAtTheRuntimeObjectiveLowersItIsDeterministicAndMovesOnlyLlmSites() {
        QuantPlan plan = QvlmFixture.w4a4();
        List<CalibrationSamples.Sample> samples;
        Map<String, Ranges> ranges;
        try (LlavaModel m = fx.load(); CalibrationStats st = fx.loadStats()) {
            samples = fx.samples(m, st);
            ranges = new HashMap<>(VeoRanges.fromStats(st, plan, m.config()));
        }
        TrainableLlava model = TrainableLlava.load(fx.model).frozen();
        RangeRefinement.Result a = new RangeRefinement(model, plan, ranges, samples, targets(),
                RangeRefinement.Objective.BLOCKS).run(CFG, null);
        double start = runtimeObjective(plan, ranges, samples);
        assertEquals(start, a.initialLoss(), FORWARD_REL_TOL * start);
        assertTrue(a.finalLoss() < a.initialLoss(), a.finalLoss() + " >= " + a.initialLoss());

        Map<String, Ranges> refined = new HashMap<>(ranges);
        refined.putAll(a.ranges());
        double end = runtimeObjective(plan, refined, samples);
        assertEquals(end, a.finalLoss(), FORWARD_REL_TOL * end);

        assertFalse(a.ranges().isEmpty());
        boolean moved = false;
        for (Map.Entry<String, Ranges> e : a.ranges().entrySet()) {
            assertTrue(e.getKey().startsWith("llm.layers."), e.getKey());
            Ranges before = ranges.get(e.getKey());
            moved |= !java.util.Arrays.equals(before.hi(), e.getValue().hi());
            for (int i = 0; i < before.size(); i++) {
                assertTrue(e.getValue().lo()[i] <= 0f && e.getValue().hi()[i] >= 0f, e.getKey());
            }
        }
        assertTrue(moved);

        RangeRefinement.Result b = new RangeRefinement(TrainableLlava.load(fx.model).frozen(), plan, ranges, samples,
                targets(), RangeRefinement.Objective.BLOCKS).run(CFG, null);
        for (String site : a.ranges().keySet()) {
            assertArrayEquals(a.ranges().get(site).lo(), b.ranges().get(site).lo(), site);
            assertArrayEquals(a.ranges().get(site).hi(), b.ranges().get(site).hi(), site);
        }
    }

    @Test
    void qvlmInstallsTheRefinedRangesAndReadsThemBackFromItsWorkDirectory() throws Exception {
        QuantPlan plan = QvlmFixture.w4a4();
        QvlmMethod.Config cfg = QvlmMethod.Config.DEFAULT.withVeo(false).withRefine(CFG);
        Path work = tmp.resolve("work");
        List<String> log = new ArrayList<>();
        QvlmMethod.Summary first;
        QvlmMethod.Summary second;
        try (LlavaModel m = fx.load(); CalibrationStats st = fx.loadStats()) {
            QvlmMethod q = new QvlmMethod(cfg, CalibrationSamples.fromStats(fx.model, null), null, work, Map.of(),
                    log::add).trainableModel(() -> TrainableLlava.load(fx.model));
            q.apply(m, plan, st);
            first = q.summary();
        }
        assertTrue(Files.isRegularFile(work.resolve(QvlmMethod.REFINE_FILE)));
        assertNotNull(first.refine());
        assertFalse(first.refine().resumed());
        int[] lasts = first.partition().blocks().stream().mapToInt(Partition.Block::last).toArray();
        assertArrayEquals(lasts, first.refine().targets());
        first.refine().result().ranges().forEach((site, r) -> {
            assertArrayEquals(r.lo(), first.ranges().get(site).lo(), site);
            assertArrayEquals(r.hi(), first.ranges().get(site).hi(), site);
        });
        try (LlavaModel m = fx.load(); CalibrationStats st = fx.loadStats()) {
            QvlmMethod q = new QvlmMethod(cfg, CalibrationSamples.fromStats(fx.model, null), null, work, Map.of(),
                    log::add);
            q.apply(m, plan, st);
            second = q.summary();
        }
        assertTrue(second.refine().resumed());
        assertEquals(first.ranges().keySet(), second.ranges().keySet());
        for (String site : first.ranges().keySet()) {
            assertArrayEquals(first.ranges().get(site).lo(), second.ranges().get(site).lo(), site);
            assertArrayEquals(first.ranges().get(site).hi(), second.ranges().get(site).hi(), site);
        }
    }
}
