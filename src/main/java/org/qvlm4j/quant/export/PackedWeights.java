package org.qvlm4j.quant.export;

import java.util.Arrays;
import org.qvlm4j.kernels.PackedMatrix;
import org.qvlm4j.kernels.QuantFormat;
import org.qvlm4j.quant.QuantParams;
import org.qvlm4j.quant.QuantSpec;
import org.qvlm4j.quant.UniformQuantizer;

/**
 * Re-expresses a fake-quantized weight (the dequantized image a quantization method left in the
 * model) as a {@link PackedMatrix} whose dequantization reproduces it bit for bit.
 *
 * <p>Methods do not expose their scales and zero points, so each packed group (a row, or a group of
 * a row) is solved on its own. Candidates, in order: the spec's parameters computed from the
 * pre-quantization weight (exact for RTN and any method quantizing on the weight's own min/max
 * grid), those computed from the image, and a recovery from the image's values: their spacing
 * gives Δ up to an integer factor, each value's multiple m of it follows, and the floats within a
 * few ulps of v / m are tried until every (m · Δ) reproduces its value (clipped ranges, as AWQ's,
 * and GPTQ's per-group parameters of the updated weight land here). A group is accepted only when
 * every dequantized code equals the image; NF4 groups take absmax from the weight or the image
 * (exact for double-quantized absmax too: the block's largest value is ±absmax).
 *
 * <p>A column scale s covers images in the original input basis, fl(G / s_j) for a grid weight G
 * (a smoothing scale folded back into a weight-only image): the packed matrix then holds G, and a
 * group is accepted when every fl(dequantized / s_j) equals the image.
 *
 * <p>When some group has no exact form the weight is refused with the largest deviation of its
 * best candidate (e.g. a low-rank term was added: see {@link LowRankTerm}). Left out: bit widths
 * other than 4, 6, 8 (the kernels' formats), groups that are not K or a multiple of
 * {@value PackedMatrix#GROUP_QUANTUM} dividing K, NF4 blocks spanning rows.
 */
public final class PackedWeights {
    /** Floats tried on each side of a recovered step (and NF4 absmax) before a group is given up. */
    static final int ULP_SEARCH = 8;
    /** Integer factors by which the smallest spacing of a group's values may exceed its step. */
    static final int MAX_SPACING_FACTOR = 4;
    /**
     * Differences between a group's values below this fraction of its absmax are rounding, not
     * grid spacing: a grid step is at least absmax / 255, rounding about 1e-7 of absmax.
     */
    static final double SPACING_NOISE = 1e-5;
    private static final int NF4_CODES = 16;

    private PackedWeights() {
    }

    /**
     * Packs image (rows, cols) under spec; original (same shape, may be null) is the weight before
     * quantization. what names the tensor in error messages.
     */
    public static PackedMatrix pack(String what, float[] image, float[] original, int rows, int cols, QuantSpec spec) {
        return pack(what, image, null, original, rows, cols, spec);
    }

    /**
     * As {@link #pack(String, float[], float[], int, int, QuantSpec)} for an image fl(G / s_j) of a
     * grid weight G when columnScale s (K) is not null; original is then the pre-quantization
     * weight in G's basis (W · diag(s)). The result holds G.
     */
    public static PackedMatrix pack(String what, float[] image, float[] columnScale, float[] original, int rows,
                                    int cols, QuantSpec spec) {
        int group = groupSize(what, spec, cols);
        float[] approx = image; // (N, K) the grid weight, up to rounding when a column scale is folded in
        if (columnScale != null) {
            approx = new float[image.length];
            for (int r = 0; r < rows; r++) {
                for (int c = 0; c < cols; c++) {
                    approx[r * cols + c] = (float) ((double) image[r * cols + c] * columnScale[c]);
                }
            }
        }
        Target t = new Target(image, columnScale, approx, original, rows, cols, group);
        return spec.format() == QuantSpec.Format.NF4 ? nf4(what, t, spec) : uniform(what, t, spec);
    }

    /** The image to reproduce, and how a dequantized value is compared with it. */
    private record Target(float[] image, float[] columnScale, float[] approx, float[] original, int rows, int cols,
                          int group) {
        boolean matches(int i, float dequantized) {
            float v = columnScale == null ? dequantized : dequantized / columnScale[i % cols];
            return Float.floatToIntBits(v) == Float.floatToIntBits(image[i]);
        }

        float deviation(int i, float dequantized) {
            float v = columnScale == null ? dequantized : dequantized / columnScale[i % cols];
            return Float.isNaN(v - image[i]) ? Float.POSITIVE_INFINITY : Math.abs(v - image[i]);
        }
    }

