package org.qvlm4j.quant.qvlm;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import java.util.function.ToDoubleFunction;
import org.junit.jupiter.api.Test;
import org.qvlm4j.quant.QuantParams;
import org.qvlm4j.quant.QuantSpec;
import org.qvlm4j.quant.Ranges;
import org.qvlm4j.quant.UniformQuantizer;
import org.qvlm4j.tensor.Tape;
import org.qvlm4j.tensor.Tensor;

/**
 * The VEO ops against independent references: the soft conditional entropy against a plain
 * double-precision twin over all levels and its gradient against central finite differences; the
 * bound gradients against a hand-computed case and against finite differences of a scalar twin of
 * the straight-through estimator (the rounding residuals frozen at the base point, which is what a
 * straight-through gradient differentiates); the relative error's gradient against finite
 * differences.
 */
class VeoOpsTest {
    /** Central finite-difference step on inputs of order 1. */
    private static final double FD_STEP = 1e-4;
    /** Allowed gradient error relative to the largest analytic component (float32 accumulation). */
    private static final double GRAD_REL_TOL = 2e-3;
    /** Float32 rounding of a double-accumulated scalar. */
    private static final double FLOAT_TOL = 1e-6;

    // ---------------------------------------------------------------- soft conditional entropy

    /** H(B | A) summed plainly over every level pair, in double: the twin of the op. */
    private static double entropyTwin(float[] a, float[] b, VeoOps.Grid ga, VeoOps.Grid gb) {
        int ma = ga.levels();
        int mb = gb.levels();
        double[] joint = new double[ma * mb];
        for (int e = 0; e < a.length; e++) {
            double[] pa = softmax(a[e], ga);
            double[] pb = softmax(b[e], gb);
            for (int m = 0; m < ma; m++) {
                for (int n = 0; n < mb; n++) {
                    joint[m * mb + n] += pa[m] * pb[n] / a.length;
                }
            }
        }
        double h = 0;
        for (int m = 0; m < ma; m++) {
            double pm = 0;
            for (int n = 0; n < mb; n++) {
                pm += joint[m * mb + n];
            }
            for (int n = 0; n < mb; n++) {
                double p = joint[m * mb + n];
                if (p > 0) {
                    h -= p * Math.log(p / pm);
                }
            }
        }
        return h;
    }

    private static double[] softmax(double x, VeoOps.Grid g) {
        double[] l = new double[g.levels()];
        double max = Double.NEGATIVE_INFINITY;
        for (int m = 0; m < l.length; m++) {
            double d = x - (g.lo() + m * g.step());
            l[m] = -d * d / g.step();
            max = Math.max(max, l[m]);
        }
        double s = 0;
        for (int m = 0; m < l.length; m++) {
            l[m] = Math.exp(l[m] - max);
            s += l[m];
        }
        for (int m = 0; m < l.length; m++) {
            l[m] /= s;
        }
        return l;
    }

