package org.qvlm4j.quant.export;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
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
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;
import java.util.function.Supplier;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.qvlm4j.cli.Main;
import org.qvlm4j.io.safetensors.SafeTensors;
import org.qvlm4j.kernels.DType;
import org.qvlm4j.kernels.WeightMatrix;
import org.qvlm4j.model.ActivationTap;
import org.qvlm4j.model.Linear;
import org.qvlm4j.model.LlavaModel;
import org.qvlm4j.model.QuantizedLayouts;
import org.qvlm4j.quant.Nf4Quantizer;
import org.qvlm4j.quant.QuantPlan;
import org.qvlm4j.quant.QuantPreset;
import org.qvlm4j.quant.QuantSpec;
import org.qvlm4j.quant.TensorCategory;
import org.qvlm4j.quant.UniformQuantizer;
import org.qvlm4j.quant.calib.CalibrationStats;
import org.qvlm4j.quant.calib.ModelFingerprint;
import org.qvlm4j.quant.methods.Awq;
import org.qvlm4j.quant.methods.Gptq;
import org.qvlm4j.quant.methods.Nf4Weights;
import org.qvlm4j.quant.methods.QuantMethod;
import org.qvlm4j.quant.methods.QuantResult;
import org.qvlm4j.quant.methods.Rtn;
import org.qvlm4j.quant.methods.SmoothQuant;
import org.qvlm4j.quant.methods.ZeroQuantV2;

/**
 * Quantized checkpoints with activation quantization, smoothing scales and low-rank terms on the
 * tiny LLaVA fixture: every method exported, loaded with {@link LlavaModel#load} and compared with
 * the in-memory {@link QuantResult} model (its fake-quantized weights and activation tap), on the
 * logits and linear by linear; scales folded into norms against SmoothQuant's formula; LoRC factors
 * against {@link ZeroQuantV2#lorc}; NF4 double quantization against {@link Nf4Quantizer}; the integer
 * path against the fake path; malformed config entries; what inspect shows.
 */
class ActivationExportTest {
    /**
     * Largest |logit difference| between the loaded checkpoint and the in-memory model when no
     * quantized activation differs between them. They compute the same quantized values and differ
     * only in float summation order (packed kernels against the F32 GEMM over the dequantized image,
     * (x / s) Q against x (Q / s), Q x + U (V x) against (Q + U V) x, integer segment sums against float
     * products); measured at most 3.3e-7 here, for logits of magnitude about 1. A wrong scale, range,
     * norm or path moves logits by 1e-3 or more.
     */
    static final double LOGITS_ABS_TOL = 1e-5;
    /**
     * Per linear, fed the same input: largest output difference relative to the output's largest
     * magnitude (measured at most 3.4e-7). Also the float noise allowed between two runs' inputs of a
     * linear, and the difference above which two quantized inputs count as different codes (a code
     * step is at least 1/255 of the range).
     */
    static final double LINEAR_REL_TOL = 1e-5;
    /** Smoothing without rounding changes the FP logits by float rounding only (relative L2). */
    static final double FP_REL_TOL = 1e-5;
    /** Low-rank factors in F32 against ZeroQuant-V2's float64 correction, relative to max |w|. */
    static final double LORC_REL_TOL = 1e-5;
    static final int NF4_BLOCK = 32;
    static final double ALPHA = 0.5;

    @TempDir
    static Path tmp;
    static ExportFixture fx;
    static Path stats;
    static float[] fp;
    static int counter;

    @BeforeAll
    static void setUp() {
        fx = new ExportFixture();
        stats = fx.stats(tmp.resolve("stats"), ModelFingerprint.of(ExportFixture.TINY).digest(), true);
        try (LlavaModel m = LlavaModel.load(ExportFixture.TINY)) {
            fp = m.forward(fx.ids, fx.pixels);
        }
    }

    @AfterAll
    static void tearDown() {
        fx = null;
    }

