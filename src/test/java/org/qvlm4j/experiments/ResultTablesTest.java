package org.qvlm4j.experiments;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.awt.image.BufferedImage;
import java.io.IOException;
import java.math.BigDecimal;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qvlm4j.eval.ScienceQaMetrics;
import org.qvlm4j.experiments.ConfigSpec.QvlmVariant;

/**
 * The Q-VLM tables' layouts and the cells they take from each configuration, on outcome records
 * with a distinct value per configuration (so a cell read from the wrong configuration shows), and
 * the sharing of configurations between tables that the paper implies (Table 5's entropy row is
 * Table 1's +CDM; Fig. 3's default points are Table 2's Q-VLM). Hand-derived expectations: the
 * paper's percentile grids, the column lists of docs/results/README.md.
 */
class ResultTablesTest {
    private static final int W = 4;
    private static final int A = 4;

    @TempDir
    static Path out;
    static Map<String, Outcome> outcomes = new LinkedHashMap<>();
    static Map<String, Integer> index = new LinkedHashMap<>();

    @BeforeAll
    static void writeAll() {
        int i = 0;
        for (ConfigSpec c : Experiment.ALL.configs()) {
            index.put(c.id(), i);
            if (c.unavailable() != null) {
                outcomes.put(c.id(), Outcome.of(c, Outcome.Status.UNAVAILABLE, c.unavailable()));
            } else {
                outcomes.put(c.id(), outcome(c, i));
            }
            i++;
        }
        Settings s = new Settings(Path.of("models/ref"), Path.of("data/ref"), out, 64, 0, "test", 0, 64, 2, 3, 32,
                false, List.of(), false);
        ResultTables.Provenance p = new ResultTables.Provenance(s, "ab".repeat(32), "cd".repeat(32), "test machine");
        for (Experiment e : Experiment.ALL.tables()) {
            ResultTables.write(e, outcomes, p, out);
        }
    }

    /** Configuration i: accuracy of column k is i + k/100 + 0.5 (as "i.kk" with two decimals); sizes and times from i. */
    private static Outcome outcome(ConfigSpec c, int i) {
        Map<String, BigDecimal> acc = new LinkedHashMap<>();
        Map<String, Integer> count = new LinkedHashMap<>();
        int k = 0;
        for (String col : ScienceQaMetrics.COLUMNS) {
            acc.put(col, new BigDecimal(String.format(Locale.ROOT, "%d.%02d", i, 10 + k++)));
            count.put(col, 7);
        }
        Outcome.Load idle = new Outcome.Load(0, 0.1, 2);
        Outcome.Quantized q = c.isFp() ? null : new Outcome.Quantized(List.of("--method", c.method()), 10 + i,
                c.method().equals("qvlm") ? i + 0.5 : Double.NaN, c.method().equals("qvlm") ? 100L * i : -1, Double.NaN, idle);
        return new Outcome(c, Outcome.Status.DONE, null, q,
                new Outcome.Evaluated(acc, count, 0, 70, 3.0 * i + 1, idle, correct(i)),
                new Outcome.Benched(2000L * (i + 1), 1000L * (i + 1), 5_000_000L, 10, 20, 2, idle));
    }

    /** Configuration i's per-problem outcomes: 70 problems, a pattern that differs between configurations. */
    private static Map<String, Boolean> correct(int i) {
        Map<String, Boolean> m = new LinkedHashMap<>();
        for (int j = 0; j < 70; j++) {
            m.put("p" + j, (j * 7 + i * 3 + j / 9) % 10 < 7);
        }
        return m;
    }

    /** The paired-table cells expected for ref against other, counted here from the outcomes. */
    private static List<String> pairedCells(String ref, String other) {
        Map<String, Boolean> a = outcomes.get(ref).eval().correct();
        Map<String, Boolean> b = outcomes.get(other).eval().correct();
        int onlyA = 0;
        int onlyB = 0;
        for (String pid : a.keySet()) {
            onlyA += a.get(pid) && !b.get(pid) ? 1 : 0;
            onlyB += !a.get(pid) && b.get(pid) ? 1 : 0;
        }
        return List.of(Integer.toString(onlyA), Integer.toString(onlyB),
                String.format(Locale.ROOT, "%+.2f", 100.0 * (onlyA - onlyB) / a.size()),
                ResultTables.pValue(org.qvlm4j.eval.PairedComparison.mcnemarExact(onlyA, onlyB)));
    }

    private static String avg(String id) {
        return outcomes.get(id).eval().accuracy().get("Avg").toPlainString();
    }

