package org.qvlm4j.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeSet;
import java.util.function.Predicate;
import org.qvlm4j.io.AtomicFiles;
import org.qvlm4j.io.config.Activation;
import org.qvlm4j.io.config.ClipVisionConfig;
import org.qvlm4j.io.config.LlamaTextConfig;
import org.qvlm4j.io.config.LlavaConfig;
import org.qvlm4j.io.safetensors.Checkpoint;
import org.qvlm4j.io.safetensors.SafeTensorsWriter;
import org.qvlm4j.io.safetensors.TensorEntry;
import org.qvlm4j.kernels.DType;
import org.qvlm4j.model.LlavaWeights;
import org.qvlm4j.tensor.Ops;
import org.qvlm4j.tensor.Tape;
import org.qvlm4j.tensor.Tensor;

/**
 * A LLaVA (HF {@code LlavaForConditionalGeneration}: CLIP ViT vision tower, two-layer projector,
 * LLaMA) whose weights are autograd {@link Tensor}s, for training from scratch. Parameters are keyed
 * by the llava-hf hub checkpoint names ({@code vision_tower.vision_model.*},
 * {@code multi_modal_projector.*}, {@code language_model.model.*}, {@code language_model.lm_head.weight}),
 * so {@link #save} writes an ordinary HF directory that {@link org.qvlm4j.model.LlavaModel#load} reads.
 *
 * <p>The forward follows the inference runtime and HF: patch embedding as a linear map of flattened
 * (c, ky, kx) patches, class token, position embeddings, {@code pre_layrnorm}, encoder layers up to
 * {@code vision_feature_layer}, CLS dropped under the "default" strategy, projector
 * linear-act-linear; image features replace the image-token embeddings in order; LLaMA layers with
 * RMSNorm, RoPE, grouped-query causal attention and a gated MLP; final norm and lm_head (or the
 * token embeddings when tied). The loss is HF's: labels shifted by one, -100 ignored, mean over
 * supervised tokens.
 *
 * <p>Initialisation ({@link #initialize}): every linear weight, the token, position, class and
 * patch embeddings are drawn from normal(0, {@value #INIT_STD}) (HF's {@code initializer_range});
 * norm weights are ones; all biases zeros; the padding row of the token embedding is zero (as
 * nn.Embedding's padding_idx). Each tensor draws from its own {@link SplittableRandom} split off a
 * root seeded with the given seed, in parameter order, so the same seed gives the same bytes.
 *
 * <p>A {@link Hook} sees, under the runtime's site names, every linear's weight and input and the
 * residual stream around every layer, and may replace them: quantizer optimisation
 * ({@code org.qvlm4j.quant.qvlm}) runs a fake-quantized forward of a {@link #frozen} model this way.
 *
 * <p>Several examples can share one forward ({@link #logits(Tape, List, List, Hook)}, {@link #loss(Tape, List)}):
 * their rows are stacked, so the linear layers multiply one tall matrix instead of one short one per
 * example, while attention and RoPE run per example on slices of the stack (no padding, no masks).
 *
 * <p>Left out: dropout, several images per prompt, multi-layer vision features.
 */
public final class TrainableLlava {
    /** Standard deviation of the normal initialisation (transformers' default initializer_range). */
    public static final double INIT_STD = 0.02;
    /** No padding row in the token embedding. */
    public static final int NO_PAD = -1;

    private static final String V = "vision_tower.vision_model.";
    private static final String VL = V + "encoder.layers.";
    private static final String M = "multi_modal_projector.";
    private static final String L = "language_model.model.";
    /** The language model's input embedding table (vocab, D). */
    public static final String EMBED_TOKENS = L + "embed_tokens.weight";
    private static final String LM_HEAD = "language_model.lm_head.weight";
    private static final ObjectMapper JSON = new ObjectMapper();

    private final LlavaConfig config;
    private final int padTokenId;
    private final Map<String, Tensor> params;

    /**
     * Observes and may replace tensors inside the forward pass, named as the inference runtime's
     * {@link org.qvlm4j.model.ActivationTap} sites: linears by their runtime name
     * ({@code vision.embeddings.patch_embedding}, {@code vision.layers.<i>.self_attn.q_proj},
     * {@code vision.layers.<i>.mlp.fc1}, {@code projector.linear_1}, {@code llm.layers.<i>.mlp.down_proj},
     * {@code lm_head}, ...), residual streams as {@code vision|llm.layers.<i>.in|out}. A fake-quantized
     * forward replaces weights and linear inputs here; a loss reads hidden states here.
     */
    public interface Hook {
        /** Changes nothing. */
        Hook NONE = new Hook() { };

        /** The weight (N, K) the linear multiplies by: w unless replaced (same shape). */
        default Tensor weight(String linear, Tensor w) {
            return w;
        }

        /** The input (T, K) the linear reads: x unless replaced (same shape). */
        default Tensor input(Tape tape, String linear, Tensor x) {
            return x;
        }

        /** The residual stream (T, D) entering ({@code .in}) or leaving ({@code .out}) a layer: h unless replaced. */
        default Tensor residual(Tape tape, String site, Tensor h) {
            return h;
        }
    }

    private TrainableLlava(LlavaConfig config, int padTokenId, Map<String, Tensor> params) {
        this.config = config;
        this.padTokenId = padTokenId;
        this.params = Collections.unmodifiableMap(params);
    }