    static final Map<String, Supplier<QuantMethod>> METHODS = Map.of(
            "rtn", Rtn::new,
            "smoothquant", () -> new SmoothQuant(SmoothQuant.Config.DEFAULT),
            "awq", () -> new Awq(Awq.Config.DEFAULT),
            "gptq", () -> new Gptq(Gptq.Config.DEFAULT),
            "nf4", () -> new Nf4Weights(new Nf4Weights.Config(NF4_BLOCK, false)),
            "nf4-dq", () -> new Nf4Weights(new Nf4Weights.Config(NF4_BLOCK, true)),
            "zeroquant-v2", () -> new ZeroQuantV2(ZeroQuantV2.Config.DEFAULT));

    /** Symmetric per-token inputs in the vision tower and projector, per-tensor static in the LLM: all integer. */
    static final String INT8 = "all=w8-asym-channel+a8-sym-token-dynamic;llm=w8-sym-channel+a8-sym-tensor-static";
    static final String INT4 = "all=w4-asym-channel+a4-sym-token-dynamic;llm=w6-asym-channel+a4-sym-tensor-static;"
            + "vision.fc1=w4-sym-channel+a8-sym-g32-dynamic";
    /** With ZeroQuant-V2 on this machine one 8-bit input code flips at a rounding boundary (vision out_proj). */
    static final String INT4A8 = "all=w4-asym-channel+a8-sym-token-dynamic";

    /** The preset with NF4 weights: blocks of 32, or whole rows of the K = 37 linears. */
    static QuantPlan nf4Plan(QuantPreset p, boolean doubleQuant) {
        QuantPlan.Builder b = QuantPlan.builder().preset(p);
        for (TensorCategory c : TensorCategory.values()) {
            if (QuantPreset.quantizedByDefault(c)) {
                int block = c == TensorCategory.VISION_FC2 || c == TensorCategory.LLM_DOWN ? 37 : NF4_BLOCK;
                b.weight(c, new QuantSpec(QuantSpec.Format.NF4, QuantSpec.Target.WEIGHT, 4, true,
                        QuantSpec.Granularity.BLOCK, block, false, QuantSpec.Clip.NONE,
                        doubleQuant ? QuantSpec.NF4_DOUBLE_QUANT_BLOCK : 0));
            }
        }
        return b.build();
    }

    static QuantPlan plan(String method, String preset) {
        return switch (preset) {
            case "int8" -> QuantPlan.builder().override(INT8).build();
            case "int4" -> QuantPlan.builder().override(INT4).build();
            case "int4a8" -> QuantPlan.builder().override(INT4A8).build();
            default -> method.startsWith("nf4") ? nf4Plan(QuantPreset.parse(preset), method.equals("nf4-dq"))
                    : QuantPlan.preset(QuantPreset.parse(preset));
        };
    }

    static List<Arguments> cases() {
        return List.of(Arguments.of("rtn", "w8a8"), Arguments.of("rtn", "w4a4"), Arguments.of("smoothquant", "w4a4"),
                Arguments.of("awq", "w4a4"), Arguments.of("gptq", "w4a4"), Arguments.of("nf4", "w4a4"),
                Arguments.of("zeroquant-v2", "w4a4"), Arguments.of("awq", "w4a16"), Arguments.of("nf4-dq", "w4a16"),
                Arguments.of("rtn", "int8"), Arguments.of("awq", "int4"), Arguments.of("zeroquant-v2", "int4"),
                Arguments.of("zeroquant-v2", "int4a8"));
    }

    static Path export(String method, QuantPlan plan) {
        Path out = tmp.resolve(method + "-" + (counter++));
        QuantizedExport.run(new QuantizedExport.Request(ExportFixture.TINY, stats, out, METHODS.get(method).get(), plan));
        return out;
    }

