package org.qvlm4j.quant.export;

import org.qvlm4j.kernels.PackedMatrix;
import org.qvlm4j.kernels.QuantFormat;
import org.qvlm4j.quant.QuantParams;
import org.qvlm4j.quant.QuantSpec;
import org.qvlm4j.quant.QuantizedTensor;
import org.qvlm4j.quant.UniformQuantizer;

/**
 * Re-expresses a fake-quantized weight (the dequantized image a quantization method left in the
 * model) as a {@link PackedMatrix} whose dequantization reproduces it bit for bit.
 *
 * <p>Methods do not expose their scales and zero points, so candidates are tried in turn: the
 * spec's per-row/group parameters computed from the pre-quantization weight (exact for RTN and for
 * any method that quantizes the original weight on its own min/max grid), then those computed from
 * the image itself. Codes are the image's codes under a candidate's parameters; a candidate is
 * accepted only if dequantizing the packed codes gives the image exactly. When none does, the
 * method's output is not on a per-row/group grid (e.g. a low-rank correction was added, or scales
 * were themselves quantized) and the weight is refused with the largest deviation in the message.
 *
 * <p>Left out: bit widths other than 4, 6, 8 (the kernels' formats), groups that are not K or a
 * multiple of {@value PackedMatrix#GROUP_QUANTUM} dividing K, NF4 blocks spanning rows.
 */
public final class PackedWeights {
    private PackedWeights() {
    }

    /**
     * Packs image (rows, cols) under spec; original (same shape, may be null) is the weight before
     * quantization. what names the tensor in error messages.
     */
    public static PackedMatrix pack(String what, float[] image, float[] original, int rows, int cols, QuantSpec spec) {
        int group = groupSize(what, spec, cols);
        float maxDev = Float.NaN;
        for (float[] source : new float[][] {original, image}) {
            if (source == null) {
                continue;
            }
            PackedMatrix p = spec.format() == QuantSpec.Format.NF4
                    ? nf4(image, source, rows, cols, group)
                    : uniform(image, source, rows, cols, spec, group);
            float dev = maxDeviation(p.dequantize(), image);
            if (dev == 0f) {
                return p;
            }
            maxDev = Float.isNaN(maxDev) ? dev : Math.min(maxDev, dev);
        }
        throw new IllegalArgumentException(what + ": the quantized weight is not on the " + spec
                + " per-row/group grid (smallest max deviation of a packed candidate " + maxDev
                + "); the method adds terms the packed format cannot store");
    }

    private static int groupSize(String what, QuantSpec spec, int cols) {
        if (spec.format() == QuantSpec.Format.NF4) {
            if (spec.doubleQuantBlock() > 0) {
                throw new IllegalArgumentException(what + ": " + spec + " quantizes the NF4 scales themselves "
                        + "(double quantization); packed checkpoints store F32 scales, use nf4 without dq");
            }
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

    private static PackedMatrix uniform(float[] image, float[] source, int rows, int cols, QuantSpec spec, int group) {
        UniformQuantizer uq = new UniformQuantizer(spec);
        QuantParams params = uq.params(source, rows, cols);
        QuantizedTensor q = uq.quantize(image, rows, cols, params);
        QuantFormat fmt = format(spec.bits());
        int groups = cols / group;
        float[] scales = new float[rows * groups]; // (N, groups)
        byte[] zeros = spec.symmetric() ? null : new byte[rows * groups];
        for (int r = 0; r < rows; r++) {
            for (int g = 0; g < groups; g++) {
                int s = QuantParams.slot(spec, r, g * group, cols);
                scales[r * groups + g] = params.scale()[s];
                if (zeros != null) {
                    zeros[r * groups + g] = (byte) params.zeroPoint()[s];
                }
            }
        }
        int shift = spec.symmetric() ? fmt.symmetricZero() : 0;
        int[] codes = q.codes().clone();
        for (int i = 0; i < codes.length; i++) {
            codes[i] += shift;
        }
        return PackedMatrix.ofCodes(fmt, rows, cols, group, codes, scales, zeros);
    }

    private static PackedMatrix nf4(float[] image, float[] source, int rows, int cols, int block) {
        PackedMatrix fromSource = PackedMatrix.quantize(source, rows, cols, QuantFormat.NF4, block, true);
        return PackedMatrix.pack(image, rows, cols, QuantFormat.NF4, block, scales(fromSource), null);
    }

    private static float maxDeviation(float[] a, float[] b) {
        float m = 0f;
        for (int i = 0; i < a.length; i++) {
            if (Float.floatToIntBits(a[i]) != Float.floatToIntBits(b[i])) {
                m = Math.max(m, Float.isNaN(a[i] - b[i]) ? Float.POSITIVE_INFINITY : Math.max(Math.abs(a[i] - b[i]),
                        Float.MIN_VALUE));
            }
        }
        return m;
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
