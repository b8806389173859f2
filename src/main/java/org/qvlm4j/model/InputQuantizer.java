package org.qvlm4j.model;

import java.util.Arrays;
import org.qvlm4j.kernels.PackedMatrix;
import org.qvlm4j.kernels.QuantFormat;
import org.qvlm4j.kernels.QuantizedActivations;

/**
 * Quantization of a linear layer's input as a quantized checkpoint describes it: uniform codes of
 * 2 to 8 bits, symmetric or asymmetric, one range per tensor, input channel, token or group of a
 * token, ranges either static (from calibration, fixed at load) or dynamic (min/max of the input at
 * hand), optionally shrunk by a clip ratio. Two ways to execute it:
 * <ul>
 *   <li>{@link Execution#FAKE}: quantize-dequantize the input in place, then the layer's ordinary
 *       (weight-only packed or floating-point) product;</li>
 *   <li>{@link Execution#INTEGER}: signed codes and per-token/group scales as
 *       {@link QuantizedActivations} for {@code QuantGemm.matmulInt} with packed INT8/INT6/INT4
 *       weights; the codes and scales are exactly those of the fake path, so the two differ only in
 *       the order of float summation. Possible for symmetric 8- or 4-bit inputs quantized per
 *       token (dynamic), per tensor, or per group of a multiple of {@value PackedMatrix#GROUP_QUANTUM}
 *       dividing K (dynamic) ({@link #integerUnsupported} names what rules a case out).</li>
 * </ul>
 *
 * <p>The arithmetic is that of {@code org.qvlm4j.quant.UniformQuantizer} (which the model cannot
 * depend on), step for step in the same float and double operations, so a checkpoint reproduces the
 * fake-quantization taps of the quantization library bit for bit: ranges widened to include 0,
 * Δ = max(hi − lo, ε) / (2^b − 1) and zp = clamp(rint(−lo / Δ)) (asymmetric) or
 * Δ = max(absmax, ε) / (2^(b−1) − 1) (symmetric, codes in ±(2^(b−1) − 1)), code = clamp(rint(x / Δ)
 * + zp), x̂ = (code − zp) · Δ; a clip ratio r scales the range to [r·lo, r·hi] in double.
 *
 * <p>Static per-token ranges are per token <em>position</em>: one range for each of a fixed number
 * of positions (the vision tower's patches and class token, the projector's image features; Q-VLM's
 * ViT setting), so such a quantizer takes only inputs of exactly that many tokens.
 *
 * <p>Left out: percentile clipping (it needs a sort per slot at run time), static per-group ranges,
 * non-uniform formats, asymmetric integer activations (the kernels have no activation zero points).
 */
public final class InputQuantizer {
    /** Smallest range width a scale is computed from, as the quantization library's uniform quantizer. */
    public static final double RANGE_EPS = 1e-8;
    public static final int MIN_BITS = 2;
    public static final int MAX_BITS = 8;

    /** Which values share a range: all, one input channel (column), one token (row), a group of a token. */
    public enum Granularity { PER_TENSOR, PER_CHANNEL, PER_TOKEN, PER_GROUP }

    /** How the quantized input meets the weight. */
    public enum Execution { INTEGER, FAKE }

