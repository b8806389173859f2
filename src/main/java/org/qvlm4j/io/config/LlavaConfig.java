package org.qvlm4j.io.config;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.JsonNodeType;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The HF {@code config.json} of a {@code LlavaForConditionalGeneration} checkpoint: a LLaMA text
 * config, a CLIP vision config and the glue between them.
 *
 * <p>Hub configs omit every key equal to its transformers default, so the parser applies the
 * defaults of transformers' {@code LlamaConfig}, {@code CLIPVisionConfig} and {@code LlavaConfig}
 * (configuration_llama.py, configuration_clip.py, configuration_llava.py). Both the 4.x spelling
 * ({@code text_config.rope_theta}, {@code image_token_index}) and the 5.x spelling
 * ({@code text_config.rope_parameters.rope_theta}, {@code image_token_id}) are read.
 *
 * <p>Not supported (rejected with a message naming the key): a text model other than llama, a
 * list-valued {@code vision_feature_layer} (multi-layer features), rope scaling types other than
 * "default", and activations outside {@link Activation}.
 *
 * @param visionFeatureLayer index into HF's vision {@code hidden_states} tuple (L + 1 entries:
 *     the embeddings, then each encoder layer's output); negative counts from the end
 * @param dtype the checkpoint's declared {@code torch_dtype}/{@code dtype}, or null if absent
 */
