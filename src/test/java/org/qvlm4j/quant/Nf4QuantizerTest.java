package org.qvlm4j.quant;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** NF4 levels, decision midpoints, blocking, and double quantization against hand-computed values. */
class Nf4QuantizerTest {
    /** The 16 levels as printed (8 decimals) in qvlm-method.md §2.2, code 0 → 15. */
    static final double[] DOC_LEVELS = {
        -1.0, -0.69619280, -0.52507305, -0.39491749, -0.28444138, -0.18477343, -0.09105004, 0.0,
        0.07958030, 0.16093020, 0.24611230, 0.33791524, 0.44070983, 0.56261700, 0.72295684, 1.0,
    };
    static final double DOC_DECIMALS = 5e-9;
    /** bitsandbytes' thresholds are float32 midpoints of the levels. */
    static final double MIDPOINT_TOL = 1e-7;

    @Test
    void levelsMatchTheSpecAndThresholdsAreMidpoints() {
        for (int i = 0; i < 16; i++) {
            assertEquals(DOC_LEVELS[i], Nf4Quantizer.LEVELS[i], DOC_DECIMALS, "level " + i);
        }
        for (int i = 0; i < 15; i++) {
            double mid = ((double) Nf4Quantizer.LEVELS[i] + Nf4Quantizer.LEVELS[i + 1]) / 2;
            assertEquals(mid, Nf4Quantizer.THRESHOLDS[i], MIDPOINT_TOL, "threshold " + i);
        }
    }

    @Test
    void encodingIsTheNearestLevelAndTiesGoDown() {
        SplittableRandom rnd = new SplittableRandom(1);
        for (int k = 0; k < 20000; k++) {
            float x = (float) (rnd.nextDouble() * 2 - 1);
            int best = 0;
            for (int c = 1; c < 16; c++) {
                if (Math.abs(x - Nf4Quantizer.LEVELS[c]) < Math.abs(x - Nf4Quantizer.LEVELS[best])) {
                    best = c;
                }
            }
            double gap = Math.abs(Math.abs(x - Nf4Quantizer.LEVELS[best])
                    - Math.abs(x - Nf4Quantizer.LEVELS[Nf4Quantizer.encode(x)]));
            assertTrue(Nf4Quantizer.encode(x) == best || gap < MIDPOINT_TOL, "x = " + x);
        }
        for (int i = 0; i < 15; i++) {
            assertEquals(i, Nf4Quantizer.encode(Nf4Quantizer.THRESHOLDS[i]), "on midpoint " + i);
            assertEquals(i + 1, Nf4Quantizer.encode(Math.nextUp(Nf4Quantizer.THRESHOLDS[i])), "above midpoint " + i);
        }
        assertEquals(0, Nf4Quantizer.encode(-1f));
        assertEquals(15, Nf4Quantizer.encode(1f));
        assertEquals(7, Nf4Quantizer.encode(0f));
    }

    @Test
    void handComputedBlocksOverTheFlattenedWeight() {
        // (3, 40) = 120 values: block 0 = [0, 64) (row 0 and row 1 cols 0..23), block 1 = [64, 120) partial
        float[] w = new float[120];
        w[0] = 2.0f; // absmax of block 0 → 1.0, code 15
        w[1] = -1.0f; // -0.5: above -0.6106, not above -0.4600 → code 2
        w[2] = 0.1f; // 0.05: above 0.0398, not above 0.1203 → code 8
        w[3] = -2.0f; // -1.0 → code 0
        w[4] = 0.079f; // 0.0395: not above 0.03979 → code 7 (zero)
        w[5] = 0.08f; // 0.04: above 0.03979 → code 8
        w[6] = 1.3f; // 0.65: above 0.6428 → code 14
        w[64] = -0.3f; // block 1, row 1 col 24: -0.5 → code 2
        w[100] = 0.3f; // 0.5: above 0.3893, not above 0.5017 → code 12
        w[119] = 0.6f; // absmax of block 1, row 2 col 39 → code 15
        int[] codes = new int[120];
        java.util.Arrays.fill(codes, 7);
        codes[0] = 15;
        codes[1] = 2;
        codes[2] = 8;
        codes[3] = 0;
        codes[5] = 8;
        codes[6] = 14;
        codes[64] = 2;
        codes[100] = 12;
        codes[119] = 15;
        Nf4Quantizer q = new Nf4Quantizer(QuantSpec.nf4(false));
        Nf4Quantizer.Nf4Tensor t = q.quantize(w, 3, 40);
        assertArrayEquals(new float[] {2.0f, 0.6f}, t.absmax());
        assertNull(t.doubleQuant());
        for (int i = 0; i < 120; i++) {
            assertEquals(codes[i], t.codes()[i], "code at " + i);
        }
        float[] y = q.dequantize(t);
        assertEquals(2.0f, y[0]);
        assertEquals(-1.0501461029052734f, y[1]);
        assertEquals(0.1591606f, y[2], 1e-7);
        assertEquals(-2.0f, y[3]);
        assertEquals(0f, y[4]);
        assertEquals(0.7229568362236023f * 2, y[6]);
        assertEquals(-0.3150438f, y[64], 1e-7);
        assertEquals(0.2644259f, y[100], 1e-7);
        assertEquals(0.6f, y[119]);
        float[] fake = w.clone();
        q.fakeQuantize(fake, 3, 40);
        assertArrayEquals(y, fake);
    }

