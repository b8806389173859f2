package org.qvlm4j.quant;

import java.math.BigDecimal;
import java.util.Locale;

/**
 * How one tensor is quantized, as plain data: format, bit width, symmetry, granularity, range
 * source and clipping. Specs are validated on construction (also when Jackson reads them) and
 * have a compact string form used in reports and {@code --help}:
 *
 * <pre>
 *   w4-asym-g128            weights, 4 bit, asymmetric, groups of 128 along the reduction axis
 *   w8-sym-channel          weights, 8 bit, symmetric, one scale per output channel (row)
 *   a8-asym-channel-static  inputs, 8 bit, one static range per input channel (column)
 *   a8-sym-token-dynamic    inputs, 8 bit, one range per token (row), computed on the fly
 *   a4-asym-tensor-static-clip0.9   range scaled by 0.9
 *   a4-asym-token-dynamic-pct0.999  range = [quantile 0.001, quantile 0.999]
 *   nf4-b64 / nf4-b64-dq256 QLoRA NormalFloat4, absmax per 64 values, optional double quantization
 * </pre>
 *
 * Grammar: {@code <w|a><bits>-<sym|asym>-<tensor|channel|token|g<size>>[-static|-dynamic]
 * [-clip<ratio>|-pct<p>]} and {@code nf4-b<block>[-dq<block2>]}. {@link #toString()} writes the
 * canonical form (activations always name static/dynamic, weights never) and {@link #parse}
 * reads it back to an equal spec.
 *
 * <p>Granularity axes: PER_CHANNEL means the output channel (row) of a weight (N, K) and the input
 * channel (column) of an activation (T, K); PER_GROUP cuts each row into consecutive groups of
 * {@code groupSize} along the reduction axis K, the last group holding the remainder; PER_TOKEN
 * is one range per activation row; BLOCK (NF4 only) cuts the row-major flattened tensor into
 * blocks. Weight ranges always come from the weight itself; activation ranges are either dynamic
 * (from the tensor being quantized) or static (supplied by calibration).
 *
 * <p>Fields: {@code groupSize} is the PER_GROUP group size or the NF4 block size (0 otherwise);
 * {@code dynamic} applies to activations only; {@code doubleQuantBlock} is the NF4 double
 * quantization block (0 = off). {@link #qmin()}/{@link #qmax()} give the integer code range.
 *
 * <p>Left out: per-group static activation ranges (rejected), non-uniform formats other than NF4,
 * stochastic rounding.
 */
