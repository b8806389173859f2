package org.qvlm4j.kernels;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import jdk.incubator.vector.VectorSpecies;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/** dot and axpy at every width against their scalar twins, at odd offsets and lengths. */
class VectorMathTest {
    /** |dot - exact| &lt;= DOT_REL_TOL * sum |a_i b_i| + DOT_ABS_TOL. */
    static final double DOT_REL_TOL = 1e-5;
    static final double DOT_ABS_TOL = 1e-6;
    static final int[] LENGTHS = {0, 1, 3, 8, 31, 64, 65, 257, 1003};

    static java.util.stream.Stream<VectorSpecies<Float>> species() {
        return KernelTestData.species();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("species")
    void dotMatchesDoubleSumAndScalarTwin(VectorSpecies<Float> sp) {
        for (int n : LENGTHS) {
            float[] a = KernelTestData.gaussian(n + 5, n);
            float[] b = KernelTestData.gaussian(n + 2, n + 100);
            double exact = 0;
            double scale = 0;
            for (int i = 0; i < n; i++) {
                exact += (double) a[i + 5] * b[i + 2];
                scale += Math.abs((double) a[i + 5] * b[i + 2]);
            }
            double tol = DOT_REL_TOL * scale + DOT_ABS_TOL;
            float fast = VectorMath.dot(sp, a, 5, b, 2, n);
            float slow = VectorMath.dotScalar(a, 5, b, 2, n);
            assertEquals(exact, fast, tol, "vector dot n=" + n);
            assertEquals(exact, slow, tol, "scalar dot n=" + n);
        }
    }

    /**
     * The vector dot's summation order written out in scalar code: four lane-wise FMA chains over
     * blocks of 4L, single-vector blocks into the first chain, (s0 + s1) + (s2 + s3) lane-wise,
     * the fixed pairwise lane tree, then the scalar tail. Bit equality pins the order, so the
     * result cannot change between interpreted and JIT-compiled code.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("species")
    void dotFollowsItsDocumentedOrderExactly(VectorSpecies<Float> sp) {
        int L = sp.length();
        for (int n : LENGTHS) {
            float[] a = KernelTestData.gaussian(n + 5, 3 * n);
            float[] b = KernelTestData.gaussian(n + 2, 3 * n + 1);
            float[][] acc = new float[4][L];
            int bound = n - n % (4 * L);
            int i = 0;
            for (; i < bound; i += 4 * L) {
                for (int c = 0; c < 4; c++) {
                    for (int l = 0; l < L; l++) {
                        acc[c][l] = Math.fma(a[5 + i + c * L + l], b[2 + i + c * L + l], acc[c][l]);
                    }
                }
            }
            for (; i + L <= n; i += L) {
                for (int l = 0; l < L; l++) {
                    acc[0][l] = Math.fma(a[5 + i + l], b[2 + i + l], acc[0][l]);
                }
            }
            float[] lanes = new float[L];
            for (int l = 0; l < L; l++) {
                lanes[l] = (acc[0][l] + acc[1][l]) + (acc[2][l] + acc[3][l]);
            }
            for (int half = L / 2; half >= 1; half /= 2) {
                for (int l = 0; l < half; l++) {
                    lanes[l] = lanes[l] + lanes[l + half];
                }
            }
            float want = lanes[0];
            for (; i < n; i++) {
                want = Math.fma(a[5 + i], b[2 + i], want);
            }
            assertEquals(Float.floatToIntBits(want), Float.floatToIntBits(VectorMath.dot(sp, a, 5, b, 2, n)), "n=" + n);
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("species")
    void axpyIsBitIdenticalToScalarFma(VectorSpecies<Float> sp) {
        for (int n : LENGTHS) {
            float[] x = KernelTestData.gaussian(n + 3, 2 * n);
            float[] y = KernelTestData.gaussian(n + 1, 2 * n + 1);
            float[] yFast = y.clone();
            float[] ySlow = y.clone();
            VectorMath.axpy(sp, -0.37f, x, 3, yFast, 1, n);
            VectorMath.axpyScalar(-0.37f, x, 3, ySlow, 1, n);
            assertArrayEquals(ySlow, yFast, "axpy n=" + n);
            assertEquals(y[0], yFast[0], "element before the range untouched");
            for (int i = 0; i < n; i++) {
                assertEquals(Math.fma(-0.37f, x[3 + i], y[1 + i]), ySlow[1 + i]);
            }
        }
    }

    @Test
    void preferredWidthEntryPointsAgreeWithTwins() {
        float[] a = KernelTestData.gaussian(100, 1);
        float[] b = KernelTestData.gaussian(100, 2);
        assertEquals(VectorMath.dotScalar(a, 0, b, 0, 100), VectorMath.dot(a, 0, b, 0, 100), 1e-4);
        float[] y1 = b.clone();
        float[] y2 = b.clone();
        VectorMath.axpy(2f, a, 0, y1, 0, 100);
        VectorMath.axpyScalar(2f, a, 0, y2, 0, 100);
        assertArrayEquals(y2, y1);
    }

    @Test
    void rejectsRangesOutsideTheArrays() {
        float[] a = new float[10];
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> VectorMath.dot(a, 5, a, 0, 6));
        assertEquals("a: range [5, 5 + 6) outside array of length 10", e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> VectorMath.axpy(1f, a, 0, a, -1, 2));
    }
}
