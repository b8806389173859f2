package org.qvlm4j.quant.qvlm;

import java.util.Arrays;

/**
 * Q-VLM's soft distribution of a quantized element over the M rounding points of a per-tensor
 * uniform grid (Eq. 5): π_m(x) = softmax_m(−(x − q_m)² / T), with q_m = lo + m·Δ, Δ = (hi − lo) / (M − 1)
 * and temperature T. In grid units u = (x − lo) / Δ this is softmax_m(−(u − m)² / τ) with τ = T / Δ²;
 * the paper's literal T = Δ gives τ = 1 / Δ (see {@link Temperature}).
 *
 * <p><b>Truncation.</b> Only the levels within a radius r of the nearest level c are kept and
 * renormalised. A level at offset j ≥ r + 1 from c lies at least j − ½ grid steps from u while c lies
 * at most ½ away, so its weight relative to c's is at most exp(−j(j − 1)/τ); summed over both sides the
 * dropped mass is at most ε(r) = 2·exp(−r(r + 1)/τ) / (1 − exp(−2(r + 1)/τ)). r is the smallest radius
 * with ε(r) ≤ the requested tail bound (qvlm-method.md §6.5 suggests the 5 nearest levels; at τ = 1
 * that leaves about 1e-5, so the radius is derived from the bound instead). Values outside [lo, hi]
 * take the edge level as c; the bound still holds. Each kept weight then differs from the untruncated
 * softmax by at most the bound.
 *
 * <p>τ → 0 gives hard rounding to the nearest level (r = 1 still: halfway between two levels both
 * keep half the mass, so ε(0) = 2 never meets a bound); a constant tensor
 * (hi = lo) puts all mass on level 0. Left out: non-uniform grids.
 */
public final class SoftAssignment {
    /** Default bound on the probability mass dropped by truncation. */
    public static final double DEFAULT_TAIL = 1e-6;
    /** Smallest τ used: below it, exp underflows for every level but the nearest. */
    static final double MIN_TAU = 1e-12;

    /** How the temperature T of Eq. 5 is set. */
    public enum Temperature {
        /** T = τ·Δ²: a fixed softness in grid steps, independent of the tensor's scale (the default). */
        GRID,
        /** T = Δ as printed in Eq. 5: τ = 1 / Δ, so the softness depends on the tensor's units. */
        PAPER
    }

    private final double lo;
    private final double step;
    private final int levels;
    private final double tau;
    private final int radius;

    /**
     * @param lo     first rounding point
     * @param hi     last rounding point (≥ lo)
     * @param levels M ≥ 2
     * @param tau    temperature in grid units (τ = T / Δ²), &gt; 0
     * @param tail   bound on the dropped mass, in (0, 1)
     */
    public SoftAssignment(double lo, double hi, int levels, double tau, double tail) {
        if (!(hi >= lo) || !Double.isFinite(lo) || !Double.isFinite(hi)) {
            throw new IllegalArgumentException("soft assignment grid: expected finite lo <= hi, got lo " + lo + ", hi " + hi);
        }
        if (levels < 2) {
            throw new IllegalArgumentException("soft assignment grid: expected >= 2 levels, got " + levels);
        }
        if (!(tau > 0) || !Double.isFinite(tau)) {
            throw new IllegalArgumentException("soft assignment: temperature tau must be positive and finite, got " + tau);
        }
        if (!(tail > 0 && tail < 1)) {
            throw new IllegalArgumentException("soft assignment: tail bound must be in (0, 1), got " + tail);
        }
        this.lo = lo;
        this.step = (hi - lo) / (levels - 1);
        this.levels = levels;
        this.tau = Math.max(tau, MIN_TAU);
        this.radius = radiusFor(this.tau, tail, levels);
    }

    /** The grid of a per-tensor range under a temperature mode (τ0 is used by {@link Temperature#GRID}). */
    public static SoftAssignment of(double lo, double hi, int levels, Temperature mode, double tau0, double tail) {
        double tau = tau0;
        if (mode == Temperature.PAPER) {
            double step = (hi - lo) / (levels - 1);
            tau = step > 0 ? 1 / step : MIN_TAU;
        }
        return new SoftAssignment(lo, hi, levels, tau, tail);
    }

    /** Smallest r with ε(r) ≤ tail, capped at levels − 1 (then nothing is dropped). */
    static int radiusFor(double tau, double tail, int levels) {
        for (int r = 0; r < levels - 1; r++) {
            if (droppedMassBound(r, tau) <= tail) {
                return r;
            }
        }
        return levels - 1;
    }

    /** ε(r) = 2·exp(−r(r + 1)/τ) / (1 − exp(−2(r + 1)/τ)), the dropped-mass bound of radius r. */
    static double droppedMassBound(int r, double tau) {
        double denom = -Math.expm1(-2.0 * (r + 1) / tau);
        return 2 * Math.exp(-(double) r * (r + 1) / tau) / denom;
    }

    public int levels() {
        return levels;
    }

    /** Kept levels on each side of the nearest one. */
    public int radius() {
        return radius;
    }

    /** Largest number of weights {@link #assign} writes. */
    public int width() {
        return Math.min(levels, 2 * radius + 1);
    }

    /** τ in grid units. */
    public double tau() {
        return tau;
    }

    /** Index of the nearest level to x (hard rounding, clamped to the grid). */
    public int nearest(double x) {
        if (step == 0) {
            return 0;
        }
        double u = (x - lo) / step;
        return (int) Math.max(0, Math.min(levels - 1, Math.rint(u)));
    }

    /** The value of level m. */
    public double level(int m) {
        return lo + m * step;
    }

    /**
     * Writes the normalised weights of the {@link #width()} kept levels first, first + 1, ... into w
     * and returns first. The window holds the nearest level and r levels on each side; near an edge
     * it is shifted inwards (keeping more levels only lowers the dropped mass).
     */
    public int assign(double x, double[] w) {
        int width = width();
        int c = nearest(x);
        int first = Math.max(0, Math.min(levels - width, c - radius));
        if (step == 0) {
            Arrays.fill(w, 0, width, 0.0);
            w[c - first] = 1;
            return first;
        }
        double u = (x - lo) / step;
        double dc = u - c;
        double ref = dc * dc; // subtracting the nearest level's exponent keeps exp in range
        double sum = 0;
        for (int i = 0; i < width; i++) {
            double d = u - (first + i);
            double e = Math.exp(-(d * d - ref) / tau);
            w[i] = e;
            sum += e;
        }
        for (int i = 0; i < width; i++) {
            w[i] /= sum;
        }
        return first;
    }
}
