package org.qvlm4j.kernels;

import jdk.incubator.vector.VectorSpecies;

/**
 * Dense products of float activations with a weight matrix in its stored dtype: {@code out = x W^T}.
 *
 * <p>This is the entry point the model calls for every linear layer. It dispatches on T: T = 1 is
 * a matrix-vector product (memory-bound, each weight row streamed once), T &gt; 1 the blocked GEMM
 * (weight panels widened once and reused across tokens); see {@link VectorKernels}. The production
 * path uses the machine's preferred vector species and the {@link Parallel#shared() shared} pool.
 * Results are bit-identical for any thread count.
 */
public final class Gemm {
    private Gemm() {
    }

    /** out[t, n] = sum_k x[t, k] * w[n, k]; x is (T, K) and out is (T, N), both row-major. */
    public static void matmul(float[] x, int T, WeightMatrix w, float[] out) {
        matmul(KernelSets.preferred(), Parallel.shared(), x, T, w, out);
    }

    /** {@link #matmul(float[], int, WeightMatrix, float[])} at the given vector width and pool. */
    public static void matmul(VectorSpecies<Float> species, Parallel par, float[] x, int T, WeightMatrix w, float[] out) {
        matmul(KernelSets.forSpecies(species), par, x, T, w, out);
    }

    /** {@link #matmul(float[], int, WeightMatrix, float[])} with an explicit kernel set and pool. */
    public static void matmul(KernelSet kernels, Parallel par, float[] x, int T, WeightMatrix w, float[] out) {
        checkShapes(x, T, w, out);
        if (T == 1) {
            kernels.gemv(par, x, w, out);
        } else if (T > 1) {
            kernels.gemm(par, x, T, w, out);
        }
    }

    /** The GEMV alone: out (N) = W x, x (K). */
    public static void gemv(VectorSpecies<Float> species, Parallel par, float[] x, WeightMatrix w, float[] out) {
        checkShapes(x, 1, w, out);
        KernelSets.forSpecies(species).gemv(par, x, w, out);
    }

    /** The blocked GEMM alone, for any T &gt;= 1 (the dispatcher uses it for T &gt; 1). */
    public static void gemm(VectorSpecies<Float> species, Parallel par, float[] x, int T, WeightMatrix w, float[] out) {
        checkShapes(x, T, w, out);
        if (T > 0) {
            KernelSets.forSpecies(species).gemm(par, x, T, w, out);
        }
    }

    /** Throws naming both shapes unless x holds (T, K) and out (T, N) floats. */
    static void checkShapes(float[] x, int T, WeightMatrix w, float[] out) {
        if (T < 0) {
            throw new IllegalArgumentException("matmul: T must be >= 0, got " + T);
        }
        if (x.length < (long) T * w.cols() || out.length < (long) T * w.rows()) {
            throw new IllegalArgumentException("matmul: x has " + x.length + " floats, out has " + out.length
                    + "; need (" + T + ", " + w.cols() + ") and (" + T + ", " + w.rows() + ")");
        }
    }
}
