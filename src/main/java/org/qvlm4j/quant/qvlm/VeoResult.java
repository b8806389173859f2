package org.qvlm4j.quant.qvlm;

import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import org.qvlm4j.quant.Ranges;

/**
 * What {@link VisualEncoderOptimizer} produced: the optimised static ranges of the vision-tower
 * input sites (keyed by runtime site name, e.g. {@code vision.layers.0.self_attn.q_proj.in}, in the
 * slot layout of each site's spec, ready for {@code org.qvlm4j.quant.FakeQuantTap}), the loss terms
 * over all samples before and after, and one log entry per epoch.
 *
 * @param ranges  optimised ranges of every learnable site, in forward order
 * @param initial the loss terms at the calibrated ranges (Jacobian weights of epoch 1)
 * @param last    the loss terms at the returned ranges (Jacobian weights of the last epoch)
 * @param epochs  one entry per epoch
 * @param seconds wall time of the whole run
 */
public record VeoResult(Map<String, Ranges> ranges, Terms initial, Terms last, List<Epoch> epochs, double seconds) {
    public VeoResult {
        ranges = Collections.unmodifiableMap(new LinkedHashMap<>(ranges));
        epochs = List.copyOf(epochs);
    }

    /**
     * The loss terms of Eq. 10, each a mean over samples.
     *
     * @param total      L = reg + lambda1 ent + lambda2 err
     * @param reg        L_reg, next-token cross-entropy on the supervised answer tokens
     * @param ent        L_ent, Σ_k w_k H(X^(k+1) | X^(k)) in nats
     * @param err        L_err = errVision + eta errLlm
     * @param errVision  ||Xv_q − Xv_r|| / ||Xv_r|| of the vision tower's output features
     * @param errLlm     ||X^(n)_q − X^(n)_r|| / ||X^(n)_r|| of the last decoder layer's output
     * @param entropies  H(X^(k+1) | X^(k)) per pair k = 0 .. n−1 (X^(0) the decoder input), unweighted
     */
    public record Terms(double total, double reg, double ent, double err, double errVision, double errLlm,
                        double[] entropies) {
        public Terms {
            entropies = entropies.clone();
        }

        @Override
        public double[] entropies() {
            return entropies.clone();
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof Terms t && Double.compare(total, t.total) == 0 && Double.compare(reg, t.reg) == 0
                    && Double.compare(ent, t.ent) == 0 && Double.compare(err, t.err) == 0
                    && Double.compare(errVision, t.errVision) == 0 && Double.compare(errLlm, t.errLlm) == 0
                    && Arrays.equals(entropies, t.entropies);
        }

        @Override
        public int hashCode() {
            return Objects.hash(total, reg, ent, err, errVision, errLlm) * 31 + Arrays.hashCode(entropies);
        }
    }

    /**
     * One epoch: its Jacobian weights w_k (sum 1), the mean loss terms the training forwards saw
     * (each sample at the factors of its update) and the learning rate of its last update.
     */
    public record Epoch(int epoch, double[] weights, Terms terms, double lastLr) {
        public Epoch {
            weights = weights.clone();
        }

        @Override
        public double[] weights() {
            return weights.clone();
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof Epoch e && epoch == e.epoch && Arrays.equals(weights, e.weights) && terms.equals(e.terms)
                    && Double.compare(lastLr, e.lastLr) == 0;
        }

        @Override
        public int hashCode() {
            return Objects.hash(epoch, terms, lastLr) * 31 + Arrays.hashCode(weights);
        }
    }

    /** Progress after each update. */
    public record Progress(int epoch, int epochs, int step, int steps, double batchLoss, double elapsedSeconds) {
        public double etaSeconds() {
            return step == 0 ? Double.NaN : elapsedSeconds / step * (steps - step);
        }
    }
}