    /**
     * What the quantizer does.
     *
     * @param groupSize PER_GROUP group length along K (the last group may be partial), else 0
     * @param clipRatio range scale r in (0, 1]; 1 = no clipping
     */
    public record Spec(int bits, boolean symmetric, Granularity granularity, int groupSize, boolean dynamic,
                       double clipRatio) {
        public Spec {
            if (bits < MIN_BITS || bits > MAX_BITS) {
                throw new IllegalArgumentException("input quantizer bits: expected " + MIN_BITS + ".." + MAX_BITS
                        + ", got " + bits);
            }
            if (granularity == null) {
                throw new IllegalArgumentException("input quantizer granularity: expected one of "
                        + Arrays.toString(Granularity.values()) + ", got null");
            }
            if ((granularity == Granularity.PER_GROUP) != (groupSize > 0)) {
                throw new IllegalArgumentException("input quantizer group size: expected > 0 exactly for PER_GROUP, got "
                        + groupSize + " for " + granularity);
            }
            if (!dynamic && granularity == Granularity.PER_GROUP) {
                throw new IllegalArgumentException("input quantizer granularity: static ranges need PER_TENSOR, "
                        + "PER_CHANNEL or PER_TOKEN (per position), got " + granularity);
            }
            if (!(clipRatio > 0 && clipRatio <= 1)) {
                throw new IllegalArgumentException("input quantizer clip ratio: expected in (0, 1], got " + clipRatio);
            }
        }

        /** Largest code: 2^b − 1 (asymmetric) or 2^(b−1) − 1 (symmetric). */
        public int qmax() {
            return symmetric ? (1 << (bits - 1)) - 1 : (1 << bits) - 1;
        }

        /** Smallest code: 0 (asymmetric) or −qmax (symmetric). */
        public int qmin() {
            return symmetric ? -qmax() : 0;
        }

        /** Ranges of a (T, K) input. */
        int slots(int T, int K) {
            return switch (granularity) {
                case PER_TENSOR -> 1;
                case PER_CHANNEL -> K;
                case PER_TOKEN -> T;
                case PER_GROUP -> Math.multiplyExact(T, groupsPerToken(K));
            };
        }

        int groupsPerToken(int K) {
            return (K + groupSize - 1) / groupSize;
        }

        int slot(int t, int k, int K) {
            return switch (granularity) {
                case PER_TENSOR -> 0;
                case PER_CHANNEL -> k;
                case PER_TOKEN -> t;
                case PER_GROUP -> t * groupsPerToken(K) + k / groupSize;
            };
        }
    }

    private final Spec spec;
    private final Execution execution;
    private final int cols;
    private final float[] rangeLo; // static: (slots) as given, before clipping; null when dynamic
    private final float[] rangeHi;
    private final float[] scale; // static: (slots)
    private final int[] zero; // static: (slots)

    private InputQuantizer(Spec spec, Execution execution, int cols, float[] lo, float[] hi) {
        this.spec = spec;
        this.execution = execution;
        this.cols = cols;
        if (spec.dynamic()) {
            if (lo != null || hi != null) {
                throw new IllegalArgumentException("dynamic input quantizer takes no static ranges");
            }
            rangeLo = null;
            rangeHi = null;
            scale = null;
            zero = null;
            return;
        }
        boolean positions = spec.granularity() == Granularity.PER_TOKEN;
        int n = positions ? (lo == null ? 0 : lo.length) : spec.slots(1, cols);
        if (lo == null || hi == null || lo.length != n || hi.length != n || n == 0) {
            throw new IllegalArgumentException("static " + spec.granularity() + " input quantizer of K = " + cols
                    + " needs " + (positions ? "one range per token position (at least one)" : n + " ranges")
                    + ", got " + (lo == null ? "none" : lo.length) + " and " + (hi == null ? "none" : hi.length));
        }
        for (int i = 0; i < n; i++) {
            if (!(lo[i] <= hi[i]) || !Float.isFinite(lo[i]) || !Float.isFinite(hi[i])) {
                throw new IllegalArgumentException("static input range " + i + ": expected finite lo <= hi, got ["
                        + lo[i] + ", " + hi[i] + "]");
            }
        }
        rangeLo = lo.clone();
        rangeHi = hi.clone();
        scale = new float[n];
        zero = new int[n];
        params(spec, rangeLo.clone(), rangeHi.clone(), n, scale, zero);
    }

    /** A quantizer computing its ranges from each input of K columns. */
    public static InputQuantizer dynamic(Spec spec, Execution execution, int cols) {
        if (!spec.dynamic()) {
            throw new IllegalArgumentException("input quantizer: " + spec + " is static; use fromRanges");
        }
        return new InputQuantizer(spec, execution, cols, null, null);
    }

    /**
     * A static quantizer of K = cols inputs with per-slot calibration ranges [lo, hi]: 1 slot per
     * tensor, K per channel, or one per token position (then it takes inputs of exactly that many tokens).
     */
    public static InputQuantizer fromRanges(Spec spec, Execution execution, int cols, float[] lo, float[] hi) {
        if (spec.dynamic()) {
            throw new IllegalArgumentException("input quantizer: " + spec + " is dynamic; use dynamic");
        }
        return new InputQuantizer(spec, execution, cols, lo, hi);
    }

