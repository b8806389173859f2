package org.qvlm4j.kernels;

import jdk.incubator.vector.VectorSpecies;

/**
 * Products with packed low-bit weights, the quantized counterpart of {@link Gemm}.
 *
 * <ul>
 *   <li>{@link #matmul}: weight-only (W8/W6/W4/NF4 weights, fp32 activations); T = 1 runs the
 *       GEMV that dequantizes in registers (decode, memory-bound), T &gt; 1 dequantizes panels and
 *       runs the fp32 GEMM (prefill, compute-bound).</li>
 *   <li>{@link #matmulInt}: integer activations (int8 or int4 codes, see
 *       {@link QuantizedActivations}) times INT8/INT6/INT4 weights with exact int32 accumulation
 *       per segment of min(weight group, activation group) elements, then
 *       {@code (s_w * s_x) * isum} in float.</li>
 * </ul>
 *
 * <p><b>Overflow bound.</b> A segment sum {@code sum (q - z) a} and its parts {@code sum q a},
 * {@code z sum a} are bounded by {@code S * 255 * 127} for INT8 x int8, so int32 holds S up to
 * 66311 (K = 16384 per row is 5.3e8, well inside); {@link #matmulInt} checks the bound.
 * Results are bit-identical for any thread count; see {@link QuantVectorKernels} for the
 * algorithms and constraints. Leaves out: bias, activation-side zero points, NF4 with integer
 * activations.
 */
public final class QuantGemm {
    private QuantGemm() {
    }

    /** out (T, N) = x (T, K) deq(W)^T with the preferred width and the shared pool. */
    public static void matmul(float[] x, int T, PackedMatrix w, float[] out) {
        matmul(QuantKernelSets.preferred(), Parallel.shared(), x, T, w, out);
    }

    /** Weight-only product at the given vector width and pool. */
    public static void matmul(VectorSpecies<Float> species, Parallel par, float[] x, int T, PackedMatrix w,
                              float[] out) {
        matmul(QuantKernelSets.forSpecies(species), par, x, T, w, out);
    }

    /** Weight-only product with an explicit kernel set and pool; T = 1 is the GEMV. */
    public static void matmul(QuantKernelSet kernels, Parallel par, float[] x, int T, PackedMatrix w, float[] out) {
        checkShapes(x, T, w, out);
        if (T == 1) {
            kernels.gemvWeightOnly(par, x, w, out);
        } else if (T > 1) {
            kernels.gemmWeightOnly(par, x, T, w, out);
        }
    }

    /** The panel-dequantizing GEMM alone, for any T &gt;= 1. */
    public static void gemmWeightOnly(VectorSpecies<Float> species, Parallel par, float[] x, int T, PackedMatrix w,
                                      float[] out) {
        checkShapes(x, T, w, out);
        if (T > 0) {
            QuantKernelSets.forSpecies(species).gemmWeightOnly(par, x, T, w, out);
        }
    }

    /** out (T, N) = deq(xq) deq(W)^T with integer accumulation, preferred width, shared pool. */
    public static void matmulInt(QuantizedActivations xq, PackedMatrix w, float[] out) {
        matmulInt(QuantKernelSets.preferred(), Parallel.shared(), xq, w, out);
    }

    /** Integer product at the given vector width and pool. */
    public static void matmulInt(VectorSpecies<Float> species, Parallel par, QuantizedActivations xq,
                                 PackedMatrix w, float[] out) {
        matmulInt(QuantKernelSets.forSpecies(species), par, xq, w, out);
    }

    /** Integer product with an explicit kernel set and pool. */
    public static void matmulInt(QuantKernelSet kernels, Parallel par, QuantizedActivations xq, PackedMatrix w,
                                 float[] out) {
        checkInt(xq, w, out);
        kernels.matmulInt(par, xq, w, out);
    }

    static void checkShapes(float[] x, int T, PackedMatrix w, float[] out) {
        if (T < 0) {
            throw new IllegalArgumentException("quantized matmul: T must be >= 0, got " + T);
        }
        if (x.length < (long) T * w.cols() || out.length < (long) T * w.rows()) {
            throw new IllegalArgumentException("quantized matmul: x has " + x.length + " floats, out has "
                    + out.length + "; need (" + T + ", " + w.cols() + ") and (" + T + ", " + w.rows() + ")");
        }
    }

    /** Throws unless xq, w and out fit the integer product and int32 cannot overflow. */
    static void checkInt(QuantizedActivations xq, PackedMatrix w, float[] out) {
        if (!w.format().isUniform()) {
            throw new IllegalArgumentException("integer matmul needs uniform weights (INT8/INT6/INT4), got "
                    + w.format());
        }
        if (xq.K() != w.cols()) {
            throw new IllegalArgumentException("integer matmul: activations have K = " + xq.K()
                    + ", weights have K = " + w.cols());
        }
        if (out.length < (long) xq.T() * w.rows()) {
            throw new IllegalArgumentException("integer matmul: out has " + out.length + " floats, need ("
                    + xq.T() + ", " + w.rows() + ")");
        }
        int wG = w.groupSize();
        int xG = xq.groupSize();
        if (Math.max(wG, xG) % Math.min(wG, xG) != 0) {
            throw new IllegalArgumentException("integer matmul: weight group " + wG + " and activation group "
                    + xG + " must divide one another");
        }
        long bound = (long) Math.min(wG, xG) * w.format().maxCode() * xq.qmax();
        if (bound > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("integer matmul: segment of " + Math.min(wG, xG)
                    + " products can reach " + bound + ", beyond int32");
        }
    }
}
