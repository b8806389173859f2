package org.qvlm4j.quant;

import java.util.Arrays;

/**
 * Scales and zero points of a uniform quantizer, one per slot. The slot of element (r, c) of a
 * (rows, cols) tensor depends only on the spec's granularity:
 * PER_TENSOR → 0; PER_CHANNEL → r for weights (output channel), c for activations (input channel);
 * PER_TOKEN → r; PER_GROUP → r · ceil(cols / g) + c / g. Zero points are 0 for symmetric specs.
 */
public record QuantParams(QuantSpec spec, float[] scale, int[] zeroPoint) {
    public QuantParams {
        if (spec == null || spec.format() != QuantSpec.Format.UNIFORM) {
            throw new IllegalArgumentException("QuantParams need a UNIFORM spec, got " + spec);
        }
        if (scale.length != zeroPoint.length || scale.length == 0) {
            throw new IllegalArgumentException("QuantParams: " + scale.length + " scales and " + zeroPoint.length
                    + " zero points; expected equal, non-zero counts");
        }
    }

    /** Number of slots for a (rows, cols) tensor under spec. */
    public static int slots(QuantSpec spec, int rows, int cols) {
        return switch (spec.granularity()) {
            case PER_TENSOR -> 1;
            case PER_CHANNEL -> spec.target() == QuantSpec.Target.WEIGHT ? rows : cols;
            case PER_TOKEN -> rows;
            case PER_GROUP -> Math.multiplyExact(rows, groups(spec, cols));
            case BLOCK -> throw new IllegalArgumentException("BLOCK granularity has no uniform slots");
        };
    }

    /** Groups per row: ceil(cols / groupSize), the last one possibly partial. */
    public static int groups(QuantSpec spec, int cols) {
        return (cols + spec.groupSize() - 1) / spec.groupSize();
    }

    /** Slot of element (r, c) of a tensor with cols columns. */
    public static int slot(QuantSpec spec, int r, int c, int cols) {
        return switch (spec.granularity()) {
            case PER_TENSOR -> 0;
            case PER_CHANNEL -> spec.target() == QuantSpec.Target.WEIGHT ? r : c;
            case PER_TOKEN -> r;
            case PER_GROUP -> r * groups(spec, cols) + c / spec.groupSize();
            case BLOCK -> throw new IllegalArgumentException("BLOCK granularity has no uniform slots");
        };
    }

    public int size() {
        return scale.length;
    }

    /** Checks that these parameters fit a (rows, cols) tensor; the message names both counts. */
    public void requireShape(int rows, int cols) {
        int need = slots(spec, rows, cols);
        if (need != scale.length) {
            throw new IllegalArgumentException("quant params for " + spec + " hold " + scale.length
                    + " slots, a (" + rows + ", " + cols + ") tensor needs " + need);
        }
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof QuantParams p && spec.equals(p.spec) && Arrays.equals(scale, p.scale)
                && Arrays.equals(zeroPoint, p.zeroPoint);
    }

    @Override
    public int hashCode() {
        return spec.hashCode() * 31 + Arrays.hashCode(scale) * 17 + Arrays.hashCode(zeroPoint);
    }

    @Override
    public String toString() {
        return "QuantParams[" + spec + ", " + scale.length + " slots]";
    }
}