    @Test
    void allZeroBlockStaysZero() {
        Nf4Quantizer q = new Nf4Quantizer(QuantSpec.nf4(true));
        float[] w = new float[130];
        w[129] = -4f;
        float[] y = q.dequantize(q.quantize(w, 10, 13));
        for (int i = 0; i < 128; i++) {
            assertTrue(y[i] == 0f, "element " + i + " = " + y[i]); // -0.0 allowed: decoded absmax may be negative
        }
    }

    @Test
    void dynamicMapMatchesBitsandbytesConstruction() {
        float[] map = Nf4Quantizer.dynamicMapEntries();
        assertEquals(256, map.length);
        for (int i = 1; i < 256; i++) {
            assertTrue(map[i] > map[i - 1], "strictly increasing at " + i);
        }
        assertEquals(0f, map[127]);
        assertEquals(1f, map[255]);
        // exponent 0: linspace(0.1, 1, 2) → one mean 0.55, scaled by 1e-6
        assertEquals(0.55e-6f, map[128], 1e-12);
        assertEquals(-0.55e-6f, map[126], 1e-12);
        // exponent 6: 64 means of linspace(0.1, 1, 65); the last is (0.1 + 0.9 · 63/64 + 1) / 2
        assertEquals(0.99296875f, map[254], 1e-7);
        assertEquals(-0.99296875f, map[0], 1e-7);
    }

    @Test
    void dynamicSearchIsTheNearestEntry() {
        float[] map = Nf4Quantizer.dynamicMapEntries();
        SplittableRandom rnd = new SplittableRandom(2);
        for (int k = 0; k < 20000; k++) {
            double mag = Math.pow(10, -rnd.nextDouble() * 7);
            float x = (float) (rnd.nextBoolean() ? mag : -mag);
            int best = 0;
            for (int c = 1; c < 256; c++) {
                if (Math.abs(x - map[c]) < Math.abs(x - map[best])) {
                    best = c;
                }
            }
            int got = Nf4Quantizer.nearestDynamic(x);
            assertTrue(got == best || Math.abs(Math.abs(x - map[got]) - Math.abs(x - map[best])) < 1e-9,
                    "x = " + x + ": got entry " + got + ", nearest " + best);
        }
    }

    @Test
    void doubleQuantizationKeepsCodesAndBoundsTheError() {
        int rows = 300;
        int cols = 64; // 300 blocks of 64 → second-level blocks of 256 + 44
        SplittableRandom rnd = new SplittableRandom(3);
        float[] w = new float[rows * cols];
        for (int i = 0; i < w.length; i++) {
            w[i] = (float) (rnd.nextGaussian() * (0.01 + (i / 64 % 7) * 0.02));
        }
        Nf4Quantizer plain = new Nf4Quantizer(QuantSpec.nf4(false));
        Nf4Quantizer dq = new Nf4Quantizer(QuantSpec.nf4(true));
        Nf4Quantizer.Nf4Tensor a = plain.quantize(w, rows, cols);
        Nf4Quantizer.Nf4Tensor b = dq.quantize(w, rows, cols);
        assertArrayEquals(a.codes(), b.codes(), "NF4 codes use the exact absmax in both modes");
        Nf4Quantizer.DoubleQuant d = b.doubleQuant();
        assertEquals(2, d.absmax2().length);
        double mean = 0;
        for (float m : a.absmax()) {
            mean += m;
        }
        assertEquals(mean / a.absmax().length, d.offset(), 1e-7);
        float[] map = Nf4Quantizer.dynamicMapEntries();
        double halfGap = 0;
        for (int i = 1; i < 256; i++) {
            halfGap = Math.max(halfGap, (map[i] - map[i - 1]) / 2.0);
        }
        float[] decoded = Nf4Quantizer.blockAbsmax(b);
        for (int k = 0; k < decoded.length; k++) {
            double bound = halfGap * d.absmax2()[k / 256] * (1 + 1e-5) + Math.ulp(a.absmax()[k]) * 2;
            assertTrue(Math.abs(decoded[k] - a.absmax()[k]) <= bound, "absmax " + k + ": error "
                    + Math.abs(decoded[k] - a.absmax()[k]) + " > " + bound);
        }
        double nf4HalfGap = 0;
        for (int i = 1; i < 16; i++) {
            nf4HalfGap = Math.max(nf4HalfGap, (Nf4Quantizer.LEVELS[i] - Nf4Quantizer.LEVELS[i - 1]) / 2.0);
        }
        float[] y = dq.dequantize(b);
        for (int i = 0; i < w.length; i++) {
            int blk = i / 64;
            double bound = nf4HalfGap * a.absmax()[blk] + Math.abs(decoded[blk] - a.absmax()[blk]) + 1e-7;
            assertTrue(Math.abs(y[i] - w[i]) <= bound, "weight " + i + ": error " + Math.abs(y[i] - w[i]) + " > " + bound);
        }
    }
}
