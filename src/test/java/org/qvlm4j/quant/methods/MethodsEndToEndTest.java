package org.qvlm4j.quant.methods;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Supplier;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.qvlm4j.model.LlavaModel;
import org.qvlm4j.quant.QuantPlan;
import org.qvlm4j.quant.QuantPreset;
import org.qvlm4j.quant.calib.CalibrationStats;

/** Every baseline on the tiny LLaVA fixture under the presets. */
class MethodsEndToEndTest {
    /** Relative L2 error of W8A8 logits vs FP that every method must stay under. */
    static final double W8A8_MAX_REL_ERR = 0.02;
    /** Below this relative logit change a 4-bit run would not have quantized anything. */
    static final double MIN_4BIT_CHANGE = 1e-3;

    @TempDir
    static Path tmp;
    static MethodFixture fx;
    static CalibrationStats stats;
    static float[] fp;

    static final Map<String, Supplier<QuantMethod>> METHODS = Map.of(
            "rtn", Rtn::new,
            "smoothquant", () -> new SmoothQuant(SmoothQuant.Config.DEFAULT),
            "awq", () -> new Awq(Awq.Config.DEFAULT),
            "gptq", () -> new Gptq(Gptq.Config.DEFAULT),
            "nf4", () -> new Nf4Weights(Nf4Weights.Config.DEFAULT),
            "zeroquant-v2", () -> new ZeroQuantV2(ZeroQuantV2.Config.DEFAULT));

    @BeforeAll
    static void setUp() {
        fx = new MethodFixture();
        stats = fx.stats(tmp.resolve("stats"));
        try (LlavaModel m = MethodFixture.model()) {
            fp = m.forward(fx.ids, fx.pixels);
        }
    }

    @AfterAll
    static void tearDown() {
        stats.close();
    }

    static List<Arguments> cases() {
        return METHODS.keySet().stream().sorted()
                .flatMap(m -> List.of(QuantPreset.W8A8, QuantPreset.W4A4, QuantPreset.W4A16).stream()
                        .map(p -> Arguments.of(m, p)))
                .toList();
    }

    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("cases")
    void presetsKeepOrChangeLogitsAsExpected(String method, QuantPreset preset) {
        QuantPlan plan = QuantPlan.preset(preset);
        try (LlavaModel m = MethodFixture.model()) {
            QuantMethod qm = METHODS.get(method).get();
            QuantResult r = qm.apply(m, plan, stats);
            assertEquals(method, r.method());
            assertTrue(!r.report().isEmpty());
            r.report().forEach(row -> assertTrue(Double.isFinite(row.weightMse()) && row.outputMse() >= 0, row.toString()));
            assertEquals(r.weights().keySet(), r.report().stream().map(LayerReport::linear)
                    .collect(java.util.stream.Collectors.toSet()));
            r.installTap(m);
            float[] logits = m.forward(fx.ids, fx.pixels);
            double rel = MethodFixture.relErr(logits, fp);
            assertTrue(Double.isFinite(rel), method + " " + preset);
            if (preset == QuantPreset.W8A8 && !method.equals("nf4")) {
                assertTrue(rel < W8A8_MAX_REL_ERR, method + " W8A8 rel " + rel);
            } else {
                assertTrue(rel > MIN_4BIT_CHANGE, method + " " + preset + " rel " + rel);
            }
        }
    }

    /** Sum over the report of outputMse · N: the calibration output error of the whole model's linears. */
    static double totalOutputError(QuantResult r, LlavaModel m) {
        Map<String, Integer> n = new HashMap<>();
        m.linears().forEach(l -> n.put(l.name(), l.outFeatures()));
        return r.report().stream().mapToDouble(row -> row.outputMse() * n.get(row.linear())).sum();
    }

    @Test
    void gptqAndZeroQuantLowerTheCalibrationOutputErrorOfRtnAt4Bits() {
        QuantPlan plan = QuantPlan.preset(QuantPreset.W4A16);
        double rtn;
        try (LlavaModel m = MethodFixture.model()) {
            rtn = totalOutputError(new Rtn().apply(m, plan, stats), m);
        }
        for (String method : List.of("gptq", "zeroquant-v2", "awq")) {
            try (LlavaModel m = MethodFixture.model()) {
                double e = totalOutputError(METHODS.get(method).get().apply(m, plan, stats), m);
                assertTrue(e < rtn, method + " " + e + " vs rtn " + rtn);
            }
        }
    }

