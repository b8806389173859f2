package org.qvlm4j.eval;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qvlm4j.cli.EvalCommand;
import org.qvlm4j.data.ScienceQaDataset;
import org.qvlm4j.data.ScienceQaProblem;
import org.qvlm4j.io.image.ClipImageProcessor;
import org.qvlm4j.io.image.PadMode;
import org.qvlm4j.io.text.ImageTokens;
import org.qvlm4j.io.text.LlavaTokenizer;
import org.qvlm4j.io.text.PromptTemplate;
import org.qvlm4j.model.GenerationConfig;
import org.qvlm4j.model.Generator;
import org.qvlm4j.model.LlavaModel;
import picocli.CommandLine;

/** End-to-end runs of {@code qvlm4j eval} on a tiny synthetic benchmark with a random tiny LLaVA. */
class EvalRunTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final int MAX_NEW = 6;

    @TempDir
    static Path tmp;
    static EvalFixture fx;
    static ScienceQaDataset data;

    @BeforeAll
    static void setUp() {
        fx = EvalFixture.create(tmp);
        data = ScienceQaDataset.load(fx.data);
    }

    record Cli(int code, String out, String err) {
    }

    static Cli eval(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        CommandLine cl = new CommandLine(new EvalCommand());
        cl.setOut(new PrintWriter(out, true));
        cl.setErr(new PrintWriter(err, true));
        int code = cl.execute(args);
        return new Cli(code, out.toString(), err.toString());
    }

    static Cli run(Path out, int threads, String... extra) {
        List<String> args = new ArrayList<>(List.of("--model", fx.model.toString(), "--data", fx.data.toString(),
                "--out", out.toString(), "--threads", Integer.toString(threads), "--max-new-tokens",
                Integer.toString(MAX_NEW)));
        args.addAll(Arrays.asList(extra));
        return eval(args.toArray(String[]::new));
    }

    static List<JsonNode> lines(Path runDir) throws Exception {
        List<JsonNode> out = new ArrayList<>();
        for (String l : Files.readAllLines(runDir.resolve(EvalRun.PREDICTIONS))) {
            out.add(JSON.readTree(l));
        }
        return out;
    }

    @Test
    void fullRunAgreesWithGeneratorAndIndependentScoring() throws Exception {
        Path dir = tmp.resolve("full");
        Cli c = run(dir, 2);
        assertEquals(0, c.code(), c.err());
        List<ScienceQaProblem> split = data.split("test");
        List<JsonNode> preds = lines(dir);
        assertEquals(split.size(), preds.size());

        try (LlavaTokenizer tok = LlavaTokenizer.load(fx.model); LlavaModel model = LlavaModel.load(fx.model)) {
            ClipImageProcessor proc = ClipImageProcessor.forModelDir(fx.model, PadMode.PAD_TO_SQUARE);
            Generator gen = new Generator(model);
            for (int i = 0; i < split.size(); i++) {
                ScienceQaProblem p = split.get(i);
                JsonNode l = preds.get(i);
                assertEquals(p.pid(), l.get("pid").asText());
                String prompt = ScienceQaPrompt.render(p, PromptTemplate.VICUNA_V1);
                assertEquals(prompt, l.get("prompt").asText());
                long[] ids = tok.encode(prompt);
                float[] pixels = null;
                if (p.hasImage()) {
                    ids = ImageTokens.expand(ids, model.config().imageTokenIndex(), 1, model.config().imageSeqLength());
                    pixels = proc.preprocess(p.imagePath()).data();
                }
                int[] intIds = Arrays.stream(ids).mapToInt(Math::toIntExact).toArray();
                int[] outIds = gen.generate(intIds, pixels, GenerationConfig.greedy(MAX_NEW), null);
                String text = tok.decode(Arrays.stream(outIds).asLongStream().toArray());
                assertEquals(text, l.get("output").asText(), p.pid());
                assertEquals(outIds.length, l.get("new_tokens").asInt());
                AnswerParser.Parsed parsed = AnswerParser.parse(text.strip(), p.choices().size());
                assertEquals(parsed.letter(), l.get("parsed").isNull() ? null : l.get("parsed").asText());
                assertEquals(parsed.index(), l.get("predicted").asInt());
                assertEquals(p.answer(), l.get("answer").asInt());
                assertEquals(parsed.index() == p.answer(), l.get("correct").asBoolean());
                assertEquals(parsed.failed(), l.get("parse_failed").asBoolean());
                List<String> cats = new ArrayList<>();
                l.get("categories").forEach(n -> cats.add(n.asText()));
                assertEquals(p.tableColumns(), cats);
            }
        }

        JsonNode report = new ObjectMapper().enable(DeserializationFeature.USE_BIG_DECIMAL_FOR_FLOATS)
                .setNodeFactory(com.fasterxml.jackson.databind.node.JsonNodeFactory.withExactBigDecimals(true))
                .readTree(dir.resolve(EvalRun.REPORT_JSON).toFile());
        List<String> rows = new ArrayList<>();
        for (String col : ScienceQaMetrics.COLUMNS) {
            int n = 0;
            int ok = 0;
            for (int i = 0; i < split.size(); i++) {
                if (col.equals("Avg") || split.get(i).tableColumns().contains(col)) {
                    n++;
                    if (preds.get(i).get("predicted").asInt() == split.get(i).answer()) {
                        ok++;
                    }
                }
            }
            assertEquals(n, report.get("count").get(col).asInt(), col);
            String expected = n == 0 ? "-" : String.format(Locale.ROOT, "%.2f", 100.0 * ok / n);
            rows.add(expected);
            JsonNode acc = report.get("accuracy").get(col);
            assertEquals(expected, acc.isNull() ? "-" : acc.decimalValue().toPlainString(), col);
        }
        long failures = preds.stream().filter(l -> l.get("parse_failed").asBoolean()).count();
        assertEquals(failures, report.get("parse_failures").asLong());
        assertEquals("test", report.get("split").asText());
        assertEquals(0, report.get("limit").asInt());
        assertEquals(fx.model.toAbsolutePath().normalize().toString(), report.get("model").asText());
        assertEquals(MAX_NEW, report.get("settings").get("max_new_tokens").asInt());
        assertEquals("VICUNA_V1", report.get("settings").get("template").asText());
        assertTrue(report.get("run").get("wall_seconds").asDouble() > 0);

        String row = "| " + String.join(" | ", rows) + " |";
        assertTrue(c.out().startsWith("| NAT | SOC | LAN | TXT | IMG | NO | G1-6 | G7-12 | Avg |\n"), c.out());
        assertTrue(c.out().contains(row + "\n"), c.out() + " lacks " + row);
        assertTrue(Files.readString(dir.resolve(EvalRun.REPORT_MD)).contains(row + "\n"));
        assertTrue(c.err().contains("eval: " + split.size() + "/" + split.size() + " problems"), c.err());
        assertFalse(Files.exists(dir.resolve(EvalRun.PREDICTIONS + ".tmp")));
    }

    @Test
    void oneAndTwoThreadsGiveIdenticalBytes() throws Exception {
        Path a = tmp.resolve("t1");
        Path b = tmp.resolve("t2");
        assertEquals(0, run(a, 1).code());
        assertEquals(0, run(b, 2).code());
        for (String f : List.of(EvalRun.PREDICTIONS, EvalRun.REPORT_MD, EvalRun.MANIFEST)) {
            assertArrayEquals(Files.readAllBytes(a.resolve(f)), Files.readAllBytes(b.resolve(f)), f);
        }
        assertEquals(withoutRun(a), withoutRun(b));
    }

    @Test
    void resumeAfterInterruptionGivesIdenticalOutputs() throws Exception {
        Path full = tmp.resolve("uninterrupted");
        assertEquals(0, run(full, 1).code());
        Path dir = tmp.resolve("interrupted");
        assertEquals(0, run(dir, 2).code());
        // Simulate a crash: five complete lines and half of the sixth, no reports.
        byte[] all = Files.readAllBytes(dir.resolve(EvalRun.PREDICTIONS));
        int cut = 0;
        for (int lines = 0; lines < 5; cut++) {
            if (all[cut] == '\n') {
                lines++;
            }
        }
        int half = cut + (indexOf(all, cut, (byte) '\n') - cut) / 2;
        Files.write(dir.resolve(EvalRun.PREDICTIONS), Arrays.copyOf(all, half));
        Files.delete(dir.resolve(EvalRun.REPORT_JSON));
        Files.delete(dir.resolve(EvalRun.REPORT_MD));

        Cli c = run(dir, 2);
        assertEquals(0, c.code(), c.err());
        assertTrue(c.out().contains("(5 resumed)"), c.out());
        for (String f : List.of(EvalRun.PREDICTIONS, EvalRun.REPORT_MD)) {
            assertArrayEquals(Files.readAllBytes(full.resolve(f)), Files.readAllBytes(dir.resolve(f)), f);
        }
        assertEquals(withoutRun(full), withoutRun(dir));
        assertEquals(5, JSON.readTree(dir.resolve(EvalRun.REPORT_JSON).toFile()).get("run").get("resumed").asInt());
    }

    private static int indexOf(byte[] a, int from, byte b) {
        for (int i = from; i < a.length; i++) {
            if (a[i] == b) {
                return i;
            }
        }
        return -1;
    }

    private static JsonNode withoutRun(Path dir) throws Exception {
        ObjectNode o = (ObjectNode) JSON.readTree(dir.resolve(EvalRun.REPORT_JSON).toFile());
        o.remove("run");
        return o;
    }

    @Test
    void refusesForeignOrDifferentRunsUnlessOverwrite() throws Exception {
        Path foreign = Files.createDirectories(tmp.resolve("foreign"));
        Files.writeString(foreign.resolve("notes.txt"), "mine");
        Cli c = run(foreign, 1);
        assertEquals(2, c.code());
        assertTrue(c.err().contains("not empty") && c.err().contains("--overwrite"), c.err());

        Path dir = tmp.resolve("different");
        assertEquals(0, run(dir, 1).code());
        byte[] before = Files.readAllBytes(dir.resolve(EvalRun.PREDICTIONS));
        Cli other = eval("--model", fx.model.toString(), "--data", fx.data.toString(), "--out", dir.toString(),
                "--threads", "1", "--max-new-tokens", "3");
        assertEquals(2, other.code());
        assertTrue(other.err().contains("/settings/max_new_tokens") && other.err().contains("earlier " + MAX_NEW),
                other.err());
        assertArrayEquals(before, Files.readAllBytes(dir.resolve(EvalRun.PREDICTIONS)));

        Cli over = eval("--model", fx.model.toString(), "--data", fx.data.toString(), "--out", dir.toString(),
                "--threads", "1", "--max-new-tokens", "3", "--overwrite");
        assertEquals(0, over.code(), over.err());
        for (JsonNode l : lines(dir)) {
            assertTrue(l.get("new_tokens").asInt() <= 3);
        }
        assertEquals(0, run(foreign, 1, "--overwrite").code());
        assertEquals("mine", Files.readString(foreign.resolve("notes.txt")));
    }

    @Test
    void limitSamplesInDatasetOrder() throws Exception {
        Path a = tmp.resolve("limit-a");
        Path b = tmp.resolve("limit-b");
        assertEquals(0, run(a, 1, "--limit", "5", "--seed", "3").code());
        assertEquals(0, run(b, 1, "--limit", "5", "--seed", "4").code());
        List<String> order = data.split("test").stream().map(ScienceQaProblem::pid).toList();
        List<String> pa = lines(a).stream().map(l -> l.get("pid").asText()).toList();
        List<String> pb = lines(b).stream().map(l -> l.get("pid").asText()).toList();
        assertEquals(5, pa.size());
        assertEquals(5, pb.size());
        for (List<String> pids : List.of(pa, pb)) {
            List<Integer> pos = pids.stream().map(order::indexOf).toList();
            assertFalse(pos.contains(-1));
            assertEquals(pos.stream().sorted().toList(), pos);
        }
        assertNotEquals(pa, pb);
        assertEquals(5, JSON.readTree(a.resolve(EvalRun.REPORT_JSON).toFile()).get("count").get("Avg").asInt());
    }

    @Test
    void badInputsExitTwoWithClearMessages() throws Exception {
        Cli missing = eval("--model", fx.model.toString(), "--data", tmp.resolve("nope").toString(),
                "--out", tmp.resolve("bad1").toString());
        assertEquals(2, missing.code());
        assertTrue(missing.err().contains("nope") && missing.err().contains("does not exist"), missing.err());

        Cli split = eval("--model", fx.model.toString(), "--data", fx.data.toString(), "--split", "minitest",
                "--out", tmp.resolve("bad2").toString());
        assertEquals(2, split.code());
        assertTrue(split.err().contains("pid_splits.json") && split.err().contains("minitest"), split.err());

        Path mismatched = tmp.resolve("mismatched-model");
        Files.createDirectories(mismatched);
        for (String f : List.of("model.safetensors", "tokenizer.json", "tokenizer_config.json", "preprocessor_config.json")) {
            Files.copy(fx.model.resolve(f), mismatched.resolve(f));
        }
        String config = Files.readString(fx.model.resolve("config.json"), StandardCharsets.UTF_8);
        ObjectNode cfg = (ObjectNode) JSON.readTree(config);
        cfg.put("image_token_index", 5);
        Files.writeString(mismatched.resolve("config.json"), JSON.writeValueAsString(cfg));
        Cli mm = eval("--model", mismatched.toString(), "--data", fx.data.toString(), "--out",
                tmp.resolve("bad3").toString());
        assertEquals(2, mm.code());
        assertTrue(mm.err().contains("'<image>' has id 4 but config.json image_token_index is 5"), mm.err());

        EvalFixture.writePreprocessor(mismatched, 32);
        cfg.put("image_token_index", 4);
        Files.writeString(mismatched.resolve("config.json"), JSON.writeValueAsString(cfg));
        Cli size = eval("--model", mismatched.toString(), "--data", fx.data.toString(), "--out",
                tmp.resolve("bad4").toString());
        assertEquals(2, size.code());
        assertTrue(size.err().contains("32x32") && size.err().contains("image_size is 48"), size.err());

        Cli threads = eval("--model", fx.model.toString(), "--data", fx.data.toString(), "--threads", "0",
                "--out", tmp.resolve("bad5").toString());
        assertEquals(2, threads.code());
        assertTrue(threads.err().contains("threads must be >= 1, got 0"), threads.err());
        assertFalse(Files.exists(tmp.resolve("bad1")));
    }

    @Test
    void progressAndImageCache() throws Exception {
        List<ScienceQaProblem> split = data.split("test");
        try (LlavaTokenizer tok = LlavaTokenizer.load(fx.model); LlavaModel model = LlavaModel.load(fx.model)) {
            ScienceQaEvaluator ev = new ScienceQaEvaluator(model, tok,
                    ClipImageProcessor.forModelDir(fx.model, PadMode.PAD_TO_SQUARE),
                    ScienceQaEvaluator.Settings.defaults());
            List<Prediction> first = new ArrayList<>();
            ev.evaluate(split, 2, first::add);
            long images = split.stream().filter(ScienceQaProblem::hasImage).count();
            assertTrue(images > 0);
            assertEquals(images, ev.cachedImages());
            List<Prediction> second = new ArrayList<>();
            ev.evaluate(split, 1, second::add);
            assertEquals(first, second);
        }
        List<EvalRun.Progress> seen = new ArrayList<>();
        EvalRun.run(new EvalRun.Request(fx.model, fx.data, "test", 0, 0, 2, ScienceQaEvaluator.Settings.defaults(),
                tmp.resolve("progress"), false), seen::add);
        assertEquals(split.size(), seen.size());
        for (int i = 0; i < seen.size(); i++) {
            assertEquals(i + 1, seen.get(i).done());
            assertEquals(split.size(), seen.get(i).total());
        }
        assertEquals(0, seen.getLast().etaSeconds());
    }

    @Test
    void randomFallbackScoresFailuresButStillCountsThem() throws Exception {
        List<ScienceQaProblem> split = data.split("test");
        try (LlavaTokenizer tok = LlavaTokenizer.load(fx.model); LlavaModel model = LlavaModel.load(fx.model)) {
            ClipImageProcessor proc = ClipImageProcessor.forModelDir(fx.model, PadMode.PAD_TO_SQUARE);
            ScienceQaEvaluator.Settings d = ScienceQaEvaluator.Settings.defaults();
            ScienceQaEvaluator.Settings fb = new ScienceQaEvaluator.Settings(d.template(), d.maxNewTokens(), d.padMode(),
                    true, 5);
            List<Prediction> plain = new ArrayList<>();
            new ScienceQaEvaluator(model, tok, proc, d).evaluate(split, 1, plain::add);
            List<Prediction> a = new ArrayList<>();
            List<Prediction> b = new ArrayList<>();
            new ScienceQaEvaluator(model, tok, proc, fb).evaluate(split, 2, a::add);
            new ScienceQaEvaluator(model, tok, proc, fb).evaluate(split, 1, b::add);
            assertEquals(a, b);
            int failures = 0;
            for (int i = 0; i < split.size(); i++) {
                Prediction x = a.get(i);
                assertEquals(plain.get(i).output(), x.output());
                assertEquals(plain.get(i).parseFailed(), x.parseFailed());
                if (x.parseFailed()) {
                    failures++;
                    assertTrue(x.predicted() >= 0 && x.predicted() < split.get(i).choices().size());
                    assertEquals(x.predicted() == split.get(i).answer(), x.correct());
                } else {
                    assertEquals(plain.get(i), x);
                }
            }
            assertTrue(failures > 0, "the random model should fail to answer some problems");
        }
    }
}
