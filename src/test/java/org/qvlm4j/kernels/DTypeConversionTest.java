package org.qvlm4j.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import jdk.incubator.vector.VectorSpecies;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * bf16 / f16 conversions against hand-computed bit patterns (round to nearest even, ties, NaN,
 * infinities, subnormals), and the vector widening of every 16-bit pattern against the scalar one.
 */
class DTypeConversionTest {

    /** float bits -&gt; bf16 bits, worked out by hand from the 16 dropped bits. */
    @ParameterizedTest(name = "{0} -> {1}")
    @CsvSource({
        "3F800000, 3F80", // 1.0 exact
        "BF800000, BF80", // -1.0
        "00000000, 0000", // +0
        "80000000, 8000", // -0
        "3F808000, 3F80", // tie, even below: stays
        "3F818000, 3F82", // tie, odd below: rounds up to even
        "3F808001, 3F81", // just above the tie
        "3F807FFF, 3F80", // just below the tie
        "7F7FFFFF, 7F80", // max float rounds up into +inf
        "7F800000, 7F80", // +inf
        "FF800000, FF80", // -inf
        "7FC00000, 7FC0", // quiet NaN
        "7F800001, 7FC0", // signalling NaN with payload only in the dropped half is kept a NaN
        "FFC00001, FFC0", // negative NaN
        "00010000, 0001", // float subnormal that is an exact bf16 subnormal
        "00008000, 0000", // subnormal tie rounds to even (zero)
        "00018000, 0002", // subnormal tie rounds to even (up)
        "007FFFFF, 0080", // largest subnormal rounds up to the smallest normal
    })
    void floatToBf16RoundsToNearestEven(String floatHex, String bf16Hex) {
        float f = Float.intBitsToFloat(Integer.parseUnsignedInt(floatHex, 16));
        assertEquals(Integer.parseInt(bf16Hex, 16), DType.floatToBf16(f) & 0xFFFF);
    }

    @ParameterizedTest(name = "{0} -> {1}")
    @CsvSource({
        "3F80, 3F800000",
        "C040, C0400000", // -3
        "0001, 00010000", // smallest bf16 subnormal
        "7F80, 7F800000",
        "FF80, FF800000",
        "7FC1, 7FC10000", // NaN payload kept
        "8000, 80000000",
    })
    void bf16ToFloatIsTheHighHalf(String bf16Hex, String floatHex) {
        float f = DType.bf16ToFloat((short) Integer.parseInt(bf16Hex, 16));
        assertEquals(Integer.parseUnsignedInt(floatHex, 16), Float.floatToRawIntBits(f));
    }

    /** float value -&gt; IEEE half bits, from the half format (5 exponent, 10 mantissa bits). */
    @ParameterizedTest(name = "{0} -> {1}")
    @CsvSource({
        "1.0, 3C00",
        "-2.0, C000",
        "0.0, 0000",
        "-0.0, 8000",
        "65504.0, 7BFF", // max half
        "65519.0, 7BFF", // below the tie with 65536: stays finite
        "65520.0, 7C00", // tie at the top rounds to even = +inf
        "1.0e10, 7C00",
        "0x1p-14, 0400", // smallest normal
        "0x1p-24, 0001", // smallest subnormal
        "0x1p-25, 0000", // tie between 0 and 2^-24 rounds to even (0)
        "0x1.8p-25, 0001", // above that tie
        "0x1.8p-24, 0002", // tie between 1 and 2 ulps rounds to even (2)
        "0x1.002p0, 3C00", // 1 + 2^-11: tie, stays at even 1.0
        "0x1.006p0, 3C02", // 1 + 3 * 2^-11: tie, rounds up to even
        "0x1.004p0, 3C01", // 1 + 2^-10 exact
        "Infinity, 7C00",
        "-Infinity, FC00",
    })
    void floatToF16RoundsToNearestEven(String value, String halfHex) {
        float f = Float.parseFloat(value);
        assertEquals(Integer.parseInt(halfHex, 16), DType.floatToF16(f) & 0xFFFF);
    }

    @ParameterizedTest(name = "{0} -> {1}")
    @CsvSource({
        "3C00, 1.0",
        "C000, -2.0",
        "7BFF, 65504.0",
        "0400, 0x1p-14",
        "0001, 0x1p-24", // subnormal
        "03FF, 0x1.ff8p-15", // largest subnormal = 1023 * 2^-24
        "7C00, Infinity",
        "FC00, -Infinity",
    })
    void f16ToFloatDecodesExactly(String halfHex, String value) {
        float f = DType.f16ToFloat((short) Integer.parseInt(halfHex, 16));
        assertEquals(Float.floatToRawIntBits(Float.parseFloat(value)), Float.floatToRawIntBits(f));
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource({"7E00", "7C01", "FE00", "7FFF"})
    void f16NaNStaysNaN(String halfHex) {
        short h = (short) Integer.parseInt(halfHex, 16);
        assertTrue(Float.isNaN(DType.f16ToFloat(h)));
        assertTrue(Float.isNaN(Float.float16ToFloat(DType.floatToF16(Float.NaN))));
    }

    static java.util.stream.Stream<VectorSpecies<Float>> species() {
        return KernelTestData.species();
    }

    /** All 65536 patterns, stored at an odd byte offset, widened by the kernels' vector loads. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("species")
    void vectorWideningMatchesScalarForEveryPattern(VectorSpecies<Float> sp) {
        KernelSet ks = KernelSets.forSpecies(sp);
        int n = 1 << 16;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment seg = arena.allocate(2L * n + 8).asSlice(3, 2L * n);
            for (int i = 0; i < n; i++) {
                seg.set(KernelTestData.I16_LE, 2L * i, (short) i);
            }
            float[] bf = new float[n];
            ks.decode(DType.BF16, seg, 0, n, bf, 0);
            float[] hf = new float[n];
            ks.decode(DType.F16, seg, 0, n, hf, 0);
            for (int i = 0; i < n; i++) {
                int want = Float.floatToRawIntBits(DType.bf16ToFloat((short) i));
                assertEquals(want, Float.floatToRawIntBits(bf[i]), "bf16 pattern " + Integer.toHexString(i));
                float h = DType.f16ToFloat((short) i);
                if (Float.isNaN(h)) {
                    // hardware half conversion may set the quiet bit; NaN-ness and sign must agree
                    assertTrue(Float.isNaN(hf[i]), "f16 pattern " + Integer.toHexString(i));
                    assertEquals(Float.floatToRawIntBits(h) >>> 31, Float.floatToRawIntBits(hf[i]) >>> 31);
                } else {
                    assertEquals(Float.floatToRawIntBits(h), Float.floatToRawIntBits(hf[i]),
                            "f16 pattern " + Integer.toHexString(i));
                }
            }
            // odd element offsets and lengths exercise the scalar tails
            float[] part = new float[101];
            ks.decode(DType.F16, seg, 0x3BF0 + 1, 97, part, 4);
            for (int i = 0; i < 97; i++) {
                assertEquals(DType.f16ToFloat((short) (0x3BF0 + 1 + i)), part[4 + i]);
            }
        }
    }
}
