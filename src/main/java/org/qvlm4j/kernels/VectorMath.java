package org.qvlm4j.kernels;

import jdk.incubator.vector.VectorSpecies;

/**
 * Vector primitives over float arrays, each next to its scalar twin.
 *
 * <p>{@code dot} sums in a different order from its twin (four vector accumulators, then lanes),
 * so the two agree to rounding; {@code axpy} is one FMA per element in both and agrees bit for
 * bit. Leaves out: strided access, double accumulation.
 */
public final class VectorMath {
    private VectorMath() {
    }

    /** sum_i a[aOff + i] * b[bOff + i] for i &lt; n, at the preferred width. */
    public static float dot(float[] a, int aOff, float[] b, int bOff, int n) {
        checkRange("a", a, aOff, n);
        checkRange("b", b, bOff, n);
        return KernelSets.preferred().dot(a, aOff, b, bOff, n);
    }

    /** {@link #dot(float[], int, float[], int, int)} at the given width. */
    public static float dot(VectorSpecies<Float> species, float[] a, int aOff, float[] b, int bOff, int n) {
        checkRange("a", a, aOff, n);
        checkRange("b", b, bOff, n);
        return KernelSets.forSpecies(species).dot(a, aOff, b, bOff, n);
    }

    /** Scalar twin of {@code dot}: sequential FMA from index 0. */
    public static float dotScalar(float[] a, int aOff, float[] b, int bOff, int n) {
        checkRange("a", a, aOff, n);
        checkRange("b", b, bOff, n);
        float acc = 0f;
        for (int i = 0; i < n; i++) {
            acc = Math.fma(a[aOff + i], b[bOff + i], acc);
        }
        return acc;
    }

    /** y[yOff + i] += alpha * x[xOff + i] (one FMA) for i &lt; n, at the preferred width. */
    public static void axpy(float alpha, float[] x, int xOff, float[] y, int yOff, int n) {
        checkRange("x", x, xOff, n);
        checkRange("y", y, yOff, n);
        KernelSets.preferred().axpy(alpha, x, xOff, y, yOff, n);
    }

    /** {@link #axpy(float, float[], int, float[], int, int)} at the given width. */
    public static void axpy(VectorSpecies<Float> species, float alpha, float[] x, int xOff, float[] y, int yOff, int n) {
        checkRange("x", x, xOff, n);
        checkRange("y", y, yOff, n);
        KernelSets.forSpecies(species).axpy(alpha, x, xOff, y, yOff, n);
    }

    /** Scalar twin of {@code axpy}. */
    public static void axpyScalar(float alpha, float[] x, int xOff, float[] y, int yOff, int n) {
        checkRange("x", x, xOff, n);
        checkRange("y", y, yOff, n);
        for (int i = 0; i < n; i++) {
            y[yOff + i] = Math.fma(alpha, x[xOff + i], y[yOff + i]);
        }
    }

    private static void checkRange(String name, float[] arr, int off, int n) {
        if (n < 0 || off < 0 || (long) off + n > arr.length) {
            throw new IllegalArgumentException(name + ": range [" + off + ", " + off + " + " + n
                    + ") outside array of length " + arr.length);
        }
    }
}
