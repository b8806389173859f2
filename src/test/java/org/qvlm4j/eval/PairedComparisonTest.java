package org.qvlm4j.eval;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class PairedComparisonTest {
    @Test
    void exactPValuesByHand() {
        // m = 8, min 1: 2 (C(8,0) + C(8,1)) / 2^8
        assertEquals(18.0 / 256, PairedComparison.mcnemarExact(1, 7), 1e-15);
        assertEquals(18.0 / 256, PairedComparison.mcnemarExact(7, 1), 1e-15);
        // m = 6, min 0: 2 / 2^6
        assertEquals(2.0 / 64, PairedComparison.mcnemarExact(0, 6), 1e-15);
        // m = 10, min 5: 2 * 638 / 1024 > 1, capped
        assertEquals(1.0, PairedComparison.mcnemarExact(5, 5), 0);
        // m = 5, min 2: 2 (1 + 5 + 10) / 32 = 1
        assertEquals(1.0, PairedComparison.mcnemarExact(2, 3), 1e-15);
        // m = 12, min 2: 2 (1 + 12 + 66) / 4096
        assertEquals(158.0 / 4096, PairedComparison.mcnemarExact(2, 10), 1e-15);
        assertEquals(1.0, PairedComparison.mcnemarExact(0, 0), 0);
    }

    @Test
    void largeCountsAgreeWithTheNormalApproximation() {
        // b = 400, c = 500: z = (|b - c| - 1) / sqrt(b + c) = 3.3 (continuity-corrected), two-sided 9.67e-4
        double p = PairedComparison.mcnemarExact(400, 500);
        assertEquals(9.67e-4, p, 0.05 * 9.67e-4);
        // thousands of pairs: neither overflow nor underflow
        double q = PairedComparison.mcnemarExact(2000, 2000);
        assertTrue(q > 0.9 && q <= 1, "p " + q);
        double tiny = PairedComparison.mcnemarExact(0, 1100);
        assertTrue(tiny >= 0 && tiny < 1e-300, "p " + tiny);
    }

    @Test
    void intervalByHand() {
        // n 10, b 3, c 1: d = 0.2, var = (0.4 - 0.04) / 10 = 0.036, half = 1.959964 * 0.1897367 = 0.3718774
        PairedComparison p = PairedComparison.of(10, 3, 1);
        assertEquals(20.0, p.difference(), 1e-12);
        assertEquals(100 * (0.2 - 0.3718774), p.ciLow(), 1e-4);
        assertEquals(100 * (0.2 + 0.3718774), p.ciHigh(), 1e-4);
        assertFalse(p.separates());
        // every problem right only in the first: difference 100, zero width
        PairedComparison all = PairedComparison.of(4, 4, 0);
        assertEquals(100.0, all.ciLow(), 1e-12);
        assertTrue(all.separates());
        assertThrows(IllegalArgumentException.class, () -> PairedComparison.of(3, 2, 2));
    }

    @Test
    void countsFromPerProblemOutcomes() {
        Map<String, Boolean> a = new LinkedHashMap<>();
        Map<String, Boolean> b = new LinkedHashMap<>();
        boolean[][] rows = {{true, true}, {true, false}, {true, false}, {false, true}, {false, false}};
        for (int i = 0; i < rows.length; i++) {
            a.put("p" + i, rows[i][0]);
            b.put("p" + i, rows[i][1]);
        }
        PairedComparison p = PairedComparison.of(a, b);
        assertEquals(5, p.problems());
        assertEquals(2, p.onlyFirst());
        assertEquals(1, p.onlySecond());
        assertEquals(20.0, p.difference(), 1e-12);
        b.remove("p3");
        b.put("q9", true);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> PairedComparison.of(a, b));
        assertTrue(e.getMessage().contains("pid p3 only in the first") && e.getMessage().contains("pid q9 only in the second"),
                e.getMessage());
    }

    @Test
    void readsPredictionsAndRejectsRepeatedPids(@TempDir Path dir) throws Exception {
        Prediction right = new Prediction("7", "Q", "The answer is A.", "A", 0, 0, true, false, List.of("NAT", "NO", "G1-6"), 5);
        Prediction wrong = new Prediction("8", "Q", "?", null, -1, 1, false, true, List.of("LAN", "TXT", "G7-12"), 2);
        Path f = dir.resolve("predictions.jsonl");
        Files.writeString(f, right.toJsonLine() + "\n" + wrong.toJsonLine() + "\n");
        assertEquals(Map.of("7", true, "8", false), PairedComparison.readCorrect(f));
        Files.writeString(f, right.toJsonLine() + "\n" + right.toJsonLine() + "\n");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> PairedComparison.readCorrect(f));
        assertTrue(e.getMessage().contains("line 2") && e.getMessage().contains("pid 7"), e.getMessage());
    }
}