public record QuantSpec(Format format, Target target, int bits, boolean symmetric, Granularity granularity,
        int groupSize, boolean dynamic, Clip clip, int doubleQuantBlock) {

    /** Smallest and largest bit width of the uniform quantizer. */
    public static final int MIN_BITS = 2;
    public static final int MAX_BITS = 8;
    /** QLoRA / bitsandbytes defaults: absmax per 64 weights, absmax of the absmax per 256 blocks. */
    public static final int NF4_BLOCK = 64;
    public static final int NF4_DOUBLE_QUANT_BLOCK = 256;

    public enum Format { UNIFORM, NF4 }

    /** What the spec applies to: a linear's weight (N, K) or its input activation (T, K). */
    public enum Target { WEIGHT, ACTIVATION }

    public enum Granularity { PER_TENSOR, PER_CHANNEL, PER_GROUP, PER_TOKEN, BLOCK }

    public enum ClipKind { NONE, RATIO, PERCENTILE }

    /**
     * Range clipping: RATIO scales the [lo, hi] range by value in (0, 1]; PERCENTILE takes
     * [quantile(1 − value), quantile(value)] of the values sharing a range, value in (0.5, 1].
     */
    public record Clip(ClipKind kind, double value) {
        public static final Clip NONE = new Clip(ClipKind.NONE, 0);

        public Clip {
            if (kind == null) {
                throw new IllegalArgumentException("clip kind must not be null");
            }
            switch (kind) {
                case NONE -> {
                    if (value != 0) {
                        throw new IllegalArgumentException("clip NONE takes value 0, got " + value);
                    }
                }
                case RATIO -> {
                    if (!(value > 0 && value <= 1)) {
                        throw new IllegalArgumentException("clip ratio must be in (0, 1], got " + value);
                    }
                }
                case PERCENTILE -> {
                    if (!(value > 0.5 && value <= 1)) {
                        throw new IllegalArgumentException("clip percentile must be in (0.5, 1], got " + value);
                    }
                }
                default -> throw new AssertionError(kind);
            }
        }

        public static Clip ratio(double r) {
            return new Clip(ClipKind.RATIO, r);
        }

        public static Clip percentile(double p) {
            return new Clip(ClipKind.PERCENTILE, p);
        }
    }

    public QuantSpec {
        require(format != null, "format", "UNIFORM or NF4", null);
        require(target != null, "target", "WEIGHT or ACTIVATION", null);
        require(granularity != null, "granularity", "one of PER_TENSOR, PER_CHANNEL, PER_GROUP, PER_TOKEN, BLOCK", null);
        require(clip != null, "clip", "a Clip (Clip.NONE for none)", null);
        if (format == Format.NF4) {
            require(target == Target.WEIGHT, "target", "WEIGHT for NF4", target);
            require(bits == 4, "bits", "4 for NF4", bits);
            require(symmetric, "symmetric", "true for NF4 (absmax scaling)", symmetric);
            require(granularity == Granularity.BLOCK, "granularity", "BLOCK for NF4", granularity);
            require(groupSize > 0, "groupSize", "NF4 block size > 0", groupSize);
            require(!dynamic, "dynamic", "false for weights", dynamic);
            require(clip.kind() == ClipKind.NONE, "clip", "NONE for NF4", clip);
            require(doubleQuantBlock >= 0, "doubleQuantBlock", "0 (off) or a block size > 0", doubleQuantBlock);
        } else {
            require(bits >= MIN_BITS && bits <= MAX_BITS, "bits", MIN_BITS + ".." + MAX_BITS, bits);
            require(granularity != Granularity.BLOCK, "granularity", "not BLOCK (NF4 only)", granularity);
            require(doubleQuantBlock == 0, "doubleQuantBlock", "0 (NF4 only)", doubleQuantBlock);
            if (granularity == Granularity.PER_GROUP) {
                require(groupSize > 0, "groupSize", "> 0 for PER_GROUP", groupSize);
            } else {
                require(groupSize == 0, "groupSize", "0 unless PER_GROUP", groupSize);
            }
            if (target == Target.WEIGHT) {
                require(granularity != Granularity.PER_TOKEN, "granularity", "not PER_TOKEN for weights",
                        granularity);
                require(!dynamic, "dynamic", "false for weights (their range is the weight's own)", dynamic);
            } else {
                require(dynamic || granularity != Granularity.PER_GROUP, "granularity",
                        "PER_GROUP only with dynamic activation ranges", granularity);
            }
        }
    }

    private static void require(boolean ok, String field, String expected, Object actual) {
        if (!ok) {
            throw new IllegalArgumentException("QuantSpec." + field + ": expected " + expected + ", got " + actual);
        }
    }

    /** A uniform weight spec (groupSize is used only for PER_GROUP, else pass 0). */
    public static QuantSpec weight(int bits, boolean symmetric, Granularity granularity, int groupSize) {
        return new QuantSpec(Format.UNIFORM, Target.WEIGHT, bits, symmetric, granularity, groupSize, false,
                Clip.NONE, 0);
    }

    /** A uniform activation spec without groups. */
    public static QuantSpec activation(int bits, boolean symmetric, Granularity granularity, boolean dynamic) {
        return new QuantSpec(Format.UNIFORM, Target.ACTIVATION, bits, symmetric, granularity, 0, dynamic,
                Clip.NONE, 0);
    }

    /** QLoRA NF4 with block 64, and double quantization with block 256 if asked. */
    public static QuantSpec nf4(boolean doubleQuant) {
        return new QuantSpec(Format.NF4, Target.WEIGHT, 4, true, Granularity.BLOCK, NF4_BLOCK, false, Clip.NONE,
                doubleQuant ? NF4_DOUBLE_QUANT_BLOCK : 0);
    }

    public QuantSpec withClip(Clip c) {
        return new QuantSpec(format, target, bits, symmetric, granularity, groupSize, dynamic, c, doubleQuantBlock);
    }

    /** Largest code: 2^b − 1 (asymmetric, codes from 0) or 2^(b−1) − 1 (symmetric). */
    public int qmax() {
        return symmetric ? (1 << (bits - 1)) - 1 : (1 << bits) - 1;
    }

    /** Smallest code: 0 (asymmetric) or −qmax (symmetric, the grid is kept symmetric around 0). */
    public int qmin() {
        return symmetric ? -qmax() : 0;
    }

    @Override
    public String toString() {
        if (format == Format.NF4) {
            return "nf4-b" + groupSize + (doubleQuantBlock > 0 ? "-dq" + doubleQuantBlock : "");
        }
        StringBuilder sb = new StringBuilder();
        sb.append(target == Target.WEIGHT ? 'w' : 'a').append(bits).append(symmetric ? "-sym-" : "-asym-");
        sb.append(switch (granularity) {
            case PER_TENSOR -> "tensor";
            case PER_CHANNEL -> "channel";
            case PER_TOKEN -> "token";
            case PER_GROUP -> "g" + groupSize;
            case BLOCK -> throw new AssertionError(granularity);
        });
        if (target == Target.ACTIVATION) {
            sb.append(dynamic ? "-dynamic" : "-static");
        }
        switch (clip.kind()) {
            case RATIO -> sb.append("-clip").append(number(clip.value()));
            case PERCENTILE -> sb.append("-pct").append(number(clip.value()));
            case NONE -> { }
        }
        return sb.toString();
    }

    private static String number(double v) {
        return new BigDecimal(Double.toString(v)).stripTrailingZeros().toPlainString();
    }

    /** Parses the compact form (see the class comment); the error names the token at fault. */
    public static QuantSpec parse(String text) {
        if (text == null || text.isBlank()) {
            throw new IllegalArgumentException("quant spec: expected e.g. 'w4-asym-g128', got '" + text + "'");
        }
        String s = text.trim().toLowerCase(Locale.ROOT);
        String[] parts = s.split("-");
        try {
            if (parts[0].equals("nf4")) {
                return parseNf4(text, parts);
            }
            return parseUniform(text, parts);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("quant spec '" + text + "': bad number (" + e.getMessage() + ")", e);
        }
    }

    private static QuantSpec parseNf4(String text, String[] parts) {
        int block = NF4_BLOCK;
        int dq = 0;
        for (int i = 1; i < parts.length; i++) {
            String p = parts[i];
            if (p.startsWith("b") && p.length() > 1) {
                block = Integer.parseInt(p.substring(1));
            } else if (p.startsWith("dq")) {
                dq = p.length() > 2 ? Integer.parseInt(p.substring(2)) : NF4_DOUBLE_QUANT_BLOCK;
            } else {
                throw badToken(text, p, "b<block> or dq[<block>]");
            }
        }
        return new QuantSpec(Format.NF4, Target.WEIGHT, 4, true, Granularity.BLOCK, block, false, Clip.NONE, dq);
    }

    private static QuantSpec parseUniform(String text, String[] parts) {
        String head = parts[0];
        Target target;
        if (head.startsWith("w")) {
            target = Target.WEIGHT;
        } else if (head.startsWith("a")) {
            target = Target.ACTIVATION;
        } else {
            throw badToken(text, head, "w<bits>, a<bits> or nf4");
        }
        if (head.length() < 2) {
            throw badToken(text, head, "w<bits> or a<bits>");
        }
        int bits = Integer.parseInt(head.substring(1));
        if (parts.length < 3) {
            throw new IllegalArgumentException("quant spec '" + text
                    + "': expected <w|a><bits>-<sym|asym>-<tensor|channel|token|g<size>>[...]");
        }
        boolean symmetric = switch (parts[1]) {
            case "sym" -> true;
            case "asym" -> false;
            default -> throw badToken(text, parts[1], "sym or asym");
        };
        Granularity g;
        int groupSize = 0;
        switch (parts[2]) {
            case "tensor" -> g = Granularity.PER_TENSOR;
            case "channel" -> g = Granularity.PER_CHANNEL;
            case "token" -> g = Granularity.PER_TOKEN;
            default -> {
                if (parts[2].startsWith("g") && parts[2].length() > 1) {
                    g = Granularity.PER_GROUP;
                    groupSize = Integer.parseInt(parts[2].substring(1));
                } else {
                    throw badToken(text, parts[2], "tensor, channel, token or g<size>");
                }
            }
        }
        boolean dynamic = false;
        Clip clip = Clip.NONE;
        for (int i = 3; i < parts.length; i++) {
            String p = parts[i];
            if (p.equals("dynamic")) {
                dynamic = true;
            } else if (p.equals("static")) {
                dynamic = false;
            } else if (p.startsWith("clip")) {
                clip = Clip.ratio(Double.parseDouble(p.substring(4)));
            } else if (p.startsWith("pct")) {
                clip = Clip.percentile(Double.parseDouble(p.substring(3)));
            } else {
                throw badToken(text, p, "static, dynamic, clip<ratio> or pct<p>");
            }
        }
        return new QuantSpec(Format.UNIFORM, target, bits, symmetric, g, groupSize, dynamic, clip, 0);
    }

    private static IllegalArgumentException badToken(String text, String token, String expected) {
        return new IllegalArgumentException("quant spec '" + text + "': token '" + token + "', expected " + expected);
    }
}
