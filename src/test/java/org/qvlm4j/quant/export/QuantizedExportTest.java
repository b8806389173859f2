package org.qvlm4j.quant.export;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.SplittableRandom;
import java.util.function.Supplier;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qvlm4j.cli.Main;
import org.qvlm4j.cli.QuantizeCommand;
import picocli.CommandLine;
import org.qvlm4j.io.safetensors.SafeTensors;
import org.qvlm4j.io.safetensors.TensorEntry;
import org.qvlm4j.kernels.DType;
import org.qvlm4j.kernels.QuantFormat;
import org.qvlm4j.model.Linear;
import org.qvlm4j.model.LlavaModel;
import org.qvlm4j.model.QuantizedLayouts;
import org.qvlm4j.quant.LinearQuant;
import org.qvlm4j.quant.QuantPlan;
import org.qvlm4j.quant.QuantPreset;
import org.qvlm4j.quant.QuantSpec;
import org.qvlm4j.quant.TensorCategory;
import org.qvlm4j.quant.calib.CalibrationStats;
import org.qvlm4j.quant.calib.CalibrationTap;
import org.qvlm4j.quant.calib.Calibrator;
import org.qvlm4j.quant.calib.ModelFingerprint;
import org.qvlm4j.quant.calib.SiteStats;
import org.qvlm4j.quant.methods.Gptq;
import org.qvlm4j.quant.methods.Nf4Weights;
import org.qvlm4j.quant.methods.QuantMethod;
import org.qvlm4j.quant.methods.Rtn;
import org.qvlm4j.quant.methods.ZeroQuantV2;

/**
 * Packed checkpoints on the tiny LLaVA fixture: RTN W8A16 / W4A16 exported, reloaded with the
 * low-bit kernels and compared with the in-memory fake-quantized model; sizes against the formats'
 * byte layouts; what the export refuses; no output left by a failed write.
 */
class QuantizedExportTest {
    static final Path TINY = Path.of("src/test/resources/fixtures/tiny-llava");
    /** Packed kernels sum (q - z)·s·x in another order than the F32 GEMM over the dequantized image. */
    static final double LOGITS_REL_TOL = 1e-5;
    static final long SEED = 3;
    static final long CALIB_SEED = 17;
    static final int CALIB_SAMPLES = 2;
    static final int NF4_TEST_BLOCK = 32;
    static final List<String> PIDS = List.of("p1", "p7");

    @TempDir
    Path tmp;

    private int[] ids;
    private float[] pixels;

    private void loadPrompt() {
        try (SafeTensors ref = SafeTensors.open(TINY.resolve("reference_forward.safetensors"))) {
            long[] l = ref.get("input_ids").toLongArray();
            ids = new int[l.length];
            for (int i = 0; i < l.length; i++) {
                ids[i] = Math.toIntExact(l[i]);
            }
            pixels = ref.get("pixel_values").toFloatArray();
        }
    }

    /** Statistics of every linear input over seeded random images with the fixture prompt, for the given digest. */
    private Path stats(String digest) {
        return stats(digest, false);
    }

    private Path stats(String digest, boolean hessian) {
        loadPrompt();
        Path dir = tmp.resolve("stats-" + digest.hashCode() + "-" + hessian);
        try (LlavaModel m = LlavaModel.load(TINY)) {
            List<String> sites = m.linears().stream().map(l -> l.name() + ".in").toList();
            SiteStats.Options o = new SiteStats.Options(256, 0, hessian, false);
            CalibrationTap tap = new CalibrationTap(site -> sites.contains(site) ? o : null, null);
            m.setActivationTap(tap);
            SplittableRandom rnd = new SplittableRandom(CALIB_SEED);
            for (int s = 0; s < CALIB_SAMPLES; s++) {
                float[] p = new float[pixels.length];
                for (int i = 0; i < p.length; i++) {
                    p[i] = (float) (2 * rnd.nextDouble() - 1);
                }
                m.forward(ids, p);
            }
            m.setActivationTap(null);
            ObjectNode manifest = new ObjectMapper().createObjectNode();
            manifest.put("format", CalibrationStats.FORMAT).put("version", CalibrationStats.FORMAT_VERSION);
            manifest.put("seed", CALIB_SEED);
            PIDS.forEach(manifest.putArray("samples")::add);
            manifest.putObject("model").put("digest", digest);
            CalibrationStats.write(dir, manifest, tap.stats(), Calibrator.PERCENTILE_GRID, false);
        }
        return dir;
    }

