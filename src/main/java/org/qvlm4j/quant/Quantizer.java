package org.qvlm4j.quant;

/**
 * A quantizer built from a {@link QuantSpec}: the common operation every format supports is the
 * quantize-dequantize image of a row-major (rows, cols) tensor, computed in place with parameters
 * taken from the tensor itself (weights, dynamic activations). Format-specific entry points
 * (integer codes, static ranges) live on {@link UniformQuantizer} and {@link Nf4Quantizer}.
 */
public interface Quantizer {
    QuantSpec spec();

    /** Replaces x[0 .. rows*cols) by its quantize-dequantize image. */
    void fakeQuantize(float[] x, int rows, int cols);

    /** The quantizer for spec. */
    static Quantizer of(QuantSpec spec) {
        return switch (spec.format()) {
            case UNIFORM -> new UniformQuantizer(spec);
            case NF4 -> new Nf4Quantizer(spec);
        };
    }
}
