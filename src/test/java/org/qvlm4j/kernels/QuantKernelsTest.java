package org.qvlm4j.kernels;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The quantized kernels at 128, 256 and 512 bits against a double-precision product on the
 * dequantized weights and against their scalar twins in {@link QuantGemmRef}: weight-only GEMV and
 * GEMM for INT8/INT6/INT4/NF4 (symmetric and asymmetric, per row with odd K and per group of
 * 32/64/96/128 including an INT6 half block; the GEMV also with up to 20 groups per row), and the
 * integer product (int8/int4 activations, dynamic
 * per token or group, static) which must equal its twin bit for bit. Codes sit at odd byte offsets
 * off-heap; 1 and 2 threads must agree bit for bit.
 */
class QuantKernelsTest {
    /** |fast - ref| &lt;= REL_TOL * magnitude + ABS_TOL, magnitude = sum of |terms| the kernel adds. */
    static final double REL_TOL = 1e-5;
    static final double ABS_TOL = 1e-6;

    /** (K, group size) pairs; group == K is per-row quantization. */
    static final int[][] SHAPES = {{1, 1}, {7, 7}, {33, 33}, {100, 100}, {130, 130},
        {192, 96}, {96, 32}, {160, 32}, {192, 64}, {256, 128}};
    static final int[] NS = {1, 5, 34, 70};
    /**
     * GEMV-only (K, group size) pairs with more groups than any species has lanes, plus a
     * remainder (the zero-point term's vector steps and scalar tail); 64 and 128 are whole INT4
     * chunks at some widths and not at others, so both INT4 GEMV paths see many groups.
     */
    static final int[][] MANY_GROUPS = {{640, 32}, {1152, 64}, {2304, 128}};

    static Parallel one;
    static Parallel two;
    static Arena arena;

    @BeforeAll
    static void setUp() {
        one = new Parallel(1);
        two = new Parallel(2);
        arena = Arena.ofShared();
    }

    @AfterAll
    static void tearDown() {
        one.close();
        two.close();
        arena.close();
    }

    static Stream<Arguments> speciesFormats() {
        List<Arguments> out = new ArrayList<>();
        for (VectorSpecies<Float> sp : KernelTestData.SPECIES) {
            for (QuantFormat f : QuantFormat.values()) {
                out.add(Arguments.of(sp, f, false));
                if (f.isUniform()) {
                    out.add(Arguments.of(sp, f, true));
                }
            }
        }
        return out.stream();
    }

    static Stream<Arguments> speciesUniformFormats() {
        return speciesFormats().filter(a -> ((QuantFormat) a.get()[1]).isUniform());
    }

    /** Quantized random weights with the codes moved off-heap to an odd byte offset. */
    static PackedMatrix weights(QuantFormat f, int N, int K, int G, boolean symmetric, long seed) {
        float[] w = KernelTestData.gaussian(N * K, seed);
        PackedMatrix m = PackedMatrix.quantize(w, N, K, f, G, symmetric);
        long bytes = m.codes().byteSize();
        MemorySegment seg = arena.allocate(bytes + 8, 16).asSlice(3, bytes);
        seg.copyFrom(m.codes());
        return new PackedMatrix(f, N, K, G, seg, m.scalesArray(), m.zerosArray());
    }

    /** The sum of |terms| the weight-only kernel adds for out[t, n] (zero point folded separately). */
    static double magnitude(float[] x, int t, PackedMatrix w, int n) {
        int K = w.cols();
        double s = 0;
        for (int k = 0; k < K; k++) {
            int g = k / w.groupSize();
            double wk = w.format() == QuantFormat.NF4 ? Math.abs(w.dequantize(n, k))
                    : (double) w.scale(n, g) * (w.code(n, k) + w.zeroPoint(n, g));
            s += Math.abs(x[t * K + k]) * wk;
        }
        return s;
    }

    static void assertClose(float[] x, int T, PackedMatrix w, float[] ref, float[] got, String what) {
        int N = w.rows();
        for (int t = 0; t < T; t++) {
            for (int n = 0; n < N; n++) {
                double tol = REL_TOL * magnitude(x, t, w, n) + ABS_TOL;
                double err = Math.abs((double) got[t * N + n] - ref[t * N + n]);
                if (!(err <= tol)) {
                    throw new AssertionError(what + ": out[" + t + ", " + n + "] = " + got[t * N + n]
                            + ", reference " + ref[t * N + n] + ", |err| " + err + " > tol " + tol);
                }
            }
        }
    }