    private static int groupSize(String what, QuantSpec spec, int cols) {
        if (spec.format() == QuantSpec.Format.NF4) {
            int b = spec.groupSize();
            if (b == cols || (cols % b == 0 && b % PackedMatrix.GROUP_QUANTUM == 0)) {
                return b;
            }
            throw new IllegalArgumentException(what + ": NF4 block " + b + " does not tile rows of K = " + cols
                    + " (expected K or a multiple of " + PackedMatrix.GROUP_QUANTUM + " dividing K)");
        }
        if (spec.bits() != 8 && spec.bits() != 6 && spec.bits() != 4) {
            throw new IllegalArgumentException(what + ": " + spec + " has " + spec.bits()
                    + " bits; packed formats exist for 4, 6 and 8 bits");
        }
        return switch (spec.granularity()) {
            case PER_TENSOR, PER_CHANNEL -> cols;
            case PER_GROUP -> {
                int g = spec.groupSize();
                if (g >= cols) {
                    yield cols;
                }
                if (cols % g == 0 && g % PackedMatrix.GROUP_QUANTUM == 0) {
                    yield g;
                }
                throw new IllegalArgumentException(what + ": group size " + g + " with K = " + cols
                        + " is not packable (expected >= K, or a multiple of " + PackedMatrix.GROUP_QUANTUM
                        + " dividing K)");
            }
            default -> throw new IllegalArgumentException(what + ": weight granularity " + spec.granularity()
                    + " has no packed form");
        };
    }

    static QuantFormat format(int bits) {
        return switch (bits) {
            case 8 -> QuantFormat.INT8;
            case 6 -> QuantFormat.INT6;
            case 4 -> QuantFormat.INT4;
            default -> throw new IllegalArgumentException("no packed format for " + bits + " bits");
        };
    }

    /** One packed group's solution: step, zero point (0 when symmetric) and multiples m = code − zp. */
    private record Solution(float scale, int zero, int[] m) {
    }

    private static PackedMatrix uniform(String what, Target t, QuantSpec spec) {
        UniformQuantizer uq = new UniformQuantizer(spec);
        QuantParams fromOriginal = t.original() == null ? null : uq.params(t.original(), t.rows(), t.cols());
        QuantParams fromImage = uq.params(t.approx(), t.rows(), t.cols());
        QuantFormat fmt = format(spec.bits());
        int cols = t.cols();
        int group = t.group();
        int groups = cols / group;
        float[] scales = new float[t.rows() * groups]; // (N, groups)
        byte[] zeros = spec.symmetric() ? null : new byte[t.rows() * groups];
        int[] codes = new int[t.rows() * cols]; // (N, K)
        int shift = spec.symmetric() ? fmt.symmetricZero() : 0;
        float worst = 0f;
        int failed = 0;
        for (int r = 0; r < t.rows(); r++) {
            for (int g = 0; g < groups; g++) {
                int from = r * cols + g * group;
                int to = from + group;
                float[] dev = {Float.POSITIVE_INFINITY};
                Solution s = null;
                for (QuantParams p : new QuantParams[] {fromOriginal, fromImage}) {
                    if (p != null && s == null) {
                        int slot = QuantParams.slot(spec, r, g * group, cols);
                        s = tryParams(t, from, to, p.scale()[slot], p.zeroPoint()[slot], spec, dev);
                    }
                }
                if (s == null) {
                    s = recover(t, from, to, spec, fromOriginal == null ? -1
                            : fromOriginal.zeroPoint()[QuantParams.slot(spec, r, g * group, cols)]);
                }
                if (s == null) {
                    failed++;
                    worst = Math.max(worst, dev[0]);
                    continue;
                }
                scales[r * groups + g] = s.scale();
                if (zeros != null) {
                    zeros[r * groups + g] = (byte) s.zero();
                }
                for (int i = from; i < to; i++) {
                    codes[i] = s.m()[i - from] + s.zero() + shift;
                }
            }
        }
        if (failed > 0) {
            throw offGrid(what, spec, failed, t.rows() * groups, worst);
        }
        return PackedMatrix.ofCodes(fmt, t.rows(), cols, group, codes, scales, zeros);
    }