    private static String kb(long bytes) {
        return String.format(Locale.ROOT, "%.1f kB", bytes / 1000.0);
    }

    private static String weights(String id) {
        return kb(1000L * (index.get(id) + 1));
    }

    private static String cost(String id) {
        int i = index.get(id);
        return String.format(Locale.ROOT, "%.1f s, %,d layer passes", i + 0.5, 100L * i);
    }

    /** All Markdown tables of a file: each a list of rows of cells, header first. */
    private static List<List<List<String>>> tables(String name) throws IOException {
        List<List<List<String>>> all = new ArrayList<>();
        List<List<String>> cur = null;
        for (String line : Files.readString(out.resolve(name)).split("\n")) {
            if (line.startsWith("|")) {
                if (cur == null) {
                    cur = new ArrayList<>();
                    all.add(cur);
                }
                if (!line.startsWith("|---")) {
                    List<String> cells = new ArrayList<>();
                    for (String c : line.substring(1, line.length() - 1).split(" \\|", -1)) {
                        cells.add(c.strip());
                    }
                    cur.add(cells);
                }
            } else {
                cur = null;
            }
        }
        return all;
    }

    @Test
    void table1HasThePapersLayoutAndEachRowItsVariant() throws IOException {
        List<List<String>> t = tables("table1.md").getFirst();
        assertEquals(List.of("Method", "W6A6 Memory", "W6A6 Search cost", "W6A6 Acc", "W4A4 Memory",
                "W4A4 Search cost", "W4A4 Acc", "Note"), t.getFirst());
        String[][] ids = {{"qvlm-layerwise-w6a6", "qvlm-layerwise-w4a4"}, {"qvlm-cdm-w6a6", "qvlm-cdm-w4a4"},
                {"qvlm-veo-w6a6", "qvlm-veo-w4a4"}, {"qvlm-w6a6", "qvlm-w4a4"}};
        assertEquals(List.of("Baseline (layer-wise search)", "+CDM", "+VEO", "Q-VLM (CDM + VEO)"),
                t.subList(1, 5).stream().map(List::getFirst).toList());
        for (int r = 0; r < ids.length; r++) {
            List<String> row = t.get(r + 1);
            assertEquals(List.of(weights(ids[r][0]), cost(ids[r][0]), avg(ids[r][0]), weights(ids[r][1]),
                    cost(ids[r][1]), avg(ids[r][1]), ""), row.subList(1, row.size()));
        }
    }

    @Test
    void table2HasEveryClassOfFpAwqQloraAndQvlm() throws IOException {
        List<List<String>> t = tables("table2.md").getFirst();
        List<String> header = new ArrayList<>(List.of("Bits", "Method"));
        header.addAll(ScienceQaMetrics.COLUMNS);
        header.add("Note");
        assertEquals(header, t.getFirst());
        List<List<String>> lead = t.subList(1, t.size()).stream().map(r -> r.subList(0, 2)).toList();
        assertEquals(List.of(List.of("FP", "FP"), List.of("W6A6", "AWQ"), List.of("W6A6", "QLoRA (NF4)"),
                List.of("W6A6", "Q-VLM"), List.of("W4A4", "AWQ"), List.of("W4A4", "QLoRA (NF4)"),
                List.of("W4A4", "Q-VLM")), lead);
        List<String> qvlm = t.get(7);
        for (int k = 0; k < ScienceQaMetrics.COLUMNS.size(); k++) {
            assertEquals(outcomes.get("qvlm-w4a4").eval().accuracy().get(ScienceQaMetrics.COLUMNS.get(k))
                    .toPlainString(), qvlm.get(2 + k));
        }
        List<String> nf4w6 = t.get(3);
        assertEquals("n/a", nf4w6.get(2));
        assertTrue(nf4w6.getLast().contains("there is no 6-bit NF4"), nf4w6.toString());
    }

    @Test
    void table4GivesTimeMemoryAndAccuracyPerBitWidth() throws IOException {
        List<List<String>> t = tables("table4.md").getFirst();
        assertEquals(List.of("Method", "FP Time", "FP Memory", "FP Acc", "W8A8 Time", "W8A8 Memory", "W8A8 Acc",
                "W4A4 Time", "W4A4 Memory", "W4A4 Acc", "Note"), t.getFirst());
        assertEquals(List.of("FP", "QLoRA (NF4)", "AWQ", "Q-VLM"), t.subList(1, 5).stream().map(List::getFirst)
                .toList());
        int fp = index.get("fp");
        assertEquals(List.of(String.format(Locale.ROOT, "%.1f s", 3.0 * fp + 1), weights("fp"), avg("fp")),
                t.get(1).subList(1, 4));
        int awq8 = index.get("awq-w8a8");
        assertEquals(List.of(String.format(Locale.ROOT, "%.1f s", 3.0 * awq8 + 1), weights("awq-w8a8"),
                avg("awq-w8a8")), t.get(3).subList(4, 7));
        assertEquals(List.of("n/a", "n/a", "n/a"), t.get(2).subList(4, 7));
        assertEquals(avg("qvlm-w4a4"), t.get(4).get(9));
    }

