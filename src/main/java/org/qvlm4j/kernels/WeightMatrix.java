package org.qvlm4j.kernels;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * A row-major (rows, cols) matrix in flat memory, stored as F32, F16 or BF16 little-endian.
 *
 * <p>For a linear layer this is PyTorch's weight layout: rows = output features N, cols = input
 * features K, so {@code y = x W^T}. The segment is usually a slice of a memory-mapped checkpoint;
 * kernels read it in place without converting.
 */
public record WeightMatrix(MemorySegment data, DType dtype, int rows, int cols) {

    static final ValueLayout.OfFloat F32_LE =
            ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfShort I16_LE =
            ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    public WeightMatrix {
        if (dtype != DType.F32 && dtype != DType.F16 && dtype != DType.BF16) {
            throw new IllegalArgumentException("weight matrix dtype must be F32, F16 or BF16, got " + dtype);
        }
        if (rows <= 0 || cols <= 0) {
            throw new IllegalArgumentException("weight matrix shape must be positive, got (" + rows + ", " + cols + ")");
        }
        long need = (long) rows * cols * dtype.bytes;
        if (data.byteSize() != need) {
            throw new IllegalArgumentException("weight matrix (" + rows + ", " + cols + ") " + dtype
                    + " needs " + need + " bytes, segment has " + data.byteSize());
        }
    }

    /** An F32 matrix over a heap array (copied into a heap segment view, not copied again). */
    public static WeightMatrix ofFloats(float[] values, int rows, int cols) {
        return new WeightMatrix(MemorySegment.ofArray(values), DType.F32, rows, cols);
    }

    /** Element (r, c) as float: the scalar access path used by reference kernels and tests. */
    public float get(int r, int c) {
        long i = (long) r * cols + c;
        return switch (dtype) {
            case F32 -> data.get(F32_LE, i * 4);
            case BF16 -> DType.bf16ToFloat(data.get(I16_LE, i * 2));
            case F16 -> DType.f16ToFloat(data.get(I16_LE, i * 2));
            default -> throw new AssertionError(dtype);
        };
    }

    /** Row r decoded to float into dst[dstOff .. dstOff + cols). */
    public void row(int r, float[] dst, int dstOff) {
        for (int c = 0; c < cols; c++) {
            dst[dstOff + c] = get(r, c);
        }
    }

    /** The whole matrix decoded to a new float array (rows * cols). */
    public float[] toFloatArray() {
        float[] out = new float[Math.multiplyExact(rows, cols)];
        for (int r = 0; r < rows; r++) {
            row(r, out, r * cols);
        }
        return out;
    }

    public long byteSize() {
        return data.byteSize();
    }
}