    private static IllegalArgumentException offGrid(String what, QuantSpec spec, int failed, int total, float worst) {
        return new IllegalArgumentException(what + ": the quantized weight is not on the " + spec
                + " per-row/group grid (" + failed + " of " + total + " groups have no exact packed form; largest "
                + "deviation of a packed candidate " + worst + "); the method adds terms the packed format cannot store");
    }

    /** The group [from, to) under the uniform quantizer's (scale, zp), or null (dev takes the worst deviation). */
    private static Solution tryParams(Target t, int from, int to, float scale, int zp, QuantSpec spec, float[] dev) {
        int[] m = new int[to - from];
        float worst = 0f;
        boolean ok = true;
        for (int i = from; i < to; i++) {
            int code = (int) clamp(Math.rint(t.approx()[i] / scale) + zp, spec.qmin(), spec.qmax());
            m[i - from] = code - zp;
            float d = (code - zp) * scale;
            if (!t.matches(i, d)) {
                ok = false;
                worst = Math.max(worst, t.deviation(i, d));
            }
        }
        if (!ok) {
            dev[0] = Math.min(dev[0], worst);
            return null;
        }
        return new Solution(scale, zp, m);
    }

    /** A step Δ and multiples m reproducing the group from its values alone, or null. */
    private static Solution recover(Target t, int from, int to, QuantSpec spec, int preferredZero) {
        float[] v = Arrays.copyOfRange(t.approx(), from, to);
        float[] sorted = v.clone();
        Arrays.sort(sorted);
        float absmax = Math.max(-sorted[0], sorted[sorted.length - 1]);
        // with a folded column scale one grid value comes back as neighbouring floats: not a spacing
        float noise = (float) (absmax * SPACING_NOISE);
        float minGap = Float.POSITIVE_INFINITY;
        for (int i = 1; i < sorted.length; i++) {
            if (sorted[i] - sorted[i - 1] > noise) {
                minGap = Math.min(minGap, sorted[i] - sorted[i - 1]);
            }
        }
        if (absmax == 0f) {
            int[] m = new int[v.length];
            return fits(t, from, to, 1f, m) ? new Solution(1f, zeroFor(spec, 0, 0, preferredZero), m) : null;
        }
        float spacing = Float.isFinite(minGap) ? minGap : absmax;
        for (int factor = 1; factor <= MAX_SPACING_FACTOR; factor++) {
            double step = (double) spacing / factor;
            int[] m = new int[v.length];
            int mMin = 0;
            int mMax = 0;
            int best = 0;
            for (int i = 0; i < v.length; i++) {
                double q = Math.rint(v[i] / step);
                if (Math.abs(q) > (1 << spec.bits())) {
                    m = null;
                    break;
                }
                m[i] = (int) q;
                mMin = Math.min(mMin, m[i]);
                mMax = Math.max(mMax, m[i]);
                if (Math.abs(m[i]) > Math.abs(m[best])) {
                    best = i;
                }
            }
            boolean spans = m != null && (spec.symmetric() ? Math.max(-mMin, mMax) <= spec.qmax()
                    : mMax - mMin <= spec.qmax());
            if (!spans || m[best] == 0) {
                continue;
            }
            float base = v[best] / m[best];
            float up = base;
            float down = base;
            for (int u = 0; u <= ULP_SEARCH; u++) {
                for (float scale : u == 0 ? new float[] {base} : new float[] {up, down}) {
                    if (scale > 0 && fits(t, from, to, scale, m)) {
                        return new Solution(scale, zeroFor(spec, mMin, mMax, preferredZero), m);
                    }
                }
                up = Math.nextUp(up);
                down = Math.nextDown(down);
            }
        }
        return null;
    }

    private static boolean fits(Target t, int from, int to, float scale, int[] m) {
        for (int i = from; i < to; i++) {
            if (!t.matches(i, m[i - from] * scale)) {
                return false;
            }
        }
        return true;
    }

    /** A zero point placing multiples [mMin, mMax] inside the code range; the preferred one when it does. */
    private static int zeroFor(QuantSpec spec, int mMin, int mMax, int preferred) {
        if (spec.symmetric()) {
            return 0;
        }
        int lo = Math.max(0, -mMin);
        int hi = spec.qmax() - mMax;
        return preferred >= lo && preferred <= hi ? preferred : lo;
    }