    /**
     * One forward pass: the logits and, per linear in forward order, its input as it arrived, that
     * input as quantized (after any input scale; the input itself when not quantized) and its output.
     */
    record Run(float[] logits, Map<String, float[]> raw, Map<String, float[]> quantized, Map<String, float[]> out) {
    }

    /** A run of m with the activation tap inner (the in-memory model's, which quantizes; or null) inside a recorder. */
    static Run run(LlavaModel m, ActivationTap inner) {
        Map<String, float[]> raw = new LinkedHashMap<>();
        Map<String, float[]> quantized = new HashMap<>();
        Map<String, float[]> out = new HashMap<>();
        m.setActivationTap((site, data, rows, cols) -> {
            String linear = site.substring(0, site.lastIndexOf('.'));
            if (site.endsWith(".in")) {
                raw.put(linear, java.util.Arrays.copyOf(data, rows * cols));
            }
            if (inner != null) {
                inner.onActivation(site, data, rows, cols);
            }
            if (site.endsWith(".in")) {
                quantized.put(linear, java.util.Arrays.copyOf(data, rows * cols));
            } else if (site.endsWith(".out")) {
                out.put(linear, java.util.Arrays.copyOf(data, rows * cols));
            }
        });
        float[] logits = m.forward(fx.ids, fx.pixels);
        m.setActivationTap(null);
        if (inner == null) {
            // a loaded model applies its input transforms after the tap: apply them to the recorded inputs
            for (Linear l : m.linears()) {
                float[] x = quantized.get(l.name());
                int k = l.inFeatures();
                if (l.inputScale() != null) {
                    for (int i = 0; i < x.length; i++) {
                        x[i] /= l.inputScale()[i % k];
                    }
                }
                if (l.inputQuantizer() != null) {
                    l.inputQuantizer().fakeQuantize(x, x.length / k, k);
                }
            }
        }
        return new Run(logits, raw, quantized, out);
    }

    static Run inMemory(String method, QuantPlan plan) {
        try (LlavaModel m = LlavaModel.load(ExportFixture.TINY); CalibrationStats st = CalibrationStats.load(stats)) {
            return run(m, METHODS.get(method).get().apply(m, plan, st).tap());
        }
    }

    /**
     * That model q computes what the run want did: each linear, fed want's input, gives want's output;
     * and over the whole forward pass the linears' inputs agree to float noise until the first
     * quantized input that differs, which must then be a rounding flip (same input, other code: float
     * summation order alone put a value on the other side of a rounding boundary, after which the
     * runs legitimately part); with no flip the logits agree.
     */
    static void assertComputes(String what, Run want, LlavaModel q) {
        for (Linear l : q.linears()) {
            float[] x = want.raw().get(l.name());
            float[] y = want.out().get(l.name());
            float[] y2 = new float[y.length];
            l.forward(x, x.length / l.inFeatures(), y2, null);
            double d = ExportFixture.maxAbsDiff(y2, y);
            assertTrue(d <= LINEAR_REL_TOL * maxAbs(y), what + " " + l.name() + " fed the same input: " + d);
        }
        Run got = run(q, null);
        for (String linear : want.raw().keySet()) {
            float[] a = want.raw().get(linear);
            double d = ExportFixture.maxAbsDiff(got.raw().get(linear), a);
            assertTrue(d <= LINEAR_REL_TOL * maxAbs(a), what + " " + linear + ": inputs differ by " + d
                    + " with no rounding flip before");
            float[] qa = want.quantized().get(linear);
            if (ExportFixture.maxAbsDiff(got.quantized().get(linear), qa) > LINEAR_REL_TOL * maxAbs(qa)) {
                return;
            }
        }
        double d = ExportFixture.maxAbsDiff(got.logits(), want.logits());
        assertTrue(d <= LOGITS_ABS_TOL, what + ": max |logit diff| " + d);
    }