    /** The parameter names and shapes a config implies, in a fixed order (vision, projector, language). */
    public static Map<String, int[]> shapes(LlavaConfig cfg) {
        Map<String, int[]> m = new LinkedHashMap<>();
        ClipVisionConfig v = cfg.visionConfig();
        int dv = v.hiddenSize();
        int p = v.patchSize();
        m.put(V + "embeddings.class_embedding", new int[] {dv});
        m.put(V + "embeddings.patch_embedding.weight", new int[] {dv, v.numChannels(), p, p});
        m.put(V + "embeddings.position_embedding.weight", new int[] {v.numPatches() + 1, dv});
        m.put(V + "pre_layrnorm.weight", new int[] {dv});
        m.put(V + "pre_layrnorm.bias", new int[] {dv});
        for (int i = 0; i < v.numHiddenLayers(); i++) {
            String l = VL + i + ".";
            for (String proj : List.of("q_proj", "k_proj", "v_proj", "out_proj")) {
                m.put(l + "self_attn." + proj + ".weight", new int[] {dv, dv});
                m.put(l + "self_attn." + proj + ".bias", new int[] {dv});
            }
            m.put(l + "layer_norm1.weight", new int[] {dv});
            m.put(l + "layer_norm1.bias", new int[] {dv});
            m.put(l + "mlp.fc1.weight", new int[] {v.intermediateSize(), dv});
            m.put(l + "mlp.fc1.bias", new int[] {v.intermediateSize()});
            m.put(l + "mlp.fc2.weight", new int[] {dv, v.intermediateSize()});
            m.put(l + "mlp.fc2.bias", new int[] {dv});
            m.put(l + "layer_norm2.weight", new int[] {dv});
            m.put(l + "layer_norm2.bias", new int[] {dv});
        }
        // HF's CLIPVisionTransformer owns post_layernorm although LLaVA never applies it.
        m.put(V + "post_layernorm.weight", new int[] {dv});
        m.put(V + "post_layernorm.bias", new int[] {dv});
        LlamaTextConfig t = cfg.textConfig();
        int d = t.hiddenSize();
        int qd = t.numAttentionHeads() * t.headDim();
        int kvd = t.numKeyValueHeads() * t.headDim();
        int inter = t.intermediateSize();
        m.put(M + "linear_1.weight", new int[] {d, dv});
        if (cfg.multimodalProjectorBias()) {
            m.put(M + "linear_1.bias", new int[] {d});
        }
        m.put(M + "linear_2.weight", new int[] {d, d});
        if (cfg.multimodalProjectorBias()) {
            m.put(M + "linear_2.bias", new int[] {d});
        }
        m.put(L + "embed_tokens.weight", new int[] {t.vocabSize(), d});
        for (int i = 0; i < t.numHiddenLayers(); i++) {
            String l = L + "layers." + i + ".";
            linearShape(m, l + "self_attn.q_proj", qd, d, t.attentionBias());
            linearShape(m, l + "self_attn.k_proj", kvd, d, t.attentionBias());
            linearShape(m, l + "self_attn.v_proj", kvd, d, t.attentionBias());
            linearShape(m, l + "self_attn.o_proj", d, qd, t.attentionBias());
            linearShape(m, l + "mlp.gate_proj", inter, d, t.mlpBias());
            linearShape(m, l + "mlp.up_proj", inter, d, t.mlpBias());
            linearShape(m, l + "mlp.down_proj", d, inter, t.mlpBias());
            m.put(l + "input_layernorm.weight", new int[] {d});
            m.put(l + "post_attention_layernorm.weight", new int[] {d});
        }
        m.put(L + "norm.weight", new int[] {d});
        if (!cfg.tieWordEmbeddings()) {
            m.put(LM_HEAD, new int[] {t.vocabSize(), d});
        }
        return m;
    }

    private static void linearShape(Map<String, int[]> m, String name, int out, int in, boolean bias) {
        m.put(name + ".weight", new int[] {out, in});
        if (bias) {
            m.put(name + ".bias", new int[] {out});
        }
    }

    /**
     * A freshly initialised model (see the class comment for the scheme).
     *
     * @param padTokenId the token embedding's padding row (HF text_config.pad_token_id), or {@link #NO_PAD}
     */
    public static TrainableLlava initialize(LlavaConfig cfg, int padTokenId, long seed) {
        checkPad(cfg, padTokenId, "padTokenId");
        SplittableRandom root = new SplittableRandom(seed);
        Map<String, Tensor> params = new LinkedHashMap<>();
        for (Map.Entry<String, int[]> e : shapes(cfg).entrySet()) {
            String name = e.getKey();
            int[] shape = e.getValue();
            float[] data = new float[Math.toIntExact(numel(shape))];
            SplittableRandom rng = root.split();
            if (name.endsWith(".bias")) {
                Arrays.fill(data, 0f);
            } else if (isNormWeight(name)) {
                Arrays.fill(data, 1f);
            } else {
                for (int i = 0; i < data.length; i++) {
                    data[i] = (float) (rng.nextGaussian() * INIT_STD);
                }
            }
            if (name.equals(L + "embed_tokens.weight") && padTokenId != NO_PAD) {
                int d = shape[1];
                Arrays.fill(data, padTokenId * d, (padTokenId + 1) * d, 0f);
            }
            params.put(name, Tensor.param(name, data, shape));
        }
        return new TrainableLlava(cfg, padTokenId, params);
    }

    private static boolean isNormWeight(String name) {
        return name.endsWith("layernorm.weight") || name.endsWith("layrnorm.weight") || name.endsWith("layer_norm1.weight")
                || name.endsWith("layer_norm2.weight") || name.equals(L + "norm.weight");
    }

