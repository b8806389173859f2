package org.qvlm4j.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Test;
import org.qvlm4j.kernels.QuantFormat;

/** The quantized benchmark on a tiny configuration: sizes per format and ratios consistent with the times. */
class QuantKernelBenchTest {
    private static final double REL = 1e-9;

    private static List<QuantKernelBench.PackedCase> defaultsWithGroup(int group) {
        return List.of(new QuantKernelBench.PackedCase(QuantFormat.INT8, group, false),
                new QuantKernelBench.PackedCase(QuantFormat.INT6, group, false),
                new QuantKernelBench.PackedCase(QuantFormat.INT4, group, false),
                new QuantKernelBench.PackedCase(QuantFormat.NF4, 64, false));
    }

    @Test
    void tinyRunReportsSizesAndRatesConsistentWithItsTimes() {
        int N = 40;
        int K = 256;
        int T = 3;
        QuantKernelBench.Config c = new QuantKernelBench.Config(2, 0, 1, 5L, 4L << 20, N, K, T, defaultsWithGroup(128),
                true);
        QuantKernelBench.Result r = QuantKernelBench.run(c);
        assertEquals(List.of("F32", "BF16", "INT8 g128", "INT6 g128", "INT4 g128", "NF4 b64", "INT8xINT8", "INT4xINT8",
                "INT4xINT4"), r.rows().stream().map(QuantKernelBench.Row::name).toList());
        // codes + fp32 scale per group + 8-bit zero point per group (NF4: absmax per 64, no zero point;
        // integer cases: symmetric per-row)
        assertEquals(4.0, r.row("F32").bytesPerWeight(), REL);
        assertEquals(2.0, r.row("BF16").bytesPerWeight(), REL);
        assertEquals(1 + 5.0 / 128, r.row("INT8 g128").bytesPerWeight(), REL);
        assertEquals(0.75 + 5.0 / 128, r.row("INT6 g128").bytesPerWeight(), REL);
        assertEquals(0.5 + 5.0 / 128, r.row("INT4 g128").bytesPerWeight(), REL);
        assertEquals(0.5 + 4.0 / 64, r.row("NF4 b64").bytesPerWeight(), REL);
        assertEquals(0.5 + 4.0 / K, r.row("INT4xINT4").bytesPerWeight(), REL);
        double bf16 = r.row("BF16").gemvMillis();
        double f32Gemm = r.row("F32").gemmMillis();
        double bf16Gemm = r.row("BF16").gemmMillis();
        for (QuantKernelBench.Row row : r.rows()) {
            assertTrue(row.gemvMillis() > 0 && row.gemmMillis() > 0, row.toString());
            // bytes moved: the weights plus fp32 input (T, K) and output (T, N)
            double gemvBytes = row.weightBytes() + 4.0 * (K + N);
            double gemmBytes = row.weightBytes() + 4.0 * T * (K + N);
            assertEquals(gemvBytes / (row.gemvMillis() * 1e6), row.gemvGBs(), REL * row.gemvGBs());
            assertEquals(row.gemvGBs() / r.bandwidthGBs(), row.gemvFraction(), REL);
            assertEquals(gemmBytes / (row.gemmMillis() * 1e6) / r.bandwidthGBs(), row.gemmFraction(),
                    REL * row.gemmFraction());
            assertEquals(2.0 * T * N * K / (row.gemmMillis() * 1e6), row.gemmGflops(), REL * row.gemmGflops());
            assertEquals(bf16 / row.gemvMillis(), row.gemvSpeedupVsBf16(), REL * row.gemvSpeedupVsBf16());
            assertEquals(bf16Gemm / row.gemmMillis(), row.gemmSpeedupVsBf16(), REL * row.gemmSpeedupVsBf16());
            assertEquals(f32Gemm / row.gemmMillis(), row.gemmSpeedupVsF32(), REL * row.gemmSpeedupVsF32());
            assertEquals(2.0 * N * K / row.weightBytes(), row.sizeRatioVsBf16(), REL);
        }
        assertTrue(r.summary().contains("INT4xINT8"), r.summary());
    }

    @Test
    void runsOnlyTheGivenPackedCases() {
        int N = 24;
        int K = 128;
        List<QuantKernelBench.PackedCase> cases = List.of(new QuantKernelBench.PackedCase(QuantFormat.INT4, 0, false),
                new QuantKernelBench.PackedCase(QuantFormat.INT8, 0, true));
        QuantKernelBench.Result r = QuantKernelBench.run(new QuantKernelBench.Config(1, 0, 1, 9L, 4L << 20, N, K, 2,
                cases, false));
        assertEquals(List.of("F32", "BF16", "INT4 row", "INT8 row sym"),
                r.rows().stream().map(QuantKernelBench.Row::name).toList());
        // per row: one fp32 scale per row, plus an 8-bit zero point when asymmetric
        assertEquals((long) N * K / 2 + 5L * N, r.row("INT4 row").weightBytes());
        assertEquals((long) N * K + 4L * N, r.row("INT8 row sym").weightBytes());
    }

    @Test
    void rejectsNonsenseConfig() {
        assertThrows(IllegalArgumentException.class,
                () -> new QuantKernelBench.Config(0, 0, 1, 1L, 4L << 20, 1, 128, 1, List.of(), false));
        assertThrows(IllegalArgumentException.class,
                () -> new QuantKernelBench.Config(1, 0, 1, 1L, 1024, 1, 128, 1, List.of(), false));
        IllegalArgumentException g = assertThrows(IllegalArgumentException.class,
                () -> new QuantKernelBench.Config(1, 0, 1, 1L, 4L << 20, 1, 128, 1,
                        List.of(new QuantKernelBench.PackedCase(QuantFormat.INT4, 96, false)), false));
        assertTrue(g.getMessage().contains("INT4 g96") && g.getMessage().contains("K = 128"), g.getMessage());
    }
}
