package org.qvlm4j.quant.methods;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qvlm4j.bench.RandomLlavaCheckpoint;
import org.qvlm4j.data.SynthBenchmark;
import org.qvlm4j.data.WordLevelTokenizerBuilder;
import org.qvlm4j.io.AtomicFiles;
import org.qvlm4j.io.image.ClipPreprocessConfig;
import org.qvlm4j.io.image.PadMode;
import org.qvlm4j.io.safetensors.Checkpoint;
import org.qvlm4j.io.safetensors.TensorEntry;
import org.qvlm4j.io.text.PromptTemplate;
import org.qvlm4j.kernels.DType;
import org.qvlm4j.model.LlavaModel;
import org.qvlm4j.model.LlavaWeights;
import org.qvlm4j.quant.calib.CalibrationStats;
import org.qvlm4j.quant.calib.Calibrator;

/**
 * The smoothed checkpoint against hand-computed scales on a random LLaVA with its own benchmark
 * and real calibration: the same logits as the source, each smoothed weight equal to SmoothQuant's
 * formula applied by hand, and (α = 1) every smoothed linear's recalibrated input with channel
 * absmax 1.
 */
class SmoothedCheckpointTest {
    static final int IMAGE = 48;
    static final int PATCH = 16;

    @TempDir
    static Path dir;
    static Path data;

    @BeforeAll
    static void benchmark() {
        data = dir.resolve("bench");
        SynthBenchmark.write(data, new SynthBenchmark.Options(7, 8, 0, 1, IMAGE), null);
    }

    /** A random model (key/value heads as given) with the benchmark's tokenizer, and its statistics. */
    static Path[] model(String name, int kvHeads) {
        Path model = dir.resolve(name);
        WordLevelTokenizerBuilder.writeForBenchmark(model, data);
        int vocab = WordLevelTokenizerBuilder.tokens(
                WordLevelTokenizerBuilder.readVocabulary(data.resolve(SynthBenchmark.VOCAB_FILE))).size();
        RandomLlavaCheckpoint.write(model, new RandomLlavaCheckpoint.Shape(16, 32, 2, 2, IMAGE, PATCH, 16, 24, 2, 2,
                kvHeads, vocab, WordLevelTokenizerBuilder.IMAGE_TOKEN_ID), DType.F32, 11);
        AtomicFiles.writeString(model.resolve("preprocessor_config.json"), ClipPreprocessConfig.squareJson(IMAGE));
        Path stats = dir.resolve(name + "-stats");
        Calibrator.run(new Calibrator.Request(model, data, Calibrator.DEFAULT_SPLIT, false, 4, 3, "none", "none", 1,
                PromptTemplate.VICUNA_V1, PadMode.PAD_TO_SQUARE, Calibrator.Inputs.PROMPT, stats, false), null);
        return new Path[] {model, stats};
    }

    static Map<String, float[]> tensors(Path model) {
        Map<String, float[]> out = new java.util.HashMap<>();
        try (Checkpoint c = Checkpoint.open(model)) {
            for (TensorEntry e : c.tensors().values()) {
                out.put(LlavaWeights.canonicalName(e.name()), e.toFloatArray());
            }
        }
        return out;
    }

