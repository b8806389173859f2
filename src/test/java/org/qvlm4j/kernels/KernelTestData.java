package org.qvlm4j.kernels;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Random;
import java.util.stream.Stream;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/** Seeded inputs shared by the kernel tests: weight matrices at odd byte offsets, activations. */
final class KernelTestData {
    static final ValueLayout.OfFloat F32_LE = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfShort I16_LE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** Every width the kernels must support, independent of the machine. */
    static final VectorSpecies<Float>[] SPECIES = speciesArray();

    private KernelTestData() {
    }

    @SuppressWarnings("unchecked")
    private static VectorSpecies<Float>[] speciesArray() {
        return new VectorSpecies[] {FloatVector.SPECIES_128, FloatVector.SPECIES_256, FloatVector.SPECIES_512};
    }

    static Stream<VectorSpecies<Float>> species() {
        return Stream.of(SPECIES);
    }

    /**
     * A (rows, cols) matrix of N(0, 1) values, a tenth of them scaled by 1e-5 (F16 subnormals),
     * stored in {@code dtype} starting {@code byteOffset} bytes into a fresh segment.
     */
    static WeightMatrix weights(Arena arena, DType dtype, int rows, int cols, long seed, int byteOffset) {
        long n = (long) rows * cols;
        MemorySegment seg = arena.allocate(n * dtype.bytes + byteOffset + 8, 16).asSlice(byteOffset, n * dtype.bytes);
        Random rnd = new Random(seed);
        for (long i = 0; i < n; i++) {
            float v = (float) rnd.nextGaussian();
            if (rnd.nextInt(10) == 0) {
                v *= 1e-5f;
            }
            switch (dtype) {
                case F32 -> seg.set(F32_LE, i * 4, v);
                case BF16 -> seg.set(I16_LE, i * 2, DType.floatToBf16(v));
                case F16 -> seg.set(I16_LE, i * 2, DType.floatToF16(v));
                default -> throw new IllegalArgumentException("test weights cannot be " + dtype);
            }
        }
        return new WeightMatrix(seg, dtype, rows, cols);
    }

    static float[] gaussian(int n, long seed) {
        Random rnd = new Random(seed);
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) rnd.nextGaussian();
        }
        return a;
    }

    /** sum_k |x[t, k] * w[n, k]|, the scale of the rounding error of out[t, n]. */
    static double absDot(float[] x, int t, WeightMatrix w, int n) {
        int K = w.cols();
        double s = 0;
        for (int k = 0; k < K; k++) {
            s += Math.abs((double) x[t * K + k] * w.get(n, k));
        }
        return s;
    }
}
