package org.qvlm4j.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.Test;
import org.qvlm4j.kernels.PackedMatrix;
import org.qvlm4j.kernels.QuantFormat;
import org.qvlm4j.kernels.QuantizedActivations;
import org.qvlm4j.kernels.WeightMatrix;
import org.qvlm4j.quant.QuantSpec;
import org.qvlm4j.quant.Ranges;
import org.qvlm4j.quant.UniformQuantizer;

/**
 * The runtime input quantizer against the quantization library's {@link UniformQuantizer} (bit for
 * bit, every granularity, static and dynamic, clip ratios, 2 to 8 bits), its integer codes against
 * its own fake image, the cases the integer path rules out, and a {@link Linear} with input scale,
 * quantizer and low-rank term against a float64 reference written out here.
 */
class InputQuantizerTest {
    static final int T = 5;
    static final int K = 64;
    static final long SEED = 11;
    /** A float32 product of K = 64 terms against float64: a few ulps of the largest output, relative to it. */
    static final double LINEAR_REL_TOL = 1e-6;

    /** Inputs (T, k): gaussian with a few outliers, as activations have. */
    static float[] inputs(int t, int k, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        float[] x = new float[t * k];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) (r.nextGaussian() * (i % 13 == 0 ? 6 : 1));
        }
        return x;
    }

    /** The runtime form of a library spec, field by field. */
    static InputQuantizer.Spec runtime(QuantSpec a) {
        return new InputQuantizer.Spec(a.bits(), a.symmetric(), InputQuantizer.Granularity.valueOf(a.granularity().name()),
                a.groupSize(), a.dynamic(), a.clip().kind() == QuantSpec.ClipKind.RATIO ? a.clip().value() : 1.0);
    }

    /** Seeded static ranges (1 or k slots) around the data's scale, some not containing 0. */
    static Ranges ranges(int slots, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        float[] lo = new float[slots];
        float[] hi = new float[slots];
        for (int i = 0; i < slots; i++) {
            float a = (float) (r.nextDouble() * 4 - 3);
            lo[i] = a;
            hi[i] = a + (float) (r.nextDouble() * 5 + 0.01);
        }
        return new Ranges(lo, hi);
    }

    @ParameterizedTest
    @ValueSource(strings = {"a8-asym-token-dynamic", "a4-sym-token-dynamic", "a6-asym-tensor-dynamic",
        "a8-sym-channel-dynamic", "a3-asym-g24-dynamic", "a8-asym-token-dynamic-clip0.8", "a2-sym-g32-dynamic",
        "a8-asym-tensor-static", "a4-sym-tensor-static-clip0.9", "a4-asym-channel-static", "a7-sym-channel-static",
        "a4-asym-token-static", "a8-sym-token-static-clip0.9"})
    void fakeQuantizationEqualsTheLibraryQuantizerBitForBit(String text) {
        QuantSpec spec = QuantSpec.parse(text);
        int k = spec.granularity() == QuantSpec.Granularity.PER_GROUP ? 70 : K; // 70: a partial last group
        float[] x = inputs(T, k, SEED);
        float[] want = x.clone();
        UniformQuantizer uq = new UniformQuantizer(spec);
        InputQuantizer q;
        if (spec.dynamic()) {
            uq.fakeQuantize(want, T, k);
            q = InputQuantizer.dynamic(runtime(spec), InputQuantizer.Execution.FAKE, k);
        } else {
            Ranges r = ranges(switch (spec.granularity()) {
                case PER_TENSOR -> 1;
                case PER_TOKEN -> T; // one range per token position
                default -> k;
            }, SEED + 1);
            uq.fakeQuantize(want, T, k, uq.params(r));
            q = InputQuantizer.fromRanges(runtime(spec), InputQuantizer.Execution.FAKE, k, r.lo(), r.hi());
            assertArrayEquals(uq.params(r).scale(), q.staticScales());
            assertArrayEquals(uq.params(r).zeroPoint(), q.staticZeroPoints());
        }
        float[] got = x.clone();
        q.fakeQuantize(got, T, k);
        for (int i = 0; i < want.length; i++) {
            assertEquals(Float.floatToIntBits(want[i]), Float.floatToIntBits(got[i]), text + " element " + i);
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"a8-sym-token-dynamic", "a4-sym-token-dynamic", "a8-sym-tensor-static",
        "a4-sym-tensor-dynamic-clip0.7", "a8-sym-g32-dynamic", "a4-sym-token-static"})
    void integerCodesTimesScalesAreTheFakeImage(String text) {
        QuantSpec spec = QuantSpec.parse(text);
        float[] x = inputs(T, K, SEED + 2);
        Ranges r = spec.granularity() == QuantSpec.Granularity.PER_TOKEN ? ranges(T, SEED + 3) : Ranges.of(-2.5f, 3f);
        InputQuantizer q = spec.dynamic() ? InputQuantizer.dynamic(runtime(spec), InputQuantizer.Execution.INTEGER, K)
                : InputQuantizer.fromRanges(runtime(spec), InputQuantizer.Execution.INTEGER, K, r.lo(), r.hi());
        float[] fake = x.clone();
        q.fakeQuantize(fake, T, K);
        float[] deq = new float[T * K];
        QuantizedActivations codes = q.quantizeInt(x, T, K, deq);
        assertEquals(spec.bits(), codes.bits());
        assertEquals(spec.granularity() == QuantSpec.Granularity.PER_GROUP ? spec.groupSize() : K, codes.groupSize());
        for (int t = 0; t < T; t++) {
            for (int k = 0; k < K; k++) {
                assertEquals(Float.floatToIntBits(fake[t * K + k]), Float.floatToIntBits(codes.dequantize(t, k)),
                        text + " (" + t + ", " + k + ")");
                assertEquals(Float.floatToIntBits(fake[t * K + k]), Float.floatToIntBits(deq[t * K + k]));
            }
        }
    }

    @Test
    void integerPathNeedsSymmetric8Or4BitInputsPerTokenTensorOrGroupAndPackedUniformWeights() {
        InputQuantizer.Spec ok = runtime(QuantSpec.parse("a8-sym-token-dynamic"));
        assertNull(InputQuantizer.integerUnsupported(ok, QuantFormat.INT4, K, K));
        assertNull(InputQuantizer.integerUnsupported(ok, QuantFormat.INT6, 32, K));
        List<String> reasons = new ArrayList<>();
        reasons.add(InputQuantizer.integerUnsupported(ok, null, K, K));
        reasons.add(InputQuantizer.integerUnsupported(ok, QuantFormat.NF4, K, K));
        reasons.add(InputQuantizer.integerUnsupported(runtime(QuantSpec.parse("a8-asym-token-dynamic")),
                QuantFormat.INT8, K, K));
        reasons.add(InputQuantizer.integerUnsupported(runtime(QuantSpec.parse("a6-sym-token-dynamic")),
                QuantFormat.INT8, K, K));
        reasons.add(InputQuantizer.integerUnsupported(runtime(QuantSpec.parse("a8-sym-channel-static")),
                QuantFormat.INT8, K, K));
        reasons.add(InputQuantizer.integerUnsupported(runtime(QuantSpec.parse("a8-sym-g24-dynamic")),
                QuantFormat.INT8, K, K));
        reasons.add(InputQuantizer.integerUnsupported(runtime(QuantSpec.parse("a8-sym-g64-dynamic")),
                QuantFormat.INT8, 96, 192));
        List<String> expected = List.of("not packed", "not NF4", "asymmetric", "6-bit", "per-channel",
                "does not tile", "do not divide");
        for (int i = 0; i < expected.size(); i++) {
            assertTrue(reasons.get(i) != null && reasons.get(i).contains(expected.get(i)), i + ": " + reasons.get(i));
        }
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> new InputQuantizer.Spec(8, true, InputQuantizer.Granularity.PER_GROUP, 32, false, 1));
        assertTrue(e.getMessage().contains("static ranges need PER_TENSOR, PER_CHANNEL or PER_TOKEN (per position), "
                + "got PER_GROUP"), e.getMessage());
        // static per-position ranges take exactly as many tokens as they have positions
        Ranges r = ranges(T, SEED);
        InputQuantizer positions = InputQuantizer.fromRanges(runtime(QuantSpec.parse("a8-sym-token-static")),
                InputQuantizer.Execution.INTEGER, K, r.lo(), r.hi());
        e = assertThrows(IllegalArgumentException.class, () -> positions.fakeQuantize(new float[(T + 1) * K], T + 1, K));
        assertTrue(e.getMessage().contains("of " + T + " positions: input has " + (T + 1) + " tokens"), e.getMessage());
    }

    /** y (T, N) = quantize(x / s) (W + U V)^T + b in float64, the quantizer taken from the library. */
    static double[] reference(float[] x, float[] s, QuantSpec spec, float[] w, float[] u, float[] v, int r, float[] b,
                              int n) {
        float[] xs = new float[T * K];
        for (int t = 0; t < T; t++) {
            for (int k = 0; k < K; k++) {
                xs[t * K + k] = x[t * K + k] / s[k];
            }
        }
        new UniformQuantizer(spec).fakeQuantize(xs, T, K);
        double[] y = new double[T * n];
        for (int t = 0; t < T; t++) {
            for (int o = 0; o < n; o++) {
                double acc = b[o];
                for (int k = 0; k < K; k++) {
                    double wk = w[o * K + k];
                    for (int j = 0; j < r; j++) {
                        wk += (double) u[o * r + j] * v[j * K + k];
                    }
                    acc += xs[t * K + k] * wk;
                }
                y[t * n + o] = acc;
            }
        }
        return y;
    }

    static double maxAbs(double[] a) {
        double m = 0;
        for (double v : a) {
            m = Math.max(m, Math.abs(v));
        }
        return m;
    }

    @Test
    void linearDividesByTheInputScaleQuantizesAndAddsTheLowRankTerm() {
        int n = 7;
        int r = 2;
        float[] x = inputs(T, K, SEED + 3);
        float[] w = PackedMatrix.quantize(inputs(n, K, SEED + 4), n, K, QuantFormat.INT8, 32, true).dequantize();
        PackedMatrix packed = PackedMatrix.quantize(w, n, K, QuantFormat.INT8, 32, true);
        float[] u = inputs(n, r, SEED + 5);
        float[] v = inputs(r, K, SEED + 6);
        float[] b = inputs(1, n, SEED + 7);
        float[] s = new float[K];
        for (int k = 0; k < K; k++) {
            s[k] = 0.25f + k / 16f;
        }
        QuantSpec spec = QuantSpec.parse("a8-sym-token-dynamic");
        double[] want = reference(x, s, spec, packed.dequantize(), u, v, r, b, n);
        List<float[]> seen = new ArrayList<>();
        for (InputQuantizer.Execution exec : InputQuantizer.Execution.values()) {
            Linear l = new Linear("llm.layers.0.mlp.down_proj", packed, b);
            l.setInputScale(s);
            l.setInputQuantizer(InputQuantizer.dynamic(runtime(spec), exec, K));
            l.setLowRank(WeightMatrix.ofFloats(u, n, r), WeightMatrix.ofFloats(v, r, K));
            assertEquals(exec == InputQuantizer.Execution.INTEGER, l.integerInputs());
            float[] y = new float[T * n];
            l.forward(x, T, y, (site, data, rows, cols) -> {
                if (site.endsWith(".in")) {
                    seen.add(java.util.Arrays.copyOf(data, rows * cols));
                }
            });
            TestArrays.assertClose(want, y, LINEAR_REL_TOL * maxAbs(want), exec.name());
        }
        // the tap sees the input as it arrives, before the scale and the quantizer
        assertArrayEquals(x, seen.get(0));
        // a floating-point replacement weight drops the low-rank term and falls back to fake quantization
        Linear l = new Linear("llm.layers.0.mlp.down_proj", packed, b);
        l.setInputQuantizer(InputQuantizer.dynamic(runtime(spec), InputQuantizer.Execution.INTEGER, K));
        l.setLowRank(WeightMatrix.ofFloats(u, n, r), WeightMatrix.ofFloats(v, r, K));
        l.replaceWeight(WeightMatrix.ofFloats(w, n, K));
        assertEquals(0, l.lowRank());
        assertFalse(l.integerInputs());
        float[] y = new float[T * n];
        l.forward(x, T, y, null);
        float[] ones = new float[K];
        java.util.Arrays.fill(ones, 1f);
        double[] fp = reference(x, ones, spec, w, u, v, 0, b, n);
        TestArrays.assertClose(fp, y, LINEAR_REL_TOL * maxAbs(fp), "fp weight");
    }

    /**
     * Evaluation workers share one model: a linear that copies its input before quantizing it must
     * give every thread the result it gives alone (a shared copy buffer once let one thread's
     * input overwrite another's mid-product, and shared low-rank buffers ZeroQuant-V2's term).
     */
    @ParameterizedTest
    @ValueSource(ints = {0, 4})
    void concurrentForwardsOfOneLinearEqualSequentialOnes(int rank) throws Exception {
        int n = 64;
        int k = 256;
        int rows = 3;
        int threads = 4;
        int rounds = 200;
        float[] w = inputs(n, k, SEED + 11);
        PackedMatrix packed = PackedMatrix.quantize(w, n, k, QuantFormat.INT8, 32, true);
        Linear l = new Linear("llm.layers.0.mlp.down_proj", packed, null);
        l.setInputQuantizer(InputQuantizer.dynamic(runtime(QuantSpec.parse("a8-asym-token-dynamic")),
                InputQuantizer.Execution.FAKE, k));
        if (rank > 0) {
            l.setLowRank(WeightMatrix.ofFloats(inputs(n, rank, SEED + 12), n, rank),
                    WeightMatrix.ofFloats(inputs(rank, k, SEED + 13), rank, k));
        }
        float[][] xs = new float[threads][];
        float[][] alone = new float[threads][];
        for (int t = 0; t < threads; t++) {
            xs[t] = inputs(rows, k, SEED + 20 + t);
            alone[t] = new float[rows * n];
            l.forward(xs[t], rows, alone[t], null);
        }
        java.util.concurrent.ExecutorService pool = java.util.concurrent.Executors.newFixedThreadPool(threads);
        try {
            List<java.util.concurrent.Future<Integer>> mismatches = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                int id = t;
                mismatches.add(pool.submit(() -> {
                    int bad = 0;
                    float[] y = new float[rows * n];
                    for (int r = 0; r < rounds; r++) {
                        l.forward(xs[id], rows, y, null);
                        bad += java.util.Arrays.equals(y, alone[id]) ? 0 : 1;
                    }
                    return bad;
                }));
            }
            for (java.util.concurrent.Future<Integer> f : mismatches) {
                assertEquals(0, f.get());
            }
        } finally {
            pool.shutdownNow();
        }
    }
}