    @ParameterizedTest(name = "{0} {1} symmetric={2}")
    @MethodSource("speciesFormats")
    void weightOnlyMatchesDequantizedReferenceAndTwin(VectorSpecies<Float> sp, QuantFormat f, boolean symmetric) {
        int i = 0;
        for (int[] shape : SHAPES) {
            int K = shape[0];
            int G = shape[1];
            int N = NS[i % NS.length];
            PackedMatrix w = weights(f, N, K, G, symmetric, 100 + i);
            for (int T : new int[] {1, 9}) {
                String what = sp + " " + f + (symmetric ? " sym" : "") + " T=" + T + " N=" + N + " K=" + K + " G=" + G;
                float[] x = KernelTestData.gaussian(T * K, 7 * i + T);
                float[] ref = new float[T * N];
                QuantGemmRef.matmulDequantized(x, T, w, ref);
                float[] twin = new float[T * N];
                QuantGemmRef.matmulWeightOnly(x, T, w, twin);
                float[] got1 = new float[T * N];
                QuantGemm.matmul(sp, one, x, T, w, got1);
                float[] got2 = new float[T * N];
                QuantGemm.matmul(sp, two, x, T, w, got2);
                assertClose(x, T, w, ref, twin, what + " twin");
                assertClose(x, T, w, ref, got1, what);
                assertClose(x, T, w, twin, got1, what + " vs twin");
                assertArrayEquals(got1, got2, what + ": 1 vs 2 threads");
                if (T == 1) {
                    float[] viaGemm = new float[N];
                    QuantGemm.gemmWeightOnly(sp, two, x, 1, w, viaGemm);
                    assertClose(x, 1, w, ref, viaGemm, what + " panel GEMM at T=1");
                }
            }
            i++;
        }
    }

    /** QuantGemm.matmul at T = 1 on one thread and on two, which must agree bit for bit. */
    static float[] gemvOnOneAndTwoThreads(VectorSpecies<Float> sp, float[] x, PackedMatrix w, String what) {
        float[] got1 = new float[w.rows()];
        QuantGemm.matmul(sp, one, x, 1, w, got1);
        float[] got2 = new float[w.rows()];
        QuantGemm.matmul(sp, two, x, 1, w, got2);
        assertArrayEquals(got1, got2, what + ": 1 vs 2 threads");
        return got1;
    }

    @ParameterizedTest(name = "symmetric={0}")
    @org.junit.jupiter.params.provider.ValueSource(booleans = {false, true})
    void tiledInt4GemvEqualsItsTwinBitForBit(boolean symmetric) {
        VectorSpecies<Float> sp = FloatVector.SPECIES_512; // the width that takes the tiled path
        int[][] shapes = {{8, 8}, {96, 96}, {96, 32}, {160, 32}, {192, 64}, {256, 128}, {2304, 128}};
        int[] ns = {1, 5, 16, 17, 34, 70};
        int i = 0;
        for (int[] shape : shapes) {
            for (int N : ns) {
                int K = shape[0];
                int G = shape[1];
                PackedMatrix w = weights(QuantFormat.INT4, N, K, G, symmetric, 900 + i);
                float[] x = KernelTestData.gaussian(K, 950 + i++);
                String what = "tiled INT4" + (symmetric ? " sym" : "") + " N=" + N + " K=" + K + " G=" + G;
                float[] twin = new float[N];
                QuantGemmRef.gemvInt4Tiled(x, w, twin);
                float[] ref = new float[N];
                QuantGemmRef.matmulDequantized(x, 1, w, ref);
                float[] got = gemvOnOneAndTwoThreads(sp, x, w, what);
                assertClose(x, 1, w, ref, twin, what + " twin");
                assertArrayEquals(twin, got, what + " vs twin");
            }
        }
    }

    @ParameterizedTest(name = "{0} {1} symmetric={2}")
    @MethodSource("speciesFormats")
    void gemvWithManyGroupsMatchesReferenceAndTwin(VectorSpecies<Float> sp, QuantFormat f, boolean symmetric) {
        int N = 3;
        for (int i = 0; i < MANY_GROUPS.length; i++) {
            int K = MANY_GROUPS[i][0];
            int G = MANY_GROUPS[i][1];
            PackedMatrix w = weights(f, N, K, G, symmetric, 500 + i);
            float[] x = KernelTestData.gaussian(K, 600 + i);
            String what = sp + " " + f + (symmetric ? " sym" : "") + " GEMV N=" + N + " K=" + K + " G=" + G;
            float[] ref = new float[N];
            QuantGemmRef.matmulDequantized(x, 1, w, ref);
            float[] twin = new float[N];
            QuantGemmRef.matmulWeightOnly(x, 1, w, twin);
            float[] got = gemvOnOneAndTwoThreads(sp, x, w, what);
            assertClose(x, 1, w, ref, got, what);
            assertClose(x, 1, w, twin, got, what + " vs twin");
        }
    }

