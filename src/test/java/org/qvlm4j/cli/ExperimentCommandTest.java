package org.qvlm4j.cli;

import static org.junit.jupiter.api.Assertions.assertAll;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.math.BigDecimal;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qvlm4j.data.SynthBenchmark;

/**
 * {@code qvlm4j experiment baselines} end to end on the bundled random tiny LLaVA and a small
 * synthetic benchmark, restricted to two configurations: the table has the toolkit's rows and
 * columns, its accuracy cells are the evaluation reports' values (read from report.json's text),
 * its sizes are the checkpoint files' sizes, a second run with --resume does no new work (no file
 * behind the table is rewritten) and writes the same tables but for the date, and bad input exits 2
 * with a message naming the option. Accuracy itself is chance and not looked at; nor is any timing.
 */
class ExperimentCommandTest {
    private static final Path MODEL = Path.of("models/tiny-llava");
    private static final String[] COLUMNS = {"NAT", "SOC", "LAN", "TXT", "IMG", "NO", "G1-6", "G7-12", "Avg"};
    private static final List<String> METHODS = List.of("RTN", "SmoothQuant", "AWQ", "GPTQ", "QLoRA (NF4)",
            "ZeroQuant-V2");
    private static final List<String> BITS = List.of("W8A8", "W6A6", "W4A4", "W4A16");
    private static final String QUANT_ID = "rtn-w8a8";
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String README = "README.md";
    private static final String README_TEXT = "what these tables are\n";

    @TempDir
    static Path work;
    static Path data;
    static Path out;
    static Run first;
    static Run second;
    static String secondMd;
    static String secondJson;
    /** A third run with --only fp, after which the RTN row still holds the earlier run's results. */
    static Run third;
    static String thirdMd;
    static String firstMd;
    static String firstJson;
    static Map<Path, FileTime> stampsAfterFirst;

    private record Run(int code, String out, String err) {}

    @BeforeAll
    static void runTwice() throws IOException {
        data = work.resolve("data");
        SynthBenchmark.write(data, new SynthBenchmark.Options(5, 6, 0, 8, 48), null);
        out = work.resolve("out");
        // a directory holding other files (docs/results holds its README) is a valid new output
        Files.createDirectories(out);
        Files.writeString(out.resolve(README), README_TEXT);
        first = run(baseArgs(out));
        firstMd = Files.readString(out.resolve("baselines.md"));
        firstJson = Files.readString(out.resolve("baselines.json"));
        stampsAfterFirst = stamps(out);
        List<String> again = new ArrayList<>(List.of(baseArgs(out)));
        again.add("--resume");
        second = run(again.toArray(String[]::new));
        secondMd = Files.readString(out.resolve("baselines.md"));
        secondJson = Files.readString(out.resolve("baselines.json"));
        List<String> fpOnly = new ArrayList<>(again);
        fpOnly.set(fpOnly.indexOf("--only") + 1, "fp");
        third = run(fpOnly.toArray(String[]::new));
        thirdMd = Files.readString(out.resolve("baselines.md"));
    }

    private static String[] baseArgs(Path o) {
        return new String[] {"experiment", "baselines", "--model", MODEL.toString(), "--data", data.toString(), "--out",
                o.toString(), "--calib-n", "3", "--limit", "6", "--max-new-tokens", "3", "--bench-reps", "1",
                "--decode-tokens", "2", "--threads", "2", "--bench-in-process", "--only", "fp," + QUANT_ID};
    }

    private static Run run(String... args) {
        StringWriter o = new StringWriter();
        StringWriter e = new StringWriter();
        int code = Main.run(args, new PrintWriter(o, true), new PrintWriter(e, true));
        return new Run(code, o.toString(), e.toString());
    }