    @Test
    void table5ComparesTheProxiesAtCdmWithoutVeo() throws IOException {
        List<List<String>> t = tables("table5.md").getFirst();
        assertEquals(List.of("Proxy", "W6A6 Acc", "W6A6 Search cost", "W4A4 Acc", "W4A4 Search cost", "Note"),
                t.getFirst());
        assertEquals(List.of("Quantization errors", avg("qvlm-cdm-errproxy-w6a6"), cost("qvlm-cdm-errproxy-w6a6"),
                avg("qvlm-cdm-errproxy-w4a4"), cost("qvlm-cdm-errproxy-w4a4"), ""), t.get(1));
        assertEquals(List.of("Entropy", avg("qvlm-cdm-w6a6"), cost("qvlm-cdm-w6a6"), avg("qvlm-cdm-w4a4"),
                cost("qvlm-cdm-w4a4"), ""), t.get(2));
    }

    @Test
    void table6ComparesWithZeroQuantV2() throws IOException {
        List<List<String>> t = tables("table6.md").getFirst();
        assertEquals(List.of("Method", "W8A8 Acc", "W8A8 Inference time", "W4A4 Acc", "W4A4 Inference time", "Note"),
                t.getFirst());
        assertEquals("ZeroQuant-V2", t.get(1).getFirst());
        assertEquals(avg("zeroquant-v2-w4a4"), t.get(1).get(3));
        assertEquals("Q-VLM", t.get(2).getFirst());
        assertEquals(avg("qvlm-w8a8"), t.get(2).get(1));
    }

    @Test
    void headlinePutsQvlmBesideFpAndRanksTheBaselinesByAccuracy() throws IOException {
        List<List<String>> t = tables("headline.md").getFirst();
        assertEquals(List.of("Method", "Bits", "Avg (%)", "Δ FP", "Size on disk", "Weights held", "Decode tokens/s",
                "Note"), t.getFirst());
        assertEquals(List.of("FP", "FP", avg("fp")), t.get(1).subList(0, 3));
        assertEquals(List.of("Q-VLM", "W4A4", avg("qvlm-w4a4")), t.get(2).subList(0, 3));
        assertEquals(weights("qvlm-w4a4"), t.get(2).get(5));
        // Every baseline once at W4A4, sorted by falling accuracy, the first marked as the best.
        List<String> expected = new ArrayList<>();
        for (String m : Experiment.BASELINE_METHODS) {
            expected.add(m + "-w4a4");
        }
        expected.add("smoothquant-a1-all-w4a4");
        expected.sort((x, y) -> new BigDecimal(avg(y)).compareTo(new BigDecimal(avg(x))));
        assertEquals(9, t.size() - 1);
        for (int i = 0; i < expected.size(); i++) {
            List<String> row = t.get(3 + i);
            assertEquals(avg(expected.get(i)), row.get(2), "rank " + i);
            assertEquals("W4A4", row.get(1));
            assertEquals(i == 0, row.getFirst().endsWith(" (best baseline)"), row.getFirst());
        }
        BigDecimal fp = new BigDecimal(avg("fp"));
        BigDecimal best = new BigDecimal(avg(expected.getFirst()));
        assertEquals("+" + best.subtract(fp).toPlainString(), t.get(3).get(3));
        // Then Q-VLM against FP and each baseline (in the ranked order), problem by problem.
        List<List<String>> paired = tables("headline.md").get(1);
        assertEquals(List.of("Against", "Bits", "Right only with Q-VLM W4A4", "Right only with the other",
                "Δ Avg (points)", "95% interval", "McNemar p", "Separated"), paired.getFirst());
        List<String> against = new ArrayList<>(List.of("fp"));
        against.addAll(expected);
        assertEquals(against.size() + 1, paired.size());
        for (int i = 0; i < against.size(); i++) {
            List<String> row = paired.get(1 + i);
            List<String> cells = pairedCells("qvlm-w4a4", against.get(i));
            assertEquals(cells.subList(0, 3), row.subList(2, 5), against.get(i));
            assertEquals(cells.get(3), row.get(6), against.get(i));
        }
    }