    static double maxAbs(float[] a) {
        double m = 0;
        for (float v : a) {
            m = Math.max(m, Math.abs(v));
        }
        return m;
    }

    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("cases")
    void exportedCheckpointComputesTheInMemoryQuantizedModel(String method, String preset) {
        QuantPlan plan = plan(method, preset);
        Path out = export(method, plan);
        Run want = inMemory(method, plan);
        try (LlavaModel q = LlavaModel.load(out)) {
            assertComputes(method + " " + preset, want, q);
            // quantization did happen: the logits moved away from the FP model's
            assertTrue(ExportFixture.relErr(want.logits(), fp) > 100 * LOGITS_ABS_TOL, method + " " + preset);
            for (Linear l : q.linears()) {
                QuantSpec in = plan.forLinear(l.name()).input();
                assertEquals(in != null, l.inputQuantizer() != null, l.name());
                assertEquals(plan.forLinear(l.name()).weight() != null, l.packed() != null, l.name());
                if (preset.startsWith("int")) {
                    assertEquals(in != null, l.integerInputs(), l.name());
                } else {
                    assertFalse(l.integerInputs(), l.name());
                }
                if (method.equals("zeroquant-v2") && l.packed() != null) {
                    assertEquals(ZeroQuantV2.Config.DEFAULT.rank(), l.lowRank(), l.name());
                }
            }
        }
    }

    /** Linears reading one normalized input share one smoothing scale: q/k/v, gate/up; the rest alone. */
    static final Pattern SHARED = Pattern.compile("(.*\\.layers\\.\\d+\\.)(self_attn\\.[qkv]_proj|mlp\\.(gate|up)_proj)");

    static List<String> groupOf(String linear) {
        Matcher m = SHARED.matcher(linear);
        if (!m.matches()) {
            return List.of(linear);
        }
        return m.group(2).startsWith("self_attn")
                ? List.of(m.group(1) + "self_attn.q_proj", m.group(1) + "self_attn.k_proj", m.group(1) + "self_attn.v_proj")
                : List.of(m.group(1) + "mlp.gate_proj", m.group(1) + "mlp.up_proj");
    }

    /** SmoothQuant's s for linear's group from the statistics and the FP weights. */
    static float[] smoothingScale(LlavaModel fpModel, CalibrationStats st, String linear) {
        List<String> group = groupOf(linear);
        float[] act = st.floats(group.getFirst() + ".in", "channel_absmax");
        float[] wMax = new float[act.length];
        for (Linear l : fpModel.linears()) {
            if (group.contains(l.name())) {
                float[] m = SmoothQuant.columnAbsMax(l.weight().toFloatArray(), l.outFeatures(), l.inFeatures());
                for (int j = 0; j < m.length; j++) {
                    wMax[j] = Math.max(wMax[j], m[j]);
                }
            }
        }
        return SmoothQuant.scales(act, wMax, ALPHA);
    }