    private static float[] randn(SplittableRandom rng, int n, double std, double mean) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) (mean + std * rng.nextGaussian());
        }
        return v;
    }

    @Test
    void softConditionalEntropyMatchesAPlainTwinAndItsGradientMatchesFiniteDifferences() {
        SplittableRandom rng = new SplittableRandom(3);
        for (int bits : new int[] {2, 3, 5}) {
            float[] a = randn(rng, 24, 1.0, 0.0);
            float[] b = new float[a.length];
            for (int i = 0; i < b.length; i++) {
                b[i] = (float) (0.8 * a[i] + 0.6 * rng.nextGaussian() + 0.3);
            }
            // grids narrower than the data, so some values also fall outside them
            VeoOps.Grid ga = VeoOps.Grid.spanning(-1.5, 1.5, bits);
            VeoOps.Grid gb = VeoOps.Grid.spanning(-1.0, 2.0, bits);
            Tensor ta = Tensor.variable(a, 4, 6);
            Tensor tb = Tensor.variable(b, 4, 6);
            Tape tape = new Tape();
            Tensor h = VeoOps.softConditionalEntropy(tape, ta, tb, ga, gb);
            assertEquals(entropyTwin(a, b, ga, gb), h.item(), FLOAT_TOL, "H at " + bits + " bits");
            assertTrue(h.item() > 0 && h.item() < Math.log(1 << bits), "0 < H < log M at " + bits + " bits");
            tape.backward(h);
            checkGradient("dH/da, " + bits + " bits", ta.grad(), a, v -> entropyTwin(v, b, ga, gb));
            checkGradient("dH/db, " + bits + " bits", tb.grad(), b, v -> entropyTwin(a, v, ga, gb));
        }
    }

    @Test
    void aValueThatDeterminesTheNextHasLowerConditionalEntropyThanNoise() {
        // values of spread 10 on 16 levels: Δ = 4, so neighbouring levels differ by e^-4 in the soft
        // assignment (the paper's temperature is Δ itself, so at spread 1 the assignment is far softer)
        SplittableRandom rng = new SplittableRandom(4);
        float[] a = randn(rng, 400, 10.0, 0.0);
        float[] copy = a.clone();
        float[] noise = randn(rng, 400, 10.0, 0.0);
        VeoOps.Grid g = VeoOps.Grid.spanning(-30, 30, 4);
        Tape off = Tape.disabled();
        double determined = VeoOps.softConditionalEntropy(off, Tensor.of(a, 400), Tensor.of(copy, 400), g, g).item();
        double independent = VeoOps.softConditionalEntropy(off, Tensor.of(a, 400), Tensor.of(noise, 400), g, g).item();
        assertTrue(determined < 0.5 * independent, "H(A|A) " + determined + " vs H(N|A) " + independent);
    }

    // ---------------------------------------------------------------- fake quantization with bounds

    @Test
    void boundGradientsOfAHandComputedCase() {
        // a2-asym-tensor: qmax = 3. lo = -0.7, hi = 2.3: Δ = 1, z̃ = 0.7, zp = 1.
        QuantSpec spec = QuantSpec.parse("a2-asym-tensor-static");
        float[] x = {0.3f, 1.6f, 5f, -4f};
        // x = 0.3: v = 0 + 1 = 1 inside, ∂x̂/∂Δ = (1 - 1) - 0.3 = -0.3
        // x = 1.6: v = 2 + 1 = 3 inside, ∂x̂/∂Δ = (3 - 1) - 1.6 = 0.4
        // x = 5:   v = 6 clipped to 3,   ∂x̂/∂Δ = (3 - 1) + 0.7 = 2.7, ∂x̂/∂a = 1
        // x = -4:  v = -3 clipped to 0,  ∂x̂/∂Δ = (0 - 1) + 0.7 = -0.3, ∂x̂/∂a = 1
        double sumDelta = -0.3 + 0.4 + 2.7 - 0.3;
        double expectHi = sumDelta / 3;
        double expectLo = -sumDelta / 3 + 2;
        Tensor tx = Tensor.variable(x.clone(), 1, 4);
        Tensor lo = Tensor.variable(new float[] {-0.7f}, 1);
        Tensor hi = Tensor.variable(new float[] {2.3f}, 1);
        Tape tape = new Tape();
        Tensor y = VeoOps.fakeQuantize(tape, tx, lo, hi, spec);
        assertArrayEquals(new float[] {0f, 2f, 2f, -1f}, y.data(), 1e-6f, "x̂ = (u - 1) Δ");
        tape.backward(y, new float[] {1f, 1f, 1f, 1f});
        assertEquals(expectHi, hi.grad()[0], FLOAT_TOL, "dL/dhi");
        assertEquals(expectLo, lo.grad()[0], FLOAT_TOL, "dL/dlo");
        assertArrayEquals(new float[] {1f, 1f, 0f, 0f}, tx.grad(), "straight-through inside, 0 when clipped");
    }

    @Test
    void aPositiveLowerBoundIsWidenedToZeroAndGetsNoGradient() {
        QuantSpec spec = QuantSpec.parse("a4-asym-tensor-static");
        Tensor lo = Tensor.variable(new float[] {0.5f}, 1);
        Tensor hi = Tensor.variable(new float[] {3f}, 1);
        Tensor x = Tensor.of(new float[] {-1f, 0.2f, 2.9f, 4f}, 1, 4);
        Tape tape = new Tape();
        Tensor y = VeoOps.fakeQuantize(tape, x, lo, hi, spec);
        tape.backward(y, new float[] {1f, 1f, 1f, 1f});
        assertEquals(0f, lo.grad()[0], "lo > 0 is widened to 0, a constant");
        assertTrue(hi.grad()[0] != 0f, "hi moves");
    }

    /**
     * The straight-through estimator as a smooth function of (lo, hi): the rounding residuals of
     * x/Δ and of the zero point and the inside/clipped decision of every element are frozen at the
     * base point, everything else is recomputed in double.
     */
    private record SteTwin(QuantSpec spec, float[] x, int rows, int cols, double[] rx, double[] rz, byte[] clip) {
        static SteTwin at(QuantSpec spec, float[] x, int rows, int cols, float[] lo, float[] hi) {
            int slots = lo.length;
            double[] rz = new double[slots];
            double[] rx = new double[x.length];
            byte[] clip = new byte[x.length];
            for (int s = 0; s < slots; s++) {
                double[] dz = deltaZ(spec, lo[s], hi[s]);
                rz[s] = Math.rint(dz[1]) - dz[1];
            }
            for (int r = 0; r < rows; r++) {
                for (int c = 0; c < cols; c++) {
                    int i = r * cols + c;
                    int s = QuantParams.slot(spec, r, c, cols);
                    double[] dz = deltaZ(spec, lo[s], hi[s]);
                    double u = x[i] / dz[0];
                    rx[i] = Math.rint(u) - u;
                    double v = Math.rint(u) + Math.rint(dz[1]);
                    clip[i] = (byte) (v < spec.qmin() ? -1 : v > spec.qmax() ? 1 : 0);
                }
            }
            return new SteTwin(spec, x, rows, cols, rx, rz, clip);
        }

        /** {Δ, z̃} of the widened range, in double. */
        static double[] deltaZ(QuantSpec spec, double lo, double hi) {
            double a = Math.min(lo, 0);
            double b = Math.max(hi, 0);
            if (spec.symmetric()) {
                return new double[] {Math.max(-a, b) / spec.qmax(), 0};
            }
            double delta = (b - a) / spec.qmax();
            return new double[] {delta, -a / delta};
        }

        /** Σ_i w_i x̂_i with the frozen residuals. */
        double probe(double[] lo, double[] hi, float[] w) {
            double sum = 0;
            for (int r = 0; r < rows; r++) {
                for (int c = 0; c < cols; c++) {
                    int i = r * cols + c;
                    int s = QuantParams.slot(spec, r, c, cols);
                    double[] dz = deltaZ(spec, lo[s], hi[s]);
                    double zp = dz[1] + rz[s];
                    double y;
                    if (clip[i] == 0) {
                        y = (x[i] / dz[0] + rx[i]) * dz[0];
                    } else {
                        double u = clip[i] < 0 ? spec.qmin() : spec.qmax();
                        y = (u - zp) * dz[0];
                    }
                    sum += w[i] * y;
                }
            }
            return sum;
        }
    }

    @Test
    void boundGradientsMatchFiniteDifferencesOfTheFrozenResidualTwin() {
        SplittableRandom rng = new SplittableRandom(9);
        int rows = 5;
        int cols = 7;
        for (String text : new String[] {"a4-asym-token-static", "a3-asym-channel-static", "a4-sym-token-static",
                "a3-sym-channel-static", "a4-asym-tensor-static"}) {
            QuantSpec spec = QuantSpec.parse(text);
            float[] x = randn(rng, rows * cols, 1.5, 0.2);
            int slots = QuantParams.slots(spec, rows, cols);
            float[] lo = new float[slots];
            float[] hi = new float[slots];
            for (int s = 0; s < slots; s++) {
                // bounds inside the data's spread, so that every slot has clipped and unclipped values
                lo[s] = (float) (-1.0 - 0.5 * rng.nextDouble());
                hi[s] = (float) (1.0 + 0.5 * rng.nextDouble());
            }
            float[] w = randn(rng, rows * cols, 1.0, 0.0);
            Tensor tlo = Tensor.variable(lo.clone(), slots);
            Tensor thi = Tensor.variable(hi.clone(), slots);
            Tape tape = new Tape();
            Tensor y = VeoOps.fakeQuantize(tape, Tensor.of(x, rows, cols), tlo, thi, spec);
            assertArrayEquals(runtime(spec, x, rows, cols, lo, hi), y.data(), text + ": forward is the runtime quantizer");
            tape.backward(y, w);
            SteTwin twin = SteTwin.at(spec, x, rows, cols, lo, hi);
            double[] dlo = toDouble(lo);
            double[] dhi = toDouble(hi);
            checkGradient(text + " dL/dlo", tlo.grad(), lo, v -> twin.probe(toDouble(v), dhi, w));
            checkGradient(text + " dL/dhi", thi.grad(), hi, v -> twin.probe(dlo, toDouble(v), w));
        }
    }

    @Test
    void aClipRatioScalesTheBoundsAndTheirGradients() {
        QuantSpec plain = QuantSpec.parse("a4-asym-token-static");
        QuantSpec clipped = QuantSpec.parse("a4-asym-token-static-clip0.8");
        SplittableRandom rng = new SplittableRandom(2);
        float[] x = randn(rng, 12, 1.5, 0);
        float[] lo = {-1.25f, -2.5f, -1.5f};
        float[] hi = {1.25f, 2.5f, 1.75f};
        float[] scaledLo = new float[3];
        float[] scaledHi = new float[3];
        for (int i = 0; i < 3; i++) {
            scaledLo[i] = (float) (lo[i] * 0.8);
            scaledHi[i] = (float) (hi[i] * 0.8);
        }
        float[] w = randn(rng, 12, 1, 0);
        Tensor a = Tensor.variable(lo.clone(), 3);
        Tensor b = Tensor.variable(hi.clone(), 3);
        Tensor c = Tensor.variable(scaledLo, 3);
        Tensor d = Tensor.variable(scaledHi, 3);
        Tape t1 = new Tape();
        Tensor y1 = VeoOps.fakeQuantize(t1, Tensor.of(x, 3, 4), a, b, clipped);
        Tape t2 = new Tape();
        Tensor y2 = VeoOps.fakeQuantize(t2, Tensor.of(x, 3, 4), c, d, plain);
        assertArrayEquals(y2.data(), y1.data(), "ratio 0.8 on (lo, hi) = no ratio on (0.8 lo, 0.8 hi)");
        t1.backward(y1, w);
        t2.backward(y2, w);
        for (int i = 0; i < 3; i++) {
            assertEquals(0.8 * c.grad()[i], a.grad()[i], FLOAT_TOL, "chain rule through the ratio, lo " + i);
            assertEquals(0.8 * d.grad()[i], b.grad()[i], FLOAT_TOL, "chain rule through the ratio, hi " + i);
        }
    }

    @Test
    void fixedParametersPassTheGradientStraightThroughWhereNotClipped() {
        QuantSpec spec = QuantSpec.parse("a4-asym-channel-static");
        UniformQuantizer q = new UniformQuantizer(spec);
        QuantParams p = q.params(new Ranges(new float[] {-1f, -2f}, new float[] {1f, 2f}));
        Tensor x = Tensor.variable(new float[] {0.5f, 3f, -1.5f, -1.9f}, 2, 2);
        Tape tape = new Tape();
        Tensor y = VeoOps.fakeQuantize(tape, x, q, p);
        float[] expected = x.data().clone();
        q.fakeQuantize(expected, 2, 2, p);
        assertArrayEquals(expected, y.data());
        tape.backward(y, new float[] {1f, 2f, 3f, 4f});
        // column 0 holds [-1, 1]: 0.5 inside, -1.5 clipped; column 1 holds [-2, 2]: 3 clipped, -1.9 inside
        assertArrayEquals(new float[] {1f, 0f, 0f, 4f}, x.grad());
    }

    @Test
    void badBoundShapesAndSpecsAreRejectedNamingThem() {
        Tensor x = Tensor.of(new float[6], 2, 3);
        Tensor one = Tensor.variable(new float[] {-1f}, 1);
        Tensor pos = Tensor.variable(new float[] {1f}, 1);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () ->
                VeoOps.fakeQuantize(new Tape(), x, one, pos, QuantSpec.parse("a4-asym-token-static")));
        assertTrue(e.getMessage().contains("(2)"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () ->
                VeoOps.fakeQuantize(new Tape(), x, one, pos, QuantSpec.parse("a4-asym-token-dynamic")));
        assertTrue(e.getMessage().contains("static"), e.getMessage());
    }

    // ---------------------------------------------------------------- relative error

    @Test
    void relativeL2AndItsGradient() {
        SplittableRandom rng = new SplittableRandom(5);
        float[] a = randn(rng, 10, 1, 0);
        float[] r = randn(rng, 10, 1, 0);
        Tensor ta = Tensor.variable(a, 2, 5);
        Tape tape = new Tape();
        Tensor e = VeoOps.relativeL2(tape, ta, Tensor.of(r, 2, 5));
        assertEquals(relTwin(a, r), e.item(), FLOAT_TOL);
        tape.backward(e);
        checkGradient("d relL2 / da", ta.grad(), a, v -> relTwin(v, r));
        IllegalArgumentException ex = assertThrows(IllegalArgumentException.class,
                () -> VeoOps.relativeL2(new Tape(), ta, Tensor.of(new float[10], 2, 5)));
        assertTrue(ex.getMessage().contains("norm 0"), ex.getMessage());
    }

    private static double relTwin(float[] a, float[] r) {
        double num = 0;
        double den = 0;
        for (int i = 0; i < a.length; i++) {
            num += ((double) a[i] - r[i]) * ((double) a[i] - r[i]);
            den += (double) r[i] * r[i];
        }
        return Math.sqrt(num / den);
    }

    // ---------------------------------------------------------------- helpers

    private static float[] runtime(QuantSpec spec, float[] x, int rows, int cols, float[] lo, float[] hi) {
        UniformQuantizer q = new UniformQuantizer(spec);
        float[] y = x.clone();
        q.fakeQuantize(y, rows, cols, q.params(new Ranges(lo, hi)));
        return y;
    }

    private static double[] toDouble(float[] v) {
        double[] d = new double[v.length];
        for (int i = 0; i < v.length; i++) {
            d[i] = v[i];
        }
        return d;
    }

    /** Central differences of f at v (perturbed in double through a float copy) against the analytic gradient. */
    private static void checkGradient(String what, float[] analytic, float[] v, ToDoubleFunction<float[]> f) {
        double max = 0;
        for (float g : analytic) {
            max = Math.max(max, Math.abs(g));
        }
        assertTrue(max > 0, what + ": the analytic gradient is zero everywhere");
        for (int i = 0; i < v.length; i++) {
            float[] plus = v.clone();
            float[] minus = v.clone();
            plus[i] = (float) (v[i] + FD_STEP);
            minus[i] = (float) (v[i] - FD_STEP);
            double numeric = (f.applyAsDouble(plus) - f.applyAsDouble(minus)) / ((double) plus[i] - minus[i]);
            assertEquals(numeric, analytic[i], GRAD_REL_TOL * max, what + " element " + i);
        }
    }
}