    /** Modification times of every regular file under dir, except the tables themselves. */
    private static Map<Path, FileTime> stamps(Path dir) throws IOException {
        Map<Path, FileTime> m = new LinkedHashMap<>();
        try (Stream<Path> s = Files.walk(dir)) {
            for (Path p : s.filter(Files::isRegularFile).sorted().toList()) {
                String n = p.getFileName().toString();
                if (!n.equals("baselines.md") && !n.equals("baselines.json")) {
                    m.put(dir.relativize(p), Files.getLastModifiedTime(p));
                }
            }
        }
        return m;
    }

    /** The rows of the Markdown table whose first line (header) starts with headStart, as cells. */
    private static List<List<String>> table(String md, String headStart) {
        List<List<String>> rows = new ArrayList<>();
        boolean in = false;
        for (String line : md.split("\n")) {
            if (line.startsWith(headStart)) {
                in = true;
            } else if (in && !line.startsWith("|")) {
                break;
            }
            if (in && !line.startsWith("|---")) {
                List<String> cells = new ArrayList<>();
                for (String c : line.substring(1, line.length() - 1).split(" \\|", -1)) {
                    cells.add(c.strip());
                }
                rows.add(cells);
            }
        }
        return rows;
    }

    /** A column's accuracy in report.json exactly as written there (e.g. "16.67"), or "-" for null. */
    private static String reportAccuracy(String id, String column) throws IOException {
        return reportAccuracy(out, id, column);
    }

    private static String reportAccuracy(Path o, String id, String column) throws IOException {
        String text = Files.readString(o.resolve("eval").resolve(id).resolve("report.json"));
        int acc = text.indexOf("\"accuracy\"");
        Matcher m = Pattern.compile("\"" + Pattern.quote(column) + "\"\\s*:\\s*(null|[0-9.]+)").matcher(text);
        assertTrue(m.find(acc), "report.json of " + id + " has no accuracy for " + column);
        return m.group(1).equals("null") ? "-" : m.group(1);
    }

    private static List<String> row(List<List<String>> t, String method, String bits) {
        return t.stream().filter(r -> r.get(0).equals(method) && r.get(1).equals(bits)).findFirst()
                .orElseThrow(() -> new AssertionError("no row " + method + " " + bits + " in " + t));
    }

    @Test
    void firstRunSucceedsAndWritesTheTables() {
        assertEquals(0, first.code(), first.err());
        assertTrue(first.out().contains("wrote " + out.resolve("baselines.md")), first.out());
        assertTrue(first.out().contains("25 configurations: 2 done, 2 unavailable, 21 not selected, 0 failed"),
                first.out());
    }

    @Test
    void theTableHasTheToolkitsRowsAndColumns() {
        List<List<String>> main = table(firstMd, "| Method | Bits | Avg");
        assertEquals(List.of("Method", "Bits", "Avg (%)", "Δ FP", "Parse failures", "Size on disk", "Weights held",
                "Peak RSS", "Decode tokens/s", "Note"), main.getFirst());
        List<List<String>> expected = new ArrayList<>();
        expected.add(List.of("FP", "FP"));
        for (String b : BITS) {
            for (String m : METHODS) {
                expected.add(List.of(m, b));
            }
        }
        assertEquals(expected, main.subList(1, main.size()).stream().map(r -> r.subList(0, 2)).toList());
        List<List<String>> classes = table(firstMd, "| Method | Bits | NAT");
        List<String> header = new ArrayList<>(List.of("Method", "Bits"));
        header.addAll(List.of(COLUMNS));
        header.add("Note");
        assertEquals(header, classes.getFirst());
        assertEquals(expected.size() + 1, classes.size());
        for (List<String> r : main) {
            assertEquals(main.getFirst().size(), r.size(), "cells of " + r);
        }
    }

    @Test
    void rowsWithoutResultsSayWhy() {
        List<List<String>> main = table(firstMd, "| Method | Bits | Avg");
        for (String b : List.of("W8A8", "W6A6")) {
            List<String> r = row(main, "QLoRA (NF4)", b);
            assertEquals("n/a", r.get(2));
            assertTrue(r.getLast().contains("4-bit weight format"), r.toString());
        }
        List<String> unselected = row(main, "AWQ", "W4A4");
        assertEquals("n/a", unselected.get(2));
        assertTrue(unselected.getLast().contains("not selected (--only)"), unselected.toString());
        assertTrue(row(main, "RTN", "W8A8").getLast().isEmpty());
    }

