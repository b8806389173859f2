package org.qvlm4j.eval;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeSet;

/**
 * Two models scored on the same problems, compared problem by problem: how many problems only the
 * first gets right (b) and only the second (c), the accuracy difference in points with a 95%
 * confidence interval for paired proportions, and the exact two-sided McNemar p-value (the
 * binomial test of b against b + c trials at one half). On a benchmark of a thousand problems two
 * quantized models routinely disagree on a hundred or more, so a one-point gap in the accuracy
 * table alone separates nothing; this record says whether the problems do.
 *
 * @param problems   problems scored by both
 * @param onlyFirst  b: right in the first, wrong in the second
 * @param onlySecond c: wrong in the first, right in the second
 * @param difference accuracy of the first minus that of the second, in points: 100 (b − c) / n
 * @param ciLow      lower end of the 95% Wald interval of the paired difference, in points
 * @param ciHigh     upper end, in points
 * @param pValue     exact two-sided McNemar p-value; 1 when b + c = 0
 */
public record PairedComparison(int problems, int onlyFirst, int onlySecond, double difference, double ciLow,
                               double ciHigh, double pValue) {
    /** Two-sided 95% normal quantile. */
    static final double Z95 = 1.959963984540054;

    /**
     * Compares two per-problem outcomes (pid → correct) over the same problems.
     *
     * @throws IllegalArgumentException when the pid sets differ (naming a pid missing from each side)
     *                                  or are empty
     */
    public static PairedComparison of(Map<String, Boolean> first, Map<String, Boolean> second) {
        if (!first.keySet().equals(second.keySet())) {
            TreeSet<String> onlyA = new TreeSet<>(first.keySet());
            onlyA.removeAll(second.keySet());
            TreeSet<String> onlyB = new TreeSet<>(second.keySet());
            onlyB.removeAll(first.keySet());
            throw new IllegalArgumentException("paired comparison needs the same problems on both sides: "
                    + first.size() + " against " + second.size() + " problems"
                    + (onlyA.isEmpty() ? "" : ", e.g. pid " + onlyA.first() + " only in the first")
                    + (onlyB.isEmpty() ? "" : ", e.g. pid " + onlyB.first() + " only in the second"));
        }
        if (first.isEmpty()) {
            throw new IllegalArgumentException("paired comparison of no problems");
        }
        int b = 0;
        int c = 0;
        for (Map.Entry<String, Boolean> e : first.entrySet()) {
            boolean x = e.getValue();
            boolean y = second.get(e.getKey());
            if (x && !y) {
                b++;
            } else if (!x && y) {
                c++;
            }
        }
        return of(first.size(), b, c);
    }

    /** From the counts: n problems, b right only in the first, c right only in the second. */
    public static PairedComparison of(int n, int b, int c) {
        if (n <= 0 || b < 0 || c < 0 || b + c > n) {
            throw new IllegalArgumentException("paired counts: expected n > 0 and 0 <= b + c <= n, got n=" + n
                    + ", b=" + b + ", c=" + c);
        }
        double d = (double) (b - c) / n;
        // variance of the mean of the per-problem differences (values +1, -1, 0), divided by n
        double var = ((double) (b + c) / n - d * d) / n;
        double half = Z95 * Math.sqrt(Math.max(0, var));
        return new PairedComparison(n, b, c, 100 * d, 100 * (d - half), 100 * (d + half), mcnemarExact(b, c));
    }

    /**
     * Exact two-sided McNemar p-value: 2 P(X ≤ min(b, c)) for X ~ Binomial(b + c, 1/2), capped at 1;
     * summed in log space so that thousands of discordant pairs neither overflow nor underflow.
     */
    public static double mcnemarExact(int b, int c) {
        int m = b + c;
        if (m == 0) {
            return 1;
        }
        int k = Math.min(b, c);
        double logHalfPow = -m * Math.log(2);
        double sum = 0;
        double logC = 0; // log C(m, 0)
        for (int i = 0; i <= k; i++) {
            if (i > 0) {
                logC += Math.log(m - i + 1) - Math.log(i);
            }
            sum += Math.exp(logC + logHalfPow);
        }
        return Math.min(1, 2 * sum);
    }

    /** Whether the 95% interval excludes zero. */
    public boolean separates() {
        return ciLow > 0 || ciHigh < 0;
    }

    /**
     * pid → correct from an evaluation's predictions.jsonl ({@link EvalRun#PREDICTIONS}).
     *
     * @throws UncheckedIOException     when the file cannot be read
     * @throws IllegalArgumentException naming the file and line of a bad or repeated line
     */
    public static Map<String, Boolean> readCorrect(Path predictions) {
        Map<String, Boolean> out = new LinkedHashMap<>();
        try (BufferedReader r = Files.newBufferedReader(predictions, StandardCharsets.UTF_8)) {
            String line;
            int no = 0;
            while ((line = r.readLine()) != null) {
                no++;
                if (line.isBlank()) {
                    continue;
                }
                Prediction p;
                try {
                    p = Prediction.fromJsonLine(line);
                } catch (IllegalArgumentException e) {
                    throw new IllegalArgumentException(predictions + ": line " + no + ": " + e.getMessage(), e);
                }
                if (out.put(p.pid(), p.correct()) != null) {
                    throw new IllegalArgumentException(predictions + ": line " + no + ": pid " + p.pid()
                            + " appears twice");
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException(predictions + ": " + e.getMessage(), e);
        }
        return out;
    }
}
