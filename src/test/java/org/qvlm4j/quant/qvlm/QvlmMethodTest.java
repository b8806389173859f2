package org.qvlm4j.quant.qvlm;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qvlm4j.io.safetensors.SafeTensors;
import org.qvlm4j.model.Linear;
import org.qvlm4j.model.LlavaModel;
import org.qvlm4j.quant.QuantPlan;
import org.qvlm4j.quant.QuantPreset;
import org.qvlm4j.quant.Ranges;
import org.qvlm4j.quant.TensorCategory;
import org.qvlm4j.quant.calib.CalibrationStats;
import org.qvlm4j.quant.calib.CalibrationTap;
import org.qvlm4j.quant.calib.Calibrator;
import org.qvlm4j.quant.calib.ChannelTails;
import org.qvlm4j.quant.calib.SiteStats;
import org.qvlm4j.quant.methods.QuantResult;
import org.qvlm4j.quant.methods.Gptq;
import org.qvlm4j.quant.methods.Nf4Weights;
import org.qvlm4j.quant.methods.Rtn;

/**
 * The method end to end: on the 2-layer HF tiny-llava fixture (its result reproduced by an ordinary
 * full forward, weights equal to RTN's), and on the 5-layer random fixture (partitions, a killed
 * run resuming to identical bytes, a foreign work directory refused, weight-only plans, given vision
 * ranges).
 */
class QvlmMethodTest {
    private static final Path TINY = Path.of("src/test/resources/fixtures/tiny-llava");
    private static final int TINY_PROMPTS = 4;
    private static final int TINY_TEXT = 4;
    private static final int TINY_VOCAB = 99;
    /** The search's block forwards and a full forward run the same kernels on the same values. */
    private static final double SAME_ARITHMETIC = 1e-9;

    @TempDir
    static Path tmp;
    static QvlmFixture fx;

    @BeforeAll
    static void setUp() {
        fx = QvlmFixture.shared();
    }

    /**
     * CDM alone (no VEO, no refinement, see RangeRefinementTest) with the paper's dependency on the FP
     * model, as these tests pin partitions and searched ranges.
     */
    private static QvlmMethod.Config config(boolean cdm, int maxDepth, double h0) {
        return QvlmMethod.Config.DEFAULT.withVeo(false).withCdm(cdm).withRefine(QvlmMethod.Config.DEFAULT.refine().withEpochs(0))
                .withDependencyForward(QvlmMethod.DependencyForward.FP)
                .withBlocks(maxDepth, new double[] {1.0, 0.99, 0.98}, h0);
    }

    // ------------------------------------------------------------------ tiny-llava fixture

    /** The reference prompt and seeded variants (random text tokens and pixels). */
    private static List<CalibrationSamples.Sample> tinyPrompts() {
        List<CalibrationSamples.Sample> out = new ArrayList<>();
        try (SafeTensors ref = SafeTensors.open(TINY.resolve("reference_forward.safetensors"))) {
            int[] ids = Arrays.stream(ref.get("input_ids").toLongArray()).mapToInt(Math::toIntExact).toArray();
            float[] pixels = ref.get("pixel_values").toFloatArray();
            out.add(new CalibrationSamples.Sample("ref", ids, pixels));
            SplittableRandom rnd = new SplittableRandom(9);
            for (int s = 1; s < TINY_PROMPTS; s++) {
                int[] c = ids.clone();
                for (int i = c.length - TINY_TEXT; i < c.length; i++) {
                    c[i] = 1 + rnd.nextInt(TINY_VOCAB - 1);
                }
                float[] p = new float[pixels.length];
                for (int i = 0; i < p.length; i++) {
                    p[i] = (float) (2 * rnd.nextDouble() - 1);
                }
                out.add(new CalibrationSamples.Sample("v" + s, c, p));
            }
        }
        return out;
    }

