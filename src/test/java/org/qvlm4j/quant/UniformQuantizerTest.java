package org.qvlm4j.quant;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.qvlm4j.quant.QuantSpec.Clip;
import org.qvlm4j.quant.QuantSpec.Granularity;

/** Properties of the uniform quantizer against hand-computed cases and metamorphic relations. */
class UniformQuantizerTest {
    /** Relative slack on the half-step bound for float rounding in x / Δ and (u − zp) · Δ. */
    static final double FLOAT_SLACK = 1e-5;
    static final int ROWS = 5;
    static final int COLS = 37;

    static Stream<QuantSpec> specs() {
        List<QuantSpec> out = new ArrayList<>();
        for (int bits = QuantSpec.MIN_BITS; bits <= QuantSpec.MAX_BITS; bits++) {
            for (boolean sym : new boolean[] {false, true}) {
                out.add(QuantSpec.weight(bits, sym, Granularity.PER_TENSOR, 0));
                out.add(QuantSpec.weight(bits, sym, Granularity.PER_CHANNEL, 0));
                out.add(QuantSpec.weight(bits, sym, Granularity.PER_GROUP, 16));
                out.add(QuantSpec.activation(bits, sym, Granularity.PER_CHANNEL, false));
                out.add(QuantSpec.activation(bits, sym, Granularity.PER_TOKEN, true));
            }
        }
        return out.stream();
    }