    @Test
    void foldsExactlyAndMatchesTheFormula() {
        Path[] src = model("mha", 2);
        double alpha = 0.6;
        Path out = dir.resolve("mha-smoothed");
        SmoothedCheckpoint.Summary s;
        try (CalibrationStats st = CalibrationStats.load(src[1])) {
            s = SmoothedCheckpoint.write(src[0], st, alpha, SmoothedCheckpoint.Scope.ALL, out);
            // every linear but CLIP's fc2, the projector's and those of CLIP's last layer (past the feature layer -2)
            assertEquals(2 * 7 + 5, s.scales().size());
            assertEquals(List.of("vision.layers.0.mlp.fc2 (its input comes through GELU)"), s.skipped());

            Map<String, float[]> a = tensors(src[0]);
            Map<String, float[]> b = tensors(out);
            int d = 16;
            int ff = 24;
            String p = "llm.layers.1.";
            // o_proj: s from its own input and columns; v_proj's rows divided
            float[] so = handScales(st.floats(p + "self_attn.o_proj.in", "channel_absmax"),
                    a.get(p + "self_attn.o_proj.weight"), d, d, alpha);
            assertClose(scaleCols(a.get(p + "self_attn.o_proj.weight"), d, d, so), b.get(p + "self_attn.o_proj.weight"));
            float[] v = divRows(a.get(p + "self_attn.v_proj.weight"), d, d, so);
            // down_proj: up_proj's rows divided
            float[] sd = handScales(st.floats(p + "mlp.down_proj.in", "channel_absmax"),
                    a.get(p + "mlp.down_proj.weight"), d, ff, alpha);
            assertClose(scaleCols(a.get(p + "mlp.down_proj.weight"), d, ff, sd), b.get(p + "mlp.down_proj.weight"));
            float[] up = divRows(a.get(p + "mlp.up_proj.weight"), ff, d, sd);
            // q/k/v: one s over the three (v after its row scaling), the norm divided
            float[] sq = handScales(st.floats(p + "self_attn.q_proj.in", "channel_absmax"),
                    stack(a.get(p + "self_attn.q_proj.weight"), a.get(p + "self_attn.k_proj.weight"), v), 3 * d, d, alpha);
            assertClose(scaleCols(v, d, d, sq), b.get(p + "self_attn.v_proj.weight"));
            assertClose(scaleCols(a.get(p + "self_attn.k_proj.weight"), d, d, sq), b.get(p + "self_attn.k_proj.weight"));
            assertClose(divRows(a.get(p + "input_layernorm.weight"), d, 1, sq), b.get(p + "input_layernorm.weight"));
            float[] sg = handScales(st.floats(p + "mlp.gate_proj.in", "channel_absmax"),
                    stack(a.get(p + "mlp.gate_proj.weight"), up), 2 * ff, d, alpha);
            assertClose(scaleCols(up, ff, d, sg), b.get(p + "mlp.up_proj.weight"));
            assertClose(divRows(a.get(p + "post_attention_layernorm.weight"), d, 1, sg),
                    b.get(p + "post_attention_layernorm.weight"));
            // CLIP: out_proj through v_proj's rows and bias; fc1 through layer_norm2's weight and bias
            String vp = "vision.layers.0.";
            float[] sv = handScales(st.floats(vp + "self_attn.out_proj.in", "channel_absmax"),
                    a.get(vp + "self_attn.out_proj.weight"), 16, 16, alpha);
            assertClose(divRows(a.get(vp + "self_attn.v_proj.bias"), 16, 1, sv), b.get(vp + "self_attn.v_proj.bias"));
            assertArrayEquals(a.get(vp + "mlp.fc2.weight"), b.get(vp + "mlp.fc2.weight"));
            assertArrayEquals(a.get("projector.linear_2.weight"), b.get("projector.linear_2.weight"));
        }

        // the same function: logits of a prompt with an image agree
        try (LlavaModel m0 = LlavaModel.load(src[0]); LlavaModel m1 = LlavaModel.load(out)) {
            int[] ids = prompt(m0);
            float[] px = pixels(3 * IMAGE * IMAGE, 5);
            float[] l0 = m0.forward(ids, px);
            float[] l1 = m1.forward(ids, px);
            assertTrue(MethodFixture.relErr(l1, l0) < 1e-5, "relative logit error " + MethodFixture.relErr(l1, l0));
        }
        assertTrue(Files.isRegularFile(out.resolve(SmoothedCheckpoint.MANIFEST)));
        assertTrue(Files.isRegularFile(out.resolve("tokenizer.json")));
    }

