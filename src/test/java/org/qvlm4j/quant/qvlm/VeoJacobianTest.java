package org.qvlm4j.quant.qvlm;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qvlm4j.quant.QuantPlan;
import org.qvlm4j.quant.QuantPreset;
import org.qvlm4j.quant.Ranges;
import org.qvlm4j.quant.calib.CalibrationStats;
import org.qvlm4j.tensor.Ops;
import org.qvlm4j.tensor.Tape;
import org.qvlm4j.tensor.Tensor;
import org.qvlm4j.train.TrainableLlava;
import org.qvlm4j.train.TrainingExample;

/**
 * The Jacobian weights of Eq. 8 against finite differences on the tiny LLaVA fixture: w_k comes
 * from ||∂E/∂X^(k)||, E the mean squared error of the last decoder layer's output against the
 * floating-point model. With the LLM's inputs left floating point (weights 4-bit, constants), E is
 * smooth in every X^(k), so a central difference of E along a direction d, with X^(k) replaced by
 * X^(k) ± ε d inside the forward, must equal ⟨∂E/∂X^(k), d⟩: along the unit gradient direction that
 * is the norm itself, along a random direction it checks the direction.
 */
class VeoJacobianTest {
    static final String PLAN = "vision=w4-asym-channel+a4-asym-token-static";
    /** Perturbation size relative to the RMS of the perturbed hidden state. */
    static final double EPS_REL = 1e-2;
    /** Allowed error of a directional derivative, relative to the gradient norm (float32 forwards). */
    static final double FD_REL_TOL = 1e-2;

    @TempDir
    Path tmp;

    @Test
    void gradientNormsAndWeightsMatchFiniteDifferences() {
        VeoFixture fx = new VeoFixture();
        List<TrainingExample> samples = fx.samples(2, 3);
        TrainableLlava model = TrainableLlava.load(VeoFixture.TINY);
        QuantPlan plan = QuantPlan.builder().preset(QuantPreset.W4A16).override(PLAN).build();
        Map<String, Ranges> initial;
        try (CalibrationStats stats = VeoFixture.stats(VeoFixture.TINY, tmp.resolve("stats"), samples)) {
            initial = VeoRanges.fromStats(stats, plan, model.config());
        }
        VisualEncoderOptimizer opt = VisualEncoderOptimizer.prepare(model, plan, initial, samples, VeoConfig.defaults());
        int layers = model.config().textConfig().numHiddenLayers();
        double[] expectedWeights = new double[layers];
        SplittableRandom rng = new SplittableRandom(17);
        for (int i = 0; i < samples.size(); i++) {
            TrainingExample ex = samples.get(i);
            float[] reference = finalHidden(model, QuantPlan.none(), Map.of(), ex, null, null, 0);
            double[] norms = opt.gradientNorms(i);
            float[][] gradients = gradients(model, opt.hook(), ex, reference, layers);
            double[] fdNorms = new double[layers];
            for (int k = 0; k < layers; k++) {
                String site = k == 0 ? "llm.layers.0.in" : "llm.layers." + (k - 1) + ".out";
                float[] g = gradients[k];
                assertEquals(norm(g), norms[k], 1e-6 * norms[k], "the optimiser's norm of ∂E/∂X^(" + k + ")");
                double eps = EPS_REL * rmsOf(opt, model, ex, site);
                float[] along = scaled(g, 1.0 / norm(g));
                fdNorms[k] = directional(model, opt, ex, reference, site, along, eps);
                assertEquals(norms[k], fdNorms[k], FD_REL_TOL * norms[k], "||∂E/∂X^(" + k + ")|| of sample " + i);
                float[] random = new float[g.length];
                for (int j = 0; j < random.length; j++) {
                    random[j] = (float) rng.nextGaussian();
                }
                random = scaled(random, 1.0 / norm(random));
                double dot = 0;
                for (int j = 0; j < g.length; j++) {
                    dot += (double) g[j] * random[j];
                }
                assertEquals(dot, directional(model, opt, ex, reference, site, random, eps), FD_REL_TOL * norms[k],
                        "⟨∂E/∂X^(" + k + "), d⟩ of sample " + i);
            }
            double sum = 0;
            for (double v : fdNorms) {
                sum += v;
            }
            for (int k = 0; k < layers; k++) {
                expectedWeights[k] += fdNorms[k] / sum / samples.size();
            }
        }
        double[] w = opt.jacobianWeights();
        for (int k = 0; k < layers; k++) {
            assertEquals(expectedWeights[k], w[k], FD_REL_TOL, "w_" + k);
        }
    }