    @Test
    void smoothingScalesFoldedIntoNormsOrAppliedAtRunTimeLeaveTheFloatingPointModelUnchanged() throws IOException {
        QuantPlan plan = QuantPlan.preset(QuantPreset.W8A8);
        Path out = tmp.resolve("smooth");
        QuantizedExport.Summary s = QuantizedExport.run(new QuantizedExport.Request(ExportFixture.TINY, stats, out,
                new SmoothQuant(new SmoothQuant.Config(ALPHA, true)), plan));
        assertEquals(18, s.foldedScales()); // q/k/v, gate/up of 2 LLM layers; q/k/v, fc1 of 2 vision layers
        assertEquals(10, s.runtimeScales()); // o, down, out_proj, fc2 of each layer; the projector's two
        JsonNode cfg = new ObjectMapper().readTree(out.resolve(QuantizedLayouts.FILE).toFile());
        assertEquals("norm", cfg.at("/input_scales/vision.layers.1.mlp.fc1/placement").asText());
        assertEquals("[\"vision.layers.1.layer_norm2.weight\",\"vision.layers.1.layer_norm2.bias\"]",
                cfg.at("/input_scales/vision.layers.1.mlp.fc1/norms").toString());
        assertEquals("runtime", cfg.at("/input_scales/llm.layers.0.self_attn.o_proj/placement").asText());
        try (LlavaModel fpModel = LlavaModel.load(ExportFixture.TINY); CalibrationStats st = CalibrationStats.load(stats);
             SafeTensors written = SafeTensors.open(out.resolve(QuantizedExport.WEIGHTS_FILE));
             SafeTensors source = SafeTensors.open(ExportFixture.TINY.resolve(QuantizedExport.WEIGHTS_FILE))) {
            // the folded norm is the original divided by the q/k/v group's s, in F32
            float[] sq = smoothingScale(fpModel, st, "llm.layers.0.self_attn.q_proj");
            String key = "language_model.model.layers.0.input_layernorm.weight";
            assertEquals(DType.F32, written.get(key).dtype());
            float[] g = source.get(key).toFloatArray();
            float[] folded = written.get(key).toFloatArray();
            for (int j = 0; j < g.length; j++) {
                assertEquals(g[j] / sq[j], folded[j], 0f, "channel " + j);
            }
            try (LlavaModel q = LlavaModel.load(out)) {
                Map<String, Linear> orig = new HashMap<>();
                fpModel.linears().forEach(l -> orig.put(l.name(), l));
                for (Linear l : q.linears()) {
                    if (l.packed() == null) {
                        continue;
                    }
                    float[] sRef = smoothingScale(fpModel, st, l.name());
                    if (l.inputScale() != null) {
                        assertArrayEquals(sRef, l.inputScale(), l.name());
                    }
                    // the weight before rounding, W · diag(s), and no input quantization
                    Linear o = orig.get(l.name());
                    float[] w = o.weight().toFloatArray();
                    for (int r = 0; r < o.outFeatures(); r++) {
                        for (int j = 0; j < o.inFeatures(); j++) {
                            w[r * o.inFeatures() + j] *= sRef[j];
                        }
                    }
                    l.replaceWeight(WeightMatrix.ofFloats(w, o.outFeatures(), o.inFeatures()));
                    l.setInputQuantizer(null);
                }
                float[] smoothed = q.forward(fx.ids, fx.pixels);
                double rel = ExportFixture.relErr(smoothed, fp);
                assertTrue(rel < FP_REL_TOL, "smoothed FP logits rel err " + rel);
            }
        }
    }

    @Test
    void lowRankFactorsSitBesideTheGridPartInF32() throws IOException {
        QuantSpec w4 = QuantSpec.weight(4, false, QuantSpec.Granularity.PER_CHANNEL, 0);
        QuantPlan plan = QuantPlan.builder().override("all=" + w4).build();
        Path out = export("zeroquant-v2", plan);
        String name = "llm.layers.0.mlp.down_proj";
        String key = "language_model.model.layers.0.mlp.down_proj";
        int rank = ZeroQuantV2.Config.DEFAULT.rank();
        JsonNode cfg = new ObjectMapper().readTree(out.resolve(QuantizedLayouts.FILE).toFile());
        assertEquals(rank, cfg.at("/tensors/" + name + "/lorc/rank").asInt());
        assertEquals("F32", cfg.at("/tensors/" + name + "/lorc/dtype").asText());
        try (LlavaModel fpModel = LlavaModel.load(ExportFixture.TINY); LlavaModel q = LlavaModel.load(out);
             SafeTensors written = SafeTensors.open(out.resolve(QuantizedExport.WEIGHTS_FILE))) {
            Linear o = fpModel.linears().stream().filter(l -> l.name().equals(name)).findFirst().orElseThrow();
            Linear l = q.linears().stream().filter(x -> x.name().equals(name)).findFirst().orElseThrow();
            int n = o.outFeatures();
            int k = o.inFeatures();
            assertEquals(DType.F32, written.get(key + ".lorc_u").dtype());
            assertArrayEquals(new long[] {n, rank}, written.get(key + ".lorc_u").shape());
            assertArrayEquals(new long[] {rank, k}, written.get(key + ".lorc_v").shape());
            float[] w = o.weight().toFloatArray();
            float[] grid = w.clone();
            new UniformQuantizer(w4).fakeQuantize(grid, n, k);
            assertArrayEquals(grid, l.packed().dequantize(), "the packed part is the RTN grid image");
            float[] image = ZeroQuantV2.lorc(w, grid, n, k, rank);
            float[] u = written.get(key + ".lorc_u").toFloatArray();
            float[] v = written.get(key + ".lorc_v").toFloatArray();
            double dev = 0;
            for (int r = 0; r < n; r++) {
                for (int c = 0; c < k; c++) {
                    double acc = grid[r * k + c];
                    for (int t = 0; t < rank; t++) {
                        acc += (double) u[r * rank + t] * v[t * k + c];
                    }
                    dev = Math.max(dev, Math.abs(acc - image[r * k + c]));
                }
            }
            assertTrue(dev <= LORC_REL_TOL * maxAbs(image), "grid + U V vs ZeroQuant-V2's image: " + dev);
        }
    }

