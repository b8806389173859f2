package org.qvlm4j.io.safetensors;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.Arrays;
import org.qvlm4j.kernels.DType;
import org.qvlm4j.kernels.WeightMatrix;

/**
 * One tensor of a safetensors file: its name, dtype, shape and the bytes it occupies, as a slice
 * of the file's mapping (nothing is copied until a caller asks for floats). Element access takes
 * long indices, so tensors past 2 GiB are read in place.
 */
public record TensorEntry(String name, DType dtype, long[] shape, MemorySegment data, Path file) {

    private static final ValueLayout.OfFloat F32_LE =
            ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfDouble F64_LE =
            ValueLayout.JAVA_DOUBLE_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort I16_LE =
            ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfInt I32_LE =
            ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfLong I64_LE =
            ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** Number of elements (product of the shape; 1 for a scalar). */
    public long numel() {
        long n = 1;
        for (long d : shape) {
            n = Math.multiplyExact(n, d);
        }
        return n;
    }

    public int rank() {
        return shape.length;
    }

    /** Shape as ints; throws if a dimension exceeds int range. */
    public int[] intShape() {
        int[] s = new int[shape.length];
        for (int i = 0; i < s.length; i++) {
            s[i] = Math.toIntExact(shape[i]);
        }
        return s;
    }

    /** Element i decoded to double, whatever the dtype. */
    public double getDouble(long i) {
        return switch (dtype) {
            case F64 -> data.get(F64_LE, i * 8);
            case F32 -> data.get(F32_LE, i * 4);
            case F16 -> DType.f16ToFloat(data.get(I16_LE, i * 2));
            case BF16 -> DType.bf16ToFloat(data.get(I16_LE, i * 2));
            case I64 -> data.get(I64_LE, i * 8);
            case I32 -> data.get(I32_LE, i * 4);
            case I16 -> data.get(I16_LE, i * 2);
            case I8 -> data.get(ValueLayout.JAVA_BYTE, i);
            case U8 -> data.get(ValueLayout.JAVA_BYTE, i) & 0xFF;
            case BOOL -> data.get(ValueLayout.JAVA_BYTE, i) != 0 ? 1 : 0;
        };
    }

    /** All elements decoded to a new float array (the tensor must have fewer than 2^31 elements). */
    public float[] toFloatArray() {
        long n = numel();
        if (n > Integer.MAX_VALUE - 8) {
            throw new SafeTensorsException(file + ": tensor '" + name + "' has " + n
                    + " elements, too many for one array; read it with readFloats(start, count)");
        }
        return readFloats(0, (int) n);
    }

    /**
     * Elements [start, start + count) in flat row-major order decoded to floats: the way to read
     * part of a tensor of any size, including past 2^31 elements or bytes.
     */
    public float[] readFloats(long start, int count) {
        long n = numel();
        if (start < 0 || count < 0 || start > n - count) {
            throw new IndexOutOfBoundsException(file + ": tensor '" + name + "' has " + n
                    + " elements, cannot read " + count + " from " + start);
        }
        float[] out = new float[count];
        if (dtype == DType.F32) {
            MemorySegment.copy(data, F32_LE, start * 4, out, 0, count);
            return out;
        }
        for (int i = 0; i < count; i++) {
            out[i] = (float) getDouble(start + i);
        }
        return out;
    }

    /** All elements as longs (integer dtypes; floating values are truncated toward zero). */
    public long[] toLongArray() {
        int n = Math.toIntExact(numel());
        long[] out = new long[n];
        for (int i = 0; i < n; i++) {
            out[i] = dtype == DType.I64 ? data.get(I64_LE, i * 8L) : (long) getDouble(i);
        }
        return out;
    }

    /** This rank-2 tensor as a weight matrix read in place (F32, F16 or BF16). */
    public WeightMatrix asMatrix() {
        if (shape.length != 2) {
            throw new IllegalArgumentException(file + ": tensor '" + name + "' expected rank 2, got shape "
                    + Arrays.toString(shape));
        }
        return new WeightMatrix(data, dtype, Math.toIntExact(shape[0]), Math.toIntExact(shape[1]));
    }

    @Override
    public String toString() {
        return name + " " + dtype + " " + Arrays.toString(shape);
    }
}
