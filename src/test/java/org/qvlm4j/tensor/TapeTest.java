package org.qvlm4j.tensor;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Test;

/** Recording, no-grad scopes, gradient accumulation and shape errors of {@link Tape} and {@link Ops}. */
class TapeTest {

    @Test
    void reusedTensorAccumulatesBothPaths() {
        Tensor x = Tensor.param("x", new float[] {1.5f, -2f, 3f}, 3);
        Tape tape = new Tape();
        // y = x*x + x, dy/dx = 2x + 1
        Tensor y = Ops.add(tape, Ops.mul(tape, x, x), x);
        tape.backward(y, new float[] {1f, 1f, 1f});
        assertArrayEquals(new float[] {4f, -3f, 7f}, x.grad());
    }

    @Test
    void gradientsAccumulateAcrossBackwardCallsUntilZeroGrad() {
        Tensor w = Tensor.param("w", new float[] {2f}, 1);
        Tensor x = Tensor.of(new float[] {3f}, 1);
        for (int i = 0; i < 2; i++) {
            Tape tape = new Tape();
            tape.backward(Ops.mse(tape, Ops.mul(tape, w, x), Tensor.zeros(1)));
        }
        // d/dw (w x)^2 = 2 w x^2 = 36 per pass
        assertEquals(72f, w.grad()[0]);
        Tape.zeroGrad(List.of(w));
        assertNull(w.grad());
    }

    @Test
    void noGradScopeRecordsNothingAndNests() {
        Tensor w = Tensor.param("w", new float[] {1f, 2f}, 2);
        Tape tape = new Tape();
        try (Tape.NoGrad outer = tape.noGrad()) {
            try (Tape.NoGrad inner = tape.noGrad()) {
                assertFalse(Ops.scale(tape, w, 2f).requiresGrad());
            }
            assertFalse(tape.isRecording());
            assertFalse(Ops.silu(tape, w).requiresGrad());
        }
        assertTrue(tape.nodes().isEmpty());
        assertTrue(tape.isRecording());
        assertTrue(Ops.scale(tape, w, 2f).requiresGrad());
        assertEquals(1, tape.nodes().size());
        assertEquals("scale", tape.nodes().get(0).op());
    }

    @Test
    void disabledTapeNeverRecords() {
        Tape tape = Tape.disabled();
        Tensor w = Tensor.param("w", new float[] {1f}, 1);
        Tensor y = Ops.scale(tape, w, 3f);
        assertEquals(3f, y.item());
        assertFalse(y.requiresGrad());
        assertTrue(tape.nodes().isEmpty());
    }

    @Test
    void constantsGetNoGradientAndUnusedBranchesAreSkipped() {
        Tensor x = Tensor.of(new float[] {1f, 2f}, 1, 2);
        Tensor w = Tensor.param("w", new float[] {0.5f, -1f}, 1, 2);
        Tensor unused = Tensor.param("unused", new float[] {1f, 1f}, 1, 2);
        Tape tape = new Tape();
        Ops.mul(tape, unused, x);
        Tensor y = Ops.linear(tape, x, w, null); // (1, 1) = -1.5
        assertEquals(-1.5f, y.item());
        tape.backward(y);
        assertNull(x.grad());
        assertNull(unused.grad());
        assertArrayEquals(new float[] {1f, 2f}, w.grad());
    }

    @Test
    void aTapeIsBackpropagatedOnceUntilCleared() {
        Tensor w = Tensor.param("w", new float[] {1f}, 1);
        Tape tape = new Tape();
        Tensor y = Ops.scale(tape, Ops.scale(tape, w, 2f), 3f);
        tape.backward(y);
        assertThrows(IllegalStateException.class, () -> tape.backward(y));
        assertThrows(IllegalStateException.class, () -> Ops.scale(tape, w, 2f));
        assertEquals(6f, w.grad()[0]);
        tape.clear();
        assertTrue(tape.nodes().isEmpty());
        tape.backward(Ops.scale(tape, w, 2f));
        assertEquals(8f, w.grad()[0]);
    }

