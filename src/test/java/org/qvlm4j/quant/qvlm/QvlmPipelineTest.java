package org.qvlm4j.quant.qvlm;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qvlm4j.model.InputQuantizer;
import org.qvlm4j.model.Linear;
import org.qvlm4j.model.LlavaModel;
import org.qvlm4j.model.QuantizedLayouts;
import org.qvlm4j.quant.QuantPlan;
import org.qvlm4j.quant.Ranges;
import org.qvlm4j.quant.calib.CalibrationStats;
import org.qvlm4j.quant.export.QuantizedExport;
import org.qvlm4j.quant.methods.QuantResult;

/**
 * The whole Q-VLM pipeline on the five-layer random fixture (whose calibration data has image
 * problems, so VEO draws real samples): the paper's four Table 1 configurations differ exactly where
 * they should; the exported checkpoint computes the in-memory result's logits and holds its ranges
 * bit for bit; a run killed inside VEO and again after a block resumes to a byte-identical
 * checkpoint; the report holds what the experiments read.
 */
class QvlmPipelineTest {
    /**
     * Largest |logit difference| between the loaded checkpoint and the in-memory model: the export
     * tests' tolerance (same quantized values, other float summation order; logits are about 1).
     */
    static final double LOGITS_ABS_TOL = 1e-5;
    /** Two VEO epochs of one sample per update, so that a run can be killed between epochs. */
    static final VeoConfig VEO = VeoConfig.defaults().withSamples(2).withBatch(1).withEpochs(2).withLr(0.05);
    static final double[] GRID = {1.0, 0.99};
    /** h0 = 0: every positive dependency joins, so CDM's blocks fill to the depth, [0..2] [3..4]. */
    static final double H0 = 0.0;
    static final String CDM_PARTITION = "greedy [0..2] [3..4]";
    static final String LAYER_WISE = "layer-wise [0] [1] [2] [3] [4]";

    @TempDir
    static Path tmp;
    static QvlmFixture fx;

    @BeforeAll
    static void setUp() {
        fx = QvlmFixture.shared();
    }

    static QvlmMethod method(boolean cdm, boolean veo, Path work, Consumer<String> log) {
        QvlmMethod.Config c = QvlmMethod.Config.DEFAULT.withCdm(cdm).withVeo(veo).withVeoConfig(VEO)
                .withBlocks(3, GRID, H0);
        return new QvlmMethod(c, CalibrationSamples.fromStats(fx.model, null), VeoInputs.fromStats(fx.model, null, null),
                work, Map.of(), log);
    }

    /** The calibration's min/max per token position of a vision or projector site. */
    static Ranges calibrated(CalibrationStats st, String site) {
        return new Ranges(st.floats(site, "position_min"), st.floats(site, "position_max"));
    }