    @Test
    void nf4DoubleQuantizationIsStoredByItsDecodedAbsmax() {
        QuantPlan plan = nf4Plan(QuantPreset.W4A16, true);
        Path out = export("nf4-dq", plan);
        String name = "llm.layers.1.self_attn.v_proj";
        try (LlavaModel fpModel = LlavaModel.load(ExportFixture.TINY); LlavaModel q = LlavaModel.load(out)) {
            Linear o = fpModel.linears().stream().filter(l -> l.name().equals(name)).findFirst().orElseThrow();
            Linear l = q.linears().stream().filter(x -> x.name().equals(name)).findFirst().orElseThrow();
            Nf4Quantizer nq = new Nf4Quantizer(plan.forLinear(name).weight());
            Nf4Quantizer.Nf4Tensor t = nq.quantize(o.weight().toFloatArray(), o.outFeatures(), o.inFeatures());
            assertNotNull(t.doubleQuant());
            assertArrayEquals(Nf4Quantizer.blockAbsmax(t), PackedWeights.scales(l.packed()));
            assertArrayEquals(nq.dequantize(t), l.packed().dequantize());
        }
    }

    @Test
    void integerPathDiffersFromFakeQuantizationOnlyBySummationOrder() throws IOException {
        QuantPlan plan = QuantPlan.builder().override(INT4).build();
        Path out = export("awq", plan);
        Path f = out.resolve(QuantizedLayouts.FILE);
        String integer = Files.readString(f);
        ObjectNode cfg = (ObjectNode) new ObjectMapper().readTree(integer);
        cfg.with("activations").properties().forEach(e -> ((ObjectNode) e.getValue()).put("path", "fake"));
        Files.writeString(f, cfg.toString());
        Run fake;
        try (LlavaModel q = LlavaModel.load(out)) {
            assertTrue(q.linears().stream().noneMatch(Linear::integerInputs));
            fake = run(q, null);
        }
        Files.writeString(f, integer);
        try (LlavaModel q = LlavaModel.load(out)) {
            assertTrue(q.linears().stream().filter(l -> l.packed() != null).allMatch(Linear::integerInputs));
            assertComputes("integer vs fake", fake, q);
        }
    }

    /** A checkpoint with per-tensor static, per-channel static and dynamic input entries. */
    static Path mixedCheckpoint() {
        return export("rtn", QuantPlan.builder().override("all=w8-asym-channel+a8-sym-token-dynamic;"
                + "llm=w8-asym-channel+a8-asym-channel-static;llm.q=w8-asym-channel+a8-sym-tensor-static").build());
    }

