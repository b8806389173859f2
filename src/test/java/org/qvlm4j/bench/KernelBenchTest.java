package org.qvlm4j.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** The benchmark's arithmetic on a tiny configuration (numbers consistent with the times). */
class KernelBenchTest {
    private static final double REL = 1e-9;

    @Test
    void medianOfOddAndEvenCounts() {
        assertEquals(2.0, KernelBench.median(new double[] {3, 1, 2}));
        assertEquals(2.5, KernelBench.median(new double[] {4, 1, 3, 2}));
    }

    @Test
    void tinyRunReportsRatesConsistentWithItsTimes() {
        KernelBench.Config c = new KernelBench.Config(2, 0, 3, 7L, 8L << 20, 9, 33, 20, 40, 24);
        KernelBench.Result r = KernelBench.run(c);
        assertTrue(r.gemmMillis() > 0 && r.streamMillis() > 0 && r.bf16GemvMillis() > 0 && r.f32GemvMillis() > 0);
        assertEquals(2.0 * 9 * 33 * 20 / (r.gemmMillis() * 1e6), r.gemmGflops(), REL * r.gemmGflops());
        assertEquals((8L << 20) / (r.streamMillis() * 1e6), r.bandwidthGBs(), REL * r.bandwidthGBs());
        assertEquals(40 * 24 * 2 / (r.bf16GemvMillis() * 1e6), r.bf16GemvGBs(), REL * r.bf16GemvGBs());
        assertEquals(40 * 24 * 4 / (r.f32GemvMillis() * 1e6), r.f32GemvGBs(), REL * r.f32GemvGBs());
        assertEquals(r.bf16GemvGBs() / r.bandwidthGBs(), r.bf16GemvFraction(), REL);
        assertTrue(r.summary().contains("GEMM T=9 K=33 N=20"), r.summary());
    }

    @Test
    void rejectsNonsenseConfig() {
        assertThrows(IllegalArgumentException.class, () -> new KernelBench.Config(0, 0, 1, 1L, 8L << 20, 1, 1, 1, 1, 1));
        assertThrows(IllegalArgumentException.class, () -> new KernelBench.Config(1, 0, 1, 1L, 1024, 1, 1, 1, 1, 1));
    }
}