public record LlavaConfig(
        LlamaTextConfig textConfig,
        ClipVisionConfig visionConfig,
        int imageTokenIndex,
        Activation projectorHiddenAct,
        FeatureSelectStrategy visionFeatureSelectStrategy,
        int visionFeatureLayer,
        boolean multimodalProjectorBias,
        boolean tieWordEmbeddings,
        String dtype) {

    /** Name of the config file in a model directory. */
    public static final String FILE_NAME = "config.json";

    /** Which vision tokens become image features: HF's vision_feature_select_strategy. */
    public enum FeatureSelectStrategy {
        /** Drop the CLS token: P features. */
        DEFAULT,
        /** Keep the CLS token: P + 1 features. */
        FULL
    }

    private static final ObjectMapper JSON = new ObjectMapper();

    /** The resolved non-negative index into the L + 1 vision hidden states. */
    public int visionFeatureLayerIndex() {
        int n = visionConfig.numHiddenLayers() + 1;
        return visionFeatureLayer < 0 ? n + visionFeatureLayer : visionFeatureLayer;
    }

    /** Image features per image: P, or P + 1 with the "full" strategy. */
    public int imageSeqLength() {
        int p = visionConfig.numPatches();
        return visionFeatureSelectStrategy == FeatureSelectStrategy.FULL ? p + 1 : p;
    }

    /** Reads {@code config.json} from a model directory, or a config file given directly. */
    public static LlavaConfig load(Path dirOrFile) {
        Path file = Files.isDirectory(dirOrFile) ? dirOrFile.resolve(FILE_NAME) : dirOrFile;
        if (!Files.isRegularFile(file)) {
            throw new IllegalArgumentException(file + ": no such file (expected the model's " + FILE_NAME + ")");
        }
        String text;
        try {
            text = Files.readString(file);
        } catch (IOException e) {
            throw new IllegalArgumentException(file + ": cannot read config: " + e.getMessage(), e);
        }
        return parse(text, file.toString());
    }

    /** Parses config JSON text; {@code source} names the file in error messages. */
    public static LlavaConfig parse(String json, String source) {
        JsonNode root;
        try {
            root = JSON.readTree(json);
        } catch (JsonProcessingException e) {
            throw new IllegalArgumentException(source + ": not valid JSON: " + e.getOriginalMessage(), e);
        }
        Node top = new Node(source, "", root);
        if (root == null || !root.isObject()) {
            throw new IllegalArgumentException(source + ": expected a JSON object at the top level, got "
                    + (root == null ? "nothing" : root.getNodeType()));
        }
        String modelType = top.str("model_type", "llava");
        if (!modelType.equals("llava")) {
            throw new IllegalArgumentException(source + ": key 'model_type' expected \"llava\", got \"" + modelType + "\"");
        }
        Node text = top.child("text_config");
        Node vision = top.child("vision_config");
        LlamaTextConfig tc = parseText(text);
        ClipVisionConfig vc = vision == null ? clipVitL14At336() : parseVision(vision);

        int imageToken = top.has("image_token_index") ? top.integer("image_token_index", 32000)
                : top.integer("image_token_id", 32000);
        Activation projAct = top.act("projector_hidden_act", Activation.GELU_ERF);
        String strat = top.str("vision_feature_select_strategy", "default");
        FeatureSelectStrategy strategy = switch (strat) {
            case "default" -> FeatureSelectStrategy.DEFAULT;
            case "full" -> FeatureSelectStrategy.FULL;
            default -> throw new IllegalArgumentException(source + ": key 'vision_feature_select_strategy' expected "
                    + "\"default\" or \"full\", got \"" + strat + "\"");
        };
        JsonNode layerNode = root.get("vision_feature_layer");
        if (layerNode != null && layerNode.isArray()) {
            throw new IllegalArgumentException(source + ": key 'vision_feature_layer' is a list " + layerNode
                    + "; multi-layer vision features are not supported (expected a single integer)");
        }
        int featureLayer = top.integer("vision_feature_layer", -2);
        int states = vc.numHiddenLayers() + 1;
        if (featureLayer < -states || featureLayer >= states) {
            throw new IllegalArgumentException(source + ": key 'vision_feature_layer' expected an index into the "
                    + states + " vision hidden states (" + (-states) + " .. " + (states - 1) + "), got " + featureLayer);
        }
        boolean projBias = top.bool("multimodal_projector_bias", true);
        boolean tie;
        if (top.has("tie_word_embeddings")) {
            tie = top.bool("tie_word_embeddings", false);
        } else {
            tie = text != null && text.bool("tie_word_embeddings", false);
        }
        String dtype = top.has("torch_dtype") ? top.str("torch_dtype", null) : top.str("dtype", null);
        if (dtype == null && text != null) {
            dtype = text.has("torch_dtype") ? text.str("torch_dtype", null) : text.str("dtype", null);
        }
        return new LlavaConfig(tc, vc, imageToken, projAct, strategy, featureLayer, projBias, tie, dtype);
    }

    /** LlavaConfig's vision default when vision_config is absent: CLIP ViT-L/14 at 336 px. */
    private static ClipVisionConfig clipVitL14At336() {
        return new ClipVisionConfig(1024, 4096, 24, 16, 3, 336, 14, Activation.QUICK_GELU, 1e-5, 768);
    }

    private static LlamaTextConfig parseText(Node t) {
        if (t == null) {
            t = new Node("(defaults)", "text_config.", JSON.createObjectNode());
        }
        String type = t.str("model_type", "llama");
        if (!type.equals("llama")) {
            throw new IllegalArgumentException(t.source + ": key '" + t.prefix + "model_type' expected \"llama\", got \""
                    + type + "\" (only LLaMA language models are supported)");
        }
        int vocab = t.positive("vocab_size", 32000);
        int hidden = t.positive("hidden_size", 4096);
        int inter = t.positive("intermediate_size", 11008);
        int layers = t.positive("num_hidden_layers", 32);
        int heads = t.positive("num_attention_heads", 32);
        int kvHeads = t.positive("num_key_value_heads", heads);
        if (heads % kvHeads != 0) {
            throw new IllegalArgumentException(t.source + ": key '" + t.prefix + "num_key_value_heads' must divide "
                    + "num_attention_heads " + heads + ", got " + kvHeads);
        }
        if (!t.has("head_dim") && hidden % heads != 0) {
            throw new IllegalArgumentException(t.source + ": key '" + t.prefix + "hidden_size' " + hidden
                    + " is not divisible by num_attention_heads " + heads + " and no head_dim is given");
        }
        int headDim = t.positive("head_dim", hidden / heads);
        if (headDim % 2 != 0) {
            throw new IllegalArgumentException(t.source + ": key '" + t.prefix + "head_dim' must be even for rotary "
                    + "embeddings, got " + headDim);
        }
        Activation act = t.act("hidden_act", Activation.SILU);
        int maxPos = t.positive("max_position_embeddings", 2048);
        double eps = t.number("rms_norm_eps", 1e-6);
        double theta = 10000.0;
        Node rope = t.child("rope_parameters");
        if (rope == null) {
            rope = t.child("rope_scaling");
        }
        if (t.has("rope_theta")) {
            theta = t.number("rope_theta", theta);
        } else if (rope != null && rope.has("rope_theta")) {
            theta = rope.number("rope_theta", theta);
        }
        if (rope != null) {
            String ropeType = rope.has("rope_type") ? rope.str("rope_type", "default") : rope.str("type", "default");
            if (!ropeType.equals("default")) {
                throw new IllegalArgumentException(t.source + ": key '" + rope.prefix + "rope_type' expected \"default\", got \""
                        + ropeType + "\" (rope scaling is not supported)");
            }
        }
        if (!(theta > 0)) {
            throw new IllegalArgumentException(t.source + ": key '" + t.prefix + "rope_theta' must be positive, got " + theta);
        }
        boolean attnBias = t.bool("attention_bias", false);
        boolean mlpBias = t.bool("mlp_bias", false);
        int bos = t.integer("bos_token_id", 1);
        int[] eos;
        JsonNode eosNode = t.node.get("eos_token_id");
        if (eosNode != null && eosNode.isArray()) {
            eos = new int[eosNode.size()];
            for (int i = 0; i < eos.length; i++) {
                JsonNode e = eosNode.get(i);
                if (!e.isIntegralNumber()) {
                    throw t.typeError("eos_token_id[" + i + "]", "an integer", e);
                }
                eos[i] = e.intValue();
            }
        } else {
            eos = new int[] {t.integer("eos_token_id", 2)};
        }
        return new LlamaTextConfig(vocab, hidden, inter, layers, heads, kvHeads, headDim, act, maxPos, eps, theta,
                attnBias, mlpBias, bos, eos);
    }

    private static ClipVisionConfig parseVision(Node v) {
        String type = v.str("model_type", "clip_vision_model");
        if (!type.equals("clip_vision_model")) {
            throw new IllegalArgumentException(v.source + ": key '" + v.prefix + "model_type' expected "
                    + "\"clip_vision_model\", got \"" + type + "\" (only CLIP vision towers are supported)");
        }
        int hidden = v.positive("hidden_size", 768);
        int inter = v.positive("intermediate_size", 3072);
        int layers = v.positive("num_hidden_layers", 12);
        int heads = v.positive("num_attention_heads", 12);
        if (hidden % heads != 0) {
            throw new IllegalArgumentException(v.source + ": key '" + v.prefix + "hidden_size' " + hidden
                    + " is not divisible by num_attention_heads " + heads);
        }
        int channels = v.positive("num_channels", 3);
        int image = v.positive("image_size", 224);
        int patch = v.positive("patch_size", 32);
        if (image % patch != 0) {
            throw new IllegalArgumentException(v.source + ": key '" + v.prefix + "image_size' " + image
                    + " is not a multiple of patch_size " + patch);
        }
        Activation act = v.act("hidden_act", Activation.QUICK_GELU);
        double eps = v.number("layer_norm_eps", 1e-5);
        int proj = v.positive("projection_dim", 512);
        return new ClipVisionConfig(hidden, inter, layers, heads, channels, image, patch, act, eps, proj);
    }

    /** A JSON object plus the file and dotted key prefix used in messages. */
    private record Node(String source, String prefix, JsonNode node) {
        boolean has(String key) {
            JsonNode v = node.get(key);
            return v != null && !v.isNull();
        }

        Node child(String key) {
            JsonNode v = node.get(key);
            if (v == null || v.isNull()) {
                return null;
            }
            if (!v.isObject()) {
                throw typeError(key, "an object", v);
            }
            return new Node(source, prefix + key + ".", v);
        }

        IllegalArgumentException typeError(String key, String expected, JsonNode actual) {
            String shown = actual.getNodeType() == JsonNodeType.STRING ? "\"" + actual.asText() + "\"" : actual.toString();
            return new IllegalArgumentException(source + ": key '" + prefix + key + "' expected " + expected + ", got "
                    + actual.getNodeType().toString().toLowerCase() + " " + shown);
        }

        String str(String key, String def) {
            if (!has(key)) {
                return def;
            }
            JsonNode v = node.get(key);
            if (!v.isTextual()) {
                throw typeError(key, "a string", v);
            }
            return v.asText();
        }

        int integer(String key, int def) {
            if (!has(key)) {
                return def;
            }
            JsonNode v = node.get(key);
            if (!v.isIntegralNumber() || !v.canConvertToInt()) {
                throw typeError(key, "an integer", v);
            }
            return v.intValue();
        }

        int positive(String key, int def) {
            int x = integer(key, def);
            if (x <= 0) {
                throw new IllegalArgumentException(source + ": key '" + prefix + key + "' expected a positive integer, got " + x);
            }
            return x;
        }

        double number(String key, double def) {
            if (!has(key)) {
                return def;
            }
            JsonNode v = node.get(key);
            if (!v.isNumber()) {
                throw typeError(key, "a number", v);
            }
            return v.doubleValue();
        }

        boolean bool(String key, boolean def) {
            if (!has(key)) {
                return def;
            }
            JsonNode v = node.get(key);
            if (!v.isBoolean()) {
                throw typeError(key, "a boolean", v);
            }
            return v.booleanValue();
        }

        Activation act(String key, Activation def) {
            String name = str(key, null);
            if (name == null) {
                return def;
            }
            Activation a = Activation.fromHf(name);
            if (a == null) {
                throw new IllegalArgumentException(source + ": key '" + prefix + key + "' expected one of "
                        + Activation.acceptedNames() + ", got \"" + name + "\"");
            }
            return a;
        }
    }
}