    @Test
    void malformedActivationEntriesNameFileKeyExpectedAndActual() throws IOException {
        Path out = mixedCheckpoint();
        Path f = out.resolve(QuantizedLayouts.FILE);
        String original = Files.readString(f);
        String tensor = "llm.layers.0.self_attn.q_proj";
        String channel = "llm.layers.1.mlp.down_proj";
        String token = "vision.layers.0.mlp.fc1";
        record Case(String linear, String field, Consumer<ObjectNode> edit, String expected, String actual) {
        }
        List<Case> cases = List.of(
                new Case(token, "bits", a -> a.put("bits", 9), "an integer 2..8", "9"),
                new Case(token, "granularity", a -> a.put("granularity", "per_row"),
                        "one of per_tensor, per_channel, per_token, per_group", "'per_row'"),
                new Case(token, "symmetric", a -> a.put("symmetric", "yes"), "true or false", "\"yes\""),
                new Case(token, "clip_ratio", a -> a.put("clip_ratio", 0), "a number in (0, 1]", "0"),
                new Case(token, "group_size", a -> a.put("granularity", "per_group"), "an integer > 0 for per_group",
                        "0"),
                new Case(channel, "path", a -> a.put("path", "integer"), "'fake' (asymmetric inputs", "'integer'"),
                new Case(token, "path", a -> a.put("path", "int8"), "'integer' or 'fake'", "\"int8\""),
                new Case(channel, "static.ranges_tensor", a -> a.with("static").put("ranges_tensor", "ranges"),
                        "'act_range'", "\"ranges\""),
                new Case(tensor, "static", a -> a.remove("static"), "an object with the static ranges", "nothing"),
                new Case(tensor, "static.range", a -> a.with("static").putArray("range").add(1.5f),
                        "[lo, hi] (two numbers)", "[1.5]"),
                new Case(tensor, "static.scale", a -> a.with("static").put("scale", 0.5f), "(the scale of range [",
                        "0.5"),
                new Case(tensor, "static.zero_point", a -> a.with("static").put("zero_point", 3),
                        "0 (the zero point of range [", "3"));
        for (Case c : cases) {
            ObjectNode cfg = (ObjectNode) new ObjectMapper().readTree(original);
            c.edit().accept((ObjectNode) cfg.with("activations").get(c.linear()));
            Files.writeString(f, cfg.toString());
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> LlavaModel.load(out),
                    c.field());
            String m = e.getMessage();
            String key = "key activations." + c.linear() + "." + c.field() + ": expected ";
            assertTrue(m.startsWith(f + ": " + key) && m.contains(c.expected()) && m.endsWith(", got " + c.actual()),
                    c.field() + ": " + m);
        }
        Files.writeString(f, original);
        try (LlavaModel q = LlavaModel.load(out)) {
            assertNotNull(q);
        }
    }

    @Test
    void inspectSaysWhichPathEachLinearUses() {
        Path out = mixedCheckpoint();
        StringWriter so = new StringWriter();
        int code = Main.run(new String[] {"inspect", out.toString()}, new PrintWriter(so, true),
                new PrintWriter(new StringWriter(), true));
        assertEquals(0, code);
        String text = so.toString();
        assertTrue(text.contains("input quantization: {a8-asym-channel-static fake=12, a8-sym-tensor-static integer=2, "
                + "a8-sym-token-dynamic integer=14}"), text);
        assertTrue(text.contains("fake quantization for 12 linears: asymmetric inputs"), text);
        assertTrue(text.matches("(?s).*language_model\\.model\\.layers\\.0\\.self_attn\\.q_proj\\.qweight\\s+U8\\s+\\[32, 32\\]"
                + "\\s+\\(packed INT8 group 32; inputs a8-sym-tensor-static integer\\).*"), text);
        assertTrue(text.matches("(?s).*language_model\\.model\\.layers\\.1\\.mlp\\.down_proj\\.act_range\\s+F32\\s+"
                + "\\[2, 37\\]\\s+\\(static input ranges: lo, hi\\).*"), text);
    }
}