    @Test
    void accuracyCellsAreTheEvaluationReportsValues() throws IOException {
        List<List<String>> main = table(firstMd, "| Method | Bits | Avg");
        List<List<String>> classes = table(firstMd, "| Method | Bits | NAT");
        Map<String, List<String>> ids = Map.of("fp", List.of("FP", "FP"), QUANT_ID, List.of("RTN", "W8A8"));
        for (Map.Entry<String, List<String>> e : ids.entrySet()) {
            String avg = reportAccuracy(e.getKey(), "Avg");
            assertEquals(avg, row(main, e.getValue().get(0), e.getValue().get(1)).get(2), e.getKey());
            List<String> cr = row(classes, e.getValue().get(0), e.getValue().get(1));
            for (int i = 0; i < COLUMNS.length; i++) {
                assertEquals(reportAccuracy(e.getKey(), COLUMNS[i]), cr.get(2 + i), e.getKey() + " " + COLUMNS[i]);
            }
        }
        BigDecimal delta = new BigDecimal(reportAccuracy(QUANT_ID, "Avg")).subtract(new BigDecimal(
                reportAccuracy("fp", "Avg")));
        assertEquals((delta.signum() >= 0 ? "+" : "") + delta.toPlainString(), row(main, "RTN", "W8A8").get(3));
    }

    @Test
    void sizesAreTheCheckpointFilesSizes() throws IOException {
        JsonNode json = JSON.readTree(firstJson);
        Map<String, Path> weights = Map.of("fp", MODEL.resolve("model.safetensors"), QUANT_ID,
                out.resolve("models").resolve(QUANT_ID).resolve("model.safetensors"));
        List<List<String>> main = table(firstMd, "| Method | Bits | Avg");
        Map<String, List<String>> rows = Map.of("fp", row(main, "FP", "FP"), QUANT_ID, row(main, "RTN", "W8A8"));
        int found = 0;
        for (JsonNode c : json.path("configurations")) {
            String id = c.path("id").asText();
            if (!weights.containsKey(id)) {
                continue;
            }
            found++;
            long size = Files.size(weights.get(id));
            assertEquals(size, c.path("bench").path("safetensors_bytes").asLong(), id);
            // the tiny model's files are below 1 MB: shown in kB with one decimal
            assertEquals(String.format(Locale.ROOT, "%.1f kB", size / 1000.0), rows.get(id).get(5), id);
        }
        assertEquals(2, found);
        assertTrue(Files.size(weights.get(QUANT_ID)) < Files.size(weights.get("fp")));
    }

    @Test
    void theTablesRecordHowTheyWereMade() {
        assertAll(
                () -> assertTrue(firstMd.contains("- Command: `qvlm4j experiment baselines --model " + MODEL), firstMd),
                () -> assertTrue(firstMd.contains("--calib-n 3 --calib-seed 0 --eval-split test --limit 6"), firstMd),
                () -> assertTrue(firstMd.contains("- Machine: "), firstMd),
                () -> assertTrue(firstMd.contains("- Date: "), firstMd),
                () -> assertTrue(firstMd.contains("`--model " + MODEL + " --stats " + out.resolve("stats")
                        + " --method rtn --wbits 8 --abits 8 --out " + out.resolve("models").resolve(QUANT_ID) + "`"),
                        firstMd));
    }

