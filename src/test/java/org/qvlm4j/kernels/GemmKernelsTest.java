package org.qvlm4j.kernels;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import jdk.incubator.vector.VectorSpecies;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The Vector API GEMM and GEMV against {@link GemmRef} at 128, 256 and 512 bits, for F32, BF16 and
 * F16 weights at unaligned offsets, odd shapes (tails in K, N and T, several K blocks), shapes at
 * and around every blocking boundary of the production GEMM, and 1 vs 2 threads (bit-identical).
 */
class GemmKernelsTest {
    /** |fast - ref| &lt;= REL_TOL * sum_k |x_k w_k| + ABS_TOL: float rounding over K terms. */
    static final double REL_TOL = 1e-5;
    static final double ABS_TOL = 1e-6;

    static final int[] KS = {1, 7, 33, 129, 1003};
    static final int[] NS = {1, 5, 67};
    static final int[] TS = {1, 3, 17};
    /** Odd byte offsets make every weight load unaligned. */
    static final int[] OFFSETS = {1, 3};

    static Parallel one;
    static Parallel two;

    @BeforeAll
    static void pools() {
        one = new Parallel(1);
        two = new Parallel(2);
    }

    @AfterAll
    static void closePools() {
        one.close();
        two.close();
    }

    static Stream<Arguments> speciesAndDtypes() {
        List<Arguments> out = new ArrayList<>();
        for (VectorSpecies<Float> sp : KernelTestData.SPECIES) {
            for (DType d : new DType[] {DType.F32, DType.BF16, DType.F16}) {
                out.add(Arguments.of(sp, d));
            }
        }
        return out.stream();
    }

    static void assertClose(float[] x, WeightMatrix w, int T, float[] ref, float[] got, String what) {
        int N = w.rows();
        for (int t = 0; t < T; t++) {
            for (int n = 0; n < N; n++) {
                double tol = REL_TOL * KernelTestData.absDot(x, t, w, n) + ABS_TOL;
                double err = Math.abs((double) got[t * N + n] - ref[t * N + n]);
                if (!(err <= tol)) {
                    throw new AssertionError(what + ": out[" + t + ", " + n + "] = " + got[t * N + n]
                            + ", reference " + ref[t * N + n] + ", |err| " + err + " > tol " + tol);
                }
            }
        }
    }

    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("speciesAndDtypes")
    void gemmMatchesReferenceAndFloatFmaTwinBitForBit(VectorSpecies<Float> sp, DType dtype) {
        int shape = 0;
        try (Arena arena = Arena.ofShared()) {
            for (int K : KS) {
                for (int N : NS) {
                    int off = OFFSETS[shape % OFFSETS.length];
                    WeightMatrix w = KernelTestData.weights(arena, dtype, N, K, 1000 + shape, off);
                    for (int T : TS) {
                        String what = "gemm " + sp + " " + dtype + " T=" + T + " K=" + K + " N=" + N;
                        float[] x = KernelTestData.gaussian(T * K, 7 * shape + T);
                        float[] ref = new float[T * N];
                        GemmRef.matmul(x, T, w, ref);
                        float[] twin = new float[T * N];
                        GemmRef.matmulFloatFma(x, T, w, twin);
                        float[] got1 = new float[T * N];
                        Gemm.gemm(sp, one, x, T, w, got1);
                        float[] got2 = new float[T * N];
                        Gemm.gemm(sp, two, x, T, w, got2);
                        assertClose(x, w, T, ref, got1, what);
                        assertArrayEquals(twin, got1, what + " vs float FMA twin");
                        assertArrayEquals(got1, got2, what + ": 1 vs 2 threads");
                    }
                    shape++;
                }
            }
        }
    }

    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("speciesAndDtypes")
    void gemvMatchesReferenceForEveryTokenRow(VectorSpecies<Float> sp, DType dtype) {
        int shape = 0;
        try (Arena arena = Arena.ofShared()) {
            for (int K : KS) {
                for (int N : new int[] {1, 5, 67, 130}) {
                    int off = OFFSETS[shape % OFFSETS.length];
                    WeightMatrix w = KernelTestData.weights(arena, dtype, N, K, 2000 + shape, off);
                    float[] x = KernelTestData.gaussian(K, 31 * shape);
                    float[] ref = new float[N];
                    GemmRef.matmul(x, 1, w, ref);
                    float[] got1 = new float[N];
                    Gemm.gemv(sp, one, x, w, got1);
                    float[] got2 = new float[N];
                    Gemm.gemv(sp, two, x, w, got2);
                    String what = "gemv " + sp + " " + dtype + " K=" + K + " N=" + N;
                    assertClose(x, w, 1, ref, got1, what);
                    assertArrayEquals(got1, got2, what + ": 1 vs 2 threads");
                    float[] viaMatmul = new float[N];
                    Gemm.matmul(sp, two, x, 1, w, viaMatmul);
                    assertArrayEquals(got1, viaMatmul, what + ": matmul dispatches T = 1 to the GEMV");
                    shape++;
                }
            }
        }
    }

