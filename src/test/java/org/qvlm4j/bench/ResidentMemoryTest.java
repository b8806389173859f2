package org.qvlm4j.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** Parsing of /proc/self/status against a hand-written file, and the live reading's own invariants. */
class ResidentMemoryTest {
    private static final String STATUS = """
            Name:\tjava
            VmPeak:\t 9000000 kB
            VmHWM:\t  204800 kB
            VmRSS:\t  102400 kB
            RssAnon:\t   81920 kB
            RssFile:\t   20000 kB
            RssShmem:\t     480 kB
            Threads:\t12
            """;

    @Test
    void parsesKibibyteFieldsToBytes() {
        ResidentMemory m = ResidentMemory.parse(STATUS);
        assertEquals(102_400L * 1024, m.vmRss());
        assertEquals(81_920L * 1024, m.rssAnon());
        assertEquals(20_000L * 1024, m.rssFile());
        assertEquals(204_800L * 1024, m.vmHwm());
        assertTrue(m.known());
    }

    @Test
    void missingFieldsAreUnknownAndMalformedOnesAnError() {
        ResidentMemory m = ResidentMemory.parse("Name:\tjava\nVmRSS:\t 10 kB\n");
        assertEquals(10 * 1024, m.vmRss());
        assertEquals(-1, m.rssAnon());
        assertFalse(m.known());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> ResidentMemory.parse("VmRSS:\t 10 MB\n"));
        assertTrue(e.getMessage().contains("VmRSS") && e.getMessage().contains("kB"), e.getMessage());
    }

    @Test
    void liveReadingSplitsResidentSetAndNeverExceedsThePeak() {
        ResidentMemory m = ResidentMemory.now();
        assertTrue(m.known(), "this project runs on Linux: " + m);
        // RssShmem is the third part of VmRSS, so anon + file never exceed the total
        assertTrue(m.rssAnon() + m.rssFile() <= m.vmRss(), m.toString());
        assertTrue(m.vmRss() <= m.vmHwm(), m.toString());
    }
}
