package org.qvlm4j.kernels;

/**
 * Packed low-bit weight formats of {@link PackedMatrix}: unsigned integer codes per weight, with
 * float scales (and, for the uniform formats, integer zero points) per row or per group of
 * consecutive weights along K.
 *
 * <p><b>Uniform formats</b> (INT8, INT6, INT4) dequantize as {@code w = (q - z) * s}. Asymmetric
 * quantization stores one zero point z in [0, 2^b - 1] per group; symmetric quantization fixes
 * {@code z = 2^(b-1)} (the code midpoint), so codes span [z - qmax, z + qmax] with
 * {@code qmax = 2^(b-1) - 1} and no zero points are stored.
 *
 * <p><b>NF4</b> (QLoRA's 4-bit NormalFloat, as in bitsandbytes {@code dDequantizeNF4}) dequantizes
 * as {@code w = LEVELS[q] * absmax}, one absmax per block; weight-only. With K a multiple of the
 * block size, per-row blocks of 64 are exactly bitsandbytes' blocks of 64 over the row-major
 * flattened weight. Double quantization of the absmax values is left out (absmax stays fp32).
 *
 * <p><b>Byte layouts</b> (each row starts on its own byte, little-endian bit order):
 * <ul>
 *   <li>INT8: one byte per code.</li>
 *   <li>INT4, NF4: two codes per byte, low nibble first: byte i holds code 2i in bits 0-3 and
 *       code 2i+1 in bits 4-7. An odd row ends with a zero high nibble.</li>
 *   <li>INT6: 4 codes in 3 bytes, arranged in blocks of 64 codes (48 bytes) as three 16-byte planes:
 *       byte {@code 16p + i} (p = 0, 1, 2; i &lt; 16) holds code {@code 16p + i} in bits 0-5 and bits
 *       {@code 2p, 2p+1} of code {@code 48 + i} in bits 6-7. Each quad (i, 16+i, 32+i, 48+i) thus
 *       lives in bytes (i, 16+i, 32+i), and a vector of consecutive plane bytes widens to
 *       consecutive codes. A row whose length is not a multiple of 64 is padded with zero codes
 *       to a whole block.</li>
 * </ul>
 */
public enum QuantFormat {
    INT8(8), INT6(6), INT4(4), NF4(4);

    /** Codes per INT6 block. */
    public static final int INT6_BLOCK = 64;
    /** Bytes per INT6 block. */
    public static final int INT6_BLOCK_BYTES = 48;

    /**
     * NF4 levels for codes 0..15 (bitsandbytes {@code csrc/kernels.cu::dDequantizeNF4}), as listed
     * in the Q-VLM method notes, section 2.2.
     */
    static final float[] NF4_LEVELS = {
        -1.0f, -0.69619280f, -0.52507305f, -0.39491749f, -0.28444138f, -0.18477343f, -0.09105003625154495f, 0.0f,
        0.07958030f, 0.16093020f, 0.24611230f, 0.33791524f, 0.44070983f, 0.56261700f, 0.72295684f, 1.0f,
    };

    /** Bits per code. */
    public final int bits;

    QuantFormat(int bits) {
        this.bits = bits;
    }

    /** The NF4 level of code q (0..15). */
    public static float nf4Level(int q) {
        return NF4_LEVELS[q];
    }

    /** A copy of the 16 NF4 levels. */
    public static float[] nf4Levels() {
        return NF4_LEVELS.clone();
    }

    /** Largest code: 2^bits - 1. */
    public int maxCode() {
        return (1 << bits) - 1;
    }

    /** Whether w = (q - z) * s applies (INT8, INT6, INT4); NF4 is a level table. */
    public boolean isUniform() {
        return this != NF4;
    }

    /** The fixed zero point of symmetric quantization, 2^(bits-1). */
    public int symmetricZero() {
        return 1 << (bits - 1);
    }

    /** Bytes holding one row of {@code cols} codes. */
    public long rowBytes(int cols) {
        return switch (this) {
            case INT8 -> cols;
            case INT4, NF4 -> (cols + 1L) / 2;
            case INT6 -> (cols + (long) INT6_BLOCK - 1) / INT6_BLOCK * INT6_BLOCK_BYTES;
        };
    }
}