    @Test
    void productionEntryPointHandlesHeapFloatMatrices() {
        int K = 37;
        int N = 70;
        float[] wv = KernelTestData.gaussian(N * K, 5);
        WeightMatrix w = WeightMatrix.ofFloats(wv, N, K);
        for (int T : new int[] {1, 2, 13}) {
            float[] x = KernelTestData.gaussian(T * K, 9 + T);
            float[] ref = new float[T * N];
            GemmRef.matmul(x, T, w, ref);
            float[] got = new float[T * N];
            Gemm.matmul(x, T, w, got);
            assertClose(x, w, T, ref, got, "Gemm.matmul heap F32 T=" + T);
        }
    }

    @Test
    void gemmAccumulatesAcrossKBlocksLikeOneChain() {
        // K spanning several K blocks with a ragged last block, two row panels (one ragged), two
        // token blocks (one ragged), at the production width
        int K = 2 * VectorKernels.KB + 5;
        int N = VectorKernels.NB + 5;
        int T = VectorKernels.TB + VectorKernels.NT + 3;
        try (Arena arena = Arena.ofShared()) {
            WeightMatrix w = KernelTestData.weights(arena, DType.BF16, N, K, 77, 1);
            float[] x = KernelTestData.gaussian(T * K, 78);
            float[] twin = new float[T * N];
            GemmRef.matmulFloatFma(x, T, w, twin);
            float[] got = new float[T * N];
            Gemm.matmul(KernelSets.preferred(), two, x, T, w, got);
            assertArrayEquals(twin, got);
        }
    }

    static Stream<DType> dtypes() {
        return Stream.of(DType.F32, DType.BF16, DType.F16);
    }

    /**
     * Shapes (T, K, N) at and around every blocking boundary of the production kernels: one token,
     * K shorter than, equal to and just past a K block, N below, at and past a task panel and not
     * a multiple of the register tile, T around a token group and past a token block. Row panels
     * shrink when a thread would get few tasks, so full NB-row panels need N of at least
     * MIN_TASKS_PER_THREAD * threads * NB (the last two shapes, for 1 and 2 threads).
     */
    static int[][] blockingEdgeShapes() {
        int kb = VectorKernels.KB;
        int nb = VectorKernels.NB;
        int mr = VectorKernels.MR;
        int nt = VectorKernels.NT;
        return new int[][] {
            {1, 1, 1}, {1, kb, nb}, {2, kb - 1, mr + 1}, {nt - 1, kb + 1, nb - 1}, {nt, 2 * kb, nb + 1},
            {nt + 1, 3, 2 * nb + mr - 1}, {VectorKernels.TB + 1, kb + 7, mr}, {3 * nt + 5, 2 * kb - 1, mr - 1},
            {nt + 3, kb + 9, VectorKernels.MIN_TASKS_PER_THREAD * nb + mr + 1},
            {5, 70, 2 * VectorKernels.MIN_TASKS_PER_THREAD * nb + 7},
        };
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("dtypes")
    void gemmAtBlockingEdgesEqualsFloatFmaTwinOnOneAndTwoThreads(DType dtype) {
        KernelSet kernels = KernelSets.preferred();
        int shape = 0;
        try (Arena arena = Arena.ofShared()) {
            for (int[] tkn : blockingEdgeShapes()) {
                int T = tkn[0];
                int K = tkn[1];
                int N = tkn[2];
                String what = "gemm " + dtype + " T=" + T + " K=" + K + " N=" + N;
                WeightMatrix w = KernelTestData.weights(arena, dtype, N, K, 3000 + shape, OFFSETS[shape % OFFSETS.length]);
                float[] x = KernelTestData.gaussian(T * K, 3100 + shape);
                float[] ref = new float[T * N];
                GemmRef.matmul(x, T, w, ref);
                float[] twin = new float[T * N];
                GemmRef.matmulFloatFma(x, T, w, twin);
                float[] got1 = new float[T * N];
                kernels.gemm(one, x, T, w, got1);
                float[] got2 = new float[T * N];
                kernels.gemm(two, x, T, w, got2);
                assertClose(x, w, T, ref, got1, what);
                assertArrayEquals(twin, got1, what + " vs float FMA twin");
                assertArrayEquals(got1, got2, what + ": 1 vs 2 threads");
                shape++;
            }
        }
    }

    @Test
    void rejectsTooSmallArraysNamingTheShapes() {
        WeightMatrix w = WeightMatrix.ofFloats(new float[6], 2, 3);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Gemm.matmul(new float[6], 2, w, new float[3]));
        assertTrue(e.getMessage().contains("(2, 3)") && e.getMessage().contains("(2, 2)"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> Gemm.matmul(new float[5], 2, w, new float[4]));
        assertThrows(IllegalArgumentException.class, () -> KernelSets.forSpecies(
                jdk.incubator.vector.FloatVector.SPECIES_64));
    }
}
