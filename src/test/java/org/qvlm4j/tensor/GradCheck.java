package org.qvlm4j.tensor;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;

/**
 * Central finite-difference gradient check for the ops in {@link Ops}.
 *
 * <p>The scalar probe is L = sum_i r_i y_i for a fixed random projection r of the op's output, so
 * every output element contributes. Analytic gradients come from {@link Tape#backward(Tensor, float[])}
 * with upstream gradient r; numeric ones from (L(x + h) - L(x - h)) / (actual step), L summed in
 * double and the step taken as the float difference actually stored. Forward ops are float32, so the
 * tolerance is relative to the largest analytic gradient of each input.
 */
final class GradCheck {
    /** Finite-difference step: large enough that float32 rounding of L stays small against it. */
    static final double STEP = 1e-2;
    /** Allowed |numeric - analytic| relative to the largest |analytic| of the same input. */
    static final double REL_TOL = 3e-3;
    /** Absolute floor for inputs whose gradient is (nearly) zero everywhere. */
    static final double ABS_TOL = 1e-5;

    @FunctionalInterface
    interface Fn {
        Tensor apply(Tape tape, Tensor[] in);
    }

    private GradCheck() {
    }

    static Tensor randn(Random rnd, double std, int... shape) {
        float[] d = new float[Math.toIntExact(Tensor.numel(shape))];
        for (int i = 0; i < d.length; i++) {
            d[i] = (float) (rnd.nextGaussian() * std);
        }
        return Tensor.variable(d, shape);
    }

    /** Checks the gradient of every input that requires one. */
    static void check(String what, Fn f, long seed, Tensor... inputs) {
        Tape tape = new Tape();
        Tensor out = f.apply(tape, inputs);
        Random rnd = new Random(seed);
        float[] r = new float[out.numel()];
        for (int i = 0; i < r.length; i++) {
            r[i] = (float) rnd.nextGaussian();
        }
        tape.backward(out, r);
        for (int in = 0; in < inputs.length; in++) {
            Tensor x = inputs[in];
            if (!x.requiresGrad()) {
                continue;
            }
            float[] analytic = x.grad() == null ? new float[x.numel()] : x.grad().clone();
            double maxAbs = 0;
            for (float g : analytic) {
                maxAbs = Math.max(maxAbs, Math.abs(g));
            }
            double tol = Math.max(ABS_TOL, REL_TOL * maxAbs);
            float[] xd = x.data();
            for (int e = 0; e < xd.length; e++) {
                float orig = xd[e];
                float plus = (float) (orig + STEP);
                float minus = (float) (orig - STEP);
                xd[e] = plus;
                double lp = probe(f, inputs, r);
                xd[e] = minus;
                double lm = probe(f, inputs, r);
                xd[e] = orig;
                double numeric = (lp - lm) / ((double) plus - minus);
                double diff = Math.abs(numeric - analytic[e]);
                int inputIndex = in;
                int element = e;
                assertTrue(diff <= tol, () -> what + ": input " + inputIndex + " element " + element
                        + " analytic " + analytic[element] + " numeric " + numeric + " tol " + tol);
            }
        }
    }

    private static double probe(Fn f, Tensor[] inputs, float[] r) {
        Tensor y = f.apply(Tape.disabled(), inputs);
        float[] yd = y.data();
        double s = 0;
        for (int i = 0; i < yd.length; i++) {
            s += (double) r[i] * yd[i];
        }
        return s;
    }
}