    static float[] data(long seed, int n, boolean withZeros) {
        SplittableRandom rnd = new SplittableRandom(seed);
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) (rnd.nextGaussian() * 2 + 0.7);
            if (withZeros && i % 7 == 3) {
                x[i] = 0f;
            }
        }
        return x;
    }

    /** Step Δ of the slot holding element (r, c). */
    static float step(QuantParams p, int r, int c, int cols) {
        return p.scale()[QuantParams.slot(p.spec(), r, c, cols)];
    }

    @ParameterizedTest
    @MethodSource("specs")
    void valuesInsideTheRangeAreWithinHalfAStepAndCodesStayInRange(QuantSpec spec) {
        float[] x = data(spec.hashCode(), ROWS * COLS, true);
        UniformQuantizer q = new UniformQuantizer(spec);
        QuantizedTensor qt = q.quantize(x, ROWS, COLS);
        float[] y = q.dequantize(qt);
        for (int r = 0; r < ROWS; r++) {
            for (int c = 0; c < COLS; c++) {
                int i = r * COLS + c;
                int code = qt.codes()[i];
                assertTrue(code >= spec.qmin() && code <= spec.qmax(), spec + " code " + code + " at " + i);
                double bound = step(qt.params(), r, c, COLS) * (0.5 + FLOAT_SLACK);
                assertTrue(Math.abs(y[i] - x[i]) <= bound, spec + " at " + i + ": |" + y[i] + " - " + x[i]
                        + "| > " + bound);
                if (x[i] == 0f) {
                    assertEquals(0f, y[i], spec + ": zero not exact at " + i);
                }
            }
        }
    }

    @ParameterizedTest
    @MethodSource("specs")
    void fakeQuantizeIsDequantizeOfQuantizeAndIdempotent(QuantSpec spec) {
        float[] x = data(spec.hashCode() + 1L, ROWS * COLS, false);
        UniformQuantizer q = new UniformQuantizer(spec);
        QuantParams p = q.params(x, ROWS, COLS);
        float[] once = x.clone();
        q.fakeQuantize(once, ROWS, COLS, p);
        assertArrayEquals(q.dequantize(q.quantize(x, ROWS, COLS, p)), once);
        float[] twice = once.clone();
        q.fakeQuantize(twice, ROWS, COLS, p);
        assertArrayEquals(once, twice, spec + ": dequantize(quantize(x)) is not a fixed point");
    }

    @Test
    void zeroIsExactEvenWhenAllDataArePositiveOrNegative() {
        for (boolean sym : new boolean[] {false, true}) {
            for (float sign : new float[] {1f, -1f}) {
                QuantSpec spec = QuantSpec.activation(4, sym, Granularity.PER_TENSOR, true);
                float[] x = {3f * sign, 5f * sign, 7.25f * sign, 0f};
                new UniformQuantizer(spec).fakeQuantize(x, 1, 4);
                assertEquals(0f, x[3], spec + " sign " + sign);
            }
        }
    }

    @Test
    void handComputedAsymmetricTwoBit() {
        // lo = -1, hi = 2: Δ = 3 / 3 = 1, zp = round(1) = 1
        QuantSpec spec = QuantSpec.weight(2, false, Granularity.PER_TENSOR, 0);
        UniformQuantizer q = new UniformQuantizer(spec);
        float[] x = {-1f, 0f, 0.4f, 2f, 1.6f};
        QuantizedTensor qt = q.quantize(x, 1, 5);
        assertEquals(1f, qt.params().scale()[0]);
        assertEquals(1, qt.params().zeroPoint()[0]);
        assertArrayEquals(new int[] {0, 1, 1, 3, 3}, qt.codes());
        assertArrayEquals(new float[] {-1f, 0f, 0f, 2f, 2f}, q.dequantize(qt));
    }

    @Test
    void roundingIsHalfToEven() {
        // symmetric 3 bit with absmax 3: Δ = 3 / 3 = 1, so x / Δ = x
        QuantSpec spec = QuantSpec.weight(3, true, Granularity.PER_TENSOR, 0);
        UniformQuantizer q = new UniformQuantizer(spec);
        float[] x = {3f, 0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, -3f};
        QuantizedTensor qt = q.quantize(x, 1, x.length);
        assertEquals(1f, qt.params().scale()[0]);
        assertArrayEquals(new int[] {3, 0, 2, 2, 0, -2, -2, -3}, qt.codes());
    }

    @Test
    void symmetricGridIsRestrictedToPlusMinusQmax() {
        QuantSpec spec = QuantSpec.weight(8, true, Granularity.PER_TENSOR, 0);
        assertEquals(127, spec.qmax());
        assertEquals(-127, spec.qmin());
        UniformQuantizer q = new UniformQuantizer(spec);
        QuantParams p = q.params(Ranges.of(-1f, 1f));
        float[] x = {-5f, -1f, 1f, 5f};
        QuantizedTensor qt = q.quantize(x, 1, 4, p);
        assertArrayEquals(new int[] {-127, -127, 127, 127}, qt.codes());
        float[] y = q.dequantize(qt);
        assertEquals(-y[3], y[0]);
    }

    @Test
    void clippedValuesAreWithinDistanceToBoundPlusHalfStep() {
        SplittableRandom rnd = new SplittableRandom(11);
        for (boolean sym : new boolean[] {false, true}) {
            for (int bits : new int[] {2, 4, 8}) {
                QuantSpec spec = QuantSpec.activation(bits, sym, Granularity.PER_TOKEN, true).withClip(Clip.ratio(0.6));
                UniformQuantizer q = new UniformQuantizer(spec);
                float[] x = data(rnd.nextLong(), ROWS * COLS, false);
                Ranges raw = new UniformQuantizer(QuantSpec.activation(bits, sym, Granularity.PER_TOKEN, true))
                        .ranges(x, ROWS, COLS);
                QuantParams p = q.params(x, ROWS, COLS);
                float[] y = x.clone();
                q.fakeQuantize(y, ROWS, COLS, p);
                for (int r = 0; r < ROWS; r++) {
                    double lo = Math.min(0, raw.lo()[r] * 0.6);
                    double hi = Math.max(0, raw.hi()[r] * 0.6);
                    if (sym) {
                        hi = Math.max(-lo, hi);
                        lo = -hi;
                    }
                    double delta = p.scale()[r];
                    for (int c = 0; c < COLS; c++) {
                        int i = r * COLS + c;
                        double outside = Math.max(0, Math.max(lo - x[i], x[i] - hi));
                        double bound = outside + delta * (0.5 + FLOAT_SLACK) + Math.ulp(x[i]);
                        assertTrue(Math.abs(y[i] - x[i]) <= bound, spec + " row " + r + " col " + c + ": error "
                                + Math.abs(y[i] - x[i]) + " > " + bound);
                    }
                }
            }
        }
    }

    @Test
    void perGroupWithPartialLastGroupEqualsPerTensorOnEachGroup() {
        int g = 16; // 37 = 16 + 16 + 5
        for (boolean sym : new boolean[] {false, true}) {
            QuantSpec spec = QuantSpec.weight(4, sym, Granularity.PER_GROUP, g);
            QuantSpec whole = QuantSpec.weight(4, sym, Granularity.PER_TENSOR, 0);
            float[] x = data(5, ROWS * COLS, false);
            float[] y = x.clone();
            new UniformQuantizer(spec).fakeQuantize(y, ROWS, COLS);
            assertEquals(ROWS * 3, new UniformQuantizer(spec).params(x, ROWS, COLS).size());
            for (int r = 0; r < ROWS; r++) {
                for (int c0 = 0; c0 < COLS; c0 += g) {
                    int n = Math.min(g, COLS - c0);
                    float[] seg = new float[n];
                    System.arraycopy(x, r * COLS + c0, seg, 0, n);
                    new UniformQuantizer(whole).fakeQuantize(seg, 1, n);
                    for (int j = 0; j < n; j++) {
                        assertEquals(seg[j], y[r * COLS + c0 + j], spec + " row " + r + " col " + (c0 + j));
                    }
                }
            }
        }
    }

    @Test
    void perChannelAndPerTokenEqualPerTensorRowByRowOrColumnByColumn() {
        for (boolean sym : new boolean[] {false, true}) {
            float[] x = data(sym ? 21 : 22, ROWS * COLS, false);
            QuantSpec whole = QuantSpec.weight(5, sym, Granularity.PER_TENSOR, 0);
            float[] rowsWeight = x.clone();
            new UniformQuantizer(QuantSpec.weight(5, sym, Granularity.PER_CHANNEL, 0)).fakeQuantize(rowsWeight, ROWS, COLS);
            float[] rowsToken = x.clone();
            new UniformQuantizer(QuantSpec.activation(5, sym, Granularity.PER_TOKEN, true))
                    .fakeQuantize(rowsToken, ROWS, COLS);
            for (int r = 0; r < ROWS; r++) {
                float[] row = new float[COLS];
                System.arraycopy(x, r * COLS, row, 0, COLS);
                new UniformQuantizer(whole).fakeQuantize(row, 1, COLS);
                for (int c = 0; c < COLS; c++) {
                    assertEquals(row[c], rowsWeight[r * COLS + c], "weight per-channel row " + r);
                    assertEquals(row[c], rowsToken[r * COLS + c], "activation per-token row " + r);
                }
            }
            QuantSpec act = QuantSpec.activation(5, sym, Granularity.PER_CHANNEL, false);
            UniformQuantizer colQ = new UniformQuantizer(act);
            float[] cols = x.clone();
            colQ.fakeQuantize(cols, ROWS, COLS, colQ.params(colQ.ranges(x, ROWS, COLS)));
            for (int c = 0; c < COLS; c++) {
                float[] col = new float[ROWS];
                for (int r = 0; r < ROWS; r++) {
                    col[r] = x[r * COLS + c];
                }
                new UniformQuantizer(whole).fakeQuantize(col, 1, ROWS);
                for (int r = 0; r < ROWS; r++) {
                    assertEquals(col[r], cols[r * COLS + c], "activation per-channel column " + c);
                }
            }
        }
    }

    @Test
    void percentileRangesFollowLinearInterpolation() {
        float[] x = new float[100];
        for (int i = 0; i < 100; i++) {
            x[(i * 37) % 100] = i; // a permutation of 0..99
        }
        QuantSpec spec = QuantSpec.activation(8, false, Granularity.PER_TENSOR, true).withClip(Clip.percentile(0.99));
        Ranges r = new UniformQuantizer(spec).ranges(x, 1, 100);
        // quantile q of 0..99 is 99 q: 0.99 → 98.01, 0.01 → 0.99
        assertEquals(0.99f, r.lo()[0], 1e-4);
        assertEquals(98.01f, r.hi()[0], 1e-4);
    }

    @Test
    void staticRangesGiveTheSameParamsAsTheDataTheyCameFrom() {
        QuantSpec spec = QuantSpec.activation(6, false, Granularity.PER_CHANNEL, false);
        UniformQuantizer q = new UniformQuantizer(spec);
        float[] x = data(3, ROWS * COLS, false);
        assertEquals(q.params(x, ROWS, COLS), q.params(q.ranges(x, ROWS, COLS)));
        QuantSpec clipped = spec.withClip(Clip.ratio(0.5));
        UniformQuantizer qc = new UniformQuantizer(clipped);
        assertEquals(qc.params(x, ROWS, COLS), qc.params(q.ranges(x, ROWS, COLS)),
                "a clip ratio scales static ranges as it scales data ranges");
    }

    @Test
    void constantTensorDoesNotDivideByZero() {
        for (boolean sym : new boolean[] {false, true}) {
            float[] x = new float[8];
            new UniformQuantizer(QuantSpec.weight(4, sym, Granularity.PER_TENSOR, 0)).fakeQuantize(x, 2, 4);
            assertArrayEquals(new float[8], x);
        }
    }

    @Test
    void mismatchedParamsAreRejectedWithCounts() {
        QuantSpec spec = QuantSpec.activation(8, false, Granularity.PER_TOKEN, false);
        UniformQuantizer q = new UniformQuantizer(spec);
        QuantParams p = q.params(new Ranges(new float[3], new float[3]));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> q.fakeQuantize(new float[8], 4, 2, p));
        assertTrue(e.getMessage().contains("3 slots") && e.getMessage().contains("needs 4"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> q.fakeQuantize(new float[7], 4, 2, p));
    }
}
