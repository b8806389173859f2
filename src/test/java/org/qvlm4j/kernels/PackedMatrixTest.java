package org.qvlm4j.kernels;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.MemorySegment;
import java.util.BitSet;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * {@link PackedMatrix} and {@link QuantFormat}: byte layouts against hand-packed bytes, packing as
 * a bijection on codes (exhaustive for INT4 byte pairs and INT6 quads), size invariants, and the
 * quantizers' round-trip error bounds.
 */
class PackedMatrixTest {

    @Test
    void int4PacksLowNibbleFirstAndIsABijectionOnAllBytes() {
        PackedMatrix m = PackedMatrix.ofCodes(QuantFormat.INT4, 1, 3, 3, new int[] {3, 10, 7}, new float[] {1f}, null);
        MemorySegment c = m.codes();
        assertEquals(2, c.byteSize());
        assertEquals((byte) 0xA3, c.get(java.lang.foreign.ValueLayout.JAVA_BYTE, 0));
        assertEquals((byte) 0x07, c.get(java.lang.foreign.ValueLayout.JAVA_BYTE, 1));
        // all 256 code pairs: decode(encode) is the identity and the bytes are all distinct
        int[] q = new int[512];
        for (int i = 0; i < 256; i++) {
            q[2 * i] = i & 15;
            q[2 * i + 1] = i >> 4;
        }
        PackedMatrix all = PackedMatrix.ofCodes(QuantFormat.INT4, 1, 512, 512, q, new float[] {1f}, null);
        assertArrayEquals(q, all.unpack());
        BitSet seen = new BitSet(256);
        for (int i = 0; i < 256; i++) {
            seen.set(all.codes().get(java.lang.foreign.ValueLayout.JAVA_BYTE, i) & 0xFF);
        }
        assertEquals(256, seen.cardinality());
    }

    @Test
    void int6QuadLayoutMatchesHandPackedBytes() {
        int[] q = new int[64];
        q[5] = 0x2A; // plane 0, byte 5
        q[16 + 5] = 0x15; // plane 1, byte 5
        q[32 + 5] = 0x3F; // plane 2, byte 5
        q[48 + 5] = 0b10_01_11; // bits 0-1 -> byte 5, bits 2-3 -> byte 21, bits 4-5 -> byte 37
        PackedMatrix m = PackedMatrix.ofCodes(QuantFormat.INT6, 1, 64, 64, q, new float[] {1f}, null);
        byte[] b = m.codes().toArray(java.lang.foreign.ValueLayout.JAVA_BYTE);
        assertEquals(48, b.length);
        byte[] expect = new byte[48];
        expect[5] = (byte) (0x2A | 0b11 << 6);
        expect[21] = (byte) (0x15 | 0b01 << 6);
        expect[37] = (byte) (0x3F | 0b10 << 6);
        assertArrayEquals(expect, b);
        assertArrayEquals(q, m.unpack());
    }

    @Test
    void int6PackingIsABijectionOnAllQuads() {
        // 2^24 quads, 16 per 64-code block (quad i = codes i, 16+i, 32+i, 48+i in bytes i, 16+i, 32+i)
        BitSet seen = new BitSet(1 << 24);
        int[] q = new int[64];
        int[] back = new int[64];
        byte[] bytes = new byte[48];
        MemorySegment seg = MemorySegment.ofArray(bytes);
        for (int t0 = 0; t0 < 1 << 24; t0 += 16) {
            for (int i = 0; i < 16; i++) {
                int t = t0 + i;
                q[i] = t & 63;
                q[16 + i] = (t >> 6) & 63;
                q[32 + i] = (t >> 12) & 63;
                q[48 + i] = (t >> 18) & 63;
            }
            java.util.Arrays.fill(bytes, (byte) 0);
            PackedMatrix.packRow(QuantFormat.INT6, q, 0, 64, bytes, 0);
            for (int k = 0; k < 64; k++) {
                back[k] = PackedMatrix.codeAt(QuantFormat.INT6, seg, 0, k);
            }
            if (!java.util.Arrays.equals(q, back)) {
                throw new AssertionError("INT6 round trip fails for quads starting at " + t0);
            }
            for (int i = 0; i < 16; i++) {
                seen.set((bytes[i] & 0xFF) | (bytes[16 + i] & 0xFF) << 8 | (bytes[32 + i] & 0xFF) << 16);
            }
        }
        assertEquals(1 << 24, seen.cardinality(), "every byte triple is the image of exactly one quad");
    }

