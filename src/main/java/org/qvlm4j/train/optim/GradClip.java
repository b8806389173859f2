package org.qvlm4j.train.optim;

import java.util.Collection;
import org.qvlm4j.tensor.Tensor;

/**
 * Gradient clipping by the global L2 norm, as {@code torch.nn.utils.clip_grad_norm_} (norm type 2):
 * total = sqrt(sum over parameters of sum g^2); every gradient is multiplied by
 * min(1, maxNorm / (total + 1e-6)); the total norm before clipping is returned.
 *
 * <p>Parameters without a gradient are ignored. The sum is accumulated in double. Unlike torch (which
 * would multiply by 0 or NaN), a non-finite total leaves the gradients untouched so the caller can
 * see the returned value and skip the step.
 */
public final class GradClip {
    /** torch adds this to the norm before dividing, so a zero gradient never divides by zero. */
    public static final double NORM_EPS = 1e-6;

    private GradClip() {
    }

    /** The global L2 norm of all gradients, without modifying them. */
    public static double globalNorm(Collection<Tensor> params) {
        double ss = 0;
        for (Tensor p : params) {
            float[] g = p.grad();
            if (g == null) {
                continue;
            }
            for (float v : g) {
                ss += (double) v * v;
            }
        }
        return Math.sqrt(ss);
    }

    /** Scales all gradients so their global L2 norm is at most {@code maxNorm}; returns the norm before. */
    public static double clipByGlobalNorm(Collection<Tensor> params, double maxNorm) {
        if (!(maxNorm > 0) || Double.isInfinite(maxNorm)) {
            throw new IllegalArgumentException("maxNorm must be positive and finite, got " + maxNorm);
        }
        double total = globalNorm(params);
        if (!Double.isFinite(total)) {
            return total;
        }
        double coef = maxNorm / (total + NORM_EPS);
        if (coef < 1.0) {
            float c = (float) coef;
            for (Tensor p : params) {
                float[] g = p.grad();
                if (g == null) {
                    continue;
                }
                for (int i = 0; i < g.length; i++) {
                    g[i] *= c;
                }
            }
        }
        return total;
    }
}