    /** Statistics as calibrate records them (channel tails, positions, layer outputs) over the prompts. */
    private static CalibrationStats tinyStats(Path dir, List<CalibrationSamples.Sample> prompts) {
        try (LlavaModel m = LlavaModel.load(TINY)) {
            long rows = prompts.stream().mapToLong(p -> Math.max(p.tokens(), 17)).sum();
            int capacity = ChannelTails.capacityFor(Calibrator.MIN_PERCENTILE, rows);
            CalibrationTap tap = new CalibrationTap(site -> {
                boolean positions = site.startsWith("vision.") || site.startsWith("projector.");
                if (site.endsWith(".in") && !site.matches("(vision|llm)\\.layers\\.\\d+\\.in")) {
                    return new SiteStats.Options(Calibrator.HISTOGRAM_BINS, capacity, false, positions);
                }
                return new SiteStats.Options(Calibrator.HISTOGRAM_BINS, 0, false, positions);
            }, null);
            m.setActivationTap(tap);
            for (CalibrationSamples.Sample p : prompts) {
                m.forward(p.ids(), p.pixels());
            }
            m.setActivationTap(null);
            ObjectNode manifest = new ObjectMapper().createObjectNode();
            manifest.put("format", CalibrationStats.FORMAT).put("version", CalibrationStats.FORMAT_VERSION);
            manifest.putObject("model").put("digest", "tiny-llava-test");
            CalibrationStats.write(dir, manifest, tap.stats(), Calibrator.PERCENTILE_GRID, false);
        }
        return CalibrationStats.load(dir);
    }

    /** Outputs of the last decoder layer over the prompts, with the model's current weights and tap. */
    private static List<float[]> lastLayer(LlavaModel m, List<CalibrationSamples.Sample> prompts) {
        String site = "llm.layers." + (m.config().textConfig().numHiddenLayers() - 1) + ".out";
        List<float[]> out = new ArrayList<>();
        var inner = m.activationTap();
        m.setActivationTap((s, data, rows, cols) -> {
            if (inner != null) {
                inner.onActivation(s, data, rows, cols);
            }
            if (s.equals(site)) {
                out.add(Arrays.copyOf(data, rows * cols));
            }
        });
        for (CalibrationSamples.Sample p : prompts) {
            m.hiddenStates(p.ids(), p.pixels());
        }
        m.setActivationTap(inner);
        return out;
    }

    @Test
    void endToEndOnTheTinyFixtureIsReproducedByAFullForward() {
        List<CalibrationSamples.Sample> prompts = tinyPrompts();
        QuantPlan plan = QvlmFixture.w4a4();
        try (CalibrationStats stats = tinyStats(tmp.resolve("tiny-stats"), prompts);
             LlavaModel m = LlavaModel.load(TINY);
             LlavaModel rtnModel = LlavaModel.load(TINY)) {
            List<float[]> fp = lastLayer(m, prompts);
            QvlmMethod method = new QvlmMethod(config(true, 3, 1.0), CalibrationSamples.of(prompts), null, null, Map.of(), null);
            QuantResult r = method.apply(m, plan, stats);
            QvlmMethod.Summary s = method.summary();
            assertEquals(2, s.partition().layers());
            assertEquals("qvlm", r.method());

            // weights: round to nearest, exactly as the RTN baseline computes them
            QuantResult rtn = new Rtn().apply(rtnModel, weightsOnly(plan), stats);
            assertEquals(rtn.weights().keySet(), r.weights().keySet());
            for (String name : r.weights().keySet()) {
                assertArrayEquals(rtn.weights().get(name).toFloatArray(), r.weights().get(name).toFloatArray(), name);
            }

            // every LLM input range is the statistics' channel percentile at the block's chosen p
            for (QvlmMethod.BlockResult b : s.blocks()) {
                for (int d = 0; d < b.block().size(); d++) {
                    int k = b.block().first() + d;
                    for (BlockSearch.Group g : BlockSearch.Group.values()) {
                        double p = b.percentiles()[d][g.ordinal()];
                        for (String local : g.linears) {
                            String site = "llm.layers." + k + "." + local + ".in";
                            Ranges got = s.ranges().get(site);
                            if (p == 1.0) {
                                assertArrayEquals(stats.floats(site, "channel_max"), got.hi(), site);
                            } else {
                                int row = (int) Math.round((p - Calibrator.MIN_PERCENTILE) * 1000);
                                int K = stats.cols(site);
                                assertArrayEquals(Arrays.copyOfRange(stats.floats(site, "channel_pct_hi"), row * K,
                                        (row + 1) * K), got.hi(), site);
                            }
                        }
                    }
                }
            }

            // the searched error is what the installed model computes in an ordinary forward
            r.installTap(m);
            List<float[]> quant = lastLayer(m, prompts);
            double mse = BlockSearch.mse(quant, fp);
            assertEquals(mse, s.finalMse(), SAME_ARITHMETIC * mse);
            assertTrue(mse > 0);
            float[] logits = m.forward(prompts.get(0).ids(), prompts.get(0).pixels());
            assertTrue(Float.isFinite(logits[0]));
        }
    }