    @ParameterizedTest
    @EnumSource(QuantFormat.class)
    void sizesFollowTheFormatInvariants(QuantFormat f) {
        int K = 4096;
        int N = 8;
        long expectRow = switch (f) {
            case INT8 -> K;
            case INT6 -> K / 4 * 3;
            case INT4, NF4 -> K / 2;
        };
        assertEquals(expectRow, f.rowBytes(K));
        float[] w = KernelTestData.gaussian(N * K, 3);
        int G = f == QuantFormat.NF4 ? 64 : 128;
        PackedMatrix m = PackedMatrix.quantize(w, N, K, f, G, false);
        long zeros = f == QuantFormat.NF4 ? 0 : (long) N * K / G;
        assertEquals(expectRow * N + 4L * N * K / G + zeros, m.byteSize());
        PackedMatrix sym = PackedMatrix.quantize(w, N, K, f, K, true);
        assertEquals(expectRow * N + 4L * N, sym.byteSize());
        // odd lengths: INT4 rounds up to whole bytes, INT6 to whole 64-code blocks
        assertEquals(f == QuantFormat.INT8 ? 37 : f == QuantFormat.INT6 ? 48 : 19, f.rowBytes(37));
        assertEquals(f == QuantFormat.INT6 ? 96 : f == QuantFormat.INT8 ? 65 : 33, f.rowBytes(65));
    }

    @Test
    void fourBitPerGroupIsAtLeast3Point5TimesSmallerThanBf16() {
        int K = 4096;
        int N = 16;
        float[] w = KernelTestData.gaussian(N * K, 4);
        double bf16 = 2.0 * N * K;
        assertTrue(bf16 / PackedMatrix.quantize(w, N, K, QuantFormat.INT4, 128, false).byteSize() >= 3.5);
        assertTrue(bf16 / PackedMatrix.quantize(w, N, K, QuantFormat.NF4, 64, false).byteSize() >= 3.5);
    }

    @ParameterizedTest
    @EnumSource(value = QuantFormat.class, names = {"INT8", "INT6", "INT4"})
    void asymmetricRoundTripIsWithinHalfAStepAndCodesCoverTheRange(QuantFormat f) {
        int N = 5;
        int K = 96;
        int G = 32;
        float[] w = KernelTestData.gaussian(N * K, 11);
        PackedMatrix m = PackedMatrix.quantize(w, N, K, f, G, false);
        for (int r = 0; r < N; r++) {
            for (int g = 0; g < K / G; g++) {
                float s = m.scale(r, g);
                int lo = Integer.MAX_VALUE;
                int hi = Integer.MIN_VALUE;
                for (int k = g * G; k < (g + 1) * G; k++) {
                    float err = Math.abs(m.dequantize(r, k) - w[r * K + k]);
                    // half a step, plus the zero point's rounding shift of the grid (another half)
                    assertTrue(err <= s * 1.0001f, f + " (" + r + ", " + k + ") err " + err + " step " + s);
                    lo = Math.min(lo, m.code(r, k));
                    hi = Math.max(hi, m.code(r, k));
                }
                assertTrue(lo <= 1 && hi >= f.maxCode() - 1, f + " codes " + lo + ".." + hi + " span the range");
            }
        }
    }