    /** The Hessian is stored in F32, so the proxy agrees with the direct sum to about this relative error. */
    static final double HESSIAN_PROXY_REL_TOL = 1e-3;

    @Test
    void reportedOutputErrorEqualsTheDirectErrorOnCalibrationInputs() {
        QuantPlan plan = QuantPlan.preset(QuantPreset.W4A16);
        try (LlavaModel fpModel = MethodFixture.model(); LlavaModel m = MethodFixture.model()) {
            QuantResult r = new Awq(Awq.Config.DEFAULT).apply(m, plan, stats);
            for (String name : List.of("llm.layers.0.mlp.down_proj", "llm.layers.1.self_attn.v_proj",
                    "vision.layers.0.mlp.fc1", "projector.linear_2")) {
                var orig = fpModel.linears().stream().filter(l -> l.name().equals(name)).findFirst().orElseThrow();
                int n = orig.outFeatures();
                int k = orig.inFeatures();
                float[] x = fx.inputs(fpModel, orig); // (T, K)
                int t = x.length / k;
                float[] w = orig.weight().toFloatArray();
                float[] stored = r.weights().get(name).toFloatArray();
                float[] s = r.scales().get(name);
                String placement = r.layer(name).scalePlacement();
                float[] eff = s == null || placement.equals("weight") ? stored : MethodSupport.unscaleColumns(stored, n, k, s);
                double sum = 0;
                for (int i = 0; i < t; i++) {
                    for (int o = 0; o < n; o++) {
                        double d = 0;
                        for (int j = 0; j < k; j++) {
                            d += ((double) eff[o * k + j] - w[o * k + j]) * x[i * k + j];
                        }
                        sum += d * d;
                    }
                }
                double direct = sum / ((double) t * n);
                assertEquals(direct, r.layer(name).outputMse(), HESSIAN_PROXY_REL_TOL * direct, name);
            }
        }
    }

    @Test
    void hessianMethodsNameTheMissingStatistic() {
        try (CalibrationStats plain = fx.stats(tmp.resolve("plain"), false);
             LlavaModel m = MethodFixture.model()) {
            QuantPlan plan = QuantPlan.preset(QuantPreset.W4A16);
            for (QuantMethod qm : List.of(new Gptq(Gptq.Config.DEFAULT), new Awq(Awq.Config.DEFAULT))) {
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> qm.apply(m, plan, plain));
                assertTrue(e.getMessage().contains(".in.hessian") && e.getMessage().contains("--hessian"), e.getMessage());
            }
            QuantResult r = new Rtn().apply(m, plan, plain);
            r.report().forEach(row -> assertTrue(Double.isNaN(row.outputMse()), row.toString()));
        }
    }

    @Test
    void awqNeverRaisesTheGroupOutputErrorOverRtn() {
        QuantPlan plan = QuantPlan.preset(QuantPreset.W4A16);
        Map<String, Double> rtn = new HashMap<>();
        Map<String, Double> awq = new HashMap<>();
        try (LlavaModel m = MethodFixture.model()) {
            new Rtn().apply(m, plan, stats).report().forEach(r -> rtn.put(r.linear(), r.outputMse()));
        }
        try (LlavaModel m = MethodFixture.model()) {
            new Awq(Awq.Config.DEFAULT).apply(m, plan, stats).report().forEach(r -> awq.put(r.linear(), r.outputMse()));
            for (MethodSupport.ScaleGroup g : MethodSupport.scaleGroups(m)) {
                double a = 0;
                double b = 0;
                for (var l : g.members()) {
                    if (rtn.containsKey(l.name())) {
                        a += awq.get(l.name()) * l.outFeatures();
                        b += rtn.get(l.name()) * l.outFeatures();
                    }
                }
                assertTrue(a <= b * (1 + 1e-6) + 1e-12, g.inputSite() + ": awq " + a + " > rtn " + b);
            }
        }
    }
}