    public Spec spec() {
        return spec;
    }

    public Execution execution() {
        return execution;
    }

    /** Static scales per slot (a copy), or null when dynamic. */
    public float[] staticScales() {
        return scale == null ? null : scale.clone();
    }

    /** Static zero points per slot (a copy; 0 when symmetric), or null when dynamic. */
    public int[] staticZeroPoints() {
        return zero == null ? null : zero.clone();
    }

    /** Static ranges' lower ends as given (a copy), or null when dynamic. */
    public float[] staticLo() {
        return rangeLo == null ? null : rangeLo.clone();
    }

    /** Static ranges' upper ends as given (a copy), or null when dynamic. */
    public float[] staticHi() {
        return rangeHi == null ? null : rangeHi.clone();
    }

    /** Scale and zero point per slot from ranges lo/hi (changed in place by the clip ratio). */
    private static void params(Spec spec, float[] lo, float[] hi, int n, float[] scale, int[] zero) {
        if (spec.clipRatio() != 1) {
            for (int i = 0; i < n; i++) {
                lo[i] = (float) (lo[i] * spec.clipRatio());
                hi[i] = (float) (hi[i] * spec.clipRatio());
            }
        }
        int qmax = spec.qmax();
        for (int s = 0; s < n; s++) {
            float l = Math.min(lo[s], 0f);
            float h = Math.max(hi[s], 0f);
            if (spec.symmetric()) {
                double absmax = Math.max(-(double) l, h);
                scale[s] = (float) (Math.max(absmax, RANGE_EPS) / qmax);
                zero[s] = 0;
            } else {
                scale[s] = (float) (Math.max((double) h - l, RANGE_EPS) / qmax);
                zero[s] = (int) clamp(Math.rint(-l / scale[s]), 0, qmax);
            }
        }
    }

    /** Parameters for input x (T, K): the static ones, or min/max per slot of x. */
    private void paramsFor(float[] x, int T, int K, float[][] scaleOut, int[][] zeroOut) {
        if (!spec.dynamic()) {
            scaleOut[0] = scale;
            zeroOut[0] = zero;
            return;
        }
        int n = spec.slots(T, K);
        float[] lo = new float[n];
        float[] hi = new float[n];
        Arrays.fill(lo, Float.POSITIVE_INFINITY);
        Arrays.fill(hi, Float.NEGATIVE_INFINITY);
        for (int t = 0; t < T; t++) {
            for (int k = 0; k < K; k++) {
                float v = x[t * K + k];
                int s = spec.slot(t, k, K);
                lo[s] = Math.min(lo[s], v);
                hi[s] = Math.max(hi[s], v);
            }
        }
        float[] sc = new float[n];
        int[] zp = new int[n];
        params(spec, lo, hi, n, sc, zp);
        scaleOut[0] = sc;
        zeroOut[0] = zp;
    }

    private void checkInput(float[] x, int T, int K) {
        if (K != cols || T < 0 || x.length < (long) T * K) {
            throw new IllegalArgumentException("input quantizer of K = " + cols + ": input (" + T + ", " + K
                    + ") with " + x.length + " floats");
        }
        if (scale != null && spec.granularity() == Granularity.PER_TOKEN && T != scale.length) {
            throw new IllegalArgumentException("static per-token-position input quantizer of " + scale.length
                    + " positions: input has " + T + " tokens");
        }
    }

    /** Replaces x (T, K) by its quantize-dequantize image. */
    public void fakeQuantize(float[] x, int T, int K) {
        checkInput(x, T, K);
        if (T == 0) {
            return;
        }
        float[][] sc = new float[1][];
        int[][] zp = new int[1][];
        paramsFor(x, T, K, sc, zp);
        int qmin = spec.qmin();
        int qmax = spec.qmax();
        for (int t = 0; t < T; t++) {
            for (int k = 0; k < K; k++) {
                int i = t * K + k;
                int s = spec.slot(t, k, K);
                int z = zp[0][s];
                x[i] = (code(x[i], sc[0][s], z, qmin, qmax) - z) * sc[0][s];
            }
        }
    }