    private static void checkPad(LlavaConfig cfg, int pad, String what) {
        int vocab = cfg.textConfig().vocabSize();
        if (pad != NO_PAD && (pad < 0 || pad >= vocab)) {
            throw new IllegalArgumentException(what + ": expected -1 (none) or an id in [0, " + vocab + "), got " + pad);
        }
    }

    private static long numel(int[] shape) {
        long n = 1;
        for (int s : shape) {
            n *= s;
        }
        return n;
    }

    /** Reads a directory written by {@link #save} (or any float32 hub-layout LLaVA checkpoint of this architecture). */
    public static TrainableLlava load(Path dir) {
        LlavaConfig cfg = LlavaConfig.load(dir);
        int pad = readPadTokenId(dir.resolve(LlavaConfig.FILE_NAME));
        checkPad(cfg, pad, dir.resolve(LlavaConfig.FILE_NAME) + ": key 'text_config.pad_token_id'");
        Map<String, int[]> expected = shapes(cfg);
        Map<String, String> byCanonical = new LinkedHashMap<>();
        for (String name : expected.keySet()) {
            byCanonical.put(LlavaWeights.canonicalName(name), name);
        }
        Map<String, float[]> found = new LinkedHashMap<>();
        try (Checkpoint ckpt = Checkpoint.open(dir)) {
            for (String key : ckpt.names()) {
                String canonical = LlavaWeights.canonicalName(key);
                String name = canonical == null ? null : byCanonical.get(canonical);
                if (name == null) {
                    throw new IllegalArgumentException(dir + ": unexpected tensor '" + key + "' for this config");
                }
                TensorEntry e = ckpt.get(key);
                int[] shape = expected.get(name);
                if (!Arrays.equals(e.intShape(), shape)) {
                    throw new IllegalArgumentException(dir + ": tensor '" + key + "' expected shape " + Arrays.toString(shape)
                            + ", got " + Arrays.toString(e.intShape()));
                }
                found.put(name, e.toFloatArray());
            }
        }
        Map<String, Tensor> params = new LinkedHashMap<>();
        for (Map.Entry<String, int[]> e : expected.entrySet()) {
            float[] data = found.get(e.getKey());
            if (data == null) {
                throw new IllegalArgumentException(dir + ": missing tensor '" + e.getKey() + "' with shape "
                        + Arrays.toString(e.getValue()));
            }
            params.put(e.getKey(), Tensor.param(e.getKey(), data, e.getValue()));
        }
        return new TrainableLlava(cfg, pad, params);
    }

    private static int readPadTokenId(Path configFile) {
        try {
            JsonNode pad = JSON.readTree(Files.readString(configFile)).path("text_config").path("pad_token_id");
            if (pad.isMissingNode() || pad.isNull()) {
                return NO_PAD;
            }
            if (!pad.isIntegralNumber()) {
                throw new IllegalArgumentException(configFile + ": key 'text_config.pad_token_id' expected an integer, got " + pad);
            }
            return pad.intValue();
        } catch (IOException e) {
            throw new IllegalArgumentException(configFile + ": cannot read: " + e.getMessage(), e);
        }
    }

    /**
     * A model over the same weight arrays with its own gradient buffers: a data-parallel worker
     * computes one example's gradient in a replica without touching the others'.
     */
    public TrainableLlava replica() {
        return freezing(name -> !params.get(name).requiresGrad());
    }

    /**
     * A model over the same weight arrays, with fresh gradient buffers, whose parameters named by
     * {@code frozen} are held as constants (no gradient is computed for them, so training leaves them
     * as they are); the others are trainable.
     */
    public TrainableLlava freezing(Predicate<String> frozen) {
        Map<String, Tensor> copy = new LinkedHashMap<>();
        for (Map.Entry<String, Tensor> e : params.entrySet()) {
            Tensor t = e.getValue();
            copy.put(e.getKey(), frozen.test(e.getKey()) ? Tensor.constant(e.getKey(), t.data(), t.shape())
                    : Tensor.param(e.getKey(), t.data(), t.shape()));
        }
        return new TrainableLlava(config, padTokenId, copy);
    }

    /**
     * A model over the same weight arrays held as constants: its forward records no gradient for
     * any weight, for optimising something else through the network (quantizer parameters).
     */
    public TrainableLlava frozen() {
        Map<String, Tensor> copy = new LinkedHashMap<>();
        for (Map.Entry<String, Tensor> e : params.entrySet()) {
            copy.put(e.getKey(), Tensor.of(e.getValue().data(), e.getValue().shape()));
        }
        return new TrainableLlava(config, padTokenId, copy);
    }

    public LlavaConfig config() {
        return config;
    }

    public int padTokenId() {
        return padTokenId;
    }

    /** Parameters by hub checkpoint name, in a fixed order (read-only map; the tensors are live). */
    public Map<String, Tensor> parameters() {
        return params;
    }

    /** Total number of scalar parameters. */
    public long parameterCount() {
        long n = 0;
        for (Tensor p : params.values()) {
            n += p.numel();
        }
        return n;
    }

    private Tensor p(String name) {
        Tensor t = params.get(name);
        if (t == null) {
            throw new IllegalStateException("model has no parameter '" + name + "'");
        }
        return t;
    }

    private Tensor optional(String name) {
        return params.get(name);
    }

    // ---------------------------------------------------------------- forward

    /** Projected image features (F, D) for pixels (C, S, S). */
    public Tensor imageFeatures(Tape tape, float[] pixels) {
        return imageFeatures(tape, pixels, Hook.NONE);
    }

    /** Projected image features (F, D) for pixels (C, S, S), with the hook applied. */
    public Tensor imageFeatures(Tape tape, float[] pixels, Hook hook) {
        return imageFeatures(tape, Collections.singletonList(pixels), hook);
    }

