package org.qvlm4j.tensor;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.qvlm4j.io.safetensors.Checkpoint;
import org.qvlm4j.io.safetensors.SafeTensors;

/**
 * The whole tiny LLaVA (transformers' test configuration: CLIP ViT, GELU projector, LLaMA with a
 * GELU MLP) written with {@link Ops}, checked against HF's logits, loss and the gradient of every
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
    private static final int D = 32;
    private static final int HEADS = 4;
    private static final int LAYERS = 2;
    private static final int PATCH = 2;
    private static final int IMAGE = 8;
    private static final int CHANNELS = 3;
    private static final int IMAGE_TOKEN = 0;
    /** text_config.pad_token_id: LlamaModel's nn.Embedding padding_idx, which gets no gradient. */
    private static final int PAD_TOKEN = 1;
    private static final float CLIP_LN_EPS = 1e-5f;
    private static final float RMS_EPS = 1e-6f;
    private static final double ROPE_THETA = 10000.0;

    private static final Map<String, Tensor> params = new LinkedHashMap<>();
    private static float[] logits;
    private static float[] imageFeatures;
    private static float loss;

    @BeforeAll
    static void forwardAndBackward() {
        try (Checkpoint ckpt = Checkpoint.open(DIR);
             SafeTensors fwd = SafeTensors.open(DIR.resolve("reference_forward.safetensors"));
             SafeTensors bwd = SafeTensors.open(DIR.resolve("reference_backward.safetensors"))) {
            for (String name : ckpt.names()) {
                params.put(name, Tensor.param(name, ckpt.get(name).toFloatArray(), ckpt.get(name).intShape()));
            }
            float[] pixels = fwd.get("pixel_values").toFloatArray(); // (1, 3, 8, 8)
            int[] ids = toInts(fwd.get("input_ids").toLongArray());
            int[] labels = toInts(bwd.get("labels").toLongArray());
            Tape tape = new Tape();
            Tensor features = visionAndProjector(tape, pixels); // (P, D)
            Tensor out = language(tape, ids, features); // (T, V)
            int[] targets = new int[labels.length];
            for (int t = 0; t < labels.length; t++) {
                targets[t] = t + 1 < labels.length ? labels[t + 1] : Ops.IGNORE_INDEX;
            }
            Tensor l = Ops.crossEntropy(tape, out, targets);
            tape.backward(l);
            logits = out.data();
            imageFeatures = features.data();
            loss = l.item();
        }
    }

    private static Tensor p(String name) {
        Tensor t = params.get(name);
        if (t == null) {
            throw new IllegalArgumentException("tiny-llava checkpoint has no tensor '" + name + "'");
        }
        return t;
    }

    private static Tensor visionAndProjector(Tape tape, float[] pixels) {
        String v = "vision_tower.vision_model.";
        int grid = IMAGE / PATCH;
        int patchLen = CHANNELS * PATCH * PATCH;
        // Conv2d with stride = kernel is a linear map of each flattened (c, ky, kx) patch.
        float[] patches = new float[grid * grid * patchLen]; // (P, C*2*2)
        for (int py = 0; py < grid; py++) {
            for (int px = 0; px < grid; px++) {
                int o = (py * grid + px) * patchLen;
                for (int c = 0; c < CHANNELS; c++) {
                    for (int ky = 0; ky < PATCH; ky++) {
                        for (int kx = 0; kx < PATCH; kx++) {
                            patches[o++] = pixels[(c * IMAGE + py * PATCH + ky) * IMAGE + px * PATCH + kx];
                        }
                    }
                }
            }
        }
        Tensor convW = Ops.reshape(tape, p(v + "embeddings.patch_embedding.weight"), D, patchLen); // (D, 12)
        Tensor patchEmb = Ops.linear(tape, Tensor.of(patches, grid * grid, patchLen), convW, null); // (P, D)
        Tensor cls = Ops.reshape(tape, p(v + "embeddings.class_embedding"), 1, D); // (1, D)
        Tensor h = Ops.add(tape, Ops.concatRows(tape, cls, patchEmb), p(v + "embeddings.position_embedding.weight"));
        h = Ops.layerNorm(tape, h, p(v + "pre_layrnorm.weight"), p(v + "pre_layrnorm.bias"), CLIP_LN_EPS);
        for (int i = 0; i < LAYERS; i++) {
            String l = v + "encoder.layers." + i + ".";
            Tensor x = Ops.layerNorm(tape, h, p(l + "layer_norm1.weight"), p(l + "layer_norm1.bias"), CLIP_LN_EPS);
            Tensor q = Ops.linear(tape, x, p(l + "self_attn.q_proj.weight"), p(l + "self_attn.q_proj.bias"));
            Tensor k = Ops.linear(tape, x, p(l + "self_attn.k_proj.weight"), p(l + "self_attn.k_proj.bias"));
            Tensor val = Ops.linear(tape, x, p(l + "self_attn.v_proj.weight"), p(l + "self_attn.v_proj.bias"));
            Tensor a = Ops.attention(tape, q, k, val, HEADS, HEADS, false);
            h = Ops.add(tape, h, Ops.linear(tape, a, p(l + "self_attn.out_proj.weight"), p(l + "self_attn.out_proj.bias")));
            x = Ops.layerNorm(tape, h, p(l + "layer_norm2.weight"), p(l + "layer_norm2.bias"), CLIP_LN_EPS);
            x = Ops.quickGelu(tape, Ops.linear(tape, x, p(l + "mlp.fc1.weight"), p(l + "mlp.fc1.bias")));
            h = Ops.add(tape, h, Ops.linear(tape, x, p(l + "mlp.fc2.weight"), p(l + "mlp.fc2.bias")));
        }
        Tensor patchesOut = Ops.sliceRows(tape, h, 1, h.dim(0)); // (P, D): the "default" strategy drops CLS
        String m = "multi_modal_projector.";
        Tensor y = Ops.gelu(tape, Ops.linear(tape, patchesOut, p(m + "linear_1.weight"), p(m + "linear_1.bias")));
        return Ops.linear(tape, y, p(m + "linear_2.weight"), p(m + "linear_2.bias"));
    }

    private static Tensor language(Tape tape, int[] ids, Tensor imageFeatures) {
        String lm = "language_model.model.";
        Tensor text = Ops.embedding(tape, p(lm + "embed_tokens.weight"), ids, PAD_TOKEN); // (T, D)
        // Image-token rows are replaced by projected patches, in order (HF masked_scatter).
        List<Tensor> parts = new ArrayList<>();
        int used = 0;
        int t = 0;
        while (t < ids.length) {
            int end = t;
            boolean image = ids[t] == IMAGE_TOKEN;
            while (end < ids.length && (ids[end] == IMAGE_TOKEN) == image) {
                end++;
            }
            parts.add(image ? Ops.sliceRows(tape, imageFeatures, used, used + end - t) : Ops.sliceRows(tape, text, t, end));
            if (image) {
                used += end - t;
            }
            t = end;
        }
        assertEquals(imageFeatures.dim(0), used, "image tokens in input_ids");
        Tensor h = Ops.concatRows(tape, parts.toArray(Tensor[]::new)); // (T, D)
        for (int i = 0; i < LAYERS; i++) {
            String l = lm + "layers." + i + ".";
            Tensor x = Ops.rmsNorm(tape, h, p(l + "input_layernorm.weight"), RMS_EPS);
            Tensor q = Ops.rope(tape, Ops.linear(tape, x, p(l + "self_attn.q_proj.weight"), null), HEADS, ROPE_THETA, 0);
            Tensor k = Ops.rope(tape, Ops.linear(tape, x, p(l + "self_attn.k_proj.weight"), null), HEADS, ROPE_THETA, 0);
            Tensor v = Ops.linear(tape, x, p(l + "self_attn.v_proj.weight"), null);
            Tensor a = Ops.attention(tape, q, k, v, HEADS, HEADS, true);
            h = Ops.add(tape, h, Ops.linear(tape, a, p(l + "self_attn.o_proj.weight"), null));
            x = Ops.rmsNorm(tape, h, p(l + "post_attention_layernorm.weight"), RMS_EPS);
            Tensor gate = Ops.gelu(tape, Ops.linear(tape, x, p(l + "mlp.gate_proj.weight"), null));
            Tensor up = Ops.linear(tape, x, p(l + "mlp.up_proj.weight"), null);
            h = Ops.add(tape, h, Ops.linear(tape, Ops.mul(tape, gate, up), p(l + "mlp.down_proj.weight"), null));
        }
        h = Ops.rmsNorm(tape, h, p(lm + "norm.weight"), RMS_EPS);
        return Ops.linear(tape, h, p("language_model.lm_head.weight"), null);
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
            assertEquals(params.size() - 2, checked, "every parameter but post_layernorm has a reference gradient");
            assertEquals(null, p("vision_tower.vision_model.post_layernorm.weight").grad());
        }
    }
}
