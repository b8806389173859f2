package org.qvlm4j.kernels;

import jdk.incubator.vector.VectorSpecies;

/**
 * The quantized-weight kernels compiled for one float species; obtain one from
 * {@link QuantKernelSets}. Shapes are checked by {@link QuantGemm}, not here. Every result is
 * deterministic for a given species: each output is computed by one thread in a fixed order.
 */
public interface QuantKernelSet {
    /** The float species of this set. */
    VectorSpecies<Float> species();

    /** out (N) = deq(W) x for x (K): weight-only, dequantizing in registers. */
    void gemvWeightOnly(Parallel par, float[] x, PackedMatrix w, float[] out);

    /** out (T, N) = x (T, K) deq(W)^T: panels of W dequantized to float, then the fp32 GEMM. */
    void gemmWeightOnly(Parallel par, float[] x, int T, PackedMatrix w, float[] out);

    /** out (T, N) = deq(xq) deq(W)^T with integer products accumulated in int per segment. */
    void matmulInt(Parallel par, QuantizedActivations xq, PackedMatrix w, float[] out);
}