    @Test
    void theFourConfigurationsDifferOnlyWhereTheyShould() {
        Map<String, QvlmMethod.Summary> runs = new LinkedHashMap<>();
        Map<String, QuantResult> results = new LinkedHashMap<>();
        for (boolean cdm : new boolean[] {false, true}) {
            for (boolean veo : new boolean[] {false, true}) {
                try (LlavaModel m = fx.load(); CalibrationStats st = fx.loadStats()) {
                    QvlmMethod q = method(cdm, veo, null, null);
                    results.put(q.config().label(), q.apply(m, QvlmFixture.w4a4(), st));
                    runs.put(q.config().label(), q.summary());
                }
            }
        }
        assertEquals(List.of("baseline", "+veo", "+cdm", "q-vlm"), List.copyOf(runs.keySet()));
        try (CalibrationStats st = fx.loadStats()) {
            QvlmMethod.Summary base = runs.get("baseline");
            QvlmMethod.Summary veo = runs.get("+veo");
            QvlmMethod.Summary cdm = runs.get("+cdm");
            QvlmMethod.Summary full = runs.get("q-vlm");
            List<String> vision = base.ranges().keySet().stream().filter(s -> s.startsWith("vision.")).toList();
            List<String> projector = base.ranges().keySet().stream().filter(s -> s.startsWith("projector.")).toList();
            assertFalse(vision.isEmpty());
            assertEquals(2, projector.size());

            // without VEO the vision ranges are the calibration's; with it they are VEO's, which moved
            for (QvlmMethod.Summary s : List.of(base, cdm)) {
                assertNull(s.veo(), s.label());
                vision.forEach(site -> assertEquals(calibrated(st, site), s.ranges().get(site), s.label() + " " + site));
            }
            for (QvlmMethod.Summary s : List.of(veo, full)) {
                assertNotNull(s.veo(), s.label());
                assertEquals(vision.size(), s.veo().result().ranges().size());
                vision.forEach(site -> assertEquals(s.veo().result().ranges().get(site), s.ranges().get(site), site));
                assertTrue(vision.stream().anyMatch(site -> !calibrated(st, site).equals(s.ranges().get(site))),
                        s.label() + ": VEO moved no bound");
                assertEquals(VEO.samples(), s.veo().samples().get("ids").size());
                assertEquals(QvlmFixture.CALIB_SEED, s.veo().config().seed(), "VEO draws with the statistics' seed");
            }
            // VEO runs before the partition, so CDM cannot change it
            assertEquals(veo.veo().result().ranges(), full.veo().result().ranges());
            // the projector is not VEO's: calibrated in all four
            for (QvlmMethod.Summary s : runs.values()) {
                projector.forEach(site -> assertEquals(calibrated(st, site), s.ranges().get(site), s.label() + " " + site));
            }
        }

        // without CDM: singleton blocks and no dependency; with it: the blocks of the dependency
        for (String label : List.of("baseline", "+veo")) {
            assertEquals(LAYER_WISE, runs.get(label).partition().describe(), label);
            assertNull(runs.get(label).dependency(), label);
            runs.get(label).blocks().forEach(b -> assertEquals(GRID.length, b.candidates(), label));
        }
        for (String label : List.of("+cdm", "q-vlm")) {
            assertEquals(CDM_PARTITION, runs.get(label).partition().describe(), label);
            assertEquals(8, runs.get(label).blocks().get(0).candidates(), "2^3 joint choices of a 3-layer block");
            assertEquals("quantized", runs.get(label).dependency().source().get("forward").asText());
        }
        // the dependency is measured on the forward VEO left, so VEO changes it
        assertFalse(Arrays.equals(runs.get("+cdm").dependency().pairs(Dependency.Proxy.ENTROPY),
                runs.get("q-vlm").dependency().pairs(Dependency.Proxy.ENTROPY)));

        // weights are round-to-nearest in every configuration
        QuantResult ref = results.get("baseline");
        for (QuantResult r : results.values()) {
            assertEquals(ref.weights().keySet(), r.weights().keySet());
            ref.weights().forEach((name, w) -> assertArrayEquals(w.toFloatArray(), r.weights().get(name).toFloatArray(),
                    name));
        }
        for (QvlmMethod.Summary s : runs.values()) {
            assertTrue(s.finalMse() > 0 && Double.isFinite(s.finalMse()), s.label());
        }
    }

    @Test
    void exportedCheckpointComputesTheInMemoryResultAndHoldsItsReport() throws Exception {
        Path work = tmp.resolve("work-export");
        Path out = tmp.resolve("ckpt");
        QuantPlan plan = QvlmFixture.w4a4();
        try (LlavaModel mem = fx.load(); CalibrationStats st = fx.loadStats()) {
            QvlmMethod a = method(true, true, work, null);
            QuantResult r = a.apply(mem, plan, st);
            r.installTap(mem);
            // the export runs the method again; it resumes from the work directory to the same ranges
            QvlmMethod b = method(true, true, work, null);
            QuantizedExport.Summary s = b.export(fx.model, fx.stats, out, plan);
            assertEquals(a.summary().ranges(), b.summary().ranges());
            assertTrue(b.summary().blocks().stream().allMatch(QvlmMethod.BlockResult::resumed));
            assertTrue(s.packedLinears() > 0);

            List<CalibrationSamples.Sample> prompts = fx.samples(mem, st);
            assertTrue(prompts.stream().anyMatch(p -> p.pixels() != null));
            try (LlavaModel loaded = LlavaModel.load(out)) {
                int checked = 0;
                for (Linear l : loaded.linears()) {
                    InputQuantizer iq = l.inputQuantizer();
                    if (iq != null) {
                        Ranges want = a.summary().ranges().get(l.name() + ".in");
                        assertArrayEquals(want.lo(), iq.staticLo(), l.name());
                        assertArrayEquals(want.hi(), iq.staticHi(), l.name());
                        checked++;
                    }
                }
                assertEquals(a.summary().ranges().size(), checked, "every static range is in the checkpoint");
                for (CalibrationSamples.Sample p : prompts) {
                    float[] want = mem.forward(p.ids(), p.pixels());
                    float[] got = loaded.forward(p.ids(), p.pixels());
                    double d = 0;
                    for (int i = 0; i < want.length; i++) {
                        d = Math.max(d, Math.abs(want[i] - got[i]));
                    }
                    assertTrue(d <= LOGITS_ABS_TOL, p.id() + ": max |logit diff| " + d);
                }
            }
        }
        JsonNode cfg = new ObjectMapper().readTree(out.resolve(QuantizedLayouts.FILE).toFile());
        assertEquals("qvlm", cfg.get("method").asText());
        JsonNode positions = cfg.get("activations").get("vision.layers.0.self_attn.q_proj").get("static");
        assertEquals(QuantizedLayouts.RANGES_TENSOR, positions.get("ranges_tensor").asText());
        assertEquals((QvlmFixture.IMAGE_SIZE / QvlmFixture.PATCH) * (QvlmFixture.IMAGE_SIZE / QvlmFixture.PATCH) + 1,
                positions.get("positions").asInt(), "one range per patch and the class token");

        JsonNode rep = new ObjectMapper().readTree(out.resolve(QvlmMethod.REPORT_FILE).toFile());
        assertEquals("q-vlm", rep.get("configuration").asText());
        assertEquals(2, rep.get("num_blocks").asInt());
        assertEquals(2, rep.get("blocks").size());
        long forwards = 0;
        for (JsonNode blk : rep.get("blocks")) {
            assertTrue(blk.get("candidates").asLong() > 0 && blk.get("forwards").asLong() > 0
                    && blk.get("seconds").asDouble() >= 0, blk.toString());
            forwards += blk.get("forwards").asLong();
        }
        assertEquals(forwards, rep.get("search_cost").get("forwards").asLong());
        for (String stage : List.of("prompts_and_weights", "veo", "dependency", "partition", "search", "total")) {
            assertTrue(rep.get("stages").has(stage), stage);
        }
        assertEquals(VEO.epochs(), rep.get("veo").get("epochs").size());
        assertTrue(rep.get("veo").get("initial").get("total").isNumber() && rep.get("veo").get("final").get("total")
                .isNumber());
        assertTrue(rep.get("final_mse").asDouble() > 0);
        JsonNode files = rep.get("checkpoint").get("files");
        assertEquals(Files.size(out.resolve(QuantizedExport.WEIGHTS_FILE)), files.get(QuantizedExport.WEIGHTS_FILE).asLong());
        assertTrue(files.get(QuantizedExport.WEIGHTS_FILE).asLong() < rep.get("checkpoint").get("fp_weights_bytes").asLong());
    }