    private Path stats() {
        return stats(ModelFingerprint.of(TINY).digest());
    }

    private static QuantPlan weightOnly(QuantSpec w) {
        QuantPlan.Builder b = QuantPlan.builder();
        for (TensorCategory c : TensorCategory.values()) {
            if (QuantPreset.quantizedByDefault(c)) {
                b.set(c, new LinearQuant(w, null));
            }
        }
        return b.build();
    }

    private static double relErr(float[] a, float[] b) {
        double num = 0;
        double den = 0;
        for (int i = 0; i < b.length; i++) {
            double d = (double) a[i] - b[i];
            num += d * d;
            den += (double) b[i] * b[i];
        }
        return Math.sqrt(num / den);
    }

    private void exportMatchesFakeQuant(QuantPlan plan, QuantFormat format) {
        exportMatchesFakeQuant(plan, format, Rtn::new, false);
    }

    private void exportMatchesFakeQuant(QuantPlan plan, QuantFormat format, Supplier<QuantMethod> method,
                                        boolean hessian) {
        Path statsDir = stats(ModelFingerprint.of(TINY).digest(), hessian);
        Path out = tmp.resolve("q-" + format);
        QuantizedExport.Summary s = QuantizedExport.run(new QuantizedExport.Request(TINY, statsDir, out, method.get(),
                plan));
        float[] want;
        int planned = 0;
        long expectedPacked = 0;
        try (LlavaModel fp = LlavaModel.load(TINY); CalibrationStats st = CalibrationStats.load(statsDir)) {
            for (Linear l : fp.linears()) {
                QuantSpec w = plan.forLinear(l.name()).weight();
                if (w != null) {
                    planned++;
                    int n = l.outFeatures();
                    int k = l.inFeatures();
                    int groups = (w.granularity() == QuantSpec.Granularity.PER_GROUP
                            || w.granularity() == QuantSpec.Granularity.BLOCK) && w.groupSize() < k
                            ? k / w.groupSize() : 1;
                    // codes + F32 scales + U8 zero points (asymmetric uniform only)
                    expectedPacked += n * format.rowBytes(k) + (w.symmetric() ? 4L : 5L) * n * groups;
                }
            }
            method.get().apply(fp, plan, st);
            want = fp.forward(ids, pixels);
        }
        assertEquals(planned, s.packedLinears());
        assertEquals(expectedPacked, s.packedBytes());
        try (LlavaModel q = LlavaModel.load(out)) {
            int packed = 0;
            for (Linear l : q.linears()) {
                if (plan.forLinear(l.name()).weight() != null) {
                    assertNotNull(l.packed(), l.name());
                    assertEquals(format, l.packed().format(), l.name());
                    packed++;
                } else {
                    assertNull(l.packed(), l.name());
                }
            }
            assertEquals(planned, packed);
            float[] got = q.forward(ids, pixels);
            double err = relErr(got, want);
            assertTrue(err <= LOGITS_REL_TOL, "packed vs fake-quant logits rel err " + err);
        }
        // the stored codes are the format's layout: qweight bytes per linear = N * rowBytes(K), U8
        try (SafeTensors st = SafeTensors.open(out.resolve(QuantizedExport.WEIGHTS_FILE));
             SafeTensors src = SafeTensors.open(TINY.resolve("model.safetensors"))) {
            String key = "language_model.model.layers.0.mlp.up_proj";
            TensorEntry qw = st.get(key + ".qweight");
            long[] shape = src.get(key + ".weight").shape();
            assertEquals(DType.U8, qw.dtype());
            assertEquals(shape[0] * format.rowBytes(Math.toIntExact(shape[1])), qw.data().byteSize());
            assertFalse(st.names().contains(key + ".weight"));
        }
    }

