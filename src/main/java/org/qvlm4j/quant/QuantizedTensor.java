package org.qvlm4j.quant;

/**
 * Integer codes of a (rows, cols) tensor quantized by a uniform quantizer, row-major, with the
 * parameters that map them back: x̂ = (code − zeroPoint[slot]) · scale[slot]. Codes lie in
 * [spec.qmin(), spec.qmax()]; packing them into bytes or nibbles is the kernels' business.
 */
public record QuantizedTensor(int rows, int cols, int[] codes, QuantParams params) {
    public QuantizedTensor {
        if (codes.length != rows * cols) {
            throw new IllegalArgumentException("quantized tensor (" + rows + ", " + cols + ") needs "
                    + rows * cols + " codes, got " + codes.length);
        }
        params.requireShape(rows, cols);
    }
}