    /**
     * Projected image features (n F, D) of n images (each (C, S, S)), image after image: the images
     * are packed into one (n (P + 1), Dv) stream, so every linear, norm and activation runs once over
     * all of them, while attention stays within each image. With one image this is exactly the
     * single-image forward.
     */
    public Tensor imageFeatures(Tape tape, List<float[]> images, Hook hook) {
        ClipVisionConfig v = config.visionConfig();
        int C = v.numChannels();
        int S = v.imageSize();
        int n = images.size();
        if (n == 0) {
            throw new IllegalArgumentException("image features: expected at least one image, got none");
        }
        int patch = v.patchSize();
        int grid = v.gridSize();
        int P = grid * grid;
        int D = v.hiddenSize();
        int patchLen = C * patch * patch;
        // Conv2d with stride = kernel is a linear map of each flattened (c, ky, kx) patch.
        float[] patches = new float[n * P * patchLen]; // (n P, C*p*p)
        for (int i = 0; i < n; i++) {
            float[] pixels = images.get(i);
            if (pixels == null || pixels.length != C * S * S) {
                throw new IllegalArgumentException("pixel values" + (n > 1 ? " of image " + i : "") + ": expected (" + C + ", "
                        + S + ", " + S + ") = " + C * S * S + " floats, got " + (pixels == null ? "null" : pixels.length));
            }
            for (int gy = 0; gy < grid; gy++) {
                for (int gx = 0; gx < grid; gx++) {
                    int o = ((i * grid + gy) * grid + gx) * patchLen;
                    for (int c = 0; c < C; c++) {
                        for (int ky = 0; ky < patch; ky++) {
                            System.arraycopy(pixels, c * S * S + (gy * patch + ky) * S + gx * patch, patches,
                                    o + (c * patch + ky) * patch, patch);
                        }
                    }
                }
            }
        }
        float eps = (float) v.layerNormEps();
        Tensor convW = Ops.reshape(tape, p(V + "embeddings.patch_embedding.weight"), D, patchLen); // (D, C*p*p)
        Tensor patchEmb = linear(tape, hook, "vision.embeddings.patch_embedding", Tensor.of(patches, n * P, patchLen), convW,
                null); // (n P, D)
        Tensor cls = Ops.reshape(tape, p(V + "embeddings.class_embedding"), 1, D); // (1, D)
        Tensor pos = p(V + "embeddings.position_embedding.weight");
        Tensor[] embedded = new Tensor[n];
        int[] bounds = new int[n + 1];
        for (int i = 0; i < n; i++) {
            Tensor own = n == 1 ? patchEmb : Ops.sliceRows(tape, patchEmb, i * P, (i + 1) * P);
            embedded[i] = Ops.add(tape, Ops.concatRows(tape, cls, own), pos); // (P+1, D)
            bounds[i + 1] = (i + 1) * (P + 1);
        }
        Tensor h = n == 1 ? embedded[0] : Ops.concatRows(tape, embedded);
        h = Ops.layerNorm(tape, h, p(V + "pre_layrnorm.weight"), p(V + "pre_layrnorm.bias"), eps); // (n (P+1), D)
        int layers = config.visionFeatureLayerIndex();
        for (int i = 0; i < layers; i++) {
            String l = VL + i + ".";
            String r = "vision.layers." + i + ".";
            h = hook.residual(tape, r + "in", h);
            Tensor x = Ops.layerNorm(tape, h, p(l + "layer_norm1.weight"), p(l + "layer_norm1.bias"), eps);
            Tensor q = lin(tape, hook, x, l, r, "self_attn.q_proj");
            Tensor k = lin(tape, hook, x, l, r, "self_attn.k_proj");
            Tensor val = lin(tape, hook, x, l, r, "self_attn.v_proj");
            int heads = v.numAttentionHeads();
            Tensor a = attention(tape, q, k, val, heads, heads, false, bounds); // (n (P+1), D)
            h = Ops.add(tape, h, lin(tape, hook, a, l, r, "self_attn.out_proj"));
            x = Ops.layerNorm(tape, h, p(l + "layer_norm2.weight"), p(l + "layer_norm2.bias"), eps);
            x = activation(tape, v.hiddenAct(), lin(tape, hook, x, l, r, "mlp.fc1"));
            h = Ops.add(tape, h, lin(tape, hook, x, l, r, "mlp.fc2"));
            h = hook.residual(tape, r + "out", h);
        }
        Tensor selected = h; // (n F, Dv)
        if (config.visionFeatureSelectStrategy() == LlavaConfig.FeatureSelectStrategy.DEFAULT) {
            Tensor[] patchRows = new Tensor[n]; // each image without its class token
            for (int i = 0; i < n; i++) {
                patchRows[i] = Ops.sliceRows(tape, h, bounds[i] + 1, bounds[i + 1]);
            }
            selected = n == 1 ? patchRows[0] : Ops.concatRows(tape, patchRows);
        }
        Tensor y = activation(tape, config.projectorHiddenAct(), lin(tape, hook, selected, M, "projector.", "linear_1"));
        return lin(tape, hook, y, M, "projector.", "linear_2"); // (n F, D)
    }

