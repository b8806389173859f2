package org.qvlm4j.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.qvlm4j.io.safetensors.SafeTensors;
import org.qvlm4j.tensor.Ops;
import org.qvlm4j.tensor.Tape;
import org.qvlm4j.tensor.Tensor;

/**
 * The whole tiny LLaVA (transformers' test configuration: CLIP ViT, GELU projector, LLaMA with a
 * GELU MLP) as a {@link TrainableLlava} loaded from the fixture checkpoint, checked against HF's logits, loss and the gradient of every
 * parameter in {@code tiny-llava/reference_backward.safetensors}. This exercises the ops as the
 * training code will chain them: residual reuse, shared inputs of q/k/v, row splicing of image
 * features into text embeddings and the shifted, partly ignored cross-entropy.
 */
class TinyLlavaGradientTest {
    /** Error allowed relative to the largest magnitude of each reference tensor (float32 on both sides). */
    static final double REL_TOL = 1e-5;
    /**
     * Absolute floor: some gradients are exactly zero in exact arithmetic (the key bias, since
     * softmax ignores a per-query constant) and both sides hold only rounding noise there.
     */
    static final double ABS_TOL = 1e-7;

    private static final Path DIR = Path.of("src/test/resources/fixtures/tiny-llava");

    private static TrainableLlava model;
    private static float[] logits;
    private static float[] imageFeatures;
    private static float loss;

    @BeforeAll
    static void forwardAndBackward() {
        model = TrainableLlava.load(DIR);
        try (SafeTensors fwd = SafeTensors.open(DIR.resolve("reference_forward.safetensors"));
             SafeTensors bwd = SafeTensors.open(DIR.resolve("reference_backward.safetensors"))) {
            float[] pixels = fwd.get("pixel_values").toFloatArray(); // (1, 3, 8, 8)
            int[] ids = toInts(fwd.get("input_ids").toLongArray());
            int[] labels = toInts(bwd.get("labels").toLongArray());
            imageFeatures = model.imageFeatures(Tape.disabled(), pixels).data(); // (P, D)
            Tape tape = new Tape();
            Tensor out = model.logits(tape, ids, pixels); // (T, V)
            Tensor l = Ops.crossEntropy(tape, out, new TrainingExample(pixels, ids, labels).shiftedTargets());
            tape.backward(l);
            logits = out.data();
            loss = l.item();
        }
    }

    private static Tensor p(String name) {
        Tensor t = model.parameters().get(name);
        if (t == null) {
            throw new IllegalArgumentException("tiny-llava checkpoint has no tensor '" + name + "'");
        }
        return t;
    }

    private static int[] toInts(long[] a) {
        int[] r = new int[a.length];
        for (int i = 0; i < a.length; i++) {
            r[i] = Math.toIntExact(a[i]);
        }
        return r;
    }

    private static void assertClose(String what, float[] expected, float[] actual) {
        assertEquals(expected.length, actual.length, what + ": length");
        double max = 0;
        for (float e : expected) {
            max = Math.max(max, Math.abs(e));
        }
        double tol = REL_TOL * max + ABS_TOL;
        for (int i = 0; i < expected.length; i++) {
            int idx = i;
            assertTrue(Math.abs(expected[i] - actual[i]) <= tol,
                    () -> what + "[" + idx + "]: expected " + expected[idx] + ", got " + actual[idx] + ", tol " + tol);
        }
    }

    @Test
    void forwardMatchesHf() {
        try (SafeTensors fwd = SafeTensors.open(DIR.resolve("reference_forward.safetensors"))) {
            assertClose("image_features", fwd.get("image_features").toFloatArray(), imageFeatures);
            assertClose("logits", fwd.get("logits").toFloatArray(), logits);
        }
    }

    @Test
    void lossAndEveryParameterGradientMatchHf() {
        try (SafeTensors bwd = SafeTensors.open(DIR.resolve("reference_backward.safetensors"))) {
            assertEquals(bwd.get("loss").toFloatArray()[0], loss, REL_TOL * Math.abs(loss), "loss");
            int checked = 0;
            for (String name : bwd.names()) {
                if (name.equals("loss") || name.equals("labels")) {
                    continue;
                }
                Tensor param = p(name);
                float[] grad = param.grad() == null ? new float[param.numel()] : param.grad();
                assertClose(name, bwd.get(name).toFloatArray(), grad);
                checked++;
            }
            assertEquals(model.parameters().size() - 2, checked, "every parameter but post_layernorm has a reference gradient");
            assertEquals(null, p("vision_tower.vision_model.post_layernorm.weight").grad());
        }
    }
}