    @Test
    void rtnW8a16RoundTripsThroughPackedCheckpoint() {
        exportMatchesFakeQuant(weightOnly(QuantPreset.W8A16.weightSpec()), QuantFormat.INT8);
    }

    @Test
    void rtnW4a16RoundTripsThroughPackedCheckpoint() throws IOException {
        exportMatchesFakeQuant(weightOnly(QuantPreset.W4A16.weightSpec()), QuantFormat.INT4);
        JsonNode cfg = new ObjectMapper().readTree(tmp.resolve("q-INT4").resolve(QuantizedLayouts.FILE).toFile());
        assertEquals("rtn", cfg.path("method").asText());
        assertEquals(CALIB_SEED, cfg.path("calibration").path("seed").asLong());
        assertEquals(PIDS.get(1), cfg.path("calibration").path("samples").get(1).asText());
        assertEquals(weightOnly(QuantPreset.W4A16.weightSpec()), QuantPlan.fromJson(cfg.path("plan").toString()));
        assertEquals("INT4", cfg.path("tensors").path("llm.layers.1.mlp.up_proj").path("format").asText());
        for (String f : List.of("config.json", "preprocessor_config.json")) {
            if (Files.exists(TINY.resolve(f))) {
                assertEquals(Files.readString(TINY.resolve(f)), Files.readString(tmp.resolve("q-INT4").resolve(f)));
            }
        }
    }

    @Test
    void gptqW4RoundTripsThroughPackedCheckpoint() {
        exportMatchesFakeQuant(weightOnly(QuantSpec.weight(4, false, QuantSpec.Granularity.PER_CHANNEL, 0)),
                QuantFormat.INT4, () -> new Gptq(Gptq.Config.DEFAULT), true);
    }

    @Test
    void nf4RoundTripsThroughPackedCheckpoint() {
        // blocks of 32 tile rows of K = 32; the K = 37 linears stay floating point
        QuantSpec nf4b32 = new QuantSpec(QuantSpec.Format.NF4, QuantSpec.Target.WEIGHT, 4, true,
                QuantSpec.Granularity.BLOCK, NF4_TEST_BLOCK, false, QuantSpec.Clip.NONE, 0);
        QuantPlan plan = weightOnly(nf4b32).toBuilder().override("vision.fc2=fp;llm.down=fp").build();
        exportMatchesFakeQuant(plan, QuantFormat.NF4, () -> new Nf4Weights(new Nf4Weights.Config(NF4_TEST_BLOCK, false)),
                false);
    }

    @Test
    void inspectShowsPackedFormats() {
        Path out = tmp.resolve("q");
        QuantizedExport.run(new QuantizedExport.Request(TINY, stats(), out, new Rtn(),
                weightOnly(QuantPreset.W8A16.weightSpec())));
        StringWriter so = new StringWriter();
        int code = Main.run(new String[] {"inspect", out.toString()}, new PrintWriter(so, true),
                new PrintWriter(new StringWriter(), true));
        assertEquals(0, code);
        String text = so.toString();
        assertTrue(text.contains("quantized  method rtn"), text);
        assertTrue(text.matches("(?s).*language_model\\.model\\.layers\\.0\\.mlp\\.down_proj\\.qweight\\s+U8.*"
                + "\\(packed INT8 group 37\\).*"), text);
        // packed codes count as the weights they stand for: the same total as the FP fixture (38,570)
        assertTrue(text.matches("(?s).*total\\s+38,570\\s.*"), text);
    }