    /**
     * Attention within each segment [bounds[s], bounds[s + 1]) of the rows of q, k and v (one
     * sequence per segment, positions restarting at each), the segments' outputs stacked in order.
     */
    private static Tensor attention(Tape tape, Tensor q, Tensor k, Tensor v, int heads, int kvHeads, boolean causal,
            int[] bounds) {
        int segments = bounds.length - 1;
        if (segments == 1) {
            return Ops.attention(tape, q, k, v, heads, kvHeads, causal);
        }
        Tensor[] out = new Tensor[segments];
        for (int s = 0; s < segments; s++) {
            int a = bounds[s];
            int b = bounds[s + 1];
            out[s] = Ops.attention(tape, Ops.sliceRows(tape, q, a, b), Ops.sliceRows(tape, k, a, b),
                    Ops.sliceRows(tape, v, a, b), heads, kvHeads, causal);
        }
        return Ops.concatRows(tape, out);
    }

    /** RoPE applied to each segment [bounds[s], bounds[s + 1]) of x's rows with positions from 0. */
    private static Tensor rope(Tape tape, Tensor x, int heads, double theta, int[] bounds) {
        int segments = bounds.length - 1;
        if (segments == 1) {
            return Ops.rope(tape, x, heads, theta, 0);
        }
        Tensor[] out = new Tensor[segments];
        for (int s = 0; s < segments; s++) {
            out[s] = Ops.rope(tape, Ops.sliceRows(tape, x, bounds[s], bounds[s + 1]), heads, theta, 0);
        }
        return Ops.concatRows(tape, out);
    }

    /** Logits (T, V) for input ids with the image (pixels (C, S, S), or null without image tokens) spliced in. */
    public Tensor logits(Tape tape, int[] ids, float[] pixels) {
        return logits(tape, ids, pixels, Hook.NONE);
    }

    /** Logits (T, V) as {@link #logits(Tape, int[], float[])}, with the hook applied. */
    public Tensor logits(Tape tape, int[] ids, float[] pixels, Hook hook) {
        return logits(tape, List.of(ids), Collections.singletonList(pixels), hook);
    }

    /**
     * Logits (T_1 + ... + T_n, V) of n sequences packed into one forward, sequence after sequence:
     * sequence i has its input ids and its image (pixels (C, S, S), or null without image tokens).
     * Linears, norms and activations run once over the packed rows (larger, faster products);
     * attention and RoPE positions stay within each sequence, so each sequence's rows equal its own
     * forward up to float summation order. With one sequence this is exactly the single forward.
     * The hook sees the packed tensors.
     */
    public Tensor logits(Tape tape, List<int[]> sequences, List<float[]> images, Hook hook) {
        return logits(tape, sequences, images, hook, List.of());
    }

    /** What {@link #logits} collects for a supervised attention head: its targets in, its loss out. */
    private static final class AttentionProbe {
        final SlotAttention.Settings settings;
        /** Per packed row, the key position within its own sequence, or {@link TrainingExample#NO_TARGET}. */
        final int[] targets;
        Tensor loss;

        AttentionProbe(SlotAttention.Settings settings, int[] targets) {
            this.settings = settings;
            this.targets = targets;
        }
    }

    private Tensor logits(Tape tape, List<int[]> sequences, List<float[]> images, Hook hook, List<AttentionProbe> probes) {
        int n = sequences.size();
        if (n == 0 || images.size() != n) {
            throw new IllegalArgumentException("packed forward: expected one image entry (or null) per sequence and at least one "
                    + "sequence, got " + n + " sequences and " + images.size() + " image entries");
        }
        LlamaTextConfig t = config.textConfig();
        int imageToken = config.imageTokenIndex();
        int[] bounds = new int[n + 1];
        List<float[]> present = new ArrayList<>();
        for (int s = 0; s < n; s++) {
            int[] ids = sequences.get(s);
            int imageTokens = 0;
            for (int id : ids) {
                if (id == imageToken) {
                    imageTokens++;
                }
            }
            String which = n > 1 ? " of sequence " + s : "";
            if (images.get(s) != null) {
                if (imageTokens != config.imageSeqLength()) {
                    throw new IllegalArgumentException("input ids" + which + " hold " + imageTokens + " image tokens (id "
                            + imageToken + "), expected " + config.imageSeqLength() + " to match the image features");
                }
                present.add(images.get(s));
            } else if (imageTokens > 0) {
                throw new IllegalArgumentException("input ids" + which + " hold " + imageTokens + " image tokens (id "
                        + imageToken + ") but no pixel values were given");
            }
            bounds[s + 1] = bounds[s] + ids.length;
        }
        int[] allIds = n == 1 ? sequences.get(0) : new int[bounds[n]];
        if (n > 1) {
            for (int s = 0; s < n; s++) {
                System.arraycopy(sequences.get(s), 0, allIds, bounds[s], sequences.get(s).length);
            }
        }
        Tensor features = present.isEmpty() ? null : imageFeatures(tape, present, hook); // (images F, D)
        Tensor embed = p(L + "embed_tokens.weight");
        int[] textIds = allIds;
        if (features != null) {
            // Image positions gather any valid row; their embeddings are replaced below and get no gradient.
            textIds = allIds.clone();
            for (int i = 0; i < textIds.length; i++) {
                if (textIds[i] == imageToken) {
                    textIds[i] = padTokenId == NO_PAD ? 0 : padTokenId;
                }
            }
        }
        Tensor text = Ops.embedding(tape, embed, textIds, padTokenId == NO_PAD ? Ops.NO_PADDING : padTokenId); // (T, D)
        Tensor h = features == null ? text : splice(tape, allIds, text, features, imageToken); // (T, D)
        float eps = (float) t.rmsNormEps();
        int heads = t.numAttentionHeads();
        int kvHeads = t.numKeyValueHeads();
        for (int i = 0; i < t.numHiddenLayers(); i++) {
            String l = L + "layers." + i + ".";
            String r = "llm.layers." + i + ".";
            h = hook.residual(tape, r + "in", h);
            Tensor x = Ops.rmsNorm(tape, h, p(l + "input_layernorm.weight"), eps);
            for (AttentionProbe probe : probes) {
                if (probe.settings.layer() == i) {
                    probe.loss = attentionLoss(tape, x, l, bounds, probe);
                }
            }
            Tensor q = rope(tape, lin(tape, hook, x, l, r, "self_attn.q_proj"), heads, t.ropeTheta(), bounds);
            Tensor k = rope(tape, lin(tape, hook, x, l, r, "self_attn.k_proj"), kvHeads, t.ropeTheta(), bounds);
            Tensor v = lin(tape, hook, x, l, r, "self_attn.v_proj");
            Tensor a = attention(tape, q, k, v, heads, kvHeads, true, bounds); // (T, H*Hd)
            h = Ops.add(tape, h, lin(tape, hook, a, l, r, "self_attn.o_proj"));
            x = Ops.rmsNorm(tape, h, p(l + "post_attention_layernorm.weight"), eps);
            Tensor gate = activation(tape, t.hiddenAct(), lin(tape, hook, x, l, r, "mlp.gate_proj"));
            Tensor up = lin(tape, hook, x, l, r, "mlp.up_proj");
            h = Ops.add(tape, h, lin(tape, hook, Ops.mul(tape, gate, up), l, r, "mlp.down_proj"));
            h = hook.residual(tape, r + "out", h);
        }
        h = Ops.rmsNorm(tape, h, p(L + "norm.weight"), eps);
        Tensor head = config.tieWordEmbeddings() ? embed : p(LM_HEAD);
        return linear(tape, hook, "lm_head", h, head, null); // (T, V)
    }