    @ParameterizedTest(name = "{0} {1} symmetric={2}")
    @MethodSource("speciesUniformFormats")
    void integerProductEqualsTwinBitForBitAndFakeQuantWithinRounding(VectorSpecies<Float> sp, QuantFormat f,
                                                                      boolean symmetric) {
        int i = 0;
        for (int[] shape : SHAPES) {
            int K = shape[0];
            int G = shape[1];
            int N = NS[i % NS.length];
            PackedMatrix w = weights(f, N, K, G, symmetric, 300 + i);
            for (int bits : new int[] {8, 4}) {
                for (int T : new int[] {1, 3}) {
                    float[] x = KernelTestData.gaussian(T * K, 11 * i + T + bits);
                    List<QuantizedActivations> variants = new ArrayList<>();
                    variants.add(QuantizedActivations.quantizeDynamic(x, T, K, bits, K));
                    variants.add(QuantizedActivations.quantizeStatic(x, T, K, bits, 2.5f / ((1 << (bits - 1)) - 1)));
                    if (K % 32 == 0) {
                        variants.add(QuantizedActivations.quantizeDynamic(x, T, K, bits, 32));
                    }
                    for (QuantizedActivations xq : variants) {
                        String what = sp + " " + f + (symmetric ? " sym" : "") + " a" + bits + " group "
                                + xq.groupSize() + " T=" + T + " N=" + N + " K=" + K + " G=" + G;
                        float[] twin = new float[T * N];
                        QuantGemmRef.matmulInt(xq, w, twin);
                        float[] fake = new float[T * N];
                        QuantGemmRef.matmulFakeQuant(xq, w, fake);
                        float[] got1 = new float[T * N];
                        QuantGemm.matmulInt(sp, one, xq, w, got1);
                        float[] got2 = new float[T * N];
                        QuantGemm.matmulInt(sp, two, xq, w, got2);
                        assertArrayEquals(twin, got1, what + " vs integer twin");
                        assertArrayEquals(got1, got2, what + ": 1 vs 2 threads");
                        float[] xd = new float[T * K];
                        for (int t = 0; t < T; t++) {
                            for (int k = 0; k < K; k++) {
                                xd[t * K + k] = xq.dequantize(t, k);
                            }
                        }
                        assertClose(xd, T, w, fake, got1, what + " vs fake-quant");
                    }
                }
            }
            i++;
        }
    }

    @Test
    void integerSegmentSumsAreExactForLongRows() {
        // K = 16384 per row, every code at its extreme: the integer sum is 16384 * (255 - 0) * 127
        // = 5.3e8 (< 2^31) and must come out exactly
        int K = 16384;
        int[] q = new int[K];
        java.util.Arrays.fill(q, 255);
        PackedMatrix w = PackedMatrix.ofCodes(QuantFormat.INT8, 1, K, K, q, new float[] {1f}, new byte[] {0});
        int[] a = new int[K];
        java.util.Arrays.fill(a, 127);
        QuantizedActivations xq = new QuantizedActivations(1, K, 8, K, a, new float[] {1f});
        float[] out = new float[1];
        QuantGemm.matmulInt(FloatVector.SPECIES_PREFERRED, two, xq, w, out);
        assertTrue(out[0] == (float) (16384L * 255 * 127), "got " + out[0]);
        // a segment that could overflow int32 is refused
        int big = 66400;
        PackedMatrix wb = PackedMatrix.ofCodes(QuantFormat.INT8, 1, big, big, new int[big], new float[] {1f}, null);
        QuantizedActivations xb = new QuantizedActivations(1, big, 8, big, new int[big], new float[] {1f});
        assertThrows(IllegalArgumentException.class, () -> QuantGemm.matmulInt(xb, wb, new float[1]));
    }

    @Test
    void activationQuantizationIsSymmetricAbsmaxAndClampsStatically() {
        float[] x = {0.5f, -2f, 1f, 0.25f};
        QuantizedActivations d = QuantizedActivations.quantizeDynamic(x, 1, 4, 8, 4);
        assertArrayEquals(new float[] {2f / 127}, d.scales());
        assertArrayEquals(new int[] {32, -127, 64, 16}, d.codes()); // rint(x / (2 / 127)), 31.75 -> 32
        QuantizedActivations s = QuantizedActivations.quantizeStatic(x, 1, 4, 4, 0.25f);
        assertArrayEquals(new int[] {2, -7, 4, 1}, s.codes()); // -8 clamps to -7
        assertThrows(IllegalArgumentException.class, () -> QuantizedActivations.quantizeDynamic(x, 1, 4, 6, 4));
    }

    @Test
    void mismatchedShapesAndNf4IntegerProductsAreRejected() {
        PackedMatrix w = PackedMatrix.quantize(KernelTestData.gaussian(64, 1), 1, 64, QuantFormat.INT4, 32, false);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> QuantGemm.matmul(new float[63], 1, w, new float[1]));
        assertTrue(e.getMessage().contains("(1, 64)"), e.getMessage());
        PackedMatrix nf4 = PackedMatrix.quantize(KernelTestData.gaussian(64, 1), 1, 64, QuantFormat.NF4, 64, false);
        QuantizedActivations xq = QuantizedActivations.quantizeDynamic(KernelTestData.gaussian(64, 2), 1, 64, 8, 64);
        assertThrows(IllegalArgumentException.class, () -> QuantGemm.matmulInt(xq, nf4, new float[1]));
        QuantizedActivations x96 = QuantizedActivations.quantizeDynamic(KernelTestData.gaussian(96, 2), 1, 96, 8, 96);
        assertThrows(IllegalArgumentException.class, () -> QuantGemm.matmulInt(x96, w, new float[1]));
    }
}
