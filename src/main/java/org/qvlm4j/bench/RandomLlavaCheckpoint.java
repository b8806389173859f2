package org.qvlm4j.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.SplittableRandom;
import org.qvlm4j.io.safetensors.SafeTensorsWriter;
import org.qvlm4j.kernels.DType;

/**
 * Writes a LLaVA checkpoint of given widths with seeded random weights, in the llava-hf hub layout:
 * the benchmark's stand-in for llava-1.5-7b (full widths, few layers), made on the machine because
 * no real checkpoint can be downloaded here.
 *
 * <p>Linear weights are uniform in [-a, a] with a = 1/sqrt(fan-in) (PyTorch's default init scale,
 * so activations neither vanish nor explode across layers); norm weights are 1 and biases 0.
 * Values are produced in chunks straight into the file, so a multi-gigabyte checkpoint needs
 * little heap. The same seed and shape give the same bytes.
 */
public final class RandomLlavaCheckpoint {

    /** Widths and depths of the checkpoint to write. */
    public record Shape(int visionHidden, int visionIntermediate, int visionLayers, int visionHeads,
                        int imageSize, int patchSize, int textHidden, int textIntermediate, int textLayers,
                        int textHeads, int textKvHeads, int vocab, int imageTokenIndex) {

        /** llava-1.5-7b's widths (CLIP ViT-L/14-336, Vicuna-7B) with the given depths. */
        public static Shape llava15_7b(int visionLayers, int textLayers) {
            return new Shape(1024, 4096, visionLayers, 16, 336, 14, 4096, 11008, textLayers, 32, 32, 32064, 32000);
        }
    }

    private RandomLlavaCheckpoint() {
    }

    /** Writes config.json and model.safetensors into dir (created if needed). */
    public static void write(Path dir, Shape s, DType dtype, long seed) {
        try {
            Files.createDirectories(dir);
            SafeTensorsWriter w = new SafeTensorsWriter().metadata("format", "pt");
            SplittableRandom root = new SplittableRandom(seed);
            String v = "vision_tower.vision_model.";
            int patchIn = 3 * s.patchSize() * s.patchSize();
            int positions = (s.imageSize() / s.patchSize()) * (s.imageSize() / s.patchSize()) + 1;
            uniform(w, root, v + "embeddings.patch_embedding.weight", dtype,
                    new long[] {s.visionHidden(), 3, s.patchSize(), s.patchSize()}, patchIn);
            uniform(w, root, v + "embeddings.class_embedding", dtype, new long[] {s.visionHidden()}, s.visionHidden());
            uniform(w, root, v + "embeddings.position_embedding.weight", dtype,
                    new long[] {positions, s.visionHidden()}, s.visionHidden());
            norm(w, v + "pre_layrnorm", dtype, s.visionHidden(), true);
            norm(w, v + "post_layernorm", dtype, s.visionHidden(), true);
            for (int l = 0; l < s.visionLayers(); l++) {
                String p = v + "encoder.layers." + l + ".";
                for (String proj : new String[] {"q_proj", "k_proj", "v_proj", "out_proj"}) {
                    linear(w, root, p + "self_attn." + proj, dtype, s.visionHidden(), s.visionHidden(), true);
                }
                linear(w, root, p + "mlp.fc1", dtype, s.visionIntermediate(), s.visionHidden(), true);
                linear(w, root, p + "mlp.fc2", dtype, s.visionHidden(), s.visionIntermediate(), true);
                norm(w, p + "layer_norm1", dtype, s.visionHidden(), true);
                norm(w, p + "layer_norm2", dtype, s.visionHidden(), true);
            }
            linear(w, root, "multi_modal_projector.linear_1", dtype, s.textHidden(), s.visionHidden(), true);
            linear(w, root, "multi_modal_projector.linear_2", dtype, s.textHidden(), s.textHidden(), true);
            String t = "language_model.model.";
            int headDim = s.textHidden() / s.textHeads();
            uniform(w, root, t + "embed_tokens.weight", dtype, new long[] {s.vocab(), s.textHidden()}, s.textHidden());
            for (int l = 0; l < s.textLayers(); l++) {
                String p = t + "layers." + l + ".";
                linear(w, root, p + "self_attn.q_proj", dtype, s.textHidden(), s.textHidden(), false);
                linear(w, root, p + "self_attn.k_proj", dtype, s.textKvHeads() * headDim, s.textHidden(), false);
                linear(w, root, p + "self_attn.v_proj", dtype, s.textKvHeads() * headDim, s.textHidden(), false);
                linear(w, root, p + "self_attn.o_proj", dtype, s.textHidden(), s.textHidden(), false);
                linear(w, root, p + "mlp.gate_proj", dtype, s.textIntermediate(), s.textHidden(), false);
                linear(w, root, p + "mlp.up_proj", dtype, s.textIntermediate(), s.textHidden(), false);
                linear(w, root, p + "mlp.down_proj", dtype, s.textHidden(), s.textIntermediate(), false);
                norm(w, p + "input_layernorm", dtype, s.textHidden(), false);
                norm(w, p + "post_attention_layernorm", dtype, s.textHidden(), false);
            }
            norm(w, t + "norm", dtype, s.textHidden(), false);
            linear(w, root, "language_model.lm_head", dtype, s.vocab(), s.textHidden(), false);
            w.write(dir.resolve("model.safetensors"));
            writeConfig(dir, s, dtype);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write random checkpoint to " + dir, e);
        }
    }

