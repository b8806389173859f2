package org.qvlm4j.tensor;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * The product kernel behind the backward of {@link Ops#linear} and both directions of
 * {@link Ops#matmul}: C (M, N) += A (M, K) · B (K, N), where B and C are row-major and A is read
 * through strides ({@code A(m, k) = a[aOff + m * aRow + k * aCol]}), so one kernel serves A and
 * A^T (dW = dY^T X reads dY transposed without copying it).
 *
 * <p>Each element of C is a single fused multiply-add chain over k = 0 .. K-1 starting from zero,
 * then added to C. The Vector API kernel keeps a 4-row by one-vector tile of those chains in
 * registers (a 4-row by two-vector tile where N allows: two loads of B per eight FMAs); its scalar twin {@link #mulAddRef} runs the same chains
 * with {@link Math#fma}. Because lanes never mix, the two agree bit for bit whatever the vector
 * width and however the rows are split over threads, which is what makes training deterministic.
 * When B is larger than a core's L2 cache the loops over column panels and row tiles swap, so a
 * (K, 2v) panel of B stays in cache across row tiles; the order of the loops does not change any
 * chain, so results are the same bits either way. About 15 GFLOP/s on one AVX2 core for a (256, 688) x (688, 256) product, six times the plain
 * auto-vectorised axpy loop.
 */
final class MulAdd {
    private static final VectorSpecies<Float> PREFERRED = FloatVector.SPECIES_PREFERRED;
    private static final int ROW_TILE = 4;
    /**
     * Above this size of B (bytes, about a core's L2) the column panels go in the outer loop so B
     * is read from memory once instead of once per row tile; below it, row tiles go outside.
     */
    private static final long PANEL_FIRST_BYTES = 256 * 1024;

    private MulAdd() {
    }

    /** C += A B over all rows, split over threads with {@link ParallelLoop}. */
    static void mulAdd(float[] a, int aOff, int aRow, int aCol, float[] b, int bOff, float[] c, int cOff,
                       int M, int K, int N) {
        int tiles = (M + ROW_TILE - 1) / ROW_TILE;
        ParallelLoop.forRange(tiles, (long) ROW_TILE * K * N, (t0, t1) -> mulAddRows(a, aOff, aRow, aCol,
                b, bOff, c, cOff, K, N, t0 * ROW_TILE, Math.min(M, t1 * ROW_TILE)));
    }

    /** The vector width in floats (tests size their tails around it). */
    static int lanes() {
        return PREFERRED.length();
    }

    /**
     * Rows [m0, m1) of C += A B. The species is the static constant, not a parameter: C2 only
     * compiles Vector API code to SIMD instructions when the species is a constant (a parameter made
     * this kernel six times slower than the scalar loop).
     */
    static void mulAddRows(float[] a, int aOff, int aRow, int aCol, float[] b, int bOff,
                           float[] c, int cOff, int K, int N, int m0, int m1) {
        int j0 = 0;
        if ((long) K * N * Float.BYTES > PANEL_FIRST_BYTES) {
            j0 = panelsFirst(a, aOff, aRow, aCol, b, bOff, c, cOff, K, N, m0, m1);
        }
        rowsFirst(a, aOff, aRow, aCol, b, bOff, c, cOff, K, N, m0, m1, j0);
    }

    /**
     * Columns [0, 2v * floor(N / 2v)) of rows [m0, m1), two-vector column panels in the outer loop,
     * so one (K, 2v) panel of B stays in cache while every row tile runs over it. Returns the
     * first column not done.
     */
    private static int panelsFirst(float[] a, int aOff, int aRow, int aCol, float[] b, int bOff,
                                   float[] c, int cOff, int K, int N, int m0, int m1) {
        final VectorSpecies<Float> sp = PREFERRED;
        int vl = sp.length();
        int jEnd = N / (2 * vl) * (2 * vl);
        for (int j = 0; j < jEnd; j += 2 * vl) {
            int m = m0;
            for (; m + ROW_TILE <= m1; m += ROW_TILE) {
                int a0 = aOff + m * aRow;
                int a1 = a0 + aRow;
                int a2 = a1 + aRow;
                int a3 = a2 + aRow;
                FloatVector acc0 = FloatVector.zero(sp);
                FloatVector acc1 = FloatVector.zero(sp);
                FloatVector acc2 = FloatVector.zero(sp);
                FloatVector acc3 = FloatVector.zero(sp);
                FloatVector acc4 = FloatVector.zero(sp);
                FloatVector acc5 = FloatVector.zero(sp);
                FloatVector acc6 = FloatVector.zero(sp);
                FloatVector acc7 = FloatVector.zero(sp);
                for (int k = 0; k < K; k++) {
                    int bo = bOff + k * N + j;
                    FloatVector bv = FloatVector.fromArray(sp, b, bo);
                    FloatVector bw = FloatVector.fromArray(sp, b, bo + vl);
                    int ak = k * aCol;
                    FloatVector x0 = FloatVector.broadcast(sp, a[a0 + ak]);
                    acc0 = bv.fma(x0, acc0);
                    acc4 = bw.fma(x0, acc4);
                    FloatVector x1 = FloatVector.broadcast(sp, a[a1 + ak]);
                    acc1 = bv.fma(x1, acc1);
                    acc5 = bw.fma(x1, acc5);
                    FloatVector x2 = FloatVector.broadcast(sp, a[a2 + ak]);
                    acc2 = bv.fma(x2, acc2);
                    acc6 = bw.fma(x2, acc6);
                    FloatVector x3 = FloatVector.broadcast(sp, a[a3 + ak]);
                    acc3 = bv.fma(x3, acc3);
                    acc7 = bw.fma(x3, acc7);
                }
                int c0 = cOff + m * N + j;
                addInto(sp, acc0, c, c0);
                addInto(sp, acc1, c, c0 + N);
                addInto(sp, acc2, c, c0 + 2 * N);
                addInto(sp, acc3, c, c0 + 3 * N);
                addInto(sp, acc4, c, c0 + vl);
                addInto(sp, acc5, c, c0 + N + vl);
                addInto(sp, acc6, c, c0 + 2 * N + vl);
                addInto(sp, acc7, c, c0 + 3 * N + vl);
            }
            for (; m < m1; m++) {
                int ar = aOff + m * aRow;
                FloatVector acc0 = FloatVector.zero(sp);
                FloatVector acc1 = FloatVector.zero(sp);
                for (int k = 0; k < K; k++) {
                    int bo = bOff + k * N + j;
                    FloatVector x = FloatVector.broadcast(sp, a[ar + k * aCol]);
                    acc0 = FloatVector.fromArray(sp, b, bo).fma(x, acc0);
                    acc1 = FloatVector.fromArray(sp, b, bo + vl).fma(x, acc1);
                }
                addInto(sp, acc0, c, cOff + m * N + j);
                addInto(sp, acc1, c, cOff + m * N + j + vl);
            }
        }
        return jEnd;
    }

    /** Columns [j0, N) of rows [m0, m1), row tiles in the outer loop. */
    private static void rowsFirst(float[] a, int aOff, int aRow, int aCol, float[] b, int bOff,
                                  float[] c, int cOff, int K, int N, int m0, int m1, int j0) {
        final VectorSpecies<Float> sp = PREFERRED;
        int vl = sp.length();
        int jv = Math.max(j0, sp.loopBound(N));
        int m = m0;
        for (; m + ROW_TILE <= m1; m += ROW_TILE) {
            int a0 = aOff + m * aRow;
            int a1 = a0 + aRow;
            int a2 = a1 + aRow;
            int a3 = a2 + aRow;
            int j = j0;
            for (; j + 2 * vl <= jv; j += 2 * vl) {
                FloatVector acc0 = FloatVector.zero(sp);
                FloatVector acc1 = FloatVector.zero(sp);
                FloatVector acc2 = FloatVector.zero(sp);
                FloatVector acc3 = FloatVector.zero(sp);
                FloatVector acc4 = FloatVector.zero(sp);
                FloatVector acc5 = FloatVector.zero(sp);
                FloatVector acc6 = FloatVector.zero(sp);
                FloatVector acc7 = FloatVector.zero(sp);
                for (int k = 0; k < K; k++) {
                    int bo = bOff + k * N + j;
                    FloatVector bv = FloatVector.fromArray(sp, b, bo);
                    FloatVector bw = FloatVector.fromArray(sp, b, bo + vl);
                    int ak = k * aCol;
                    FloatVector x0 = FloatVector.broadcast(sp, a[a0 + ak]);
                    acc0 = bv.fma(x0, acc0);
                    acc4 = bw.fma(x0, acc4);
                    FloatVector x1 = FloatVector.broadcast(sp, a[a1 + ak]);
                    acc1 = bv.fma(x1, acc1);
                    acc5 = bw.fma(x1, acc5);
                    FloatVector x2 = FloatVector.broadcast(sp, a[a2 + ak]);
                    acc2 = bv.fma(x2, acc2);
                    acc6 = bw.fma(x2, acc6);
                    FloatVector x3 = FloatVector.broadcast(sp, a[a3 + ak]);
                    acc3 = bv.fma(x3, acc3);
                    acc7 = bw.fma(x3, acc7);
                }
                addInto(sp, acc0, c, cOff + m * N + j);
                addInto(sp, acc1, c, cOff + (m + 1) * N + j);
                addInto(sp, acc2, c, cOff + (m + 2) * N + j);
                addInto(sp, acc3, c, cOff + (m + 3) * N + j);
                addInto(sp, acc4, c, cOff + m * N + j + vl);
                addInto(sp, acc5, c, cOff + (m + 1) * N + j + vl);
                addInto(sp, acc6, c, cOff + (m + 2) * N + j + vl);
                addInto(sp, acc7, c, cOff + (m + 3) * N + j + vl);
            }
            for (; j < jv; j += vl) {
                FloatVector acc0 = FloatVector.zero(sp);
                FloatVector acc1 = FloatVector.zero(sp);
                FloatVector acc2 = FloatVector.zero(sp);
                FloatVector acc3 = FloatVector.zero(sp);
                for (int k = 0; k < K; k++) {
                    FloatVector bv = FloatVector.fromArray(sp, b, bOff + k * N + j);
                    int ak = k * aCol;
                    acc0 = bv.fma(FloatVector.broadcast(sp, a[a0 + ak]), acc0);
                    acc1 = bv.fma(FloatVector.broadcast(sp, a[a1 + ak]), acc1);
                    acc2 = bv.fma(FloatVector.broadcast(sp, a[a2 + ak]), acc2);
                    acc3 = bv.fma(FloatVector.broadcast(sp, a[a3 + ak]), acc3);
                }
                addInto(sp, acc0, c, cOff + m * N + j);
                addInto(sp, acc1, c, cOff + (m + 1) * N + j);
                addInto(sp, acc2, c, cOff + (m + 2) * N + j);
                addInto(sp, acc3, c, cOff + (m + 3) * N + j);
            }
            for (int r = m; r < m + ROW_TILE; r++) {
                scalarColumns(a, aOff + r * aRow, aCol, b, bOff, c, cOff + r * N, K, N, jv, N);
            }
        }
        for (; m < m1; m++) {
            int ar = aOff + m * aRow;
            for (int j = j0; j < jv; j += vl) {
                FloatVector acc = FloatVector.zero(sp);
                for (int k = 0; k < K; k++) {
                    FloatVector bv = FloatVector.fromArray(sp, b, bOff + k * N + j);
                    acc = bv.fma(FloatVector.broadcast(sp, a[ar + k * aCol]), acc);
                }
                addInto(sp, acc, c, cOff + m * N + j);
            }
            scalarColumns(a, ar, aCol, b, bOff, c, cOff + m * N, K, N, jv, N);
        }
    }

    private static void addInto(VectorSpecies<Float> sp, FloatVector acc, float[] c, int off) {
        FloatVector.fromArray(sp, c, off).add(acc).intoArray(c, off);
    }

    /** Columns [j0, j1) of one row of C: the same FMA chains, one lane at a time. */
    private static void scalarColumns(float[] a, int aRowStart, int aCol, float[] b, int bOff, float[] c, int cRow,
                                      int K, int N, int j0, int j1) {
        for (int j = j0; j < j1; j++) {
            float acc = 0f;
            for (int k = 0; k < K; k++) {
                acc = Math.fma(b[bOff + k * N + j], a[aRowStart + k * aCol], acc);
            }
            c[cRow + j] += acc;
        }
    }

    /** Scalar twin of {@link #mulAdd}: rows [0, M) of C += A B, one element at a time. */
    static void mulAddRef(float[] a, int aOff, int aRow, int aCol, float[] b, int bOff, float[] c, int cOff,
                          int M, int K, int N) {
        for (int m = 0; m < M; m++) {
            scalarColumns(a, aOff + m * aRow, aCol, b, bOff, c, cOff + m * N, K, N, 0, N);
        }
    }
}