    /**
     * Integer codes and scales of x (T ≥ 1, K) for the integer product; with dequantized non-null it
     * also receives x̂ = code · Δ (T, K), the fake path's image. Only for a quantizer whose spec
     * {@link #integerGroup} accepts.
     */
    public QuantizedActivations quantizeInt(float[] x, int T, int K, float[] dequantized) {
        checkInput(x, T, K);
        int group = integerGroup(spec, K);
        if (group < 0) {
            throw new IllegalArgumentException("input quantizer " + spec + " has no integer form for K = " + K);
        }
        float[][] sc = new float[1][];
        int[][] zp = new int[1][];
        paramsFor(x, T, K, sc, zp);
        int qmax = spec.qmax();
        int[] codes = new int[T * K]; // (T, K)
        for (int t = 0; t < T; t++) {
            for (int k = 0; k < K; k++) {
                int i = t * K + k;
                int s = spec.slot(t, k, K);
                codes[i] = code(x[i], sc[0][s], 0, -qmax, qmax);
                if (dequantized != null) {
                    dequantized[i] = codes[i] * sc[0][s];
                }
            }
        }
        int groups = K / group;
        float[] scales = new float[T * groups]; // (T, groups)
        for (int t = 0; t < T; t++) {
            for (int g = 0; g < groups; g++) {
                scales[t * groups + g] = sc[0][spec.slot(t, g * group, K)];
            }
        }
        return new QuantizedActivations(T, K, spec.bits(), group, codes, scales);
    }

    /**
     * The activation group of the integer form (K for per-token and per-tensor ranges, the group
     * size for groups), or −1 when the spec has none: asymmetric, not 8 or 4 bits, per-channel, or
     * groups that do not tile K in multiples of {@value PackedMatrix#GROUP_QUANTUM}.
     */
    public static int integerGroup(Spec spec, int K) {
        if (!spec.symmetric() || (spec.bits() != 8 && spec.bits() != 4)) {
            return -1;
        }
        return switch (spec.granularity()) {
            case PER_TOKEN, PER_TENSOR -> K;
            case PER_GROUP -> spec.groupSize() == K
                    || (K % spec.groupSize() == 0 && spec.groupSize() % PackedMatrix.GROUP_QUANTUM == 0)
                    ? spec.groupSize() : -1;
            case PER_CHANNEL -> -1;
        };
    }

    /**
     * Why inputs under spec cannot take the integer path against packed weights of the given format
     * and group size with K inputs, or null when they can.
     */
    public static String integerUnsupported(Spec spec, QuantFormat weightFormat, int weightGroup, int K) {
        if (weightFormat == null) {
            return "the weight is not packed";
        }
        if (!weightFormat.isUniform()) {
            return "the integer kernels take INT8/INT6/INT4 weights, not " + weightFormat;
        }
        if (!spec.symmetric()) {
            return "asymmetric inputs (the integer kernels take symmetric codes without zero points)";
        }
        if (spec.bits() != 8 && spec.bits() != 4) {
            return spec.bits() + "-bit inputs (the integer kernels take 8- or 4-bit codes)";
        }
        int g = integerGroup(spec, K);
        if (g < 0) {
            return spec.granularity() == Granularity.PER_CHANNEL
                    ? "per-channel input ranges (the integer kernels scale per token or group)"
                    : "input group " + spec.groupSize() + " does not tile K = " + K + " in multiples of "
                            + PackedMatrix.GROUP_QUANTUM;
        }
        if (Math.max(g, weightGroup) % Math.min(g, weightGroup) != 0) {
            return "input group " + g + " and weight group " + weightGroup + " do not divide one another";
        }
        long bound = (long) Math.min(g, weightGroup) * weightFormat.maxCode() * spec.qmax();
        if (bound > Integer.MAX_VALUE) {
            return "segment sums of " + Math.min(g, weightGroup) + " products can exceed int32";
        }
        return null;
    }

    private static int code(float x, float scale, int zp, int qmin, int qmax) {
        return (int) clamp(Math.rint(x / scale) + zp, qmin, qmax);
    }

    private static double clamp(double v, double lo, double hi) {
        return v < lo ? lo : (v > hi ? hi : v);
    }

    @Override
    public String toString() {
        return "InputQuantizer[" + spec + ", " + execution + "]";
    }
}