    @Test
    void backwardRejectsNonScalarLossAndConstants() {
        Tape tape = new Tape();
        Tensor y = Ops.scale(tape, Tensor.param("w", new float[] {1f, 2f}, 2), 2f);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> tape.backward(y));
        assertTrue(e.getMessage().contains("[2]"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> tape.backward(Tensor.of(new float[] {1f})));
        assertThrows(IllegalArgumentException.class, () -> tape.backward(y, new float[3]));
    }

    @Test
    void shapeErrorsNameTheOpAndShapes() {
        Tape tape = new Tape();
        Tensor x = Tensor.zeros(2, 3);
        Tensor w = Tensor.param("proj.weight", new float[8], 2, 4);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Ops.linear(tape, x, w, null));
        assertTrue(e.getMessage().contains("linear") && e.getMessage().contains("[2, 3]")
                && e.getMessage().contains("[2, 4]") && e.getMessage().contains("proj.weight"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> Ops.add(tape, x, Tensor.zeros(3, 2)));
        assertThrows(IllegalArgumentException.class, () -> Ops.embedding(tape, Tensor.zeros(4, 2), new int[] {4}));
        assertThrows(IllegalArgumentException.class, () -> Ops.crossEntropy(tape, Tensor.zeros(1, 3), new int[] {3}));
        assertThrows(IllegalArgumentException.class, () -> Ops.attention(tape, Tensor.zeros(2, 8),
                Tensor.zeros(2, 8), Tensor.zeros(2, 8), 4, 3, true));
        assertThrows(IllegalArgumentException.class, () -> Tensor.of(new float[5], 2, 3));
    }

    @Test
    void embeddingPaddingRowGetsNoGradient() {
        Tensor table = Tensor.param("emb", new float[] {1f, 2f, 3f, 4f, 5f, 6f}, 3, 2);
        Tape tape = new Tape();
        Tensor y = Ops.embedding(tape, table, new int[] {2, 1, 2, 0}, 1);
        assertArrayEquals(new float[] {5f, 6f, 3f, 4f, 5f, 6f, 1f, 2f}, y.data());
        tape.backward(y, new float[] {1, 2, 3, 4, 5, 6, 7, 8});
        assertArrayEquals(new float[] {7f, 8f, 0f, 0f, 6f, 8f}, table.grad());
    }

    @Test
    void crossEntropyWithEveryRowIgnoredIsZeroWithoutGradient() {
        Tensor logits = Tensor.variable(new float[] {1f, 2f, 3f, 4f}, 2, 2);
        Tape tape = new Tape();
        Tensor loss = Ops.crossEntropy(tape, logits, new int[] {Ops.IGNORE_INDEX, Ops.IGNORE_INDEX});
        assertEquals(0f, loss.item());
        tape.backward(loss);
        assertNull(logits.grad());
    }

    @Test
    void crossEntropyIgnoresRowsAndAveragesTheRest() {
        // Row 0: logits (0, ln 3) target 1 → loss ln(4/3); row 1 ignored; row 2: (0, 0) target 0 → ln 2.
        float ln3 = (float) Math.log(3);
        Tensor logits = Tensor.variable(new float[] {0f, ln3, 5f, -5f, 0f, 0f}, 3, 2);
        Tape tape = new Tape();
        Tensor loss = Ops.crossEntropy(tape, logits, new int[] {1, Ops.IGNORE_INDEX, 0});
        assertEquals((Math.log(4.0 / 3.0) + Math.log(2.0)) / 2, loss.item(), 1e-6);
        tape.backward(loss);
        assertArrayEquals(new float[] {0.125f, -0.125f, 0f, 0f, -0.25f, 0.25f}, logits.grad(), 1e-6f);
    }
}
