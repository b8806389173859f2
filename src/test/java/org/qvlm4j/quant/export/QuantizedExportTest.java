package org.qvlm4j.quant.export;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
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
import org.qvlm4j.quant.calib.ModelFingerprint;
import org.qvlm4j.quant.methods.Gptq;
import org.qvlm4j.quant.methods.Nf4Weights;
import org.qvlm4j.quant.methods.QuantMethod;
import org.qvlm4j.quant.methods.Rtn;

/**
 * Packed checkpoints on the tiny LLaVA fixture: RTN W8A16 / W4A16, GPTQ and NF4 exported, reloaded
 * with the low-bit kernels and compared with the in-memory fake-quantized model; sizes against the
 * formats' byte layouts; the quantize command; what the export refuses; no output left by a failed
 * write. Activation quantization, smoothing scales and low-rank terms: {@link ActivationExportTest}.
 */
class QuantizedExportTest {
    static final Path TINY = ExportFixture.TINY;
    /** Packed kernels sum (q - z)·s·x in another order than the F32 GEMM over the dequantized image. */
    static final double LOGITS_REL_TOL = 1e-5;
    static final int NF4_TEST_BLOCK = 32;

    @TempDir
    Path tmp;
    /** Statistics shared by the tests (they only read them), by digest and Hessian choice. */
    @TempDir
    static Path shared;
    private static final Map<String, Path> STATS = new HashMap<>();

    private final ExportFixture fx = new ExportFixture();
    private final int[] ids = fx.ids;
    private final float[] pixels = fx.pixels;

    /** Statistics of every linear input for the given digest, with or without Hessians. */
    private Path stats(String digest, boolean hessian) {
        return STATS.computeIfAbsent(digest + "/" + hessian, key -> fx.stats(
                shared.resolve("stats-" + STATS.size()), digest, hessian));
    }

    private Path stats(String digest) {
        return stats(digest, false);
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
            double err = ExportFixture.relErr(got, want);
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
        assertEquals(ExportFixture.CALIB_SEED, cfg.path("calibration").path("seed").asLong());
        assertEquals(ExportFixture.PIDS.get(1), cfg.path("calibration").path("samples").get(1).asText());
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
    void quantizeCommandWritesLoadableCheckpointsAndRejectsUnknownActivationBits() {
        Path st = stats();
        StringWriter so = new StringWriter();
        StringWriter se = new StringWriter();
        CommandLine cl = new CommandLine(new QuantizeCommand()).setOut(new PrintWriter(so, true))
                .setErr(new PrintWriter(se, true));
        Path w4 = tmp.resolve("cli-w4");
        int code = cl.execute("--model", TINY.toString(), "--method", "rtn", "--wbits", "4", "--abits", "16",
                "--stats", st.toString(), "--out", w4.toString());
        assertEquals(0, code, se.toString());
        try (LlavaModel q = LlavaModel.load(w4)) {
            Linear gate = q.linears().stream().filter(l -> l.name().equals("llm.layers.0.mlp.gate_proj"))
                    .findFirst().orElseThrow();
            assertEquals(QuantFormat.INT4, gate.packed().format());
            assertNull(gate.inputQuantizer());
        }
        // W8A8 with symmetric per-token inputs everywhere: every input runs integer codes
        Path w8a8 = tmp.resolve("cli-w8a8");
        code = cl.execute("--model", TINY.toString(), "--method", "rtn", "--wbits", "8", "--abits", "8",
                "--override", "all=w8-asym-channel+a8-sym-token-dynamic", "--stats", st.toString(),
                "--out", w8a8.toString());
        assertEquals(0, code, se.toString());
        assertTrue(so.toString().contains("inputs: 28 integer, 0 fake"), so.toString());
        try (LlavaModel q = LlavaModel.load(w8a8)) {
            for (Linear l : q.linears()) {
                boolean planned = QuantPreset.quantizedByDefault(TensorCategory.of(l.name()));
                assertEquals(planned, l.integerInputs(), l.name());
            }
        }
        // nf4 blocks of 64 do not tile rows of 32 or 37: each row is one block, double-quantized
        Path nf4 = tmp.resolve("cli-nf4");
        code = cl.execute("--model", TINY.toString(), "--method", "nf4", "--wbits", "4", "--double-quant",
                "--stats", st.toString(), "--out", nf4.toString());
        assertEquals(0, code, se.toString());
        try (LlavaModel q = LlavaModel.load(nf4)) {
            for (Linear l : q.linears()) {
                if (QuantPreset.quantizedByDefault(TensorCategory.of(l.name()))) {
                    assertEquals(QuantFormat.NF4, l.packed().format(), l.name());
                    assertEquals(l.inFeatures(), l.packed().groupSize(), l.name());
                }
            }
        }
        int bad = cl.execute("--model", TINY.toString(), "--method", "rtn", "--wbits", "8", "--abits", "5",
                "--stats", st.toString(), "--out", tmp.resolve("cli-w8a5").toString());
        assertEquals(2, bad);
        assertTrue(se.toString().contains("--abits: expected 16 or a preset's activation bits (8, 6, 4), got 5"),
                se.toString());
        assertFalse(Files.exists(tmp.resolve("cli-w8a5")));
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
    void refusesPercentileInputsAndOffGridWeights() {
        Path out = tmp.resolve("q");
        Path st = stats();
        QuantPlan pct = QuantPlan.builder().override("all=w8-asym-channel+a8-asym-token-dynamic-pct0.99").build();
        IllegalArgumentException a = assertThrows(IllegalArgumentException.class, () -> QuantizedExport.run(
                new QuantizedExport.Request(TINY, st, out, new Rtn(), pct)));
        assertTrue(a.getMessage().contains("a8-asym-token-dynamic-pct0.99") && a.getMessage().contains("clips by a ratio"),
                a.getMessage());
        // NF4 weights under a uniform plan spec: off the INT4 grid, and not by a low-rank term
        IllegalArgumentException z = assertThrows(IllegalArgumentException.class, () -> QuantizedExport.run(
                new QuantizedExport.Request(TINY, st, out, new Nf4Weights(new Nf4Weights.Config(NF4_TEST_BLOCK, false)),
                        weightOnly(QuantPreset.W4A16.weightSpec()))));
        assertTrue(z.getMessage().contains("not on the w4-asym-g128") && z.getMessage().contains("low-rank"),
                z.getMessage());
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
