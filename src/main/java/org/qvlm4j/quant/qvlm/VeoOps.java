package org.qvlm4j.quant.qvlm;

import java.util.Arrays;
import org.qvlm4j.quant.QuantParams;
import org.qvlm4j.quant.QuantSpec;
import org.qvlm4j.quant.Ranges;
import org.qvlm4j.quant.UniformQuantizer;
import org.qvlm4j.tensor.Tape;
import org.qvlm4j.tensor.Tensor;

/**
 * The differentiable pieces of visual encoder optimisation, each a forward with its backward rule
 * recorded on the {@link Tape} (as {@code org.qvlm4j.tensor.Ops} does):
 *
 * <ul>
 *   <li>{@link #fakeQuantize(Tape, Tensor, Tensor, Tensor, QuantSpec)}: a static activation quantizer
 *       whose clipping bounds lo, hi (one pair per slot of the spec's granularity) are inputs. The
 *       forward is the runtime's {@link UniformQuantizer} on {@link Ranges}(lo, hi), so it is
 *       bit-identical to {@code FakeQuantTap} with the same ranges. The backward is LSQ+ (Bhalgat et
 *       al. 2020): straight-through estimates for the rounding of x / Δ and of the zero point.</li>
 *   <li>{@link #fakeQuantize(Tape, Tensor, UniformQuantizer, QuantParams)}: fixed parameters, the
 *       straight-through gradient to x only (LLM sites, dynamic ranges).</li>
 *   <li>{@link #softConditionalEntropy}: H(B | A) of two equally shaped tensors under Q-VLM's soft
 *       assignment (Eq. 4-5).</li>
 *   <li>{@link #relativeL2}: ||a − r|| / ||r|| against a constant reference (Eq. 9's norms).</li>
 * </ul>
 *
 * <p><b>Bound gradients of the asymmetric quantizer.</b> With r the spec's clip ratio (1 without),
 * a = min(r·lo, 0), b = max(r·hi, 0) (the quantizer widens the range to hold 0), Δ = (b − a) / qmax,
 * z̃ = −a / Δ, zp = round(z̃), v = round(x / Δ) + zp and u = clamp(v, 0, qmax), the output is
 * x̂ = (u − zp)·Δ. Rounding is passed straight through:
 * <pre>
 *   inside (0 ≤ v ≤ qmax):   ∂x̂/∂Δ = (u − zp) − x/Δ,     ∂x̂/∂a|Δ = 0,  ∂x̂/∂x = 1
 *   clipped:                 ∂x̂/∂Δ = (u − zp) + z̃,      ∂x̂/∂a|Δ = 1,  ∂x̂/∂x = 0
 *   ∂Δ/∂b = 1/qmax, ∂Δ/∂a = −1/qmax, ∂a/∂lo = r where r·lo &lt; 0 (else 0), ∂b/∂hi = r where r·hi &gt; 0
 * </pre>
 * so a value clipped at the top moves hi one for one (as in PACT) and a value inside moves the step
 * by its rounding residual (as in LSQ). The symmetric quantizer (Δ = max(−a, b) / qmax, zp = 0) has
 * ∂x̂/∂Δ = u − x/Δ inside and u when clipped, and Δ follows whichever of −a and b is larger. Below
 * the range-width guard ({@link UniformQuantizer#RANGE_EPS}) Δ is constant and gets no gradient.
 *
 * <p>Left out: a gradient through the data-dependent range of dynamic specs (treated as constant),
 * per-group static ranges (the quantizer rejects them).
 */
public final class VeoOps {
    /**
     * Levels whose logit lies more than this below the nearest level's are dropped from the soft
     * assignment: their weight is below e^-36 ≈ 2e-16 of the largest, under double rounding of a sum of 1.
     */
    static final double SOFT_CUTOFF = 36.0;

    private VeoOps() {
    }

    // ---------------------------------------------------------------- fake quantization