    /**
     * Mean over the probe's targets of -log of the attention weight that the probe's head of this
     * layer gives, from the target's row, to the target key (causal softmax of q k^T / sqrt(Hd) over
     * the row's own sequence, with RoPE as in the forward). x is the layer's normed input (T, D).
     */
    private Tensor attentionLoss(Tape tape, Tensor x, String l, int[] bounds, AttentionProbe probe) {
        LlamaTextConfig t = config.textConfig();
        int heads = t.numAttentionHeads();
        int head = probe.settings.head();
        if (head >= heads) {
            throw new IllegalArgumentException("slot attention: head " + head + " does not exist, the model has " + heads
                    + " query heads per layer");
        }
        int hd = t.headDim();
        int kvHead = head / (heads / t.numKeyValueHeads());
        Tensor qh = headProjection(tape, x, l + "self_attn.q_proj", head, hd);
        Tensor kh = headProjection(tape, x, l + "self_attn.k_proj", kvHead, hd);
        float scale = (float) (1.0 / Math.sqrt(hd));
        List<Tensor> rows = new ArrayList<>();
        for (int s = 0; s + 1 < bounds.length; s++) {
            Tensor qs = null;
            Tensor ks = null;
            for (int row = bounds[s]; row < bounds[s + 1]; row++) {
                int target = probe.targets[row];
                if (target == TrainingExample.NO_TARGET) {
                    continue;
                }
                if (qs == null) {
                    qs = Ops.rope(tape, Ops.sliceRows(tape, qh, bounds[s], bounds[s + 1]), 1, t.ropeTheta(), 0);
                    ks = Ops.rope(tape, Ops.sliceRows(tape, kh, bounds[s], bounds[s + 1]), 1, t.ropeTheta(), 0);
                }
                int pos = row - bounds[s];
                Tensor scores = Ops.scale(tape, Ops.linear(tape, Ops.sliceRows(tape, qs, pos, pos + 1),
                        Ops.sliceRows(tape, ks, 0, pos + 1), null), scale); // (1, pos + 1)
                rows.add(Ops.crossEntropy(tape, scores, new int[] {target}));
            }
        }
        if (rows.isEmpty()) {
            return null;
        }
        Tensor sum = rows.get(0);
        for (int i = 1; i < rows.size(); i++) {
            sum = Ops.add(tape, sum, rows.get(i));
        }
        return Ops.scale(tape, sum, 1f / rows.size());
    }

    /** One head's slice (T, Hd) of the projection {@code name} (rows head*Hd .. (head+1)*Hd of its weight). */
    private Tensor headProjection(Tape tape, Tensor x, String name, int head, int hd) {
        Tensor w = Ops.sliceRows(tape, p(name + ".weight"), head * hd, (head + 1) * hd);
        Tensor b = optional(name + ".bias");
        if (b != null) {
            b = Ops.reshape(tape, Ops.sliceRows(tape, Ops.reshape(tape, b, b.numel(), 1), head * hd, (head + 1) * hd), hd);
        }
        return Ops.linear(tape, x, w, b);
    }

    /** Replaces, in order, the rows of image tokens by the image features (HF masked_scatter). */
    private static Tensor splice(Tape tape, int[] ids, Tensor text, Tensor features, int imageToken) {
        List<Tensor> parts = new ArrayList<>();
        int used = 0;
        int t = 0;
        while (t < ids.length) {
            int end = t;
            boolean image = ids[t] == imageToken;
            while (end < ids.length && (ids[end] == imageToken) == image) {
                end++;
            }
            parts.add(image ? Ops.sliceRows(tape, features, used, used + end - t) : Ops.sliceRows(tape, text, t, end));
            if (image) {
                used += end - t;
            }
            t = end;
        }
        return Ops.concatRows(tape, parts.toArray(Tensor[]::new));
    }