    /** ∂E/∂X^(k) for k = 0 .. n−1 through the quantized forward, read from the recorded residual streams. */
    private static float[][] gradients(TrainableLlava model, VeoForward hook, TrainingExample ex, float[] reference,
                                       int layers) {
        Tape tape = new Tape();
        hook.clearResiduals();
        model.frozen().logits(tape, ex.inputIds(), ex.pixels(), hook);
        Tensor last = hook.residual("llm.layers." + (layers - 1) + ".out");
        tape.backward(Ops.mse(tape, last, Tensor.of(reference, last.shape())));
        float[][] out = new float[layers][];
        for (int k = 0; k < layers; k++) {
            out[k] = hook.residual(k == 0 ? "llm.layers.0.in" : "llm.layers." + (k - 1) + ".out").grad().clone();
        }
        Tape.zeroGrad(hook.parameters());
        return out;
    }

    /** (E(X + ε d) − E(X − ε d)) / 2ε with X the hidden state at site, E in double. */
    private static double directional(TrainableLlava model, VisualEncoderOptimizer opt, TrainingExample ex,
                                      float[] reference, String site, float[] d, double eps) {
        double plus = mse(finalHidden(model, opt.hook(), ex, site, d, eps), reference);
        double minus = mse(finalHidden(model, opt.hook(), ex, site, d, -eps), reference);
        return (plus - minus) / (2 * eps);
    }

    private static double rmsOf(VisualEncoderOptimizer opt, TrainableLlava model, TrainingExample ex, String site) {
        opt.hook().clearResiduals();
        model.frozen().logits(Tape.disabled(), ex.inputIds(), ex.pixels(), opt.hook());
        float[] h = opt.hook().residual(site).data();
        return norm(h) / Math.sqrt(h.length);
    }

    private static float[] finalHidden(TrainableLlava model, QuantPlan plan, Map<String, Ranges> ranges,
                                       TrainingExample ex, String site, float[] d, double eps) {
        return finalHidden(model, new VeoForward(model.config(), plan, ranges), ex, site, d, eps);
    }

    /** The last decoder layer's output with X at site replaced by X + eps d (no change when site is null). */
    private static float[] finalHidden(TrainableLlava model, VeoForward hook, TrainingExample ex, String site,
                                       float[] d, double eps) {
        TrainableLlava.Hook perturbing = new TrainableLlava.Hook() {
            @Override
            public Tensor weight(String linear, Tensor w) {
                return hook.weight(linear, w);
            }

            @Override
            public Tensor input(Tape tape, String linear, Tensor x) {
                return hook.input(tape, linear, x);
            }

            @Override
            public Tensor residual(Tape tape, String s, Tensor h) {
                Tensor out = h;
                if (s.equals(site)) {
                    float[] v = h.data().clone();
                    for (int j = 0; j < v.length; j++) {
                        v[j] = (float) (v[j] + eps * d[j]);
                    }
                    out = Tensor.of(v, h.shape());
                }
                return hook.residual(tape, s, out);
            }
        };
        hook.clearResiduals();
        model.frozen().logits(Tape.disabled(), ex.inputIds(), ex.pixels(), perturbing);
        int layers = model.config().textConfig().numHiddenLayers();
        return hook.residual("llm.layers." + (layers - 1) + ".out").data().clone();
    }

    private static double mse(float[] a, float[] b) {
        double s = 0;
        for (int i = 0; i < a.length; i++) {
            double d = (double) a[i] - b[i];
            s += d * d;
        }
        return s / a.length;
    }

    private static double norm(float[] v) {
        double s = 0;
        for (float x : v) {
            s += (double) x * x;
        }
        return Math.sqrt(s);
    }

    private static float[] scaled(float[] v, double c) {
        float[] out = new float[v.length];
        for (int i = 0; i < v.length; i++) {
            out[i] = (float) (v[i] * c);
        }
        return out;
    }
}