    /**
     * Static activation fake quantization with learnable clipping bounds: x (T, K), lo and hi
     * (slots) with slots = {@link QuantParams#slots}(spec, T, K) (one per token row, input channel, or
     * one for the tensor) → (T, K). See the class comment for the gradients.
     */
    public static Tensor fakeQuantize(Tape tape, Tensor x, Tensor lo, Tensor hi, QuantSpec spec) {
        if (spec.format() != QuantSpec.Format.UNIFORM || spec.target() != QuantSpec.Target.ACTIVATION
                || spec.dynamic()) {
            throw new IllegalArgumentException("fakeQuantize with bounds: expected a static uniform activation spec, got "
                    + spec);
        }
        require(x.rank() == 2, "fakeQuantize", "x (T, K)", x);
        int rows = x.dim(0);
        int cols = x.dim(1);
        int slots = QuantParams.slots(spec, rows, cols);
        require(lo.rank() == 1 && hi.rank() == 1 && lo.numel() == slots && hi.numel() == slots, "fakeQuantize",
                "lo and hi (" + slots + ") for " + spec + " on (" + rows + ", " + cols + ")", lo, hi);
        UniformQuantizer q = new UniformQuantizer(spec);
        QuantParams p = q.params(new Ranges(lo.data().clone(), hi.data().clone()));
        float[] y = x.data().clone(); // (T, K)
        q.fakeQuantize(y, rows, cols, p);
        Tensor out = Tensor.of(y, rows, cols);
        double ratio = spec.clip().kind() == QuantSpec.ClipKind.RATIO ? spec.clip().value() : 1.0;
        float[] lod = lo.data().clone();
        float[] hid = hi.data().clone();
        return tape.record("veoFakeQuantizeBounds", out, () -> {
            float[] dy = out.grad();
            float[] xd = x.data();
            float[] dx = x.requiresGrad() ? x.gradOrCreate() : null;
            double[] gDelta = new double[slots]; // Σ dy ∂x̂/∂Δ per slot
            double[] gA = new double[slots]; // Σ dy ∂x̂/∂a at fixed Δ per slot
            int qmin = spec.qmin();
            int qmax = spec.qmax();
            for (int r = 0; r < rows; r++) {
                for (int c = 0; c < cols; c++) {
                    int i = r * cols + c;
                    int s = QuantParams.slot(spec, r, c, cols);
                    float step = p.scale()[s];
                    int zp = p.zeroPoint()[s];
                    double v = Math.rint(xd[i] / step) + zp;
                    if (v >= qmin && v <= qmax) {
                        if (dx != null) {
                            dx[i] += dy[i];
                        }
                        gDelta[s] += dy[i] * ((v - zp) - (double) xd[i] / step);
                    } else {
                        double u = v < qmin ? qmin : qmax;
                        if (spec.symmetric()) {
                            gDelta[s] += dy[i] * u;
                        } else {
                            double a = Math.min((float) (lod[s] * ratio), 0f);
                            gDelta[s] += dy[i] * ((u - zp) - a / step);
                            gA[s] += dy[i];
                        }
                    }
                }
            }
            float[] dlo = lo.requiresGrad() ? lo.gradOrCreate() : null;
            float[] dhi = hi.requiresGrad() ? hi.gradOrCreate() : null;
            for (int s = 0; s < slots; s++) {
                double a = Math.min((float) (lod[s] * ratio), 0f);
                double b = Math.max((float) (hid[s] * ratio), 0f);
                double dDa; // ∂Δ/∂a
                double dDb; // ∂Δ/∂b
                if (spec.symmetric()) {
                    boolean guarded = Math.max(-a, b) < UniformQuantizer.RANGE_EPS;
                    dDb = guarded || b < -a ? 0 : 1.0 / qmax;
                    dDa = guarded || b >= -a ? 0 : -1.0 / qmax;
                } else {
                    boolean guarded = b - a < UniformQuantizer.RANGE_EPS;
                    dDb = guarded ? 0 : 1.0 / qmax;
                    dDa = guarded ? 0 : -1.0 / qmax;
                }
                double ga = gDelta[s] * dDa + gA[s];
                double gb = gDelta[s] * dDb;
                if (dlo != null && (float) (lod[s] * ratio) < 0f) {
                    dlo[s] += (float) (ga * ratio);
                }
                if (dhi != null && (float) (hid[s] * ratio) > 0f) {
                    dhi[s] += (float) (gb * ratio);
                }
            }
        }, x, lo, hi);
    }