    /** The plan with every input spec removed (RTN's static ranges are per channel only). */
    private static QuantPlan weightsOnly(QuantPlan plan) {
        QuantPlan.Builder b = plan.toBuilder();
        for (TensorCategory c : TensorCategory.values()) {
            b.input(c, null);
        }
        return b.build();
    }

    // ------------------------------------------------------------------ five-layer random fixture

    @Test
    void cdmPartitionsAndLayerWiseBaseline() {
        try (LlavaModel m = fx.load(); CalibrationStats st = fx.loadStats()) {
            // h0 = 0: every positive dependency joins, so blocks fill up to the depth
            QvlmMethod cdm = new QvlmMethod(config(true, 3, 0.0), CalibrationSamples.fromStats(fx.model, null), null, null,
                    Map.of(), null);
            cdm.apply(m, QvlmFixture.w4a4(), st);
            assertEquals("greedy [0..2] [3..4]", cdm.summary().partition().describe());
            assertEquals(27, cdm.summary().blocks().get(0).candidates());
            assertEquals(0.0, cdm.summary().h0());
        }
        try (LlavaModel m = fx.load(); CalibrationStats st = fx.loadStats()) {
            QvlmMethod lw = new QvlmMethod(config(false, 3, 1.0), CalibrationSamples.fromStats(fx.model, null), null, null,
                    Map.of(), null);
            lw.apply(m, QvlmFixture.w4a4(), st);
            assertEquals("layer-wise [0] [1] [2] [3] [4]", lw.summary().partition().describe());
            assertNull(lw.summary().dependency());
            lw.summary().blocks().forEach(b -> assertEquals(3, b.candidates()));
        }
    }