    private static PackedMatrix nf4(String what, Target t, QuantSpec spec) {
        int cols = t.cols();
        int block = t.group();
        int groups = cols / block;
        float[][] candidates = new float[2][];
        if (t.original() != null) {
            candidates[0] = blockAbsmax(t.original(), t.rows(), cols, block);
        }
        candidates[1] = blockAbsmax(t.approx(), t.rows(), cols, block);
        float[] scales = new float[t.rows() * groups]; // (N, groups)
        int[] codes = new int[t.rows() * cols]; // (N, K)
        float worst = 0f;
        int failed = 0;
        for (int b = 0; b < t.rows() * groups; b++) {
            int from = b * block;
            float[] dev = {Float.POSITIVE_INFINITY};
            boolean done = false;
            for (int c = 0; c < candidates.length && !done; c++) {
                if (candidates[c] == null) {
                    continue;
                }
                float up = candidates[c][b] > 0 ? candidates[c][b] : 1f; // an all-zero block decodes to 0 at any scale
                float down = up;
                for (int u = 0; u <= (c == 0 ? 0 : ULP_SEARCH) && !done; u++) {
                    for (float s : u == 0 ? new float[] {up} : new float[] {up, down}) {
                        if (!done && s > 0 && nf4Block(t, from, from + block, s, codes, dev)) {
                            scales[b] = s;
                            done = true;
                        }
                    }
                    up = Math.nextUp(up);
                    down = Math.nextDown(down);
                }
            }
            if (!done) {
                failed++;
                worst = Math.max(worst, dev[0]);
            }
        }
        if (failed > 0) {
            throw offGrid(what, spec, failed, t.rows() * groups, worst);
        }
        return PackedMatrix.ofCodes(QuantFormat.NF4, t.rows(), cols, block, codes, scales, null);
    }

    /** Whether NF4 codes nearest to approx / absmax reproduce block [from, to); fills codes. */
    private static boolean nf4Block(Target t, int from, int to, float absmax, int[] codes, float[] dev) {
        float worst = 0f;
        boolean ok = true;
        for (int i = from; i < to; i++) {
            int q = nearestLevel(t.approx()[i] / absmax);
            codes[i] = q;
            float d = QuantFormat.nf4Level(q) * absmax;
            if (!t.matches(i, d)) {
                ok = false;
                worst = Math.max(worst, t.deviation(i, d));
            }
        }
        if (!ok) {
            dev[0] = Math.min(dev[0], worst);
        }
        return ok;
    }

    private static int nearestLevel(float x) {
        int best = 0;
        for (int i = 1; i < NF4_CODES; i++) {
            if (Math.abs(x - QuantFormat.nf4Level(i)) < Math.abs(x - QuantFormat.nf4Level(best))) {
                best = i;
            }
        }
        return best;
    }

    /** max |w| per (row, block) of w (rows, cols), row-major. */
    private static float[] blockAbsmax(float[] w, int rows, int cols, int block) {
        int groups = cols / block;
        float[] m = new float[rows * groups];
        for (int i = 0; i < rows * cols; i++) {
            int b = (i / cols) * groups + (i % cols) / block;
            m[b] = Math.max(m[b], Math.abs(w[i]));
        }
        return m;
    }

    private static double clamp(double v, double lo, double hi) {
        return v < lo ? lo : (v > hi ? hi : v);
    }

    /** Scales (rows, groups) of p, row-major. */
    public static float[] scales(PackedMatrix p) {
        float[] s = new float[p.rows() * p.groups()];
        for (int r = 0; r < p.rows(); r++) {
            for (int g = 0; g < p.groups(); g++) {
                s[r * p.groups() + g] = p.scale(r, g);
            }
        }
        return s;
    }

    /** Zero points (rows, groups) of an asymmetric uniform p, row-major, as unsigned bytes. */
    public static byte[] zeros(PackedMatrix p) {
        byte[] z = new byte[p.rows() * p.groups()];
        for (int r = 0; r < p.rows(); r++) {
            for (int g = 0; g < p.groups(); g++) {
                z[r * p.groups() + g] = (byte) p.zeroPoint(r, g);
            }
        }
        return z;
    }
}