    @ParameterizedTest
    @EnumSource(value = QuantFormat.class, names = {"INT8", "INT6", "INT4"})
    void symmetricQuantizationKeepsZeroExactAndFixesTheZeroPoint(QuantFormat f) {
        int N = 3;
        int K = 70;
        float[] w = KernelTestData.gaussian(N * K, 12);
        w[5] = 0f;
        PackedMatrix m = PackedMatrix.quantize(w, N, K, f, K, true);
        assertTrue(m.symmetric());
        assertNull(m.zerosArray());
        assertEquals(f.symmetricZero(), m.zeroPoint(0, 0));
        assertEquals(0f, m.dequantize(0, 5));
        int qmax = f.symmetricZero() - 1;
        for (int r = 0; r < N; r++) {
            float absmax = 0f;
            for (int k = 0; k < K; k++) {
                absmax = Math.max(absmax, Math.abs(w[r * K + k]));
            }
            assertEquals(absmax / qmax, m.scale(r, 0));
            for (int k = 0; k < K; k++) {
                assertTrue(Math.abs(m.dequantize(r, k) - w[r * K + k]) <= m.scale(r, 0) * 0.5001f);
            }
        }
    }

    @Test
    void nf4DequantizesToLevelTimesAbsmaxOfEachBlockOf64() {
        int N = 3;
        int K = 128;
        float[] w = KernelTestData.gaussian(N * K, 13);
        PackedMatrix m = PackedMatrix.quantize(w, N, K, QuantFormat.NF4, 64, false);
        float[] levels = QuantFormat.nf4Levels();
        for (int r = 0; r < N; r++) {
            for (int b = 0; b < 2; b++) {
                float absmax = 0f;
                for (int k = b * 64; k < (b + 1) * 64; k++) {
                    absmax = Math.max(absmax, Math.abs(w[r * K + k]));
                }
                assertEquals(absmax, m.scale(r, b));
                for (int k = b * 64; k < (b + 1) * 64; k++) {
                    int q = m.code(r, k);
                    assertEquals(levels[q] * absmax, m.dequantize(r, k));
                    // the code is the nearest level of w / absmax
                    float v = w[r * K + k] / absmax;
                    for (float level : levels) {
                        assertTrue(Math.abs(v - levels[q]) <= Math.abs(v - level) + 1e-7f);
                    }
                }
            }
        }
        assertEquals(-1f, levels[0]);
        assertEquals(0f, levels[7]);
        assertEquals(1f, levels[15]);
        for (int i = 1; i < 16; i++) {
            assertTrue(levels[i] > levels[i - 1]);
        }
    }

    @Test
    void packWithGivenScalesAndZerosClampsToTheCodeRange() {
        float[] w = {-10f, -0.5f, 0f, 0.26f, 100f, 0.74f};
        PackedMatrix m = PackedMatrix.pack(w, 1, 6, QuantFormat.INT4, 6, new float[] {0.5f}, new byte[] {3});
        // codes = clamp(rint(w / 0.5) + 3, 0, 15)
        assertArrayEquals(new int[] {0, 2, 3, 4, 15, 4}, m.unpack());
        assertEquals((4 - 3) * 0.5f, m.dequantize(0, 3));
    }

    @Test
    void badInputIsRejectedWithTheNumbers() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> PackedMatrix.quantize(new float[100], 2, 50, QuantFormat.INT4, 48, false));
        assertTrue(e.getMessage().contains("48") && e.getMessage().contains("50"), e.getMessage());
        assertThrows(IllegalArgumentException.class,
                () -> PackedMatrix.ofCodes(QuantFormat.INT4, 1, 2, 2, new int[] {1, 16}, new float[] {1f}, null));
        assertThrows(IllegalArgumentException.class, () -> new PackedMatrix(QuantFormat.INT8, 2, 4, 4,
                MemorySegment.ofArray(new byte[7]), new float[2], null));
        assertThrows(IllegalArgumentException.class, () -> new PackedMatrix(QuantFormat.INT4, 1, 4, 4,
                MemorySegment.ofArray(new byte[2]), new float[1], new byte[] {16}));
        Random rnd = new Random(1);
        assertThrows(IllegalArgumentException.class, () -> PackedMatrix.pack(new float[4], 1, 4, QuantFormat.INT8, 4,
                new float[] {-rnd.nextFloat()}, null));
    }
}
