package org.qvlm4j.quant;

import com.fasterxml.jackson.annotation.JsonIgnore;

/**
 * What happens to one category of linear: its weight spec and its input-activation spec, each
 * null when that tensor stays floating point.
 */
public record LinearQuant(QuantSpec weight, QuantSpec input) {
    public static final LinearQuant FP = new LinearQuant(null, null);

    public LinearQuant {
        if (weight != null && weight.target() != QuantSpec.Target.WEIGHT) {
            throw new IllegalArgumentException("weight spec must target WEIGHT, got " + weight);
        }
        if (input != null && input.target() != QuantSpec.Target.ACTIVATION) {
            throw new IllegalArgumentException("input spec must target ACTIVATION, got " + input);
        }
    }

    @JsonIgnore
    public boolean isFloatingPoint() {
        return weight == null && input == null;
    }

    /** Compact form, e.g. {@code w8-asym-channel+a8-asym-channel-static}, or {@code fp}. */
    @Override
    public String toString() {
        if (isFloatingPoint()) {
            return "fp";
        }
        if (weight == null) {
            return input.toString();
        }
        return input == null ? weight.toString() : weight + "+" + input;
    }
}