    @Test
    void killedRunResumesToIdenticalBytes() throws Exception {
        Path work = tmp.resolve("work-killed");
        QuantPlan plan = QvlmFixture.w4a4();
        List<String> log = new ArrayList<>();
        QvlmMethod killed = new QvlmMethod(config(true, 3, 0.0), CalibrationSamples.fromStats(fx.model, null), null, work,
                Map.of(), log::add).stopAfterBlocks(1);
        assertThrows(QvlmMethod.Stopped.class, () -> killed.searchOnly(fx.model, fx.stats, tmp.resolve("out-killed"), plan));
        assertTrue(Files.exists(work.resolve("block-0000.json")));
        assertFalse(Files.exists(work.resolve("block-0001.json")));

        log.clear();
        new QvlmMethod(config(true, 3, 0.0), CalibrationSamples.fromStats(fx.model, null), null, work, Map.of(), log::add)
                .searchOnly(fx.model, fx.stats, tmp.resolve("out-killed"), plan);
        assertTrue(log.stream().anyMatch(l -> l.contains("block 1/2") && l.contains("[resumed]")), log.toString());
        assertTrue(log.stream().anyMatch(l -> l.contains("block 2/2") && !l.contains("[resumed]")), log.toString());

        new QvlmMethod(config(true, 3, 0.0), CalibrationSamples.fromStats(fx.model, null), null, tmp.resolve("work-fresh"),
                Map.of(), null).searchOnly(fx.model, fx.stats, tmp.resolve("out-fresh"), plan);
        assertArrayEquals(Files.readAllBytes(tmp.resolve("out-fresh").resolve(QvlmMethod.RANGES_FILE)),
                Files.readAllBytes(tmp.resolve("out-killed").resolve(QvlmMethod.RANGES_FILE)));
        ObjectMapper json = new ObjectMapper();
        for (String key : List.of("choice", "mse")) {
            for (String block : List.of("block-0000.json", "block-0001.json")) {
                assertEquals(json.readTree(tmp.resolve("work-fresh").resolve(block).toFile()).get(key),
                        json.readTree(work.resolve(block).toFile()).get(key), block + " " + key);
            }
        }

        // a different search refuses the directory, naming the key that differs
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new QvlmMethod(config(true, 2, 0.0),
                CalibrationSamples.fromStats(fx.model, null), null, work, Map.of(), null)
                .searchOnly(fx.model, fx.stats, tmp.resolve("out-other"), plan));
        assertTrue(e.getMessage().contains("config.max_depth"), e.getMessage());
    }

    @Test
    void aGridTheStatisticsLackIsRefusedBeforeAnyWork() {
        QuantPlan plan = QvlmFixture.w4a4();
        Path work = tmp.resolve("work-bad-grid");
        try (LlavaModel m = fx.load(); CalibrationStats st = fx.loadStats()) {
            CalibrationSamples.Source unused = (model, stats) -> {
                throw new AssertionError("a refused grid must not load the calibration prompts");
            };
            QvlmMethod q = new QvlmMethod(config(true, 3, 1.0).withBlocks(3, new double[] {1.0, 0.97}, 1.0), unused, null,
                    work, Map.of(), null);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> q.apply(m, plan, st));
            assertTrue(e.getMessage().contains("percentile 0.97 is not in the statistics' grid"), e.getMessage());
        }
        assertFalse(java.nio.file.Files.exists(work));
    }

    @Test
    void weightOnlyPlanSkipsTheSearch() {
        QuantPlan plan = QuantPlan.preset(QuantPreset.W4A16);
        try (LlavaModel m = fx.load(); LlavaModel rtnModel = fx.load(); CalibrationStats st = fx.loadStats()) {
            CalibrationSamples.Source unused = (model, stats) -> {
                throw new AssertionError("a weight-only plan needs no calibration prompts");
            };
            QvlmMethod q = new QvlmMethod(config(true, 3, 1.0), unused, null, null, Map.of(), null);
            QuantResult r = q.apply(m, plan, st);
            assertNull(r.tap());
            assertTrue(q.summary().blocks().isEmpty());
            QuantResult rtn = new Rtn().apply(rtnModel, plan, st);
            for (Linear l : m.linears()) {
                if (rtn.weights().containsKey(l.name())) {
                    assertArrayEquals(rtn.weights().get(l.name()).toFloatArray(), l.weight().toFloatArray(), l.name());
                }
            }
        }
    }

    @Test
    void gptqRoundingGivesTheGptqBaselinesWeights() {
        QuantPlan plan = QuantPlan.preset(QuantPreset.W4A16);
        try (LlavaModel m = fx.load(); LlavaModel gptqModel = fx.load(); LlavaModel rtnModel = fx.load();
             CalibrationStats st = fx.loadStats()) {
            QvlmMethod q = new QvlmMethod(config(true, 3, 1.0).withWeightRounding(QvlmMethod.WeightRounding.GPTQ),
                    (model, stats) -> List.of(), null, null, Map.of(), null);
            q.apply(m, plan, st);
            QuantResult gptq = new Gptq(Gptq.Config.DEFAULT).apply(gptqModel, plan, st);
            QuantResult rtn = new Rtn().apply(rtnModel, plan, st);
            int differFromRtn = 0;
            for (Linear l : m.linears()) {
                if (gptq.weights().containsKey(l.name())) {
                    float[] got = l.weight().toFloatArray();
                    assertArrayEquals(gptq.weights().get(l.name()).toFloatArray(), got, l.name());
                    differFromRtn += Arrays.equals(rtn.weights().get(l.name()).toFloatArray(), got) ? 0 : 1;
                }
            }
            assertTrue(differFromRtn > 0, "GPTQ rounding changed no linear against RTN");
        }
    }

    @Test
    void nf4RoundingGivesTheNf4BaselinesWeightsAndNeedsNf4Specs() {
        QuantPlan uniform = QuantPlan.preset(QuantPreset.W4A16);
        QuantPlan nf4 = uniform.toBuilder().override("all=nf4-b16-dq").build();
        try (LlavaModel m = fx.load(); LlavaModel nf4Model = fx.load(); CalibrationStats st = fx.loadStats()) {
            QvlmMethod.Config cfg = config(true, 3, 1.0).withWeightRounding(QvlmMethod.WeightRounding.NF4);
            QvlmMethod q = new QvlmMethod(cfg, (model, stats) -> List.of(), null, null, Map.of(), null);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> q.apply(m, uniform, st));
            assertTrue(e.getMessage().contains("NF4") && e.getMessage().contains("w4"), e.getMessage());
            new QvlmMethod(cfg, (model, stats) -> List.of(), null, null, Map.of(), null).apply(m, nf4, st);
            QuantResult ref = new Nf4Weights(new Nf4Weights.Config(16, true)).apply(nf4Model, nf4, st);
            int checked = 0;
            for (Linear l : m.linears()) {
                if (ref.weights().containsKey(l.name())) {
                    assertArrayEquals(ref.weights().get(l.name()).toFloatArray(), l.weight().toFloatArray(), l.name());
                    checked++;
                }
            }
            assertTrue(checked > 0);
            QvlmMethod gptqOnNf4 = new QvlmMethod(cfg.withWeightRounding(QvlmMethod.WeightRounding.GPTQ),
                    (model, stats) -> List.of(), null, null, Map.of(), null);
            try (LlavaModel m2 = fx.load()) {
                assertThrows(IllegalArgumentException.class, () -> gptqOnNf4.apply(m2, nf4, st));
            }
        }
    }

    @Test
    void givenVisionRangesOverrideTheCalibration() {
        String site = "vision.layers.0.self_attn.q_proj.in";
        try (LlavaModel m = fx.load(); CalibrationStats st = fx.loadStats()) {
            int positions = st.floats(site, "position_min").length;
            float[] lo = new float[positions];
            float[] hi = new float[positions];
            Arrays.fill(lo, -0.5f);
            Arrays.fill(hi, 0.25f);
            Ranges given = new Ranges(lo, hi);
            QvlmMethod q = new QvlmMethod(config(false, 3, 1.0), CalibrationSamples.fromStats(fx.model, null), null, null,
                    Map.of(site, given), null);
            q.apply(m, QvlmFixture.w4a4(), st);
            assertEquals(given, q.summary().ranges().get(site));
            String other = "vision.layers.0.mlp.fc1.in";
            assertEquals(new Ranges(st.floats(other, "position_min"), st.floats(other, "position_max")),
                    q.summary().ranges().get(other));
            assertNotEquals(given, q.summary().ranges().get(other));
        }
        assertThrows(IllegalArgumentException.class, () -> new QvlmMethod(QvlmMethod.Config.DEFAULT.withVeo(false),
                CalibrationSamples.of(List.of()), null, null, Map.of("llm.layers.0.self_attn.q_proj.in", Ranges.of(0, 1)),
                null));
    }

    @Test
    void badConfigurationIsRejected() {
        QvlmMethod.Config d = QvlmMethod.Config.DEFAULT;
        assertThrows(IllegalArgumentException.class, () -> d.withBlocks(0, d.grid(), 1));
        assertThrows(IllegalArgumentException.class, () -> d.withBlocks(3, new double[] {1.2}, 1));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new QvlmMethod(d,
                CalibrationSamples.of(List.of()), null, null, Map.of(), null));
        assertTrue(e.getMessage().contains("VEO is on but no source"), e.getMessage());
        assertArrayEquals(new double[] {1.0, 0.99, 0.98}, QvlmMethod.candidateGrid(new double[] {0.98, 1.0, 0.99, 1.0}));
    }
}