    /** The linear {@code hfPrefix + local} (runtime name {@code runtimePrefix + local}) applied to x through the hook. */
    private Tensor lin(Tape tape, Hook hook, Tensor x, String hfPrefix, String runtimePrefix, String local) {
        String name = hfPrefix + local;
        return linear(tape, hook, runtimePrefix + local, x, p(name + ".weight"), optional(name + ".bias"));
    }

    private static Tensor linear(Tape tape, Hook hook, String runtimeName, Tensor x, Tensor w, Tensor b) {
        return Ops.linear(tape, hook.input(tape, runtimeName, x), hook.weight(runtimeName, w), b);
    }

    private static Tensor activation(Tape tape, Activation act, Tensor x) {
        return switch (act) {
            case SILU -> Ops.silu(tape, x);
            case GELU_ERF -> Ops.gelu(tape, x);
            case GELU_TANH -> Ops.geluTanh(tape, x);
            case QUICK_GELU -> Ops.quickGelu(tape, x);
        };
    }

    /**
     * HF's causal-LM loss for one example: cross-entropy of logits[t] against labels[t + 1] over the
     * positions whose label is not -100, averaged over them (rank-0 tensor).
     */
    public Tensor loss(Tape tape, TrainingExample ex) {
        Tensor logits = logits(tape, ex.inputIds(), ex.pixels()); // (T, V)
        return Ops.crossEntropy(tape, logits, ex.shiftedTargets());
    }

    /**
     * The token-averaged causal-LM loss of several examples packed into one forward: cross-entropy
     * of every example's logits[t] against its labels[t + 1], averaged over the supervised positions
     * of all of them (rank-0 tensor). Equals the examples' own {@link #loss} values weighted by their
     * shares of the supervised tokens, up to float summation order.
     */
    public Tensor loss(Tape tape, List<TrainingExample> pack) {
        if (pack.size() == 1) {
            return loss(tape, pack.get(0));
        }
        return packedLoss(tape, pack, List.of())[0];
    }

    /**
     * The packed forward's {next-token loss, attention loss (null without a probe)}: the pack's
     * sequences in one forward, each example's shifted targets in its rows.
     */
    private Tensor[] packedLoss(Tape tape, List<TrainingExample> pack, List<AttentionProbe> probes) {
        List<int[]> ids = new ArrayList<>(pack.size());
        List<float[]> images = new ArrayList<>(pack.size());
        int total = 0;
        for (TrainingExample ex : pack) {
            ids.add(ex.inputIds());
            images.add(ex.pixels());
            total += ex.length();
        }
        int[] targets = new int[total];
        int o = 0;
        for (TrainingExample ex : pack) {
            System.arraycopy(ex.shiftedTargets(), 0, targets, o, ex.length());
            o += ex.length();
        }
        Tensor logits = logits(tape, ids, images, Hook.NONE, probes); // (sum T, V)
        return new Tensor[] {Ops.crossEntropy(tape, logits, targets)};
    }

    /**
     * {@link #loss(Tape, List)} plus, when attention is given and the pack has attention targets
     * ({@link TrainingExample#attend}), its weight times the mean over those targets of -log of the
     * attention weight that its head in its layer puts on the target key. Without targets (or with
     * attention null) this is exactly {@link #loss(Tape, List)}.
     */
    public Tensor loss(Tape tape, List<TrainingExample> pack, SlotAttention.Settings attention) {
        return lossParts(tape, pack, attention)[0];
    }

    /**
     * The parts of {@link #loss(Tape, List, SlotAttention.Settings)}: {total, next-token loss,
     * attention loss (null without targets)}.
     */
    public Tensor[] lossParts(Tape tape, List<TrainingExample> pack, SlotAttention.Settings attention) {
        return Arrays.copyOf(lossParts(tape, pack, attention, null), 3);
    }

    /**
     * The next-token loss plus, for each lesson given whose targets the pack has, its weight times the
     * mean over its targets of -log of the attention weight its head puts on the target key: the slot
     * lesson on {@link TrainingExample#attend}, the copy lesson on {@link TrainingExample#copy}.
     * Returns {total, next-token loss, slot attention loss, copy attention loss} (a lesson's loss null
     * when not given or without targets). Without any, this is exactly {@link #loss(Tape, List)}.
     */
    public Tensor[] lossParts(Tape tape, List<TrainingExample> pack, SlotAttention.Settings slot,
                              SlotAttention.Settings copy) {
        int total = 0;
        boolean anySlot = false;
        boolean anyCopy = false;
        for (TrainingExample ex : pack) {
            total += ex.length();
            anySlot |= ex.attentionTargets() > 0;
            anyCopy |= ex.copyTargets() > 0;
        }
        AttentionProbe slotProbe = slot != null && anySlot ? probe(pack, slot, total, TrainingExample::attend) : null;
        AttentionProbe copyProbe = copy != null && anyCopy ? probe(pack, copy, total, TrainingExample::copy) : null;
        if (slotProbe == null && copyProbe == null) {
            Tensor l = loss(tape, pack);
            return new Tensor[] {l, l, null, null};
        }
        List<AttentionProbe> probes = new ArrayList<>(2);
        if (slotProbe != null) {
            probes.add(slotProbe);
        }
        if (copyProbe != null) {
            probes.add(copyProbe);
        }
        Tensor next = packedLoss(tape, pack, probes)[0];
        Tensor sum = next;
        for (AttentionProbe p : probes) {
            if (p.loss != null) {
                sum = Ops.add(tape, sum, Ops.scale(tape, p.loss, (float) p.settings.weight()));
            }
        }
        return new Tensor[] {sum, next, slotProbe == null ? null : slotProbe.loss, copyProbe == null ? null : copyProbe.loss};
    }

