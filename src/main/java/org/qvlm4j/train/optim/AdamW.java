package org.qvlm4j.train.optim;

import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.qvlm4j.tensor.Tensor;

/**
 * Adam with decoupled weight decay (Loshchilov and Hutter, "Decoupled Weight Decay Regularization",
 * ICLR 2019), in the order of {@code torch.optim.AdamW} (single-tensor path, amsgrad off):
 * <pre>
 *   t += 1
 *   p  = p * (1 - lr * wd)
 *   m  = beta1 * m + (1 - beta1) * g
 *   v  = beta2 * v + (1 - beta2) * g^2
 *   p  = p - (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
 * </pre>
 * Parameters are organised in {@link Group}s that differ only in weight decay (the usual split is
 * no decay for norms and biases). The learning rate is passed to each {@link #step(double)} so a
 * schedule stays outside the optimizer. A parameter whose gradient is null is skipped and its step
 * count does not advance, as in torch. Moments are float32 like the parameters; each element's
 * update is evaluated in double and rounded once, so it may differ from torch's float32 chain of
 * in-place ops in the last bit.
 *
 * <p>The per-parameter state (moments and step count) is readable and settable through
 * {@link #state} and {@link #setState}, so a training checkpoint can store and restore it; the file
 * format belongs to the caller.
 *
 * <p>Left out: amsgrad, maximize, per-group learning rates.
 */
public final class AdamW {
    /** Parameters sharing one weight-decay coefficient. */
    public record Group(List<Tensor> params, double weightDecay) {
        public Group {
            params = List.copyOf(params);
            if (!(weightDecay >= 0)) {
                throw new IllegalArgumentException("weight decay must be >= 0, got " + weightDecay);
            }
        }
    }

    /** torch.optim.AdamW defaults: betas (0.9, 0.999), eps 1e-8, weight decay 0.01. */
    public static final double DEFAULT_BETA1 = 0.9;
    public static final double DEFAULT_BETA2 = 0.999;
    public static final double DEFAULT_EPS = 1e-8;
    public static final double DEFAULT_WEIGHT_DECAY = 0.01;

    private static final class State {
        final float[] m;
        final float[] v;
        long step;

        State(int n) {
            m = new float[n];
            v = new float[n];
        }
    }

    private final List<Group> groups;
    private final double beta1;
    private final double beta2;
    private final double eps;
    private final Map<Tensor, State> state = new IdentityHashMap<>();

    public AdamW(List<Group> groups, double beta1, double beta2, double eps) {
        if (!(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1)) {
            throw new IllegalArgumentException("betas must lie in [0, 1), got (" + beta1 + ", " + beta2 + ")");
        }
        if (!(eps >= 0)) {
            throw new IllegalArgumentException("eps must be >= 0, got " + eps);
        }
        Set<Tensor> seen = Collections.newSetFromMap(new IdentityHashMap<>());
        for (Group g : groups) {
            for (Tensor p : g.params()) {
                if (!p.requiresGrad()) {
                    throw new IllegalArgumentException("AdamW: " + p + " does not require a gradient");
                }
                if (!seen.add(p)) {
                    throw new IllegalArgumentException("AdamW: parameter " + p + " appears in more than one group");
                }
            }
        }
        this.groups = List.copyOf(groups);
        this.beta1 = beta1;
        this.beta2 = beta2;
        this.eps = eps;
    }

    /** One group with torch's default betas and eps. */
    public static AdamW of(List<Tensor> params, double weightDecay) {
        return new AdamW(List.of(new Group(params, weightDecay)), DEFAULT_BETA1, DEFAULT_BETA2, DEFAULT_EPS);
    }

    /** All parameters, in group order. */
    public List<Tensor> params() {
        List<Tensor> all = new ArrayList<>();
        for (Group g : groups) {
            all.addAll(g.params());
        }
        return all;
    }

    /** Number of updates applied to {@code p} so far. */
    public long stepCount(Tensor p) {
        State s = state.get(p);
        return s == null ? 0 : s.step;
    }

    /**
     * The state of one parameter: first and second moments (live arrays, not copies) and the number
     * of updates applied; null before the parameter's first update.
     */
    public record ParamState(float[] m, float[] v, long step) {
    }

    /** The state of {@code p}, or null if it has not been updated yet. */
    public ParamState state(Tensor p) {
        State s = state.get(p);
        return s == null ? null : new ParamState(s.m, s.v, s.step);
    }

    /** Restores the state of {@code p} (copies the moments), e.g. from a checkpoint. */
    public void setState(Tensor p, float[] m, float[] v, long step) {
        if (!params().contains(p)) {
            throw new IllegalArgumentException("AdamW: " + p + " is not one of this optimizer's parameters");
        }
        if (m.length != p.numel() || v.length != p.numel() || step < 0) {
            throw new IllegalArgumentException("AdamW state for " + p + ": expected moments of " + p.numel()
                    + " floats and step >= 0, got " + m.length + ", " + v.length + " and step " + step);
        }
        State s = new State(p.numel());
        System.arraycopy(m, 0, s.m, 0, m.length);
        System.arraycopy(v, 0, s.v, 0, v.length);
        s.step = step;
        state.put(p, s);
    }

    /** Applies one update with learning rate {@code lr} to every parameter that has a gradient. */
    public void step(double lr) {
        if (!(lr >= 0) || Double.isInfinite(lr)) {
            throw new IllegalArgumentException("learning rate must be finite and >= 0, got " + lr);
        }
        for (Group g : groups) {
            double decay = 1.0 - lr * g.weightDecay();
            for (Tensor p : g.params()) {
                float[] grad = p.grad();
                if (grad == null) {
                    continue;
                }
                State s = state.computeIfAbsent(p, k -> new State(k.numel()));
                s.step++;
                double bc1 = 1.0 - Math.pow(beta1, s.step);
                double bc2Sqrt = Math.sqrt(1.0 - Math.pow(beta2, s.step));
                double stepSize = lr / bc1;
                float[] w = p.data();
                float[] m = s.m;
                float[] v = s.v;
                for (int i = 0; i < w.length; i++) {
                    double gi = grad[i];
                    double mi = beta1 * m[i] + (1.0 - beta1) * gi;
                    double vi = beta2 * v[i] + (1.0 - beta2) * gi * gi;
                    m[i] = (float) mi;
                    v[i] = (float) vi;
                    double denom = Math.sqrt(v[i]) / bc2Sqrt + eps;
                    w[i] = (float) (w[i] * decay - stepSize * m[i] / denom);
                }
            }
        }
    }

    /** Drops the gradients of all parameters. */
    public void zeroGrad() {
        for (Group g : groups) {
            for (Tensor p : g.params()) {
                p.zeroGrad();
            }
        }
    }
}
