package org.qvlm4j.quant;

import java.util.Arrays;

/**
 * Per-slot value ranges [lo[i], hi[i]] of a tensor, in the slot layout of a {@link QuantSpec}'s
 * granularity (see {@link QuantParams#slots}): what a calibration observer hands to a static
 * activation quantizer, or what min/max over the data gives. Not clipped and not widened to 0;
 * the quantizer does both.
 */
public record Ranges(float[] lo, float[] hi) {
    public Ranges {
        if (lo == null || hi == null || lo.length != hi.length || lo.length == 0) {
            throw new IllegalArgumentException("ranges: lo and hi must be non-empty and of equal length, got "
                    + (lo == null ? "null" : lo.length) + " and " + (hi == null ? "null" : hi.length));
        }
        for (int i = 0; i < lo.length; i++) {
            if (!(lo[i] <= hi[i]) || !Float.isFinite(lo[i]) || !Float.isFinite(hi[i])) {
                throw new IllegalArgumentException("ranges: slot " + i + " has lo " + lo[i] + ", hi " + hi[i]
                        + "; expected finite lo <= hi");
            }
        }
    }

    /** One range for the whole tensor. */
    public static Ranges of(float lo, float hi) {
        return new Ranges(new float[] {lo}, new float[] {hi});
    }

    public int size() {
        return lo.length;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof Ranges r && Arrays.equals(lo, r.lo) && Arrays.equals(hi, r.hi);
    }

    @Override
    public int hashCode() {
        return 31 * Arrays.hashCode(lo) + Arrays.hashCode(hi);
    }

    @Override
    public String toString() {
        return "Ranges[lo=" + Arrays.toString(lo) + ", hi=" + Arrays.toString(hi) + "]";
    }
}
