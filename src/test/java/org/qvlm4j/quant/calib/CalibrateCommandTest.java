package org.qvlm4j.quant.calib;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qvlm4j.cli.CalibrateCommand;
import org.qvlm4j.data.ScienceQaDataset;
import org.qvlm4j.data.ScienceQaProblem;
import org.qvlm4j.eval.ScienceQaEvaluator;
import org.qvlm4j.io.image.ClipImageProcessor;
import org.qvlm4j.io.image.PadMode;
import org.qvlm4j.io.text.LlavaTokenizer;
import org.qvlm4j.model.LlavaModel;
import picocli.CommandLine;

/** End-to-end runs of {@code qvlm4j calibrate} on a tiny synthetic benchmark with a random tiny LLaVA. */
class CalibrateCommandTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final int N = 5;
    private static final String HESSIAN = "llm.layers.*.mlp.down_proj,vision.layers.0.self_attn.q_proj.in";
    private static final String HESSIAN_SITE = "llm.layers.1.mlp.down_proj.in";
    private static final String VISION_SITE = "vision.layers.0.self_attn.q_proj.in";
    /** float32 rounding of a double-accumulated statistic. */
    private static final double FLOAT_REL_TOL = 1e-6;

    @TempDir
    static Path tmp;
    static Path data;
    static Path model;
    static Path runA;

    record Cli(int code, String out, String err) {
    }

    static Cli calibrate(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        CommandLine cl = new CommandLine(new CalibrateCommand());
        cl.setOut(new PrintWriter(out, true));
        cl.setErr(new PrintWriter(err, true));
        int code = cl.execute(args);
        return new Cli(code, out.toString(), err.toString());
    }

    /** Runs with the test's default options; extra options (flags or option-value pairs) replace them. */
    static Cli run(Path out, long seed, int threads, String... extra) {
        Map<String, String> opts = new LinkedHashMap<>();
        opts.put("--model", model.toString());
        opts.put("--data", data.toString());
        opts.put("--n", Integer.toString(N));
        opts.put("--seed", Long.toString(seed));
        opts.put("--threads", Integer.toString(threads));
        opts.put("--hessian", HESSIAN);
        opts.put("--out", out.toString());
        for (int i = 0; i < extra.length; i++) {
            boolean pair = i + 1 < extra.length && !extra[i + 1].startsWith("--");
            opts.put(extra[i], pair ? extra[++i] : null);
        }
        List<String> args = new ArrayList<>();
        opts.forEach((k, v) -> {
            args.add(k);
            if (v != null) {
                args.add(v);
            }
        });
        return calibrate(args.toArray(String[]::new));
    }

    @BeforeAll
    static void setUp() {
        data = CalibFixture.data(tmp.resolve("bench"), 12, 4);
        model = CalibFixture.model(tmp.resolve("model"), data, 3);
        warmUp();
        runA = tmp.resolve("a");
        Cli c = run(runA, 5, 1);
        assertEquals(0, c.code(), c.err());
        assertTrue(c.err().contains("calibrate: " + N + "/" + N + " samples"), c.err());
    }

    /**
     * The runtime's first forward passes in a fresh JVM can round differently from later ones (the
     * Vector API's interpreted fallbacks reduce in another order than the compiled kernels), so the
     * kernels are compiled before the runs whose bytes are compared.
     */
    private static void warmUp() {
        record(ScienceQaDataset.load(data).split("train").stream().map(ScienceQaProblem::pid).toList(), new ArrayList<>(),
                new LinkedHashMap<>());
    }

    private static byte[] bytes(Path dir, String file) throws Exception {
        return Files.readAllBytes(dir.resolve(file));
    }

    @Test
    void sameSeedGivesIdenticalBytesForAnyThreadCountAnotherSeedDiffers() throws Exception {
        Path b = tmp.resolve("b");
        assertEquals(0, run(b, 5, 2).code());
        for (String f : List.of(CalibrationStats.TENSORS_FILE, CalibrationStats.MANIFEST_FILE)) {
            assertArrayEquals(bytes(runA, f), bytes(b, f), f);
        }
        Path c = tmp.resolve("c");
        assertEquals(0, run(c, 6, 1).code());
        assertFalse(Arrays.equals(bytes(runA, CalibrationStats.TENSORS_FILE), bytes(c, CalibrationStats.TENSORS_FILE)));
        assertNotEquals(JSON.readTree(runA.resolve(CalibrationStats.MANIFEST_FILE).toFile()).get("samples"),
                JSON.readTree(c.resolve(CalibrationStats.MANIFEST_FILE).toFile()).get("samples"));
    }

    @Test
    void promptInputsRunThePromptAloneAndRecordIt() throws Exception {
        Path p = tmp.resolve("prompt-only");
        assertEquals(0, run(p, 5, 1, "--inputs", "PROMPT").code());
        JsonNode a = JSON.readTree(runA.resolve(CalibrationStats.MANIFEST_FILE).toFile());
        JsonNode m = JSON.readTree(p.resolve(CalibrationStats.MANIFEST_FILE).toFile());
        assertEquals("ANSWER", a.get("inputs").asText());
        assertEquals("LETTER", a.get("answer_style").asText());
        assertEquals("PROMPT", m.get("inputs").asText());
        assertFalse(m.has("answer_style"));
        long promptTokens = 0;
        long answerTokens = 0;
        ScienceQaDataset ds = ScienceQaDataset.load(data);
        try (LlavaTokenizer tok = LlavaTokenizer.load(model); LlavaModel lm = LlavaModel.load(model)) {
            ScienceQaEvaluator ev = new ScienceQaEvaluator(lm, tok, ClipImageProcessor.forModelDir(model,
                    PadMode.PAD_TO_SQUARE), ScienceQaEvaluator.Settings.defaults());
            for (JsonNode pid : m.get("samples")) {
                ScienceQaProblem q = ds.problem(pid.asText());
                promptTokens += ev.promptIds(q).length;
                answerTokens += tok.encode(String.valueOf((char) ('A' + q.answer())), false).length + 1; // + EOS
            }
        }
        assertEquals(promptTokens, m.get("tokens").asLong());
        assertEquals(promptTokens + answerTokens, a.get("tokens").asLong());
    }

    @Test
    void manifestRecordsTrainSamplesAndModel() throws Exception {
        JsonNode m = JSON.readTree(runA.resolve(CalibrationStats.MANIFEST_FILE).toFile());
        Set<String> train = new HashSet<>();
        ScienceQaDataset.load(data).split("train").forEach(p -> train.add(p.pid()));
        List<String> pids = new ArrayList<>();
        m.get("samples").forEach(n -> pids.add(n.asText()));
        assertEquals(N, pids.size());
        assertEquals(N, new HashSet<>(pids).size());
        assertTrue(train.containsAll(pids), pids + " not all in train " + train);
        assertEquals("train", m.get("split").asText());
        assertEquals(5, m.get("seed").asLong());
        assertEquals(ModelFingerprint.of(model).digest(), m.get("model").get("digest").asText());
        assertEquals(CalibrationStats.FORMAT, m.get("format").asText());
    }

    /**
     * Raw activations of every site over the manifest's samples, recorded by a plain tap on the
     * default inputs: the evaluation prompt, then the letter answer (the fixture model has no
     * training manifest) and EOS.
     */
    private static Map<String, List<float[]>> record(List<String> pids, List<Integer> rowsOut, Map<String, List<Integer>> rows) {
        Map<String, List<float[]>> acts = new LinkedHashMap<>();
        ScienceQaDataset ds = ScienceQaDataset.load(data);
        try (LlavaTokenizer tok = LlavaTokenizer.load(model); LlavaModel m = LlavaModel.load(model)) {
            ClipImageProcessor proc = ClipImageProcessor.forModelDir(model, PadMode.PAD_TO_SQUARE);
            ScienceQaEvaluator ev = new ScienceQaEvaluator(m, tok, proc, ScienceQaEvaluator.Settings.defaults());
            m.setActivationTap((site, x, r, c) -> {
                acts.computeIfAbsent(site, k -> new ArrayList<>()).add(Arrays.copyOf(x, r * c));
                rows.computeIfAbsent(site, k -> new ArrayList<>()).add(r);
            });
            for (String pid : pids) {
                ScienceQaProblem p = ds.problem(pid);
                int[] prompt = ev.promptIds(p);
                long[] letter = tok.encode(String.valueOf((char) ('A' + p.answer())), false);
                int[] ids = Arrays.copyOf(prompt, prompt.length + letter.length + 1);
                for (int i = 0; i < letter.length; i++) {
                    ids[prompt.length + i] = Math.toIntExact(letter[i]);
                }
                ids[ids.length - 1] = Math.toIntExact(tok.eosId());
                rowsOut.add(ids.length);
                m.forward(ids, p.hasImage() ? proc.preprocess(p.imagePath()).data() : null);
            }
        }
        return acts;
    }

    private static float[] concat(List<float[]> parts) {
        int n = parts.stream().mapToInt(a -> a.length).sum();
        float[] out = new float[n];
        int o = 0;
        for (float[] a : parts) {
            System.arraycopy(a, 0, out, o, a.length);
            o += a.length;
        }
        return out;
    }

    @Test
    void statisticsEqualThoseOfAManuallyHookedTap() throws Exception {
        try (CalibrationStats st = CalibrationStats.load(runA)) {
            List<String> pids = new ArrayList<>();
            st.manifest().get("samples").forEach(n -> pids.add(n.asText()));
            List<Integer> tokens = new ArrayList<>();
            Map<String, List<Integer>> rows = new LinkedHashMap<>();
            Map<String, List<float[]>> acts = record(pids, tokens, rows);

            Pattern observed = Pattern.compile(".*\\.in|(vision|llm)\\.layers\\.\\d+\\.out");
            List<String> expectedSites = acts.keySet().stream().filter(s -> observed.matcher(s).matches()).toList();
            assertEquals(expectedSites, st.sites());
            assertEquals(tokens.stream().mapToLong(Integer::longValue).sum(), st.manifest().get("tokens").asLong());

            for (String site : List.of(HESSIAN_SITE, VISION_SITE, "llm.layers.0.out", "lm_head.in",
                    "projector.linear_1.in")) {
                float[] x = concat(acts.get(site)); // (N, K)
                int K = st.cols(site);
                int T = x.length / K;
                assertArrayEquals(new long[] {T, acts.get(site).size()}, st.longs(site, "count"), site);
                float min = Float.POSITIVE_INFINITY;
                float max = Float.NEGATIVE_INFINITY;
                float[] absmax = new float[K];
                double[] absSum = new double[K];
                float tokMin = Float.POSITIVE_INFINITY;
                float tokMax = 0;
                for (int t = 0; t < T; t++) {
                    float rowAbs = 0;
                    for (int c = 0; c < K; c++) {
                        float v = x[t * K + c];
                        min = Math.min(min, v);
                        max = Math.max(max, v);
                        absmax[c] = Math.max(absmax[c], Math.abs(v));
                        absSum[c] += Math.abs(v);
                        rowAbs = Math.max(rowAbs, Math.abs(v));
                    }
                    tokMin = Math.min(tokMin, rowAbs);
                    tokMax = Math.max(tokMax, rowAbs);
                }
                assertEquals(min, st.floats(site, "min")[0], site);
                assertEquals(max, st.floats(site, "max")[0], site);
                assertEquals(tokMin, st.floats(site, "token_absmax_min")[0], site);
                assertEquals(tokMax, st.floats(site, "token_absmax_max")[0], site);
                assertArrayEquals(absmax, st.floats(site, "channel_absmax"), site);
                float[] meanAbs = new float[K];
                for (int c = 0; c < K; c++) {
                    meanAbs[c] = (float) (absSum[c] / T);
                }
                assertArrayEquals(meanAbs, st.floats(site, "channel_mean_abs"), site);

                double[] grid = st.percentiles();
                assertArrayEquals(Calibrator.PERCENTILE_GRID, grid);
                float[] hist = st.floats(site, "pct_hi");
                double w = 2.0 * st.floats(site, "hist_range")[0] / st.longs(site, "hist").length;
                for (int g = 0; g < grid.length; g++) {
                    double h = grid[g] * (x.length - 1);
                    double lo = Exact.rank(x, (int) Math.floor(h)) - w;
                    double hi = Exact.rank(x, (int) Math.ceil(h)) + w;
                    assertTrue(hist[g] >= lo - Math.ulp((float) lo) && hist[g] <= hi + Math.ulp((float) hi),
                            site + " p=" + grid[g]);
                }
                // the restored histogram answers the grid as stored, and p off the grid within a bin
                RangeHistogram restored = st.histogram(site);
                for (int g = 0; g < grid.length; g++) {
                    assertEquals(hist[g], (float) restored.quantile(grid[g]), site + " p=" + grid[g]);
                    assertEquals(st.floats(site, "pct_lo")[g], (float) restored.quantile(1 - grid[g]), site);
                }
                for (double p : new double[] {0.9999, 0.9995, 0.95, 0.5, 0.0005}) {
                    double h = p * (x.length - 1);
                    double lo = Exact.rank(x, (int) Math.floor(h)) - w;
                    double hi = Exact.rank(x, (int) Math.ceil(h)) + w;
                    double est = restored.quantile(p);
                    assertTrue(est >= lo && est <= hi, site + " p=" + p + ": " + est + " outside [" + lo + ", " + hi + "]");
                }
                assertEquals(min, (float) restored.quantile(0), site);
                assertEquals(max, (float) restored.quantile(1), site);
                if (site.endsWith(".in")) {
                    float[] chi = st.floats(site, "channel_pct_hi"); // (G, K)
                    float[] clo = st.floats(site, "channel_pct_lo"); // (G, K)
                    for (int c = 0; c < K; c++) {
                        float[] col = new float[T];
                        for (int t = 0; t < T; t++) {
                            col[t] = x[t * K + c];
                        }
                        for (int g = 0; g < grid.length; g++) {
                            assertEquals((float) Exact.percentile(col, grid[g]), chi[g * K + c], site + " c=" + c);
                            assertEquals((float) Exact.percentile(col, 1 - grid[g]), clo[g * K + c], site + " c=" + c);
                        }
                    }
                }
            }

            // Hessian: X^T X over all tokens of all samples, accumulated in double, stored as float.
            float[] x = concat(acts.get(HESSIAN_SITE));
            int K = st.cols(HESSIAN_SITE);
            int T = x.length / K;
            float[] H = st.floats(HESSIAN_SITE, "hessian");
            assertArrayEquals(new long[] {K, K}, st.shape(HESSIAN_SITE, "hessian"));
            for (int i = 0; i < K; i++) {
                for (int j = 0; j < K; j++) {
                    double acc = 0;
                    for (int t = 0; t < T; t++) {
                        acc += (double) x[t * K + i] * x[t * K + j];
                    }
                    assertEquals((float) acc, H[i * K + j], HESSIAN_SITE + " (" + i + "," + j + ")");
                }
            }
            assertFalse(st.has("llm.layers.0.self_attn.q_proj.in", "hessian"));
            assertTrue(st.has(VISION_SITE, "hessian"));

            // Vision per-position ranges: per row index, over channels and image samples.
            List<float[]> parts = acts.get(VISION_SITE);
            int P = rows.get(VISION_SITE).getFirst();
            int Kv = st.cols(VISION_SITE);
            float[] pmin = new float[P];
            float[] pmax = new float[P];
            Arrays.fill(pmin, Float.POSITIVE_INFINITY);
            Arrays.fill(pmax, Float.NEGATIVE_INFINITY);
            for (float[] a : parts) {
                for (int t = 0; t < P; t++) {
                    for (int c = 0; c < Kv; c++) {
                        pmin[t] = Math.min(pmin[t], a[t * Kv + c]);
                        pmax[t] = Math.max(pmax[t], a[t * Kv + c]);
                    }
                }
            }
            assertArrayEquals(pmin, st.floats(VISION_SITE, "position_min"));
            assertArrayEquals(pmax, st.floats(VISION_SITE, "position_max"));
            assertFalse(st.has("lm_head.in", "position_min"));
            assertTrue(parts.size() > 0 && parts.size() < N + 1);
        }
    }

    @Test
    void statisticsOfAnotherModelAreRefusedByName() throws Exception {
        Path other = CalibFixture.model(tmp.resolve("other-model"), data, 4);
        try (CalibrationStats st = CalibrationStats.load(runA); LlavaModel m = LlavaModel.load(model);
             LlavaModel o = LlavaModel.load(other)) {
            st.checkModel(model, m);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> st.checkModel(other, o));
            String want = ModelFingerprint.of(model).digest();
            String got = ModelFingerprint.of(other).digest();
            assertNotEquals(want, got);
            assertTrue(e.getMessage().contains(want) && e.getMessage().contains(got)
                    && e.getMessage().contains(other.toString()), e.getMessage());
        }
    }

    @Test
    void badInputsExitWithTwo() throws Exception {
        Cli exists = run(runA, 5, 1);
        assertEquals(2, exists.code());
        assertTrue(exists.err().contains("already exists") && exists.err().contains("--overwrite"), exists.err());

        Path fresh = tmp.resolve("bad");
        Cli site = run(fresh, 5, 1, "--hessian", "llm.layers.0.mlp.nope");
        assertEquals(2, site.code());
        assertTrue(site.err().contains("unknown site 'llm.layers.0.mlp.nope'"), site.err());

        Cli split = run(fresh, 5, 1, "--split", "test");
        assertEquals(2, split.code());
        assertTrue(split.err().contains("--allow-split"), split.err());

        Cli many = run(fresh, 5, 1, "--n", "500");
        assertEquals(2, many.code());
        assertTrue(many.err().contains("has only 12 problems"), many.err());
        assertFalse(Files.exists(fresh));

        // A model trained on steps solutions, plain-solution data: the teacher-forced answers would not be its own.
        Path stepsModel = tmp.resolve("steps-model");
        Files.createDirectories(stepsModel);
        try (var files = Files.list(model)) {
            for (Path f : files.toList()) {
                Files.copy(f, stepsModel.resolve(f.getFileName()));
            }
        }
        Files.writeString(stepsModel.resolve("train_manifest.json"),
                "{\"answer_style\": \"reasoned\", \"data_solutions\": \"steps\"}");
        Cli solutions = run(fresh, 5, 1, "--model", stepsModel.toString());
        assertEquals(2, solutions.code());
        assertTrue(solutions.err().contains("key solutions: expected 'steps'") && solutions.err().contains("got 'plain'")
                && solutions.err().contains("--inputs prompt"), solutions.err());
        assertFalse(Files.exists(fresh));

        Path notStats = tmp.resolve("not-stats");
        Files.createDirectories(notStats);
        Files.writeString(notStats.resolve("keep.txt"), "x");
        Cli refuse = run(notStats, 5, 1, "--overwrite");
        assertEquals(2, refuse.code());
        assertTrue(Files.exists(notStats.resolve("keep.txt")));
    }

    @Test
    void overwriteReplacesAStatsDirectoryAndAllowSplitUsesTest() throws Exception {
        Path d = tmp.resolve("replace");
        assertEquals(0, run(d, 6, 1, "--hessian", "none", "--n", "2").code());
        Cli c = run(d, 7, 1, "--overwrite", "--split", "test", "--allow-split", "--n", "2", "--hessian", "none");
        assertEquals(0, c.code(), c.err());
        JsonNode m = JSON.readTree(d.resolve(CalibrationStats.MANIFEST_FILE).toFile());
        assertEquals("test", m.get("split").asText());
        Set<String> test = new HashSet<>();
        ScienceQaDataset.load(data).split("test").forEach(p -> test.add(p.pid()));
        m.get("samples").forEach(n -> assertTrue(test.contains(n.asText())));
        try (var s = Files.list(d)) {
            assertEquals(2, s.count());
        }
        try (var s = Files.list(tmp)) {
            assertTrue(s.noneMatch(p -> p.getFileName().toString().startsWith("replace.tmp")));
        }
    }

    @Test
    void loaderRejectsForeignOrInconsistentDirectories() throws Exception {
        Path copy = tmp.resolve("tampered");
        Files.createDirectories(copy);
        Files.copy(runA.resolve(CalibrationStats.TENSORS_FILE), copy.resolve(CalibrationStats.TENSORS_FILE));
        String manifest = Files.readString(runA.resolve(CalibrationStats.MANIFEST_FILE));

        Files.writeString(copy.resolve(CalibrationStats.MANIFEST_FILE), manifest.replace(CalibrationStats.FORMAT, "other"));
        IllegalArgumentException format = assertThrows(IllegalArgumentException.class, () -> CalibrationStats.load(copy));
        assertTrue(format.getMessage().contains("format") && format.getMessage().contains("other"), format.getMessage());

        Files.writeString(copy.resolve(CalibrationStats.MANIFEST_FILE),
                manifest.replace("\"channel_absmax\"", "\"channel_median\""));
        IllegalArgumentException missing = assertThrows(IllegalArgumentException.class, () -> CalibrationStats.load(copy));
        assertTrue(missing.getMessage().contains(".channel_median"), missing.getMessage());

        IllegalArgumentException none = assertThrows(IllegalArgumentException.class,
                () -> CalibrationStats.load(tmp.resolve("nowhere")));
        assertTrue(none.getMessage().contains(CalibrationStats.MANIFEST_FILE), none.getMessage());

        try (CalibrationStats st = CalibrationStats.load(runA)) {
            IllegalArgumentException stat = assertThrows(IllegalArgumentException.class,
                    () -> st.floats("lm_head.in", "hessian"));
            assertTrue(stat.getMessage().contains("no statistic 'hessian'"), stat.getMessage());
            assertThrows(IllegalArgumentException.class, () -> st.floats("lm_head.out", "min"));
        }
    }
}