    @Test
    void table1ComparesQvlmWithEachAblationProblemByProblem() throws IOException {
        List<List<List<String>>> ts = tables("table1.md");
        assertEquals(2 + Experiment.PAPER_BITS.size(), ts.size()); // the table, one paired table per bits, the configurations
        for (int k = 0; k < Experiment.PAPER_BITS.size(); k++) {
            List<ConfigSpec> row = Experiment.table1Row(Experiment.PAPER_BITS.get(k));
            List<List<String>> paired = ts.get(1 + k);
            assertEquals(row.size(), paired.size());
            assertEquals("Right only with Q-VLM (CDM + VEO) " + row.getLast().bits(), paired.getFirst().get(2));
            for (int r = 0; r < row.size() - 1; r++) {
                assertEquals(ts.getFirst().get(1 + r).getFirst(), paired.get(1 + r).getFirst());
                assertEquals(pairedCells(row.getLast().id(), row.get(r).id()).subList(0, 3),
                        paired.get(1 + r).subList(2, 5), row.get(r).id());
            }
        }
    }

    @Test
    void fig3SweepsDepthGridAndEtaAndDrawsThem() throws IOException {
        List<List<List<String>>> ts = tables("fig3.md");
        List<List<String>> depth = ts.get(0);
        assertEquals(List.of("Max depth", "Acc", "Search cost", "Note"), depth.getFirst());
        assertEquals(List.of("1", avg("qvlm-depth1-w4a4"), cost("qvlm-depth1-w4a4"), ""), depth.get(1));
        assertEquals(List.of("3", avg("qvlm-w4a4"), cost("qvlm-w4a4"), ""), depth.get(3));
        List<List<String>> grid = ts.get(1);
        assertEquals(List.of("0.996", "1,0.999,0.998,0.997,0.996", avg("qvlm-pmin0.996-w4a4")),
                grid.get(1).subList(0, 3));
        assertEquals(List.of("0.98", "1,0.995,0.99,0.985,0.98", avg("qvlm-w4a4")), grid.get(5).subList(0, 3));
        List<List<String>> eta = ts.get(2);
        assertEquals(List.of("0.1", avg("qvlm-eta0.1-w4a4")), eta.get(1).subList(0, 2));
        assertEquals(List.of("1", avg("qvlm-w4a4")), eta.get(3).subList(0, 2));
        BufferedImage png = ImageIO.read(out.resolve("fig3.png").toFile());
        assertEquals(SweepPlot.PANEL_WIDTH * SweepPlot.COLUMNS, png.getWidth());
        assertTrue(png.getHeight() > 2 * SweepPlot.PANEL_HEIGHT, "two rows of panels and a title");
    }

    @Test
    void tablesShareTheConfigurationsThePaperShares() {
        assertEquals(ConfigSpec.qvlm(W, A, QvlmVariant.FULL).id(), ConfigSpec.qvlm(W, A, QvlmVariant.FULL
                .withDepth(ConfigSpec.DEFAULT_DEPTH).withPMin(new BigDecimal("0.980")).withEta(new BigDecimal("1.0")))
                .id());
        assertEquals("qvlm-cdm-w4a4", ConfigSpec.qvlm(W, A, Experiment.table5Entropy()).id());
        Set<String> union = new HashSet<>();
        for (Experiment e : Experiment.ALL.tables()) {
            e.configs().forEach(c -> union.add(c.id()));
        }
        List<String> all = Experiment.ALL.configs().stream().map(ConfigSpec::id).toList();
        assertEquals(union, new HashSet<>(all));
        assertEquals(all.size(), new HashSet<>(all).size());
        // 25 baselines with FP, 8 more for Table 1, 2 for Table 5, Q-VLM at W8A8 for Tables 4 and 6, and
        // Fig. 3's 4 + 5 + 5 points less the three that are Q-VLM's defaults, and the headline's tuned SmoothQuant
        assertEquals(25 + 8 + 2 + 1 + 11 + 1, all.size());
    }

    @Test
    void percentileGridsRunEvenlyFromOneToTheirLowerEnd() {
        assertEquals("1,0.995,0.99,0.985,0.98", ConfigSpec.pGrid(new BigDecimal("0.98")));
        assertEquals("1,0.9975,0.995,0.9925,0.99", ConfigSpec.pGrid(new BigDecimal("0.99")));
        assertEquals("1,0.99,0.98,0.97,0.96", ConfigSpec.pGrid(new BigDecimal("0.96")));
    }
}
