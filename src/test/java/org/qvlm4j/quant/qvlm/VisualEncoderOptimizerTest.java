package org.qvlm4j.quant.qvlm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qvlm4j.model.LlavaModel;
import org.qvlm4j.quant.FakeQuantTap;
import org.qvlm4j.quant.QuantPlan;
import org.qvlm4j.quant.QuantPreset;
import org.qvlm4j.quant.Ranges;
import org.qvlm4j.quant.WeightFakeQuantizer;
import org.qvlm4j.quant.calib.CalibrationStats;
import org.qvlm4j.tensor.Tape;
import org.qvlm4j.train.TrainableLlava;
import org.qvlm4j.train.TrainingExample;

/**
 * Visual encoder optimisation end to end on the tiny LLaVA fixture at W4A4 (vision inputs with
 * static per-token-position ranges, LLM inputs static per channel, projector dynamic): the loss
 * falls, only the vision sites' ranges come back, two runs with one seed agree to the bit, and the
 * runtime with the returned ranges in a {@link FakeQuantTap} reproduces the differentiable forward.
 *
 * <p>The fixture's weights are HF's random initialisation, so its answer loss is flat (the logits
 * are near uniform) and its calibrated ranges are close to the best clipping already; the run
 * starts from the calibrated vision ranges widened {@value #INFLATE}×, as outliers in the
 * calibration data would leave them, so that there is a clear optimum for the gradient to find.
 */
class VisualEncoderOptimizerTest {
    static final String VISION_STATIC = "vision=w4-asym-channel+a4-asym-token-static";
    static final int SAMPLES = 6;
    static final long DATA_SEED = 7;
    static final int EPOCHS = 3;
    static final int BATCH = 2;
    static final float INFLATE = 2f;
    static final double LR = 5e-2;
    /**
     * Runtime vs differentiable quantized logits, relative to the largest logit: the two forwards
     * agree to about 1e-6 in floating point (TrainableLlavaTest), and a 4-bit code may flip where a
     * value sits that close to a rounding boundary.
     */
    static final double PARITY_REL_TOL = 1e-4;
    /** How much L must fall: several times the spread rounding noise gives the loss of this model. */
    static final double MIN_DROP = 0.02;
    /** Vision linears per encoder layer (q, k, v, out, fc1, fc2). */
    static final int VISION_LINEARS = 6;

    @TempDir
    static Path tmp;
    static VeoFixture fx;
    static List<TrainingExample> samples;
    static CalibrationStats stats;
    static TrainableLlava model;
    static QuantPlan plan;
    static Map<String, Ranges> initial;
    static VeoConfig cfg;
    static VeoResult first;
    static VeoResult second;
    static List<VeoResult.Progress> progress = new ArrayList<>();

    @BeforeAll
    static void runTwice() {
        fx = new VeoFixture();
        samples = fx.samples(SAMPLES, DATA_SEED);
        stats = VeoFixture.stats(VeoFixture.TINY, tmp.resolve("stats"), samples);
        model = TrainableLlava.load(VeoFixture.TINY);
        plan = QuantPlan.builder().preset(QuantPreset.W4A4).override(VISION_STATIC).build();
        initial = new LinkedHashMap<>(VeoRanges.fromStats(stats, plan, model.config()));
        for (Map.Entry<String, Ranges> e : initial.entrySet()) {
            if (e.getKey().startsWith("vision.")) {
                float[] lo = e.getValue().lo().clone();
                float[] hi = e.getValue().hi().clone();
                for (int i = 0; i < lo.length; i++) {
                    lo[i] *= INFLATE;
                    hi[i] *= INFLATE;
                }
                e.setValue(new Ranges(lo, hi));
            }
        }
        cfg = VeoConfig.defaults().withSamples(SAMPLES).withEpochs(EPOCHS).withBatch(BATCH).withLr(LR);
        first = VisualEncoderOptimizer.run(model, plan, initial, samples, cfg, progress::add);
        second = VisualEncoderOptimizer.run(model, plan, initial, samples, cfg, null);
    }

    @AfterAll
    static void close() {
        stats.close();
    }

    @Test
    void theLossFallsAndEveryEpochIsLogged() {
        assertTrue(first.last().total() < first.initial().total() - MIN_DROP,
                "L after " + first.last().total() + " vs before " + first.initial().total());
        assertTrue(first.last().errVision() < first.initial().errVision(),
                "vision error after " + first.last().errVision() + " vs before " + first.initial().errVision());
        assertEquals(EPOCHS, first.epochs().size());
        int steps = EPOCHS * ((SAMPLES + BATCH - 1) / BATCH);
        assertEquals(steps, progress.size());
        assertEquals(steps, progress.getLast().step());
        for (VeoResult.Epoch e : first.epochs()) {
            double[] w = e.weights();
            assertEquals(model.config().textConfig().numHiddenLayers(), w.length);
            assertEquals(1.0, Arrays.stream(w).sum(), 1e-12, "Jacobian weights sum to 1");
            VeoResult.Terms t = e.terms();
            double ent = 0;
            for (int k = 0; k < w.length; k++) {
                ent += w[k] * t.entropies()[k];
            }
            // the epoch means of per-sample values: L_ent = Σ w_k H_k holds for the means too
            assertEquals(ent, t.ent(), 1e-5, "L_ent of epoch " + e.epoch());
            assertEquals(t.errVision() + cfg.eta() * t.errLlm(), t.err(), 1e-5, "L_err of epoch " + e.epoch());
            assertEquals(t.reg() + cfg.lambda1() * t.ent() + cfg.lambda2() * t.err(), t.total(), 1e-5,
                    "L of epoch " + e.epoch());
        }
    }

