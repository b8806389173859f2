package org.qvlm4j.kernels;

import java.lang.foreign.MemorySegment;
import jdk.incubator.vector.VectorSpecies;

/**
 * The vector kernels compiled for one float species; obtain one from {@link KernelSets}.
 *
 * <p>Shapes are not checked here; {@link Gemm} and {@link VectorMath} check them. Every product
 * is deterministic for a given species: thread count and scheduling never change a result bit.
 */
public interface KernelSet {
    /** The float species every kernel of this set computes with. */
    VectorSpecies<Float> species();

    /** out (N) = W x for x (K). */
    void gemv(Parallel par, float[] x, WeightMatrix w, float[] out);

    /** out (T, N) = x (T, K) W^T with the blocked, panel-packing kernel (any T &gt;= 1). */
    void gemm(Parallel par, float[] x, int T, WeightMatrix w, float[] out);

    /** sum_i a[aOff + i] * b[bOff + i] for i &lt; n. */
    float dot(float[] a, int aOff, float[] b, int bOff, int n);

    /** y[yOff + i] = fma(alpha, x[xOff + i], y[yOff + i]) for i &lt; n (bit-identical to scalar FMA). */
    void axpy(float alpha, float[] x, int xOff, float[] y, int yOff, int n);

    /** Widens n elements of {@code dtype} starting at element index {@code elem} of seg into dst. */
    void decode(DType dtype, MemorySegment seg, long elem, int n, float[] dst, int dstOff);
}
