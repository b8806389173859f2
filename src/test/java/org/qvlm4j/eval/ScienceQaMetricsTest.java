package org.qvlm4j.eval;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.math.BigDecimal;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The accuracy table on a small hand-computed case. */
class ScienceQaMetricsTest {

    @Test
    void handComputedTable() {
        ScienceQaMetrics m = new ScienceQaMetrics();
        m.add(List.of("NAT", "IMG", "G1-6"), true, false);
        m.add(List.of("NAT", "TXT", "IMG", "G7-12"), false, true);
        m.add(List.of("SOC", "NO", "G1-6"), true, false);
        m.add(List.of("LAN", "TXT", "G7-12"), false, false);
        m.add(List.of("NAT", "NO", "G1-6"), false, false);
        m.add(List.of("LAN", "TXT", "G1-6"), true, false);
        // NAT 1/3, SOC 1/1, LAN 1/2, TXT 1/3, IMG 1/2, NO 1/2, G1-6 3/4, G7-12 0/2, Avg 3/6
        assertEquals(new BigDecimal("33.33"), m.accuracy("NAT"));
        assertEquals(new BigDecimal("100.00"), m.accuracy("SOC"));
        assertEquals(new BigDecimal("50.00"), m.accuracy("LAN"));
        assertEquals(new BigDecimal("33.33"), m.accuracy("TXT"));
        assertEquals(new BigDecimal("50.00"), m.accuracy("IMG"));
        assertEquals(new BigDecimal("50.00"), m.accuracy("NO"));
        assertEquals(new BigDecimal("75.00"), m.accuracy("G1-6"));
        assertEquals(new BigDecimal("0.00"), m.accuracy("G7-12"));
        assertEquals(new BigDecimal("50.00"), m.accuracy("Avg"));
        assertEquals(3, m.count("TXT"));
        assertEquals(6, m.count("Avg"));
        assertEquals(3, m.correct("G1-6"));
        assertEquals(1, m.parseFailures());
        assertEquals("| NAT | SOC | LAN | TXT | IMG | NO | G1-6 | G7-12 | Avg |\n"
                + "|---|---|---|---|---|---|---|---|---|\n"
                + "| 33.33 | 100.00 | 50.00 | 33.33 | 50.00 | 50.00 | 75.00 | 0.00 | 50.00 |\n", m.markdownTable());
    }

    @Test
    void roundingAndEmptyColumns() {
        ScienceQaMetrics m = new ScienceQaMetrics();
        m.add(List.of("NAT", "NO", "G1-6"), true, false);
        m.add(List.of("NAT", "NO", "G1-6"), true, false);
        m.add(List.of("NAT", "NO", "G1-6"), false, false);
        // 2/3 = 66.666..% rounds up; 1/8 = 12.5% keeps its exact digits
        assertEquals(new BigDecimal("66.67"), m.accuracy("NAT"));
        assertNull(m.accuracy("SOC"));
        assertEquals("| 66.67 | - | - | - | - | 66.67 | 66.67 | - | 66.67 |",
                m.markdownTable().lines().toList().get(2));
        ScienceQaMetrics eighth = new ScienceQaMetrics();
        for (int i = 0; i < 8; i++) {
            eighth.add(List.of("LAN", "TXT", "G7-12"), i == 0, false);
        }
        assertEquals(new BigDecimal("12.50"), eighth.accuracy("Avg"));
    }

    @Test
    void unknownColumnIsAnError() {
        ScienceQaMetrics m = new ScienceQaMetrics();
        assertThrows(IllegalArgumentException.class, () -> m.add(List.of("BIO"), true, false));
        assertThrows(IllegalArgumentException.class, () -> m.add(List.of("Avg"), true, false));
    }
}