    /**
     * Fake quantization with fixed parameters: x (T, K) → (T, K), the forward of
     * {@link UniformQuantizer#fakeQuantize(float[], int, int, QuantParams)}; x gets the
     * straight-through gradient where its code is not clipped and 0 where it is.
     */
    public static Tensor fakeQuantize(Tape tape, Tensor x, UniformQuantizer q, QuantParams p) {
        require(x.rank() == 2, "fakeQuantize", "x (T, K)", x);
        int rows = x.dim(0);
        int cols = x.dim(1);
        QuantSpec spec = q.spec();
        float[] y = x.data().clone(); // (T, K)
        q.fakeQuantize(y, rows, cols, p);
        Tensor out = Tensor.of(y, rows, cols);
        return tape.record("veoFakeQuantizeFixed", out, () -> {
            float[] dy = out.grad();
            float[] xd = x.data();
            float[] dx = x.gradOrCreate();
            for (int r = 0; r < rows; r++) {
                for (int c = 0; c < cols; c++) {
                    int i = r * cols + c;
                    int s = QuantParams.slot(spec, r, c, cols);
                    double v = Math.rint(xd[i] / p.scale()[s]) + p.zeroPoint()[s];
                    if (v >= spec.qmin() && v <= spec.qmax()) {
                        dx[i] += dy[i];
                    }
                }
            }
        }, x);
    }

    // ---------------------------------------------------------------- entropy (Eq. 4-5)

    /**
     * A per-tensor uniform grid of {@code levels} points lo, lo + step, ..., the quantization levels
     * of Eq. 5; the soft-assignment temperature is the step Δ, as printed in the paper.
     */
    public record Grid(double lo, double step, int levels) {
        public Grid {
            if (!(step > 0) || !Double.isFinite(step) || !Double.isFinite(lo) || levels < 2) {
                throw new IllegalArgumentException("entropy grid: expected finite lo, step > 0 and >= 2 levels, got lo "
                        + lo + ", step " + step + ", levels " + levels);
            }
        }

        /** 2^bits levels spanning [min, max] (a degenerate range is widened to the quantizer's epsilon). */
        public static Grid spanning(double min, double max, int bits) {
            int m = 1 << bits;
            return new Grid(min, Math.max(max - min, UniformQuantizer.RANGE_EPS) / (m - 1), m);
        }

        double level(int m) {
            return lo + m * step;
        }
    }

    /** The soft assignment of one value: weights pi[0, len) of levels start, start + 1, .... */
    private static final class Soft {
        final double[] pi;
        int start;
        int len;

        Soft(int levels) {
            pi = new double[levels];
        }

        /** π_m(x) = softmax_m(−(x − q_m)² / Δ), over the levels within {@link #SOFT_CUTOFF} of the best. */
        void assign(double x, Grid g) {
            int nearest = (int) Math.max(0, Math.min(g.levels() - 1, Math.rint((x - g.lo()) / g.step())));
            double d0 = x - g.level(nearest);
            double radius = Math.sqrt(d0 * d0 + SOFT_CUTOFF * g.step());
            start = (int) Math.max(0, Math.ceil((x - radius - g.lo()) / g.step()));
            int end = (int) Math.min(g.levels() - 1, Math.floor((x + radius - g.lo()) / g.step()));
            start = Math.min(start, nearest);
            end = Math.max(end, nearest);
            len = end - start + 1;
            double top = -d0 * d0 / g.step();
            double sum = 0;
            for (int j = 0; j < len; j++) {
                double d = x - g.level(start + j);
                double e = Math.exp(-d * d / g.step() - top);
                pi[j] = e;
                sum += e;
            }
            for (int j = 0; j < len; j++) {
                pi[j] /= sum;
            }
        }

        /** Adds to dx the derivative of Σ_j grad[j] π_j through the softmax (logit slope −2(x − q)/Δ). */
        double backward(double x, Grid g, double[] grad) {
            double mean = 0;
            for (int j = 0; j < len; j++) {
                mean += pi[j] * slope(x, g, start + j);
            }
            double dx = 0;
            for (int j = 0; j < len; j++) {
                dx += grad[j] * pi[j] * (slope(x, g, start + j) - mean);
            }
            return dx;
        }

        private static double slope(double x, Grid g, int m) {
            return -2.0 * (x - g.level(m)) / g.step();
        }
    }

