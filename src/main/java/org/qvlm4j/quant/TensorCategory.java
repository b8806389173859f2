package org.qvlm4j.quant;

import java.util.Locale;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The kinds of weight tensor a {@link QuantPlan} can address, and the one place that maps a
 * runtime linear name (the {@code org.qvlm4j.model.ActivationTap} site prefix, e.g.
 * {@code vision.layers.3.self_attn.q_proj}, {@code llm.layers.0.mlp.down_proj},
 * {@code projector.linear_1}, {@code lm_head}) to its category. Each category has a short key
 * ({@code vision.q}, {@code llm.down}, {@code projector}, ...) used by plan overrides.
 *
 * <p>EMBEDDINGS (the LLaMA token table, {@code llm.embed_tokens}) is not a linear; it is listed so
 * that plans can state that it stays floating point.
 */
public enum TensorCategory {
    VISION_PATCH_EMBED("vision.patch_embed", Family.VISION),
    VISION_Q("vision.q", Family.VISION),
    VISION_K("vision.k", Family.VISION),
    VISION_V("vision.v", Family.VISION),
    VISION_OUT("vision.out", Family.VISION),
    VISION_FC1("vision.fc1", Family.VISION),
    VISION_FC2("vision.fc2", Family.VISION),
    PROJECTOR("projector", Family.PROJECTOR),
    LLM_Q("llm.q", Family.LLM),
    LLM_K("llm.k", Family.LLM),
    LLM_V("llm.v", Family.LLM),
    LLM_O("llm.o", Family.LLM),
    LLM_GATE("llm.gate", Family.LLM),
    LLM_UP("llm.up", Family.LLM),
    LLM_DOWN("llm.down", Family.LLM),
    EMBEDDINGS("embeddings", Family.LLM),
    LM_HEAD("lm_head", Family.LLM);

    /** Which modality's tensors a category belongs to (decides default activation granularity). */
    public enum Family { VISION, PROJECTOR, LLM }

    private static final Pattern VISION = Pattern.compile(
            "vision\\.layers\\.\\d+\\.(?:self_attn\\.(q|k|v|out)_proj|mlp\\.(fc1|fc2))");
    private static final Pattern LLM = Pattern.compile(
            "llm\\.layers\\.\\d+\\.(?:self_attn\\.(q|k|v|o)_proj|mlp\\.(gate|up|down)_proj)");
    private static final Pattern PROJ = Pattern.compile("projector\\.linear_[12]");

    private final String key;
    private final Family family;

    TensorCategory(String key, Family family) {
        this.key = key;
        this.family = family;
    }

    /** Short name used in overrides and reports, e.g. {@code llm.down}. */
    public String key() {
        return key;
    }

    public Family family() {
        return family;
    }

    /** The category of a runtime tensor name, or empty if the name is not a quantizable weight. */
    public static Optional<TensorCategory> find(String name) {
        if (name.equals("vision.embeddings.patch_embedding")) {
            return Optional.of(VISION_PATCH_EMBED);
        }
        if (name.equals("lm_head")) {
            return Optional.of(LM_HEAD);
        }
        if (name.equals("llm.embed_tokens")) {
            return Optional.of(EMBEDDINGS);
        }
        if (PROJ.matcher(name).matches()) {
            return Optional.of(PROJECTOR);
        }
        Matcher m = VISION.matcher(name);
        if (m.matches()) {
            String kind = m.group(1) != null ? m.group(1) : m.group(2);
            return Optional.of(valueOf("VISION_" + kind.toUpperCase(Locale.ROOT)));
        }
        m = LLM.matcher(name);
        if (m.matches()) {
            String kind = m.group(1) != null ? m.group(1) : m.group(2);
            return Optional.of(valueOf("LLM_" + kind.toUpperCase(Locale.ROOT)));
        }
        return Optional.empty();
    }

    /** The category of a runtime tensor name; an unknown name is an error naming it. */
    public static TensorCategory of(String name) {
        return find(name).orElseThrow(() -> new IllegalArgumentException("tensor '" + name
                + "' has no quantization category; expected a linear such as vision.layers.<i>.self_attn.q_proj, "
                + "vision.layers.<i>.mlp.fc1, projector.linear_1, llm.layers.<i>.mlp.down_proj, lm_head"));
    }

    /** The category with the given key (case-insensitive), or an error listing the keys. */
    public static TensorCategory ofKey(String key) {
        for (TensorCategory c : values()) {
            if (c.key.equalsIgnoreCase(key)) {
                return c;
            }
        }
        StringBuilder keys = new StringBuilder();
        for (TensorCategory c : values()) {
            keys.append(keys.isEmpty() ? "" : ", ").append(c.key);
        }
        throw new IllegalArgumentException("unknown tensor category '" + key + "'; expected one of " + keys);
    }
}