    @Test
    void aRunKilledInVeoAndAfterABlockResumesToAByteIdenticalCheckpoint() throws Exception {
        Path work = tmp.resolve("work-killed");
        QuantPlan plan = QvlmFixture.w4a4();
        assertThrows(QvlmMethod.Stopped.class, () -> method(true, true, work, null).stopAfterVeoEpochs(1)
                .export(fx.model, fx.stats, tmp.resolve("killed-1"), plan));
        VeoCheckpoint.State state = VeoCheckpoint.read(work.resolve(WorkDir.VEO_FILE));
        assertEquals(1, state.epochsDone());
        assertFalse(state.finished());
        assertFalse(Files.exists(work.resolve("block-0000.json")));
        assertFalse(Files.exists(tmp.resolve("killed-1")));

        List<String> log = new ArrayList<>();
        assertThrows(QvlmMethod.Stopped.class, () -> method(true, true, work, log::add).stopAfterBlocks(1)
                .export(fx.model, fx.stats, tmp.resolve("killed-2"), plan));
        assertTrue(log.stream().anyMatch(l -> l.contains("resuming after epoch 1")), log.toString());
        assertTrue(Files.exists(work.resolve("block-0000.json")));
        assertFalse(Files.exists(work.resolve("block-0001.json")));

        log.clear();
        Path resumed = tmp.resolve("resumed");
        method(true, true, work, log::add).export(fx.model, fx.stats, resumed, plan);
        assertTrue(log.stream().anyMatch(l -> l.startsWith("qvlm: VEO loss") && l.endsWith("[resumed]")), log.toString());
        assertTrue(log.stream().anyMatch(l -> l.contains("block 1/2") && l.contains("[resumed]")), log.toString());
        assertTrue(log.stream().anyMatch(l -> l.contains("block 2/2") && !l.contains("[resumed]")), log.toString());

        Path fresh = tmp.resolve("fresh");
        method(true, true, null, null).export(fx.model, fx.stats, fresh, plan);
        for (String f : List.of(QuantizedExport.WEIGHTS_FILE, QuantizedLayouts.FILE)) {
            assertArrayEquals(Files.readAllBytes(fresh.resolve(f)), Files.readAllBytes(resumed.resolve(f)), f);
        }
        JsonNode a = new ObjectMapper().readTree(fresh.resolve(QvlmMethod.REPORT_FILE).toFile());
        JsonNode b = new ObjectMapper().readTree(resumed.resolve(QvlmMethod.REPORT_FILE).toFile());
        assertEquals(a.get("veo").get("final"), b.get("veo").get("final"));
        assertEquals(a.get("final_mse"), b.get("final_mse"));
        assertTrue(b.get("blocks").get(0).get("resumed").asBoolean());
        assertEquals(0, a.get("veo").get("resumed_epochs").asInt());
        assertEquals(VEO.epochs(), b.get("veo").get("resumed_epochs").asInt());
    }
}