    /**
     * The conditional entropy H(B | A) in nats (Eq. 4 with the soft distribution of Eq. 5): a and b of
     * equal shape, element e contributing the soft assignments π(a_e) on grid ga and π(b_e) on grid gb;
     * P(m, n) = mean over elements of π_m(a_e) π_n(b_e); H = −Σ P(m, n) log(P(m, n) / Σ_n' P(m, n')).
     * Rank-0 result. Backward: ∂H/∂P(m, n) = −log P(n | m), then through both soft assignments.
     */
    public static Tensor softConditionalEntropy(Tape tape, Tensor a, Tensor b, Grid ga, Grid gb) {
        require(a.sameShape(b) && a.numel() > 0, "softConditionalEntropy", "a and b of equal non-empty shape", a, b);
        int ma = ga.levels();
        int mb = gb.levels();
        int n = a.numel();
        float[] ad = a.data();
        float[] bd = b.data();
        double[] joint = new double[ma * mb]; // (Ma, Mb)
        Soft sa = new Soft(ma);
        Soft sb = new Soft(mb);
        for (int e = 0; e < n; e++) {
            sa.assign(ad[e], ga);
            sb.assign(bd[e], gb);
            for (int i = 0; i < sa.len; i++) {
                int row = (sa.start + i) * mb + sb.start;
                double pa = sa.pi[i];
                for (int j = 0; j < sb.len; j++) {
                    joint[row + j] += pa * sb.pi[j];
                }
            }
        }
        double[] g = new double[ma * mb]; // −log P(n | m), 0 where P(m, n) = 0
        double h = 0;
        for (int m = 0; m < ma; m++) {
            double marginal = 0;
            for (int k = 0; k < mb; k++) {
                joint[m * mb + k] /= n;
                marginal += joint[m * mb + k];
            }
            for (int k = 0; k < mb; k++) {
                double pj = joint[m * mb + k];
                if (pj > 0) {
                    double c = -Math.log(pj / marginal);
                    g[m * mb + k] = c;
                    h += pj * c;
                }
            }
        }
        Tensor out = Tensor.of(new float[] {(float) h});
        return tape.record("veoSoftConditionalEntropy", out, () -> {
            double up = out.grad()[0] / n;
            float[] da = a.requiresGrad() ? a.gradOrCreate() : null;
            float[] db = b.requiresGrad() ? b.gradOrCreate() : null;
            Soft xa = new Soft(ma);
            Soft xb = new Soft(mb);
            double[] gradA = new double[ma];
            double[] gradB = new double[mb];
            for (int e = 0; e < n; e++) {
                xa.assign(ad[e], ga);
                xb.assign(bd[e], gb);
                Arrays.fill(gradA, 0, xa.len, 0);
                Arrays.fill(gradB, 0, xb.len, 0);
                for (int i = 0; i < xa.len; i++) {
                    int row = (xa.start + i) * mb + xb.start;
                    for (int j = 0; j < xb.len; j++) {
                        double c = g[row + j];
                        gradA[i] += c * xb.pi[j];
                        gradB[j] += c * xa.pi[i];
                    }
                }
                if (da != null) {
                    da[e] += (float) (up * xa.backward(ad[e], ga, gradA));
                }
                if (db != null) {
                    db[e] += (float) (up * xb.backward(bd[e], gb, gradB));
                }
            }
        }, a, b);
    }

    // ---------------------------------------------------------------- errors (Eq. 9)

    /**
     * ||a − ref|| / ||ref|| (L2 over all elements), rank 0; ref is a constant of a's shape with a
     * non-zero norm. Backward: da += (a − ref) / (||a − ref|| ||ref||), 0 where a equals ref.
     */
    public static Tensor relativeL2(Tape tape, Tensor a, Tensor ref) {
        require(a.sameShape(ref) && a.numel() > 0 && !ref.requiresGrad(), "relativeL2",
                "a and a constant reference of equal non-empty shape", a, ref);
        float[] ad = a.data();
        float[] rd = ref.data();
        double num = 0;
        double den = 0;
        for (int i = 0; i < ad.length; i++) {
            double d = (double) ad[i] - rd[i];
            num += d * d;
            den += (double) rd[i] * rd[i];
        }
        if (!(den > 0)) {
            throw new IllegalArgumentException("relativeL2: the reference has norm 0; expected a non-zero reference");
        }
        double diff = Math.sqrt(num);
        double norm = Math.sqrt(den);
        Tensor out = Tensor.of(new float[] {(float) (diff / norm)});
        return tape.record("veoRelativeL2", out, () -> {
            if (diff == 0) {
                return;
            }
            double c = out.grad()[0] / (diff * norm);
            float[] dg = a.gradOrCreate();
            for (int i = 0; i < ad.length; i++) {
                dg[i] += (float) (c * ((double) ad[i] - rd[i]));
            }
        }, a);
    }

    private static void require(boolean ok, String op, String expected, Tensor... got) {
        if (!ok) {
            StringBuilder sb = new StringBuilder(op).append(": expected ").append(expected).append(", got");
            for (Tensor t : got) {
                sb.append(' ').append(Arrays.toString(t.shape()));
            }
            throw new IllegalArgumentException(sb.toString());
        }
    }
}