    @Test
    void alphaOneGivesUnitChannelRangesAfterRecalibration() {
        Path[] src = model("mha-a1", 2);
        Path work = dir.resolve("a1-work");
        List<String> log = new ArrayList<>();
        SmoothedCheckpoint.Prepared p;
        try (CalibrationStats st = CalibrationStats.load(src[1])) {
            p = SmoothedCheckpoint.prepare(src[0], st, 1.0, SmoothedCheckpoint.Scope.LLM, work, 1, log::add);
            assertFalse(p.reused());
            assertEquals(2, log.size());
            // a second call reuses both; another alpha is refused by name
            assertTrue(SmoothedCheckpoint.prepare(src[0], st, 1.0, SmoothedCheckpoint.Scope.LLM, work, 1, log::add).reused());
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> SmoothedCheckpoint.prepare(src[0], st, 0.5, SmoothedCheckpoint.Scope.LLM, work, 1, log::add));
            assertTrue(e.getMessage().contains("key alpha: expected 0.5, got 1.0"), e.getMessage());
        }
        try (CalibrationStats before = CalibrationStats.load(src[1]);
             CalibrationStats after = CalibrationStats.load(p.stats())) {
            assertEquals(before.manifest().get("samples"), after.manifest().get("samples"));
            for (String site : List.of("llm.layers.0.self_attn.q_proj.in", "llm.layers.0.self_attn.o_proj.in",
                    "llm.layers.1.mlp.gate_proj.in", "llm.layers.1.mlp.down_proj.in")) {
                for (float x : after.floats(site, "channel_absmax")) {
                    assertEquals(1.0, x, 1e-4, site);
                }
            }
            // the vision tower is outside scope llm: its ranges are the source's
            assertArrayEquals(before.floats("vision.layers.0.self_attn.q_proj.in", "channel_absmax"),
                    after.floats("vision.layers.0.self_attn.q_proj.in", "channel_absmax"), 1e-6f);
        }
    }

    @Test
    void sharedKeyValueHeadsLeaveOProjAlone() {
        Path[] src = model("gqa", 1);
        Path out = dir.resolve("gqa-smoothed");
        try (CalibrationStats st = CalibrationStats.load(src[1])) {
            SmoothedCheckpoint.Summary s = SmoothedCheckpoint.write(src[0], st, 0.5, SmoothedCheckpoint.Scope.LLM, out);
            assertEquals(2 * 6, s.scales().size());
            assertTrue(s.skipped().getFirst().startsWith("llm.layers.0.self_attn.o_proj (2 query heads share 1"),
                    s.skipped().getFirst());
        }
        assertArrayEquals(tensors(src[0]).get("llm.layers.0.self_attn.o_proj.weight"),
                tensors(out).get("llm.layers.0.self_attn.o_proj.weight"));
    }

    @Test
    void refusesStatisticsOfAnotherModelAndAnExistingOutput() {
        Path[] a = model("ref-a", 2);
        Path[] b = model("ref-b", 1);
        try (CalibrationStats st = CalibrationStats.load(b[1])) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> SmoothedCheckpoint.write(a[0], st, 0.5, SmoothedCheckpoint.Scope.ALL, dir.resolve("never")));
            assertTrue(e.getMessage().contains("key model.digest"), e.getMessage());
            assertFalse(Files.exists(dir.resolve("never")));
        }
        try (CalibrationStats st = CalibrationStats.load(a[1])) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> SmoothedCheckpoint.write(a[0], st, 0.5, SmoothedCheckpoint.Scope.ALL, a[0]));
            assertTrue(e.getMessage().contains("already exists"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class,
                    () -> SmoothedCheckpoint.write(a[0], st, 1.5, SmoothedCheckpoint.Scope.ALL, dir.resolve("never")));
            assertTrue(e.getMessage().contains("alpha must be in [0, 1], got 1.5"), e.getMessage());
        }
    }

    // ------------------------------------------------------------------ hand computation

    /** s_j = max(a_j^α / max(max_r |w_rj|, 1e-5)^(1−α), 1e-5), in double. */
    static float[] handScales(float[] act, float[] w, int n, int k, double alpha) {
        float[] s = new float[k];
        for (int j = 0; j < k; j++) {
            double m = 0;
            for (int r = 0; r < n; r++) {
                m = Math.max(m, Math.abs(w[r * k + j]));
            }
            s[j] = (float) Math.max(Math.pow(act[j], alpha) / Math.pow(Math.max(m, 1e-5), 1 - alpha), 1e-5);
        }
        return s;
    }

    static float[] scaleCols(float[] w, int n, int k, float[] s) {
        float[] o = new float[w.length];
        for (int r = 0; r < n; r++) {
            for (int j = 0; j < k; j++) {
                o[r * k + j] = w[r * k + j] * s[j];
            }
        }
        return o;
    }

    static float[] divRows(float[] w, int n, int k, float[] s) {
        float[] o = new float[w.length];
        for (int r = 0; r < n; r++) {
            for (int j = 0; j < k; j++) {
                o[r * k + j] = w[r * k + j] / s[r];
            }
        }
        return o;
    }

    static float[] stack(float[]... parts) {
        return MethodFixture.concat(List.of(parts));
    }

    static void assertClose(float[] want, float[] got) {
        assertEquals(want.length, got.length);
        for (int i = 0; i < want.length; i++) {
            assertEquals(want[i], got[i], 1e-6 * Math.max(1, Math.abs(want[i])), "element " + i);
        }
    }

    static int[] prompt(LlavaModel m) {
        int f = m.config().imageSeqLength();
        int[] ids = new int[f + 6];
        ids[0] = 1;
        for (int i = 1; i <= f; i++) {
            ids[i] = WordLevelTokenizerBuilder.IMAGE_TOKEN_ID;
        }
        for (int i = f + 1; i < ids.length; i++) {
            ids[i] = 10 + i % 7;
        }
        return ids;
    }

    static float[] pixels(int n, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        float[] p = new float[n];
        for (int i = 0; i < n; i++) {
            p[i] = (float) (2 * r.nextDouble() - 1);
        }
        return p;
    }
}