    @Test
    void aResumedRunDoesNoNewWorkAndWritesTheSameTables() throws IOException {
        assertEquals(0, second.code(), second.err());
        assertFalse(second.err().contains("quantize --method"), second.err());
        assertFalse(second.err().contains("evaluate on"), second.err());
        assertFalse(second.err().contains("measure size"), second.err());
        for (String step : List.of("calibration statistics", "fp: evaluation", "fp: measurement", QUANT_ID
                + ": checkpoint", QUANT_ID + ": evaluation", QUANT_ID + ": measurement")) {
            assertTrue(second.err().contains(step) && second.err().contains("(reused)"), step + " in " + second.err());
        }
        assertEquals(stampsAfterFirst, stamps(out));
        assertEquals(withoutDate(firstMd), withoutDate(secondMd));
        JsonNode a = JSON.readTree(firstJson);
        JsonNode b = JSON.readTree(secondJson);
        ((com.fasterxml.jackson.databind.node.ObjectNode) a).remove("date");
        ((com.fasterxml.jackson.databind.node.ObjectNode) b).remove("date");
        assertEquals(a, b);
    }

    @Test
    void aConfigurationLeftOutByOnlyKeepsItsEarlierResults() {
        assertEquals(0, third.code(), third.err());
        assertTrue(third.err().contains(QUANT_ID + ": not selected; results of an earlier run (reused)"), third.err());
        List<String> before = row(table(firstMd, "| Method | Bits | Avg"), "RTN", "W8A8");
        List<String> after = row(table(thirdMd, "| Method | Bits | Avg"), "RTN", "W8A8");
        assertEquals(before, after);
    }

    private static String withoutDate(String md) {
        return md.replaceAll("(?m)^- Date: .*$", "");
    }

    @Test
    void badInputExitsTwoWithANamedMessage() throws IOException {
        Path fresh = work.resolve("never");
        Run name = run("experiment", "table3", "--model", MODEL.toString(), "--data", data.toString(), "--out",
                fresh.toString());
        assertEquals(2, name.code());
        assertTrue(name.err().contains("experiment: expected one of baselines") && name.err().contains("'table3'"),
                name.err());

        Run only = run("experiment", "baselines", "--model", MODEL.toString(), "--data", data.toString(), "--out",
                fresh.toString(), "--only", "rtn-w3a3");
        assertEquals(2, only.code());
        assertTrue(only.err().contains("--only") && only.err().contains("'rtn-w3a3'"), only.err());

        Run calib = run("experiment", "baselines", "--model", MODEL.toString(), "--data", data.toString(), "--out",
                fresh.toString(), "--calib-n", "64");
        assertEquals(2, calib.code());
        assertTrue(calib.err().contains("--calib-n 64") && calib.err().contains("only 6 problems"), calib.err());

        Run model = run("experiment", "baselines", "--model", work.resolve("nomodel").toString(), "--data",
                data.toString(), "--out", fresh.toString());
        assertEquals(2, model.code());
        assertTrue(model.err().contains("--model") && model.err().contains("nomodel"), model.err());

        Path earlier = work.resolve("earlier");
        Files.createDirectories(earlier.resolve("eval"));
        Run stale = run("experiment", "baselines", "--model", MODEL.toString(), "--data", data.toString(), "--out",
                earlier.toString(), "--calib-n", "3");
        assertEquals(2, stale.code());
        assertTrue(stale.err().contains("holds eval but no experiment.json"), stale.err());

        Run noResume = run(baseArgs(out));
        assertEquals(2, noResume.code());
        assertTrue(noResume.err().contains("--resume"), noResume.err());

        List<String> other = new ArrayList<>(List.of(baseArgs(out)));
        other.set(other.indexOf("--limit") + 1, "5");
        other.add("--resume");
        Run changed = run(other.toArray(String[]::new));
        assertEquals(2, changed.code());
        assertTrue(changed.err().contains("limit (--limit): earlier 6, now 5"), changed.err());
        Run neither = run("experiment", "headline", "--model", MODEL.toString(), "--out", fresh.toString());
        assertEquals(2, neither.code());
        assertTrue(neither.err().contains("exactly one of --data DIR and --synth-seed S, got neither"), neither.err());
        Run both = run("experiment", "headline", "--model", MODEL.toString(), "--data", data.toString(),
                "--synth-seed", "3", "--out", fresh.toString());
        assertEquals(2, both.code());
        assertTrue(both.err().contains("got both"), both.err());
        Run noModel = run("experiment", "headline", "--model", work.resolve("nomodel").toString(), "--synth-seed", "3",
                "--out", fresh.toString());
        assertEquals(2, noModel.code());
        assertTrue(noModel.err().contains("--model") && noModel.err().contains("nomodel"), noModel.err());
        assertFalse(Files.exists(fresh), "bad input must be refused before any output is made");
    }