    private AttentionProbe probe(List<TrainingExample> pack, SlotAttention.Settings settings, int total,
                                 java.util.function.Function<TrainingExample, int[]> of) {
        if (settings.layer() >= config.textConfig().numHiddenLayers()) {
            throw new IllegalArgumentException("supervised attention: layer " + settings.layer() + " does not exist, the model has "
                    + config.textConfig().numHiddenLayers() + " decoder layers");
        }
        int[] targets = new int[total];
        int o = 0;
        for (TrainingExample ex : pack) {
            int[] t = of.apply(ex);
            if (t != null) {
                System.arraycopy(t, 0, targets, o, ex.length());
            } else {
                Arrays.fill(targets, o, o + ex.length(), TrainingExample.NO_TARGET);
            }
            o += ex.length();
        }
        return new AttentionProbe(settings, targets);
    }

    // ---------------------------------------------------------------- save

    /** Writes config.json and model.safetensors (float32) into dir (created if needed), each atomically. */
    public void save(Path dir) {
        try {
            Files.createDirectories(dir);
        } catch (IOException e) {
            throw new IllegalArgumentException(dir + ": cannot create directory: " + e.getMessage(), e);
        }
        writeWeights(dir.resolve("model.safetensors"));
        AtomicFiles.writeString(dir.resolve(LlavaConfig.FILE_NAME), configJson(config, padTokenId));
    }

    /** Writes the parameters alone as a float32 safetensors file. */
    public void writeWeights(Path file) {
        SafeTensorsWriter w = new SafeTensorsWriter().metadata("format", "pt");
        for (Map.Entry<String, Tensor> e : params.entrySet()) {
            long[] shape = Arrays.stream(e.getValue().shape()).asLongStream().toArray();
            w.addFloats(e.getKey(), DType.F32, shape, e.getValue().data());
        }
        w.write(file);
    }

    /**
     * The config.json text for a config: every field {@link LlavaConfig#parse} reads, spelled as
     * transformers 4.x writes them, plus {@code text_config.pad_token_id} (omitted for {@link #NO_PAD}).
     */
    public static String configJson(LlavaConfig cfg, int padTokenId) {
        ObjectNode c = JSON.createObjectNode();
        c.putArray("architectures").add("LlavaForConditionalGeneration");
        c.put("model_type", "llava");
        c.put("image_token_index", cfg.imageTokenIndex());
        c.put("projector_hidden_act", cfg.projectorHiddenAct().hfName());
        c.put("multimodal_projector_bias", cfg.multimodalProjectorBias());
        c.put("vision_feature_layer", cfg.visionFeatureLayer());
        c.put("vision_feature_select_strategy",
                cfg.visionFeatureSelectStrategy() == LlavaConfig.FeatureSelectStrategy.DEFAULT ? "default" : "full");
        c.put("tie_word_embeddings", cfg.tieWordEmbeddings());
        c.put("torch_dtype", "float32");
        LlamaTextConfig t = cfg.textConfig();
        ObjectNode tc = c.putObject("text_config");
        tc.put("model_type", "llama");
        tc.put("vocab_size", t.vocabSize());
        tc.put("hidden_size", t.hiddenSize());
        tc.put("intermediate_size", t.intermediateSize());
        tc.put("num_hidden_layers", t.numHiddenLayers());
        tc.put("num_attention_heads", t.numAttentionHeads());
        tc.put("num_key_value_heads", t.numKeyValueHeads());
        tc.put("head_dim", t.headDim());
        tc.put("hidden_act", t.hiddenAct().hfName());
        tc.put("max_position_embeddings", t.maxPositionEmbeddings());
        tc.put("rms_norm_eps", t.rmsNormEps());
        tc.put("rope_theta", t.ropeTheta());
        tc.put("attention_bias", t.attentionBias());
        tc.put("mlp_bias", t.mlpBias());
        tc.put("bos_token_id", t.bosTokenId());
        int[] eos = t.eosTokenIds();
        if (eos.length == 1) {
            tc.put("eos_token_id", eos[0]);
        } else {
            var arr = tc.putArray("eos_token_id");
            for (int e : eos) {
                arr.add(e);
            }
        }
        if (padTokenId != NO_PAD) {
            tc.put("pad_token_id", padTokenId);
        }
        tc.put("tie_word_embeddings", cfg.tieWordEmbeddings());
        ClipVisionConfig v = cfg.visionConfig();
        ObjectNode vc = c.putObject("vision_config");
        vc.put("model_type", "clip_vision_model");
        vc.put("hidden_size", v.hiddenSize());
        vc.put("intermediate_size", v.intermediateSize());
        vc.put("num_hidden_layers", v.numHiddenLayers());
        vc.put("num_attention_heads", v.numAttentionHeads());
        vc.put("num_channels", v.numChannels());
        vc.put("image_size", v.imageSize());
        vc.put("patch_size", v.patchSize());
        vc.put("hidden_act", v.hiddenAct().hfName());
        vc.put("layer_norm_eps", v.layerNormEps());
        vc.put("projection_dim", v.projectionDim());
        try {
            return JSON.writerWithDefaultPrettyPrinter().writeValueAsString(c) + "\n";
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    /** The names of parameters that differ in any bit between two models of the same config (for tests and checks). */
    public static List<String> differingParameters(TrainableLlava a, TrainableLlava b) {
        List<String> out = new ArrayList<>();
        for (String name : new TreeSet<>(a.params.keySet())) {
            Tensor tb = b.params.get(name);
            if (tb == null || !Arrays.equals(a.params.get(name).data(), tb.data())) {
                out.add(name);
            }
        }
        return out;
    }
}
