package org.qvlm4j.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qvlm4j.bench.BenchFixtures;
import org.qvlm4j.bench.ModelComparison;
import org.qvlm4j.bench.ModelFootprint;
import org.qvlm4j.model.LlavaModel;

/**
 * {@code qvlm4j bench --model --vs} end to end on the tiny model and its INT4 export: every metric
 * of both models in the JSON, ratios equal to model / vs of the values, the printed table equal to
 * the JSON, a child JVM's size accounting equal to this JVM's, the kernel section of the export's
 * packed format, {@code --quantize} measuring a weight-only RTN copy against its model, and bad input
 * exiting 2 with a message naming the option and path. No assertion on any time or rate.
 */
class BenchCommandTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    /** Short runs: the numbers are not looked at, only their bookkeeping. */
    private static final String[] SHORT = {"--reps", "1", "--warmup", "0", "--decode-tokens", "2"};

    @TempDir
    static Path work;
    static Path int4;

    private record Run(int code, String out, String err) {}

    @BeforeAll
    static void export() {
        int4 = BenchFixtures.int4Export();
    }

    private static Run run(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        int code = Main.run(args, new PrintWriter(out, true), new PrintWriter(err, true));
        return new Run(code, out.toString(), err.toString());
    }

    private static String[] args(String... head) {
        List<String> all = new ArrayList<>(List.of(head));
        all.addAll(List.of(SHORT));
        return all.toArray(String[]::new);
    }

    private static ModelFootprint footprint(Path dir) {
        try (LlavaModel m = LlavaModel.load(dir)) {
            return ModelFootprint.of(dir, m);
        }
    }

    /** The table rows (after the "metric" header line) split into label and the trailing value columns. */
    private static List<String[]> tableRows(String out, int valueColumns) {
        List<String> lines = out.lines().toList();
        int header = 0;
        while (!lines.get(header).strip().startsWith("metric ")) {
            header++;
        }
        List<String[]> rows = new ArrayList<>();
        for (int i = header + 1; i <= header + ModelComparison.METRICS.size(); i++) {
            String[] tokens = lines.get(i).strip().split("\\s+");
            rows.add(Arrays.copyOfRange(tokens, tokens.length - valueColumns, tokens.length));
        }
        return rows;
    }

    @Test
    void comparesTheExportWithItsFloatModel() throws IOException {
        Path outDir = Files.createDirectories(work.resolve("out-compare"));
        Path json = outDir.resolve("bench.json");
        Run r = run(args("bench", "--model", int4.toString(), "--vs", BenchFixtures.TINY.toString(), "--in-process",
                "--skip-kernels", "--json", json.toString()));
        assertEquals(0, r.code(), r.err());
        JsonNode root = JSON.readTree(json.toFile());
        assertEquals(ModelComparison.FORMAT, root.path("format").asText());
        assertEquals(int4.toString(), root.path("model").asText());
        assertEquals(BenchFixtures.TINY.toString(), root.path("vs").asText());
        JsonNode metrics = root.path("metrics");
        assertEquals(ModelComparison.METRICS.size(), metrics.size());
        List<String[]> printed = tableRows(r.out(), 3);
        for (int i = 0; i < metrics.size(); i++) {
            JsonNode m = metrics.get(i);
            ModelComparison.Metric metric = ModelComparison.METRICS.get(i);
            assertEquals(metric.key(), m.path("key").asText());
            assertTrue(m.path("model").isNumber() && m.path("vs").isNumber(), m.toString());
            double a = m.path("model").asDouble();
            double b = m.path("vs").asDouble();
            if (b != 0) {
                assertEquals(a / b, m.path("ratio").asDouble(), 0.0, m.toString());
            } else {
                assertTrue(m.path("ratio").isNull(), m.toString());
            }
            String[] row = printed.get(i);
            assertEquals(ModelComparison.format(a, metric.unit()), row[0], metric.key());
            assertEquals(ModelComparison.format(b, metric.unit()), row[1], metric.key());
            assertEquals(ModelComparison.formatRatio(ModelComparison.ratio(a, b)), row[2], metric.key());
        }
        for (String which : List.of("model", "vs")) {
            ModelFootprint want = footprint(Path.of(root.path(which).asText()));
            assertEquals(want, JSON.treeToValue(root.path("reports").path(which).path("footprint"), ModelFootprint.class));
        }
        // the table's size rows are the two footprints
        assertEquals(footprint(int4).safetensorsBytes(), metrics.get(0).path("model").asLong());
        assertEquals(footprint(BenchFixtures.TINY).safetensorsBytes(), metrics.get(0).path("vs").asLong());
        try (Stream<Path> s = Files.list(outDir)) {
            assertEquals(List.of(json), s.toList(), "only the JSON is left (written through a temporary, renamed)");
        }
    }

    @Test
    void quantizeMeasuresTheRoundToNearestCopyAgainstItsModel() throws IOException {
        Path workDir = work.resolve("quantize-work");
        Path json = work.resolve("quantize.json");
        Run r = run(args("bench", "--model", BenchFixtures.TINY.toString(), "--quantize", "w4-asym-channel",
                "--work-dir", workDir.toString(), "--in-process", "--skip-kernels", "--json", json.toString()));
        assertEquals(0, r.code(), r.err());
        Path copy = workDir.resolve("tiny-llava-rtn-w4-asym-channel");
        JsonNode root = JSON.readTree(json.toFile());
        assertEquals(copy.toString(), root.path("model").asText());
        assertEquals(BenchFixtures.TINY.toString(), root.path("vs").asText());
        ModelFootprint q = footprint(copy);
        ModelFootprint f = footprint(BenchFixtures.TINY);
        // every linear the presets quantize and lm_head are packed; the patch embedding stays float
        assertEquals(BenchFixtures.quantizedLinears().size() + 1, q.packedLinearCount());
        assertEquals(1, q.floatLinears());
        JsonNode linears = null;
        for (JsonNode m : root.path("metrics")) {
            if (m.path("key").asText().equals("weights.linear_bytes")) {
                linears = m;
            }
        }
        assertNotNull(linears, root.path("metrics").toString());
        assertEquals(q.linearBytes(), linears.path("model").asLong());
        assertEquals(f.linearBytes(), linears.path("vs").asLong());
        String headline = r.out().lines().filter(l -> l.startsWith("model / vs: decode ")).findFirst().orElse("");
        String fewer = ModelComparison.formatRatio(ModelComparison.ratio(f.linearBytes(), q.linearBytes()));
        assertTrue(headline.contains("linears take " + fewer + "x fewer bytes"), r.out());
        assertTrue(r.err().contains("lm_head included"), r.err());

        Run vs = run(args("bench", "--model", BenchFixtures.TINY.toString(), "--quantize", "w4-asym-channel",
                "--vs", BenchFixtures.TINY.toString(), "--skip-kernels"));
        assertEquals(Main.EXIT_BAD_INPUT, vs.code());
        assertTrue(vs.err().contains("--quantize w4-asym-channel") && vs.err().contains("drop --vs"), vs.err());
        Run input = run(args("bench", "--model", BenchFixtures.TINY.toString(), "--quantize", "a8-sym-token",
                "--skip-kernels"));
        assertEquals(Main.EXIT_BAD_INPUT, input.code());
        assertTrue(input.err().contains("--quantize 'a8-sym-token'"), input.err());
    }

    @Test
    void aChildJvmAccountsTheModelAsThisJvmDoes() throws IOException {
        Path json = work.resolve("child.json");
        Run r = run(args("bench", "--model", int4.toString(), "--skip-kernels", "--json", json.toString()));
        assertEquals(0, r.code(), r.err());
        JsonNode root = JSON.readTree(json.toFile());
        assertEquals("child-jvm", root.path("isolation").asText());
        assertEquals(footprint(int4), JSON.treeToValue(root.path("reports").path("model").path("footprint"),
                ModelFootprint.class));
        for (JsonNode m : root.path("metrics")) {
            assertTrue(m.path("model").isNumber(), m.toString());
        }
        assertTrue(r.out().contains("child JVM"), r.out());
    }

    @Test
    void oneModelInProcessWithTheKernelsOfItsPackedFormat() throws IOException {
        Path json = work.resolve("single.json");
        Run r = run(args("bench", "--model", int4.toString(), "--in-process", "--kernel-size", "48,256",
                "--stream-mib", "8", "--json", json.toString()));
        assertEquals(0, r.code(), r.err());
        JsonNode root = JSON.readTree(json.toFile());
        assertEquals("in-process", root.path("isolation").asText());
        assertTrue(root.path("vs").isNull());
        for (JsonNode m : root.path("metrics")) {
            assertTrue(m.path("model").isNumber() && m.path("vs").isNull() && m.path("ratio").isNull(), m.toString());
        }
        List<String[]> printed = tableRows(r.out(), 1);
        for (int i = 0; i < printed.size(); i++) {
            assertEquals(ModelComparison.format(root.path("metrics").get(i).path("model").asDouble(),
                    ModelComparison.METRICS.get(i).unit()), printed.get(i)[0]);
        }
        JsonNode kernels = root.path("kernels");
        assertEquals(48, kernels.path("config").path("N").asInt());
        assertEquals(256, kernels.path("config").path("K").asInt());
        List<String> names = new ArrayList<>();
        kernels.path("rows").forEach(row -> names.add(row.path("name").asText()));
        assertEquals(List.of("F32", "BF16", "INT4 row"), names);
        // INT4 per row: N K / 2 code bytes, one fp32 scale and one zero point per row
        assertEquals(48 * 256 / 2 + 5 * 48, kernels.path("rows").get(2).path("weightBytes").asLong());
        assertTrue(r.out().contains("kernels of the formats of " + int4), r.out());
    }

    @Test
    void badInputExitsTwoNamingOptionAndPath() throws IOException {
        Path missing = work.resolve("missing");
        Run m = run(args("bench", "--model", missing.toString(), "--skip-kernels"));
        assertEquals(Main.EXIT_BAD_INPUT, m.code());
        assertTrue(m.err().contains("--model " + missing) && m.err().contains("no such directory"), m.err());

        Run vsOnly = run(args("bench", "--vs", BenchFixtures.TINY.toString(), "--skip-kernels"));
        assertEquals(Main.EXIT_BAD_INPUT, vsOnly.code());
        assertTrue(vsOnly.err().contains("--vs " + BenchFixtures.TINY + " needs --model"), vsOnly.err());

        Path notModel = Files.createDirectories(work.resolve("not-a-model"));
        Files.writeString(notModel.resolve("notes.txt"), "hello");
        Run nm = run(args("bench", "--model", int4.toString(), "--vs", notModel.toString(), "--skip-kernels"));
        assertEquals(Main.EXIT_BAD_INPUT, nm.code());
        assertTrue(nm.err().contains("--vs " + notModel) && nm.err().contains("not a model directory")
                && nm.err().contains("config.json"), nm.err());

        Path json = work.resolve("no-such-dir").resolve("x.json");
        Run j = run(args("bench", "--model", int4.toString(), "--skip-kernels", "--json", json.toString()));
        assertEquals(Main.EXIT_BAD_INPUT, j.code());
        assertTrue(j.err().contains("--json " + json), j.err());

        Run skip = run(args("bench", "--model", int4.toString(), "--vs", BenchFixtures.TINY.toString(), "--skip-model"));
        assertEquals(Main.EXIT_BAD_INPUT, skip.code());
        assertTrue(skip.err().contains("--skip-model"), skip.err());
    }

    @Test
    void aBrokenCheckpointInTheChildJvmIsBadInputWithItsMessage() throws IOException {
        Path broken = Files.createDirectories(work.resolve("broken"));
        Files.copy(BenchFixtures.TINY.resolve("config.json"), broken.resolve("config.json"));
        Files.writeString(broken.resolve("model.safetensors"), "not a safetensors file");
        Run r = run(args("bench", "--model", broken.toString(), "--skip-kernels"));
        assertEquals(Main.EXIT_BAD_INPUT, r.code(), r.err());
        assertTrue(r.err().contains("model.safetensors"), r.err());
        assertFalse(r.err().contains("internal error"), r.err());
    }
}
