package org.qvlm4j.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Test;

/** The quantized benchmark on a tiny configuration: sizes per format and ratios consistent with the times. */
class QuantKernelBenchTest {
    private static final double REL = 1e-9;

    @Test
    void tinyRunReportsSizesAndRatesConsistentWithItsTimes() {
        int N = 40;
        int K = 256;
        QuantKernelBench.Config c = new QuantKernelBench.Config(2, 0, 1, 5L, 4L << 20, N, K, 3, 128);
        QuantKernelBench.Result r = QuantKernelBench.run(c);
        assertEquals(List.of("F32", "BF16", "INT8", "INT6", "INT4", "NF4", "INT8xINT8", "INT4xINT8", "INT4xINT4"),
                r.rows().stream().map(QuantKernelBench.Row::name).toList());
        // codes + fp32 scale per group + 8-bit zero point per group (NF4: absmax per 64, no zero point;
        // integer cases: symmetric per-row)
        assertEquals(4.0, r.row("F32").bytesPerWeight(), REL);
        assertEquals(2.0, r.row("BF16").bytesPerWeight(), REL);
        assertEquals(1 + 5.0 / 128, r.row("INT8").bytesPerWeight(), REL);
        assertEquals(0.75 + 5.0 / 128, r.row("INT6").bytesPerWeight(), REL);
        assertEquals(0.5 + 5.0 / 128, r.row("INT4").bytesPerWeight(), REL);
        assertEquals(0.5 + 4.0 / 64, r.row("NF4").bytesPerWeight(), REL);
        assertEquals(0.5 + 4.0 / K, r.row("INT4xINT4").bytesPerWeight(), REL);
        double bf16 = r.row("BF16").gemvMillis();
        for (QuantKernelBench.Row row : r.rows()) {
            assertTrue(row.gemvMillis() > 0 && row.gemmMillis() > 0, row.toString());
            assertEquals(row.weightBytes() / (row.gemvMillis() * 1e6), row.gemvGBs(), REL * row.gemvGBs());
            assertEquals(row.gemvGBs() / r.bandwidthGBs(), row.fractionOfStream(), REL);
            assertEquals(bf16 / row.gemvMillis(), row.gemvSpeedupVsBf16(), REL * row.gemvSpeedupVsBf16());
            assertEquals(2.0 * N * K / row.weightBytes(), row.sizeRatioVsBf16(), REL);
        }
        assertTrue(r.summary().contains("INT4xINT8"), r.summary());
    }

    @Test
    void rejectsNonsenseConfig() {
        assertThrows(IllegalArgumentException.class,
                () -> new QuantKernelBench.Config(0, 0, 1, 1L, 4L << 20, 1, 128, 1, 128));
        assertThrows(IllegalArgumentException.class,
                () -> new QuantKernelBench.Config(1, 0, 1, 1L, 1024, 1, 128, 1, 128));
    }
}
