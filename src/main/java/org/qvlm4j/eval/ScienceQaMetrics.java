package org.qvlm4j.eval;

import java.math.BigDecimal;
import java.math.RoundingMode;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The ScienceQA accuracy table (Lu et al. 2022, tools/evaluate_acc.py; the table LLaVA reports):
 * accuracy in percent per subject (NAT, SOC, LAN), context (TXT, IMG, NO), grade band (G1-6,
 * G7-12) and over all problems (Avg). A problem counts in each column
 * {@link org.qvlm4j.data.ScienceQaProblem#tableColumns()} names, so TXT and IMG overlap. A parse
 * failure is a wrong answer here; failures are also counted on their own.
 */
public final class ScienceQaMetrics {
    /** Column order of the paper's table. */
    public static final List<String> COLUMNS = List.of("NAT", "SOC", "LAN", "TXT", "IMG", "NO", "G1-6", "G7-12", "Avg");
    /** Decimals of the reported percentages. */
    public static final int DECIMALS = 2;
    private static final String AVG = "Avg";

    private final Map<String, int[]> cells = new LinkedHashMap<>(); // column -> {correct, count}
    private int parseFailures;

    public ScienceQaMetrics() {
        for (String c : COLUMNS) {
            cells.put(c, new int[2]);
        }
    }

    /** Adds one problem's outcome under its table columns (Avg is added here). */
    public void add(List<String> columns, boolean correct, boolean parseFailed) {
        for (String c : columns) {
            int[] cell = cells.get(c);
            if (cell == null || c.equals(AVG)) {
                throw new IllegalArgumentException("unknown table column '" + c + "', expected one of "
                        + COLUMNS.subList(0, COLUMNS.size() - 1));
            }
            count(cell, correct);
        }
        count(cells.get(AVG), correct);
        if (parseFailed) {
            parseFailures++;
        }
    }

    private static void count(int[] cell, boolean correct) {
        cell[1]++;
        if (correct) {
            cell[0]++;
        }
    }

    public int correct(String column) {
        return cell(column)[0];
    }

    public int count(String column) {
        return cell(column)[1];
    }

    public int parseFailures() {
        return parseFailures;
    }

    /**
     * Accuracy of a column in percent, rounded to 2 decimals the way Python's "{:.2f}" prints
     * correct / total * 100; null when the column has no problems.
     */
    public BigDecimal accuracy(String column) {
        int[] c = cell(column);
        if (c[1] == 0) {
            return null;
        }
        double pct = (double) c[0] / c[1] * 100;
        return new BigDecimal(pct).setScale(DECIMALS, RoundingMode.HALF_EVEN);
    }

    /** Column to accuracy (null for empty columns), in table order. */
    public Map<String, BigDecimal> accuracies() {
        Map<String, BigDecimal> m = new LinkedHashMap<>();
        for (String c : COLUMNS) {
            m.put(c, accuracy(c));
        }
        return m;
    }

    /** The table in the paper's layout as Markdown; "-" for empty columns. */
    public String markdownTable() {
        StringBuilder sb = new StringBuilder("|");
        for (String c : COLUMNS) {
            sb.append(' ').append(c).append(" |");
        }
        sb.append("\n|");
        sb.append("---|".repeat(COLUMNS.size()));
        sb.append("\n|");
        for (String c : COLUMNS) {
            BigDecimal a = accuracy(c);
            sb.append(' ').append(a == null ? "-" : a.toPlainString()).append(" |");
        }
        return sb.append('\n').toString();
    }

    private int[] cell(String column) {
        int[] c = cells.get(column);
        if (c == null) {
            throw new IllegalArgumentException("unknown table column '" + column + "', expected one of " + COLUMNS);
        }
        return c;
    }
}