    /** The headline on a seed-11 benchmark, FP only, with the smallest settings that run every step. */
    private static String[] smallHeadline(Path model, Path out) {
        return new String[] {"experiment", "headline", "--model", model.toString(), "--synth-seed", "11", "--out",
                out.toString(), "--calib-n", "3", "--limit", "4", "--max-new-tokens", "2", "--bench-reps", "1",
                "--decode-tokens", "2", "--threads", "2", "--bench-in-process", "--only", "fp"};
    }

    @Test
    void aDrawnBenchmarkHasTheSolutionsTheModelWasTrainedOn() throws IOException {
        Path m = work.resolve("steps-model");
        Files.createDirectories(m);
        try (var files = Files.list(MODEL)) {
            for (Path f : files.toList()) {
                Files.copy(f, m.resolve(f.getFileName()));
            }
        }
        Files.writeString(m.resolve("train_manifest.json"), "{\"answer_style\": \"letter\", \""
                + SynthBenchmark.Solutions.TRAIN_MANIFEST_KEY + "\": \"steps\"}");
        Path o = work.resolve("steps-run");
        String[] args = smallHeadline(m, o);
        Run r = run(args);
        assertEquals(0, r.code(), r.err());
        Path drawn = o.resolve("data-seed-11");
        assertEquals(SynthBenchmark.Solutions.STEPS, SynthBenchmark.Solutions.ofData(drawn));
        Path direct = work.resolve("seed11-steps");
        SynthBenchmark.write(direct, new SynthBenchmark.Options(11, ExperimentCommand.SYNTH_TRAIN, 0,
                ExperimentCommand.SYNTH_TEST, ExperimentCommand.SYNTH_IMAGE_SIZE, SynthBenchmark.Solutions.STEPS), null);
        assertEquals(Files.readString(direct.resolve("problems.json")), Files.readString(drawn.resolve("problems.json")));

        // A benchmark with the other solutions under the same --out is refused by name, not reused.
        Path mixed = work.resolve("mixed-run");
        SynthBenchmark.write(mixed.resolve("data-seed-11"), new SynthBenchmark.Options(11, 4, 0, 4,
                ExperimentCommand.SYNTH_IMAGE_SIZE), null);
        List<String> again = new ArrayList<>(List.of(args));
        again.set(again.indexOf(o.toString()), mixed.toString());
        again.add("--resume");
        Run refused = run(again.toArray(String[]::new));
        assertEquals(2, refused.code(), refused.err());
        assertTrue(refused.err().contains("key solutions: expected 'steps'") && refused.err().contains("got 'plain'"),
                refused.err());
    }