    @Test
    void quantizeCommandWritesLoadableCheckpointAndRejectsActivationBits() {
        Path st = stats();
        Path out = tmp.resolve("cli-w4");
        StringWriter so = new StringWriter();
        StringWriter se = new StringWriter();
        CommandLine cl = new CommandLine(new QuantizeCommand()).setOut(new PrintWriter(so, true))
                .setErr(new PrintWriter(se, true));
        int code = cl.execute("--model", TINY.toString(), "--method", "rtn", "--wbits", "4", "--abits", "16",
                "--stats", st.toString(), "--out", out.toString());
        assertEquals(0, code, se.toString());
        try (LlavaModel q = LlavaModel.load(out)) {
            assertEquals(QuantFormat.INT4, q.linears().stream().filter(l -> l.name().equals("llm.layers.0.mlp.gate_proj"))
                    .findFirst().orElseThrow().packed().format());
        }
        int bad = cl.execute("--model", TINY.toString(), "--method", "rtn", "--wbits", "8", "--abits", "8",
                "--stats", st.toString(), "--out", tmp.resolve("cli-w8a8").toString());
        assertEquals(2, bad);
        assertTrue(se.toString().contains("--abits 16"), se.toString());
        assertFalse(Files.exists(tmp.resolve("cli-w8a8")));
    }

    @Test
    void refusesExistingOutput() throws IOException {
        Path out = Files.createDirectory(tmp.resolve("exists"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> QuantizedExport.run(
                new QuantizedExport.Request(TINY, stats(), out, new Rtn(), weightOnly(QuantPreset.W8A16.weightSpec()))));
        assertTrue(e.getMessage().contains("already exists"), e.getMessage());
    }

    @Test
    void refusesStatisticsOfAnotherModel() {
        Path out = tmp.resolve("q");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> QuantizedExport.run(
                new QuantizedExport.Request(TINY, stats("another-model"), out, new Rtn(),
                        weightOnly(QuantPreset.W8A16.weightSpec()))));
        assertTrue(e.getMessage().contains("model.digest"), e.getMessage());
        assertFalse(Files.exists(out));
    }

    @Test
    void refusesActivationQuantizationAndOffGridWeights() {
        Path out = tmp.resolve("q");
        Path st = stats();
        IllegalArgumentException a = assertThrows(IllegalArgumentException.class, () -> QuantizedExport.run(
                new QuantizedExport.Request(TINY, st, out, new Rtn(), QuantPlan.preset(QuantPreset.W8A8))));
        assertTrue(a.getMessage().contains("--abits 16"), a.getMessage());
        IllegalArgumentException z = assertThrows(IllegalArgumentException.class, () -> QuantizedExport.run(
                new QuantizedExport.Request(TINY, st, out, new ZeroQuantV2(ZeroQuantV2.Config.DEFAULT),
                        weightOnly(QuantPreset.W4A16.weightSpec()))));
        assertTrue(z.getMessage().contains("not on the"), z.getMessage());
        assertFalse(Files.exists(out));
    }

    @Test
    void failedWriteLeavesNothing() throws IOException {
        Path out = tmp.resolve("q");
        Path st = stats();
        RuntimeException e = assertThrows(RuntimeException.class, () -> QuantizedExport.run(
                new QuantizedExport.Request(TINY, st, out, new Rtn(), weightOnly(QuantPreset.W8A16.weightSpec())),
                dir -> {
                    assertTrue(Files.isRegularFile(dir.resolve(QuantizedExport.WEIGHTS_FILE)));
                    throw new IOException("disk full (simulated)");
                }));
        assertTrue(e.getMessage().contains(out.toString()), e.getMessage());
        assertFalse(Files.exists(out));
        try (Stream<Path> s = Files.list(tmp)) {
            assertTrue(s.noneMatch(p -> p.getFileName().toString().startsWith("q")), "leftover beside " + out);
        }
    }
}
