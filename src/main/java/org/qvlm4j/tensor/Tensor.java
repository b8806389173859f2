package org.qvlm4j.tensor;

import java.util.Arrays;

/**
 * A dense float32 tensor for training: a row-major {@code float[]}, a shape, and (when it takes
 * part in autograd) a gradient buffer of the same size, allocated on first use.
 *
 * <p>Deliberately small: no strides, no views with offsets, no dtype other than float32, no
 * broadcasting. Ops in {@link Ops} document which shapes they accept. A parameter is a tensor with
 * {@code requiresGrad} set and a name (the checkpoint key it is saved under). Non-parameter tensors
 * that an op produces from inputs requiring gradients also require gradients; their gradient
 * buffers hold the upstream gradient during {@link Tape#backward}.
 *
 * <p>The data array is exposed directly: optimizers update it in place and the inference runtime
 * reads it without copying. Callers must not change it while a recorded tape still refers to it.
 */
public final class Tensor {
    private final float[] data;
    private final int[] shape;
    private final String name;
    private boolean requiresGrad;
    private float[] grad;

    private Tensor(String name, float[] data, int[] shape, boolean requiresGrad) {
        long n = numel(shape);
        if (n != data.length) {
            throw new IllegalArgumentException("tensor" + (name == null ? "" : " '" + name + "'") + ": shape "
                    + Arrays.toString(shape) + " needs " + n + " floats, data has " + data.length);
        }
        this.name = name;
        this.data = data;
        this.shape = shape.clone();
        this.requiresGrad = requiresGrad;
    }

    /** A constant tensor over {@code data} (not copied). */
    public static Tensor of(float[] data, int... shape) {
        return new Tensor(null, data, shape, false);
    }

    /** A zero-filled constant tensor. */
    public static Tensor zeros(int... shape) {
        return new Tensor(null, new float[Math.toIntExact(numel(shape))], shape, false);
    }

    /** A named trainable parameter over {@code data} (not copied). */
    public static Tensor param(String name, float[] data, int... shape) {
        if (name == null || name.isEmpty()) {
            throw new IllegalArgumentException("parameter name must be non-empty, got '" + name + "'");
        }
        return new Tensor(name, data, shape, true);
    }

    /** A named constant over {@code data} (not copied): a parameter held fixed, e.g. a frozen weight. */
    public static Tensor constant(String name, float[] data, int... shape) {
        return new Tensor(name, data, shape, false);
    }

    /** An unnamed tensor that requires gradients (an op output, or an input in a gradient check). */
    public static Tensor variable(float[] data, int... shape) {
        return new Tensor(null, data, shape, true);
    }

    static long numel(int[] shape) {
        long n = 1;
        for (int d : shape) {
            if (d < 0) {
                throw new IllegalArgumentException("negative dimension in shape " + Arrays.toString(shape));
            }
            n *= d;
        }
        return n;
    }

    public float[] data() {
        return data;
    }

    /** A copy of the shape. */
    public int[] shape() {
        return shape.clone();
    }

    public int rank() {
        return shape.length;
    }

    /** Size of dimension {@code i}; negative {@code i} counts from the end. */
    public int dim(int i) {
        return shape[i < 0 ? shape.length + i : i];
    }

    public int numel() {
        return data.length;
    }

    /** Rows of the tensor seen as a matrix: the product of all dimensions but the last. */
    public int rows() {
        return shape.length == 0 ? 1 : data.length / Math.max(1, shape[shape.length - 1]);
    }

    /** Columns of the tensor seen as a matrix: the last dimension. */
    public int cols() {
        return shape.length == 0 ? 1 : shape[shape.length - 1];
    }

    /** Parameter name, or null for intermediate values. */
    public String name() {
        return name;
    }

    public boolean requiresGrad() {
        return requiresGrad;
    }

    void markRequiresGrad() {
        requiresGrad = true;
    }

    /** The gradient, or null while nothing has been accumulated into it since the last zeroGrad. */
    public float[] grad() {
        return grad;
    }

    /** The gradient buffer, allocated (zero) on first use. */
    public float[] gradOrCreate() {
        if (grad == null) {
            grad = new float[data.length];
        }
        return grad;
    }

    /** Drops the gradient buffer (as torch's {@code zero_grad(set_to_none=True)}). */
    public void zeroGrad() {
        grad = null;
    }

    /** The single value of a one-element tensor (a loss). */
    public float item() {
        if (data.length != 1) {
            throw new IllegalArgumentException("item() needs a one-element tensor, got shape "
                    + Arrays.toString(shape));
        }
        return data[0];
    }

    /** True if the shapes are equal element by element. */
    public boolean sameShape(Tensor o) {
        return Arrays.equals(shape, o.shape);
    }

    @Override
    public String toString() {
        return "Tensor" + (name == null ? "" : "('" + name + "')") + Arrays.toString(shape)
                + (requiresGrad ? " requiresGrad" : "");
    }
}