    @Test
    void synthTestSetsTheTestSplitAndAReusedBenchmarkMustMatchIt() throws IOException {
        Path o = work.resolve("test-count");
        List<String> args = new ArrayList<>(List.of(smallHeadline(MODEL, o)));
        args.addAll(List.of("--synth-test", "7"));
        Run r = run(args.toArray(String[]::new));
        assertEquals(0, r.code(), r.err());
        Path drawn = o.resolve("data-seed-11");
        assertEquals(7, JSON.readTree(drawn.resolve("pid_splits.json").toFile()).path("test").size());
        assertEquals(7, JSON.readTree(drawn.resolve("synth.json").toFile()).path("test").asInt());

        // The same --out with the default test count: refused by file, key and both counts, not reused.
        List<String> other = new ArrayList<>(List.of(smallHeadline(MODEL, o)));
        other.add("--resume");
        Run refused = run(other.toArray(String[]::new));
        assertEquals(2, refused.code(), refused.err());
        assertTrue(refused.err().contains("synth.json: key test: expected " + ExperimentCommand.SYNTH_TEST + ", got 7"),
                refused.err());
        Run zero = run(smallHeadline(MODEL, work.resolve("zero-test"))[0], "headline", "--model", MODEL.toString(),
                "--synth-seed", "11", "--out", work.resolve("zero-test").toString(), "--synth-test", "0");
        assertEquals(2, zero.code(), zero.err());
        assertTrue(zero.err().contains("--synth-test must be >= 1, got 0"), zero.err());
        assertFalse(Files.exists(work.resolve("zero-test")), "bad input must be refused before any output is made");
    }

    @Test
    void headlineOnAFreshlyDrawnBenchmarkPrintsItsTable() throws IOException {
        Path o = work.resolve("headline");
        String[] args = smallHeadline(MODEL, o);
        Run r = run(args);
        assertEquals(0, r.code(), r.err());
        Path drawn = o.resolve("data-seed-11");
        JsonNode splits = JSON.readTree(drawn.resolve("pid_splits.json").toFile());
        assertEquals(ExperimentCommand.SYNTH_TRAIN, splits.path("train").size());
        assertEquals(ExperimentCommand.SYNTH_TEST, splits.path("test").size());
        assertEquals(11, JSON.readTree(drawn.resolve("synth.json").toFile()).path("seed").asLong());
        // The same benchmark as `synth --seed 11` draws.
        Path direct = work.resolve("seed11");
        SynthBenchmark.write(direct, new SynthBenchmark.Options(11, ExperimentCommand.SYNTH_TRAIN, 0,
                ExperimentCommand.SYNTH_TEST, ExperimentCommand.SYNTH_IMAGE_SIZE), null);
        assertEquals(Files.readString(direct.resolve("problems.json")), Files.readString(drawn.resolve("problems.json")));

        List<List<String>> t = table(r.out(), "| Method");
        assertEquals(List.of("Method", "Bits", "Avg (%)"), t.getFirst().subList(0, 3));
        assertEquals(List.of("FP", "FP", reportAccuracy(o, "fp", "Avg")), t.get(1).subList(0, 3));
        assertEquals(List.of("Q-VLM", "W4A4", "n/a"), t.get(2).subList(0, 3));
        assertEquals(2 + METHODS.size() + 1, t.size() - 1); // FP, Q-VLM, the baselines, the tuned SmoothQuant

        List<String> again = new ArrayList<>(List.of(args));
        again.add("--resume");
        Run second = run(again.toArray(String[]::new));
        assertEquals(0, second.code(), second.err());
        assertTrue(second.err().contains("reusing the seed-11 benchmark"), second.err());
        assertEquals(t, table(second.out(), "| Method"));
    }

    @Test
    void everyStepLeftItsRecord() throws IOException {
        for (String id : List.of("fp", QUANT_ID)) {
            assertTrue(Files.isRegularFile(out.resolve("eval").resolve(id).resolve("report.json")), id);
            JsonNode bench = JSON.readTree(out.resolve("bench").resolve(id + ".json").toFile());
            assertEquals("qvlm4j-bench", bench.path("format").asText());
            assertNotNull(bench.path("reports").get("model"));
        }
        JsonNode steps = JSON.readTree(out.resolve("steps").resolve(QUANT_ID + ".json").toFile());
        assertTrue(steps.path("quantize").path("seconds").asDouble() > 0, steps.toString());
        assertEquals("stats/\nmodels/\nwork/\ndata-seed-*/\n", Files.readString(out.resolve(".gitignore")));
        assertEquals(README_TEXT, Files.readString(out.resolve(README)));
    }
}
