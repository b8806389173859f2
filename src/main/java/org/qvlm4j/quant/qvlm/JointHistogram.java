package org.qvlm4j.quant.qvlm;

/**
 * The joint distribution P(m, n) of the quantization levels of two same-shaped tensors X and Y
 * (Q-VLM Eq. 4 with the soft assignment of Eq. 5): every element pair (x_i, y_i) adds the outer
 * product π(x_i) π(y_i)ᵀ of their {@link SoftAssignment}s, so P is the mean over elements of
 * π_m(x_i)·π_n(y_i) once divided by the element count. Sums run in double in element order, so the
 * same inputs give the same bits. {@link #conditionalEntropy()} is H(Y | X) in nats.
 *
 * <p>Left out: elements of tensors with different shapes (the dependency pairs decoder-layer
 * outputs, which share one shape, qvlm-method.md §6.4).
 */
public final class JointHistogram {
    private final int mx;
    private final int my;
    private final double[] mass; // (Mx, My), un-normalised
    private long elements;

    public JointHistogram(int mx, int my) {
        if (mx < 1 || my < 1) {
            throw new IllegalArgumentException("joint histogram needs >= 1 level per side, got " + mx + " x " + my);
        }
        this.mx = mx;
        this.my = my;
        this.mass = new double[Math.multiplyExact(mx, my)];
    }

    /** Adds the element pairs (x[i], y[i]) for i &lt; n under the two grids. */
    public void add(SoftAssignment ax, float[] x, SoftAssignment ay, float[] y, int n) {
        if (ax.levels() != mx || ay.levels() != my) {
            throw new IllegalArgumentException("joint histogram of " + mx + " x " + my + " levels got grids of "
                    + ax.levels() + " and " + ay.levels() + " levels");
        }
        if (x.length < n || y.length < n) {
            throw new IllegalArgumentException("joint histogram: " + n + " element pairs requested, tensors hold "
                    + x.length + " and " + y.length);
        }
        int wx = ax.width();
        int wy = ay.width();
        double[] px = new double[wx];
        double[] py = new double[wy];
        for (int i = 0; i < n; i++) {
            int fx = ax.assign(x[i], px);
            int fy = ay.assign(y[i], py);
            for (int a = 0; a < wx; a++) {
                double pa = px[a];
                if (pa == 0) {
                    continue;
                }
                int row = (fx + a) * my + fy;
                for (int b = 0; b < wy; b++) {
                    mass[row + b] += pa * py[b];
                }
            }
        }
        elements += n;
    }

    /** Adds other's mass (same level counts). */
    public void merge(JointHistogram other) {
        if (other.mx != mx || other.my != my) {
            throw new IllegalArgumentException("cannot merge a " + other.mx + " x " + other.my + " joint histogram into "
                    + mx + " x " + my);
        }
        for (int i = 0; i < mass.length; i++) {
            mass[i] += other.mass[i];
        }
        elements += other.elements;
    }

    public long elements() {
        return elements;
    }

    /** P(m, n) (Mx, My), normalised to sum 1 (all zeros when empty). */
    public double[] probabilities() {
        double[] p = mass.clone();
        double total = 0;
        for (double v : mass) {
            total += v;
        }
        if (total > 0) {
            for (int i = 0; i < p.length; i++) {
                p[i] /= total;
            }
        }
        return p;
    }

    /** H(Y | X) in nats of this histogram. */
    public double conditionalEntropy() {
        return conditionalEntropy(mass, mx, my);
    }

    /**
     * H(Y | X) = −Σ_{m,n} P(m, n)·log(P(m, n) / Σ_n' P(m, n')) in nats for a joint table (Mx, My) of
     * non-negative masses, normalised here; 0·log 0 = 0, and an all-zero table gives 0.
     */
    public static double conditionalEntropy(double[] joint, int mx, int my) {
        if (joint.length != mx * my) {
            throw new IllegalArgumentException("joint table of " + joint.length + " entries, expected " + mx + " x " + my);
        }
        double total = 0;
        for (double v : joint) {
            if (!(v >= 0) || !Double.isFinite(v)) {
                throw new IllegalArgumentException("joint table entries must be finite and >= 0, got " + v);
            }
            total += v;
        }
        if (total == 0) {
            return 0;
        }
        double h = 0;
        for (int m = 0; m < mx; m++) {
            double row = 0;
            for (int n = 0; n < my; n++) {
                row += joint[m * my + n];
            }
            for (int n = 0; n < my; n++) {
                double v = joint[m * my + n];
                if (v > 0) {
                    h -= v / total * Math.log(v / row);
                }
            }
        }
        return h;
    }
}
