package org.qvlm4j.tensor;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.List;

/**
 * Reverse-mode automatic differentiation over a recorded list of ops (a Wengert list).
 *
 * <p>Every op in {@link Ops} computes its forward result eagerly and, if the tape is recording and
 * at least one input requires a gradient, appends a {@link Node} holding its inputs, its output and
 * a closure that reads the output's gradient and accumulates into the inputs' gradients. Recording
 * order is a topological order, so {@link #backward} simply runs the closures in reverse. Nodes
 * whose output received no gradient are skipped.
 *
 * <p>Left out: higher-order gradients, gradient hooks, in-place ops, freeing activations during
 * backward. A tape is used by one thread at a time (the ops themselves may use several threads).
 * Follows the design of micrograd / PyTorch autograd reduced to an explicit tape.
 */
public final class Tape {

    /** Accumulates the gradient of one recorded op into its inputs' gradient buffers. */
    @FunctionalInterface
    public interface Backward {
        void run();
    }

    /** One recorded op: its name (for error messages and tests), inputs, output and backward rule. */
    public record Node(String op, List<Tensor> inputs, Tensor output, Backward backward) {
    }

    private final List<Node> nodes = new ArrayList<>();
    private int noGradDepth;
    private boolean backpropagated;

    /** A recording tape. */
    public Tape() {
    }

    /** A tape that never records: for inference and evaluation. */
    public static Tape disabled() {
        Tape t = new Tape();
        t.noGradDepth = 1;
        return t;
    }

    /** True if ops record nodes on this tape now. */
    public boolean isRecording() {
        return noGradDepth == 0;
    }

    /** Suspends recording until the returned scope closes; scopes nest. */
    public NoGrad noGrad() {
        noGradDepth++;
        return new NoGrad();
    }

    /** A no-grad scope, closed with try-with-resources. */
    public final class NoGrad implements AutoCloseable {
        private boolean closed;

        private NoGrad() {
        }

        @Override
        public void close() {
            if (!closed) {
                closed = true;
                noGradDepth--;
            }
        }
    }

    /**
     * Records an op if the tape is recording and some input requires a gradient; marks the output as
     * requiring a gradient in that case. Returns the output for chaining.
     */
    public Tensor record(String op, Tensor output, Backward backward, Tensor... inputs) {
        if (!isRecording()) {
            return output;
        }
        if (backpropagated) {
            throw new IllegalStateException(op + ": recording on a tape that was already backpropagated; clear() it"
                    + " first");
        }
        boolean any = false;
        for (Tensor in : inputs) {
            if (in != null && in.requiresGrad()) {
                any = true;
                break;
            }
        }
        if (!any) {
            return output;
        }
        output.markRequiresGrad();
        nodes.add(new Node(op, Arrays.stream(inputs).filter(t -> t != null).toList(), output, backward));
        return output;
    }

    /** The recorded nodes, oldest first (read-only view). */
    public List<Node> nodes() {
        return List.copyOf(nodes);
    }

    /** Backpropagates from a one-element loss (seed gradient 1). */
    public void backward(Tensor loss) {
        if (loss.numel() != 1) {
            throw new IllegalArgumentException("backward(loss): loss must have one element, got shape "
                    + Arrays.toString(loss.shape()) + "; use backward(output, gradOutput) for other outputs");
        }
        backward(loss, new float[] {1f});
    }

    /**
     * Backpropagates from {@code output} with upstream gradient {@code gradOutput} (same size).
     * Gradients accumulate into existing buffers (parameters keep them until zeroGrad). A tape can be
     * backpropagated once: intermediate gradients stay in place, so a second pass would count them
     * twice; {@link #clear} it and record a new forward pass instead.
     */
    public void backward(Tensor output, float[] gradOutput) {
        if (backpropagated) {
            throw new IllegalStateException("backward: this tape was already backpropagated; clear() it and run the"
                    + " forward pass again");
        }
        if (gradOutput.length != output.numel()) {
            throw new IllegalArgumentException("backward: upstream gradient has " + gradOutput.length
                    + " elements, output " + Arrays.toString(output.shape()) + " has " + output.numel());
        }
        if (!output.requiresGrad()) {
            throw new IllegalArgumentException("backward: output " + output
                    + " does not require a gradient (no recorded op leads to it)");
        }
        backpropagated = true;
        float[] g = output.gradOrCreate();
        for (int i = 0; i < g.length; i++) {
            g[i] += gradOutput[i];
        }
        for (int i = nodes.size() - 1; i >= 0; i--) {
            Node n = nodes.get(i);
            if (n.output().grad() != null) {
                n.backward().run();
            }
        }
    }

    /** Forgets all recorded nodes (call before the next forward pass). */
    public void clear() {
        nodes.clear();
        backpropagated = false;
    }

    /** Drops the gradient buffers of the given parameters. */
    public static void zeroGrad(Collection<Tensor> params) {
        for (Tensor p : params) {
            p.zeroGrad();
        }
    }
}