    private static void writeConfig(Path dir, Shape s, DType dtype) throws IOException {
        ObjectMapper json = new ObjectMapper();
        ObjectNode c = json.createObjectNode();
        c.putArray("architectures").add("LlavaForConditionalGeneration");
        c.put("model_type", "llava");
        c.put("image_token_index", s.imageTokenIndex());
        c.put("projector_hidden_act", "gelu");
        c.put("vision_feature_layer", -2);
        c.put("vision_feature_select_strategy", "default");
        c.put("torch_dtype", dtype == DType.BF16 ? "bfloat16" : dtype == DType.F16 ? "float16" : "float32");
        ObjectNode tc = c.putObject("text_config");
        tc.put("model_type", "llama");
        tc.put("vocab_size", s.vocab());
        tc.put("hidden_size", s.textHidden());
        tc.put("intermediate_size", s.textIntermediate());
        tc.put("num_hidden_layers", s.textLayers());
        tc.put("num_attention_heads", s.textHeads());
        tc.put("num_key_value_heads", s.textKvHeads());
        tc.put("max_position_embeddings", 4096);
        tc.put("rms_norm_eps", 1e-5);
        ObjectNode vc = c.putObject("vision_config");
        vc.put("model_type", "clip_vision_model");
        vc.put("hidden_size", s.visionHidden());
        vc.put("intermediate_size", s.visionIntermediate());
        vc.put("num_hidden_layers", s.visionLayers());
        vc.put("num_attention_heads", s.visionHeads());
        vc.put("image_size", s.imageSize());
        vc.put("patch_size", s.patchSize());
        vc.put("projection_dim", 768);
        org.qvlm4j.io.AtomicFiles.writeString(dir.resolve("config.json"),
                json.writerWithDefaultPrettyPrinter().writeValueAsString(c));
    }

    private static void linear(SafeTensorsWriter w, SplittableRandom root, String name, DType dtype,
                               int out, int in, boolean bias) {
        uniform(w, root, name + ".weight", dtype, new long[] {out, in}, in);
        if (bias) {
            constant(w, name + ".bias", dtype, out, 0f);
        }
    }

    private static void norm(SafeTensorsWriter w, String name, DType dtype, int n, boolean bias) {
        constant(w, name + ".weight", dtype, n, 1f);
        if (bias) {
            constant(w, name + ".bias", dtype, n, 0f);
        }
    }

    private static void constant(SafeTensorsWriter w, String name, DType dtype, int n, float value) {
        float[] v = new float[n];
        java.util.Arrays.fill(v, value);
        w.addFloats(name, dtype, new long[] {n}, v);
    }

    /** Uniform(-1/sqrt(fanIn), 1/sqrt(fanIn)) values streamed in chunks; each tensor has its own stream. */
    private static void uniform(SafeTensorsWriter w, SplittableRandom root, String name, DType dtype,
                                long[] shape, int fanIn) {
        long numel = 1;
        for (long d : shape) {
            numel *= d;
        }
        final long count = numel;
        final double bound = 1.0 / Math.sqrt(fanIn);
        final SplittableRandom rng = root.split();
        w.add(name, dtype, shape, out -> {
            ByteBuffer buf = ByteBuffer.allocate(1 << 20).order(ByteOrder.LITTLE_ENDIAN);
            for (long i = 0; i < count; i++) {
                float x = (float) ((rng.nextDouble() * 2 - 1) * bound);
                switch (dtype) {
                    case F32 -> buf.putFloat(x);
                    case BF16 -> buf.putShort(DType.floatToBf16(x));
                    case F16 -> buf.putShort(DType.floatToF16(x));
                    default -> throw new IllegalArgumentException("random checkpoint dtype must be F32, F16 or BF16, got " + dtype);
                }
                if (!buf.hasRemaining()) {
                    buf.flip();
                    while (buf.hasRemaining()) {
                        out.write(buf);
                    }
                    buf.clear();
                }
            }
            buf.flip();
            while (buf.hasRemaining()) {
                out.write(buf);
            }
        });
    }
}
