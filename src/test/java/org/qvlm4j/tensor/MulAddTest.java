package org.qvlm4j.tensor;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * The Vector API product kernel against its scalar twin: bit-identical for row counts around the
 * 4-row tile, column counts around the machine's vector width (full vectors, tails, fewer columns
 * than one vector), plain and transposed A, and one or two threads; and the twin against a plain
 * double-precision triple loop. The kernel runs at the preferred species only (see
 * {@link MulAdd#mulAddRows}); lanes never interact, so other widths cannot change a result.
 */
class MulAddTest {
    private static final int[] ROWS = {1, 3, 4, 5, 9};
    private static final int[] INNER = {1, 6, 17};
    /** Float FMA chains against a double reference, relative to the sum of |terms|. */
    private static final double REF_TOL = 1e-6;

    private static float[] random(Random rnd, int n) {
        float[] d = new float[n];
        for (int i = 0; i < n; i++) {
            d[i] = (float) rnd.nextGaussian();
        }
        return d;
    }

    @Test
    void vectorKernelEqualsScalarTwinBitForBit() {
        Random rnd = new Random(3);
        int vl = MulAdd.lanes();
        int[] cols = {1, vl - 1, vl, vl + 1, 2 * vl, 4 * vl + 3};
        for (int M : ROWS) {
            for (int K : INNER) {
                for (int N : cols) {
                    if (N < 1) {
                        continue;
                    }
                    for (boolean transposed : new boolean[] {false, true}) {
                        float[] a = random(rnd, M * K + 2);
                        float[] b = random(rnd, K * N + 1);
                        float[] c0 = random(rnd, M * N + 3);
                        int aRow = transposed ? 1 : K;
                        int aCol = transposed ? M : 1;
                        float[] expected = c0.clone();
                        MulAdd.mulAddRef(a, 2, aRow, aCol, b, 1, expected, 3, M, K, N);
                        float[] got = c0.clone();
                        MulAdd.mulAddRows(a, 2, aRow, aCol, b, 1, got, 3, K, N, 0, M);
                        assertArrayEquals(expected, got, "M=" + M + " K=" + K + " N=" + N + " transposed=" + transposed);
                        float[] split = c0.clone();
                        MulAdd.mulAddRows(a, 2, aRow, aCol, b, 1, split, 3, K, N, 0, M / 2);
                        MulAdd.mulAddRows(a, 2, aRow, aCol, b, 1, split, 3, K, N, M / 2, M);
                        assertArrayEquals(expected, split, "split rows M=" + M + " K=" + K + " N=" + N);
                    }
                }
            }
        }
    }

    @Test
    void bLargerThanL2TakesThePanelFirstOrderAndStaysBitExact() {
        Random rnd = new Random(4);
        int K = 300;
        int N = 250; // (300, 250) floats = 300 kB > the panel-first threshold; 250 leaves vector and scalar tails
        for (int M : new int[] {5, 9}) {
            for (boolean transposed : new boolean[] {false, true}) {
                float[] a = random(rnd, M * K + 2);
                float[] b = random(rnd, K * N + 1);
                float[] c0 = random(rnd, M * N + 3);
                int aRow = transposed ? 1 : K;
                int aCol = transposed ? M : 1;
                float[] expected = c0.clone();
                MulAdd.mulAddRef(a, 2, aRow, aCol, b, 1, expected, 3, M, K, N);
                float[] got = c0.clone();
                MulAdd.mulAddRows(a, 2, aRow, aCol, b, 1, got, 3, K, N, 0, M);
                assertArrayEquals(expected, got, "M=" + M + " transposed=" + transposed);
            }
        }
    }

    @Test
    void parallelEntryEqualsScalarTwinForOneAndTwoThreads() {
        Random rnd = new Random(4);
        int M = 203;
        int K = 61;
        int N = 77;
        float[] a = random(rnd, M * K);
        float[] b = random(rnd, K * N);
        float[] expected = new float[M * N];
        MulAdd.mulAddRef(a, 0, K, 1, b, 0, expected, 0, M, K, N);
        int saved = ParallelLoop.threads();
        try {
            for (int threads : new int[] {1, 2}) {
                ParallelLoop.setThreads(threads);
                float[] got = new float[M * N];
                MulAdd.mulAdd(a, 0, K, 1, b, 0, got, 0, M, K, N);
                assertArrayEquals(expected, got, "threads=" + threads);
            }
        } finally {
            ParallelLoop.setThreads(saved);
        }
    }

    @Test
    void scalarTwinComputesTheProduct() {
        Random rnd = new Random(5);
        int M = 5;
        int K = 7;
        int N = 6;
        float[] a = random(rnd, M * K); // read transposed: A(m, k) = a[k * M + m]
        float[] b = random(rnd, K * N);
        float[] c = random(rnd, M * N);
        float[] c0 = c.clone();
        MulAdd.mulAddRef(a, 0, 1, M, b, 0, c, 0, M, K, N);
        for (int m = 0; m < M; m++) {
            for (int n = 0; n < N; n++) {
                double s = 0;
                double mag = Math.abs(c0[m * N + n]);
                for (int k = 0; k < K; k++) {
                    s += (double) a[k * M + m] * b[k * N + n];
                    mag += Math.abs((double) a[k * M + m] * b[k * N + n]);
                }
                assertEquals(c0[m * N + n] + s, c[m * N + n], REF_TOL * mag);
            }
        }
    }
}
