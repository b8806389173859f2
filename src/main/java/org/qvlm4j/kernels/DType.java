package org.qvlm4j.kernels;

/**
 * Element encodings of flat tensor memory, named as in the safetensors header.
 *
 * <p>Floating-point types are what HF checkpoints hold; the integer types carry the packed
 * weights, scales and zero points of quantized checkpoints. Conversion helpers for the 16-bit
 * floats live here so that every kernel and reader decodes them the same way.
 */
public enum DType {
    F64(8), F32(4), F16(2), BF16(2), I64(8), I32(4), I16(2), I8(1), U8(1), BOOL(1);

    /** Bytes per element. */
    public final int bytes;

    DType(int bytes) {
        this.bytes = bytes;
    }

    public boolean isFloating() {
        return this == F64 || this == F32 || this == F16 || this == BF16;
    }

    /** Parses a safetensors dtype string; throws naming the value and the accepted ones. */
    public static DType fromSafetensors(String name) {
        for (DType t : values()) {
            if (t.name().equals(name)) {
                return t;
            }
        }
        throw new IllegalArgumentException("unknown dtype '" + name + "' (expected one of "
                + java.util.Arrays.toString(values()) + ")");
    }

    /** bfloat16 bits (the high half of an IEEE float) to float. */
    public static float bf16ToFloat(short bits) {
        return Float.intBitsToFloat((bits & 0xFFFF) << 16);
    }

    /** float to bfloat16 bits, round to nearest even (NaN stays NaN), as torch does. */
    public static short floatToBf16(float f) {
        int x = Float.floatToRawIntBits(f);
        if ((x & 0x7FFFFFFF) > 0x7F800000) {
            return (short) ((x >>> 16) | 0x40);
        }
        int rounding = 0x7FFF + ((x >>> 16) & 1);
        return (short) ((x + rounding) >>> 16);
    }

    /** IEEE half bits to float. */
    public static float f16ToFloat(short bits) {
        return Float.float16ToFloat(bits);
    }

    /** float to IEEE half bits, round to nearest even. */
    public static short floatToF16(float f) {
        return Float.floatToFloat16(f);
    }
}