    @Test
    void onlyTheVisionSitesComeBackInTheirSlotLayoutAndTheyMoved() {
        int layers = model.config().visionFeatureLayerIndex();
        int positions = model.config().visionConfig().gridSize() * model.config().visionConfig().gridSize() + 1;
        assertEquals(layers * VISION_LINEARS, first.ranges().size());
        int moved = 0;
        for (Map.Entry<String, Ranges> e : first.ranges().entrySet()) {
            assertTrue(e.getKey().startsWith("vision.layers.") && e.getKey().endsWith(".in"), e.getKey());
            assertEquals(positions, e.getValue().size(), e.getKey() + ": one range per token position");
            Ranges start = initial.get(e.getKey());
            for (int i = 0; i < positions; i++) {
                assertTrue(e.getValue().lo()[i] <= 0 && e.getValue().hi()[i] >= 0, "the range holds 0");
                if (e.getValue().lo()[i] != Math.min(start.lo()[i], 0f) || e.getValue().hi()[i] != start.hi()[i]) {
                    moved++;
                }
            }
        }
        assertTrue(moved > 0, "no bound moved");
    }

    @Test
    void oneSeedGivesTheSameBytes() {
        assertEquals(first.ranges(), second.ranges());
        assertEquals(first.initial(), second.initial());
        assertEquals(first.last(), second.last());
        assertEquals(first.epochs(), second.epochs());
        VeoResult other = VisualEncoderOptimizer.run(model, plan, initial, samples, cfg.withSeed(cfg.seed() + 1)
                .withEpochs(1), null);
        VeoResult same = VisualEncoderOptimizer.run(model, plan, initial, samples, cfg.withEpochs(1), null);
        assertNotEquals(same.ranges(), other.ranges(), "another seed visits the samples in another order");
    }

    @Test
    void theRuntimeWithTheReturnedRangesReproducesTheDifferentiableForward() {
        Map<String, Ranges> merged = new LinkedHashMap<>(initial);
        merged.putAll(first.ranges());
        TrainingExample ex = samples.get(1);
        float[] differentiable = model.frozen().logits(Tape.disabled(), ex.inputIds(), ex.pixels(),
                new VeoForward(model.config(), plan, merged)).data();
        float[] optimised = runtimeLogits(merged, ex);
        float[] calibrated = runtimeLogits(initial, ex);
        double max = 0;
        double diff = 0;
        double moved = 0;
        for (int i = 0; i < optimised.length; i++) {
            max = Math.max(max, Math.abs(differentiable[i]));
            diff = Math.max(diff, Math.abs(optimised[i] - differentiable[i]));
            moved = Math.max(moved, Math.abs(calibrated[i] - differentiable[i]));
        }
        assertTrue(diff <= PARITY_REL_TOL * max, "runtime vs differentiable: " + diff + " of " + max);
        assertTrue(moved > 10 * PARITY_REL_TOL * max, "the calibrated ranges give other logits: " + moved);
    }

    private static float[] runtimeLogits(Map<String, Ranges> ranges, TrainingExample ex) {
        try (LlavaModel m = LlavaModel.load(VeoFixture.TINY)) {
            WeightFakeQuantizer.apply(m, plan);
            m.setActivationTap(new FakeQuantTap(plan, ranges));
            return m.forward(ex.inputIds(), ex.pixels());
        }
    }

    @Test
    void plansSamplesAndRangesThatCannotWorkAreRejected() {
        QuantPlan dynamicVision = QuantPlan.preset(QuantPreset.W4A4);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> VisualEncoderOptimizer.run(
                model, dynamicVision, VeoRanges.fromStats(stats, dynamicVision, model.config()), samples, cfg, null));
        assertTrue(e.getMessage().contains("static input spec"), e.getMessage());

        TrainingExample text = new TrainingExample(null, new int[] {1, 5, 6}, new int[] {-100, -100, 6});
        e = assertThrows(IllegalArgumentException.class, () -> VisualEncoderOptimizer.run(model, plan, initial,
                List.of(samples.get(0), text), cfg, null));
        assertTrue(e.getMessage().contains("sample 1 has no image"), e.getMessage());

        Map<String, Ranges> missing = new LinkedHashMap<>(initial);
        missing.remove("vision.layers.1.mlp.fc2.in");
        e = assertThrows(IllegalArgumentException.class, () -> VisualEncoderOptimizer.run(model, plan, missing,
                samples, cfg, null));
        assertTrue(e.getMessage().contains("vision.layers.1.mlp.fc2.in"), e.getMessage());

        e = assertThrows(IllegalArgumentException.class, () -> cfg.withBatch(0));
        assertTrue(e.getMessage().contains("key batch"), e.getMessage());
    }
}
