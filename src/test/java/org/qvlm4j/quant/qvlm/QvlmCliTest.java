package org.qvlm4j.quant.qvlm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.awt.image.BufferedImage;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qvlm4j.cli.Main;
import org.qvlm4j.io.safetensors.SafeTensors;
import org.qvlm4j.model.LlavaModel;
import org.qvlm4j.model.QuantizedLayouts;
import org.qvlm4j.quant.QuantPlan;
import org.qvlm4j.quant.QuantSpec;
import org.qvlm4j.quant.TensorCategory;
import org.qvlm4j.quant.calib.CalibrationStats;
import org.qvlm4j.quant.calib.RangeHistogram;

/** {@code quantize --method qvlm} and {@code analyze} through the CLI on the five-layer fixture. */
class QvlmCliTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    static Path tmp;
    static QvlmFixture fx;

    private record Run(int code, String out, String err) {
    }

    @BeforeAll
    static void setUp() {
        fx = QvlmFixture.shared();
    }

    private static Run run(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        int code = Main.run(args, new PrintWriter(out, true), new PrintWriter(err, true));
        return new Run(code, out.toString(), err.toString());
    }

    @Test
    void searchOnlyWritesRangesAndReport() throws Exception {
        Path out = tmp.resolve("search");
        Run r = run("quantize", "--model", fx.model.toString(), "--stats", fx.stats.toString(), "--method", "qvlm",
                "--wbits", "4", "--abits", "4", "--p-grid", "1,0.99", "--partition", "dp", "--no-veo", "--search-only",
                "--work", tmp.resolve("work").toString(), "--out", out.toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().startsWith("qvlm +cdm: dp "), r.out());
        assertTrue(r.err().contains("qvlm: block 1/"), r.err());
        JsonNode result = JSON.readTree(out.resolve(QvlmMethod.REPORT_FILE).toFile());
        assertTrue(result.get("final_mse").asDouble() > 0);
        assertEquals("DP", result.get("config").get("partition").asText());
        int layers = 0;
        for (JsonNode b : result.get("blocks")) {
            layers += b.get("last").asInt() - b.get("first").asInt() + 1;
        }
        assertEquals(QvlmFixture.TEXT_LAYERS, layers);
        try (SafeTensors st = SafeTensors.open(out.resolve(QvlmMethod.RANGES_FILE))) {
            assertEquals(16, st.get("llm.layers.4.self_attn.q_proj.in.lo").numel());
            assertEquals(32, st.get("llm.layers.4.mlp.down_proj.in.hi").numel());
        }
        assertTrue(Files.isRegularFile(tmp.resolve("work").resolve("partition.json")));
    }

    @Test
    void perTensorLlmInputsAndTheNormedBlockError() throws Exception {
        Path out = tmp.resolve("search-tensor");
        Run r = run("quantize", "--model", fx.model.toString(), "--stats", fx.stats.toString(), "--method", "qvlm",
                "--wbits", "4", "--abits", "4", "--p-grid", "1,0.9995,0.99", "--no-veo", "--no-cdm", "--search-only",
                "--llm-inputs", "tensor", "--block-error", "normed", "--out", out.toString());
        assertEquals(0, r.code(), r.err());
        JsonNode report = JSON.readTree(out.resolve(QvlmMethod.REPORT_FILE).toFile());
        assertEquals("NORMED", report.get("config").get("block_error").asText());
        QuantPlan plan = QuantPlan.fromJson(Files.readString(out.resolve(QvlmMethod.PLAN_FILE)));
        for (TensorCategory c : TensorCategory.values()) {
            QuantSpec in = plan.entry(c).input();
            if (in != null) {
                assertEquals(c.family() == TensorCategory.Family.LLM ? QuantSpec.Granularity.PER_TENSOR
                        : QuantSpec.Granularity.PER_TOKEN, in.granularity(), c.key());
            }
        }
        assertEquals("a4-asym-tensor-static", plan.entry(TensorCategory.LLM_DOWN).input().toString());
        try (SafeTensors st = SafeTensors.open(out.resolve(QvlmMethod.RANGES_FILE));
             CalibrationStats stats = CalibrationStats.load(fx.stats)) {
            assertEquals(1, st.get("llm.layers.4.self_attn.q_proj.in.lo").numel());
            assertEquals(1, st.get("llm.layers.0.mlp.down_proj.in.hi").numel());
            // each layer's range is the tensor percentile at its chosen p: 0.9995 is off the statistics'
            // grid and comes from the stored histogram
            for (JsonNode b : report.get("blocks")) {
                int k = b.get("first").asInt();
                double p = b.get("percentiles").get(0).get(0).asDouble();
                String site = "llm.layers." + k + ".self_attn.q_proj.in";
                RangeHistogram h = stats.histogram(site);
                assertEquals((float) h.quantile(1 - p), st.get(site + ".lo").toFloatArray()[0], site + " p=" + p);
                assertEquals((float) h.quantile(p), st.get(site + ".hi").toFloatArray()[0], site + " p=" + p);
            }
        }
        r = run("quantize", "--model", fx.model.toString(), "--stats", fx.stats.toString(), "--method", "rtn",
                "--wbits", "4", "--abits", "4", "--llm-inputs", "row", "--out", tmp.resolve("bad-inputs").toString());
        assertEquals(Main.EXIT_BAD_INPUT, r.code());
        assertTrue(r.err().contains("--llm-inputs: expected channel or tensor, got 'row'"), r.err());
        assertFalse(Files.exists(tmp.resolve("bad-inputs")));
        r = run("quantize", "--model", fx.model.toString(), "--stats", fx.stats.toString(), "--method", "qvlm",
                "--wbits", "4", "--abits", "4", "--block-error", "logits", "--search-only", "--out",
                tmp.resolve("bad-error").toString());
        assertEquals(Main.EXIT_BAD_INPUT, r.code());
        assertTrue(r.err().contains("--block-error: expected residual or normed, got 'logits'"), r.err());
    }

    @Test
    void smoothedCopySearchedAndExported() throws Exception {
        Path work = tmp.resolve("work-smooth");
        Path out = tmp.resolve("search-smooth");
        Run r = run("quantize", "--model", fx.model.toString(), "--stats", fx.stats.toString(), "--method", "qvlm",
                "--wbits", "4", "--abits", "4", "--p-grid", "1", "--no-veo", "--no-cdm", "--search-only",
                "--llm-inputs", "tensor", "--smooth-alpha", "1.0", "--smooth-scope", "llm", "--work", work.toString(),
                "--out", out.toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.err().contains("smooth: folded alpha 1.0 scales into"), r.err());
        assertTrue(Files.isRegularFile(work.resolve("smoothed/model/smoothing.json")));
        // alpha 1 divides every smoothed input channel by its calibration absmax: the searched
        // per-tensor ranges (p = 1) lie within [-1, 1], where the source model's do not
        boolean sourceWider = false;
        try (SafeTensors st = SafeTensors.open(out.resolve(QvlmMethod.RANGES_FILE));
             CalibrationStats src = CalibrationStats.load(fx.stats)) {
            for (int k = 0; k < QvlmFixture.TEXT_LAYERS; k++) {
                for (String lin : List.of("self_attn.q_proj", "mlp.gate_proj", "mlp.down_proj")) {
                    String site = "llm.layers." + k + "." + lin + ".in";
                    float lo = st.get(site + ".lo").toFloatArray()[0];
                    float hi = st.get(site + ".hi").toFloatArray()[0];
                    assertTrue(lo >= -1.0001f && hi <= 1.0001f && hi > 0.5f, site + " [" + lo + ", " + hi + "]");
                    for (float m : src.floats(site, "channel_absmax")) {
                        sourceWider |= m > 1.5f;
                    }
                }
            }
        }
        assertTrue(sourceWider);

        // any other method: the smoothed copy lives in a scratch directory removed afterwards
        Path rtn = tmp.resolve("smooth-rtn");
        r = run("quantize", "--model", fx.model.toString(), "--stats", fx.stats.toString(), "--method", "rtn",
                "--wbits", "4", "--abits", "4", "--override", "vision=fp;projector=fp", "--smooth-alpha", "0.5",
                "--out", rtn.toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(Files.isRegularFile(rtn.resolve("smoothing.json")));
        try (var s = Files.list(tmp)) {
            assertTrue(s.noneMatch(p -> p.getFileName().toString().startsWith("smooth-rtn.tmp-")));
        }
        r = run("quantize", "--model", fx.model.toString(), "--stats", fx.stats.toString(), "--method", "smoothquant",
                "--wbits", "4", "--abits", "4", "--smooth-alpha", "0.5", "--out", tmp.resolve("never").toString());
        assertEquals(Main.EXIT_BAD_INPUT, r.code());
        assertTrue(r.err().contains("--smooth-alpha: --method smoothquant smooths by itself"), r.err());
        assertFalse(Files.exists(tmp.resolve("never")));
        r = run("quantize", "--model", fx.model.toString(), "--stats", fx.stats.toString(), "--method", "rtn",
                "--wbits", "4", "--abits", "4", "--smooth-scope", "llm", "--out", tmp.resolve("never").toString());
        assertEquals(Main.EXIT_BAD_INPUT, r.code());
        assertTrue(r.err().contains("--smooth-scope: expected together with --smooth-alpha"), r.err());
    }

    @Test
    void smoothWritesACheckpointThatLoads() throws Exception {
        Path out = tmp.resolve("smoothed-cli");
        Run r = run("smooth", "--model", fx.model.toString(), "--stats", fx.stats.toString(), "--alpha", "0.8",
                "--out", out.toString());
        assertEquals(0, r.code(), r.err());
        // fixture: 5 decoder layers with shared key/value heads (o_proj left), 1 vision layer before the feature layer
        assertTrue(r.out().startsWith("smoothed " + (QvlmFixture.TEXT_LAYERS * 6 + 5) + " linears (alpha 0.8, scope all)"),
                r.out());
        JsonNode m = JSON.readTree(out.resolve("smoothing.json").toFile());
        assertEquals(0.8, m.get("alpha").asDouble());
        assertEquals(QvlmFixture.TEXT_LAYERS + 1, m.get("left_unsmoothed").size());
        try (LlavaModel a = fx.load(); LlavaModel b = LlavaModel.load(out)) {
            assertEquals(a.linears().size(), b.linears().size());
        }
        r = run("smooth", "--model", fx.model.toString(), "--stats", fx.stats.toString(), "--alpha", "2",
                "--out", tmp.resolve("smoothed-bad").toString());
        assertEquals(Main.EXIT_BAD_INPUT, r.code());
        assertTrue(r.err().contains("alpha must be in [0, 1], got 2.0"), r.err());
        assertFalse(Files.exists(tmp.resolve("smoothed-bad")));
    }

    @Test
    void smoothQuantMigrationStrengthAndScope() throws Exception {
        java.util.function.Function<String[], Run> sq = extra -> {
            List<String> a = new java.util.ArrayList<>(List.of("quantize", "--model", fx.model.toString(), "--stats",
                    fx.stats.toString(), "--method", "smoothquant", "--wbits", "4", "--abits", "4",
                    // the fixture's last vision layer is past the feature layer and has no statistics
                    "--override", "vision=fp;projector=fp"));
            a.addAll(List.of(extra));
            return run(a.toArray(String[]::new));
        };
        Run base = sq.apply(new String[] {"--out", tmp.resolve("sq").toString()});
        assertEquals(0, base.code(), base.err());
        assertTrue(base.out().contains(" at run time") && base.out().contains(", 0 at run time"), base.out());
        Run all = sq.apply(new String[] {"--smooth-all", "--out", tmp.resolve("sq-all").toString()});
        assertEquals(0, all.code(), all.err());
        assertFalse(all.out().contains(", 0 at run time"), "o_proj and down_proj scaled at run time: " + all.out());
        Run strong = sq.apply(new String[] {"--alpha", "0.9", "--out", tmp.resolve("sq-09").toString()});
        assertEquals(0, strong.code(), strong.err());
        assertFalse(java.util.Arrays.equals(Files.readAllBytes(tmp.resolve("sq").resolve("model.safetensors")),
                Files.readAllBytes(tmp.resolve("sq-09").resolve("model.safetensors"))), "alpha changes the weights");
        Run explicitDefault = sq.apply(new String[] {"--alpha", "0.5", "--out", tmp.resolve("sq-05").toString()});
        assertEquals(0, explicitDefault.code(), explicitDefault.err());
        assertTrue(java.util.Arrays.equals(Files.readAllBytes(tmp.resolve("sq").resolve("model.safetensors")),
                Files.readAllBytes(tmp.resolve("sq-05").resolve("model.safetensors"))), "--alpha 0.5 is the default");
        Run bad = sq.apply(new String[] {"--alpha", "1.5", "--out", tmp.resolve("sq-bad").toString()});
        assertEquals(Main.EXIT_BAD_INPUT, bad.code());
        assertTrue(bad.err().contains("--alpha: expected a migration strength in [0, 1], got 1.5"), bad.err());
        assertFalse(Files.exists(tmp.resolve("sq-bad")));
        Run rtn = run("quantize", "--model", fx.model.toString(), "--stats", fx.stats.toString(), "--method", "rtn",
                "--wbits", "4", "--abits", "4", "--alpha", "0.9", "--out", tmp.resolve("rtn-alpha").toString());
        assertEquals(Main.EXIT_BAD_INPUT, rtn.code());
        assertTrue(rtn.err().contains("--alpha: expected --method smoothquant, got --method rtn"), rtn.err());
    }

    @Test
    void quantizeWritesACheckpointWithItsReport() throws Exception {
        Path out = tmp.resolve("qvlm-w4a4");
        Run r = run("quantize", "--model", fx.model.toString(), "--stats", fx.stats.toString(), "--method", "qvlm",
                "--wbits", "4", "--abits", "4", "--p-grid", "1,0.99", "--veo-samples", "2", "--veo-epochs", "1",
                "--veo-batch", "2", "--out", out.toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().startsWith("qvlm q-vlm: greedy "), r.out());
        assertTrue(r.out().contains("packed linears"), r.out());
        for (String stage : List.of("qvlm: q-vlm (CDM on, VEO on)", "qvlm: VEO on 2 samples", "qvlm: VEO epoch 1/1",
                "qvlm: VEO loss", "on the quantized forward", "qvlm: partition", "qvlm: block 1/")) {
            assertTrue(r.err().contains(stage), stage + " in " + r.err());
        }
        JsonNode report = JSON.readTree(out.resolve(QvlmMethod.REPORT_FILE).toFile());
        assertEquals("q-vlm", report.get("configuration").asText());
        assertEquals(QvlmFixture.CALIB_SEED, report.get("veo").get("config").get("seed").asLong());
        assertEquals(4, report.get("veo").get("config").get("bits").asInt(), "the entropy grid has 2^abits levels");
        assertEquals("data", report.get("veo").get("samples").get("source").asText());
        assertEquals("LETTER", report.get("veo").get("samples").get("answer_style").asText());
        assertEquals(QvlmFixture.CALIB_SAMPLES, report.get("calibration").get("prompts").asInt());
        try (LlavaModel q = LlavaModel.load(out)) {
            assertTrue(q.linears().stream().anyMatch(l -> l.inputQuantizer() != null));
        }

        // more VEO samples than the train split has problems with an image: exit 2, nothing written
        Path bad = tmp.resolve("qvlm-bad");
        r = run("quantize", "--model", fx.model.toString(), "--stats", fx.stats.toString(), "--method", "qvlm",
                "--wbits", "4", "--abits", "4", "--veo-samples", "99", "--out", bad.toString());
        assertEquals(Main.EXIT_BAD_INPUT, r.code());
        assertTrue(r.err().contains("VEO config key samples: expected at most") && r.err().contains("got 99"), r.err());
        assertFalse(Files.exists(bad));
    }

    @Test
    void weightOnlyQvlmGoesThroughThePackedExport() throws Exception {
        Path out = tmp.resolve("ckpt");
        Run r = run("quantize", "--model", fx.model.toString(), "--stats", fx.stats.toString(), "--method", "qvlm",
                "--wbits", "4", "--out", out.toString());
        assertEquals(0, r.code(), r.err());
        assertEquals("qvlm", JSON.readTree(out.resolve(QuantizedLayouts.FILE).toFile()).get("method").asText());
    }

    @Test
    void nf4WeightRoundingWritesNf4WeightsAndDoubleQuantNeedsIt() throws Exception {
        Path out = tmp.resolve("ckpt-nf4");
        Run r = run("quantize", "--model", fx.model.toString(), "--stats", fx.stats.toString(), "--method", "qvlm",
                "--wbits", "4", "--weight-rounding", "nf4", "--double-quant", "--out", out.toString());
        assertEquals(0, r.code(), r.err());
        String layout = Files.readString(out.resolve(QuantizedLayouts.FILE)).toLowerCase(java.util.Locale.ROOT);
        assertTrue(layout.contains("nf4"), layout);
        Path bad = tmp.resolve("ckpt-dq");
        r = run("quantize", "--model", fx.model.toString(), "--stats", fx.stats.toString(), "--method", "qvlm",
                "--wbits", "4", "--double-quant", "--out", bad.toString());
        assertEquals(Main.EXIT_BAD_INPUT, r.code());
        assertTrue(r.err().contains("--double-quant: expected --method nf4 or --method qvlm --weight-rounding nf4"),
                r.err());
        assertFalse(Files.exists(bad));
    }

    @Test
    void analyzeWritesTableSummaryAndPlot() throws Exception {
        Path out = tmp.resolve("analysis");
        Run r = run("analyze", "--model", fx.model.toString(), "--stats", fx.stats.toString(), "--layer", "1",
                "--p-grid", "1,0.99,0.98", "--out", out.toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("layers 1,2 over " + QvlmFixture.CALIB_SAMPLES + " prompts"), r.out());
        List<String> lines = Files.readAllLines(out.resolve(DedAnalysis.TABLE_FILE));
        assertEquals(QvlmFixture.CALIB_SAMPLES + 1, lines.size());
        for (String line : lines.subList(1, lines.size())) {
            String[] f = line.split(",");
            double errLw = Double.parseDouble(f[4]);
            double errJoint = Double.parseDouble(f[5]);
            assertTrue(errJoint <= errLw, line);
            assertEquals(errLw - errJoint, Double.parseDouble(f[6]), 0.0, line);
            assertTrue(Double.parseDouble(f[2]) > 0, line);
        }
        JsonNode summary = JSON.readTree(out.resolve(DedAnalysis.SUMMARY_FILE).toFile());
        assertEquals(1, summary.get("layer").asInt());
        assertTrue(summary.get("entropy").has("r2") && summary.get("quant_error").has("r2"));
        BufferedImage png = ImageIO.read(out.resolve(DedAnalysis.PLOT_FILE).toFile());
        assertEquals(2 * ScatterPlot.PANEL_WIDTH, png.getWidth());
        assertEquals(ScatterPlot.HEIGHT, png.getHeight());
    }

    @Test
    void badOptionsExitWithCode2() {
        Run r = run("analyze", "--model", fx.model.toString(), "--stats", fx.stats.toString(), "--layer",
                String.valueOf(QvlmFixture.TEXT_LAYERS - 1), "--out", tmp.resolve("bad").toString());
        assertEquals(Main.EXIT_BAD_INPUT, r.code());
        assertTrue(r.err().contains("--layer " + (QvlmFixture.TEXT_LAYERS - 1)), r.err());
        assertFalse(Files.exists(tmp.resolve("bad")));
        r = run("quantize", "--model", fx.model.toString(), "--stats", fx.stats.toString(), "--method", "qvlm",
                "--wbits", "4", "--abits", "4", "--partition", "best", "--search-only", "--out",
                tmp.resolve("bad2").toString());
        assertEquals(Main.EXIT_BAD_INPUT, r.code());
        assertTrue(r.err().contains("--partition: expected greedy or dp, got 'best'"), r.err());
    }
}
