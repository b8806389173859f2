package org.qvlm4j.quant;

import java.util.Locale;

/**
 * The WxAy presets: the one table of default bit widths and granularities (also printed by
 * {@code --help} via {@link #helpTable()}). Granularities follow Q-VLM §4.3 for the baselines:
 * weights per output channel (AWQ / QLoRA style; the weight-only W4A16 uses groups of 128 as AWQ
 * and GPTQ do), LLM inputs per input channel with static ranges (RPTQ), vision-tower and projector
 * inputs per token with dynamic ranges (Outlier Suppression). All uniform and asymmetric
 * (qvlm-method.md §6.1–6.2).
 *
 * <p>Quantized categories: every linear of the vision tower, the projector and the LLM. The
 * embeddings, lm_head and the CLIP patch embedding stay floating point: the paper quantizes the
 * linear layers, and in HF the patch embedding is a Conv2d (the official code's bitsandbytes swap
 * only touches nn.Linear), holding a negligible share of the weights while seeing raw pixels.
 */
public enum QuantPreset {
    W8A8(8, 8, 0, "8-bit weights per channel, 8-bit inputs"),
    W6A6(6, 6, 0, "6-bit weights per channel, 6-bit inputs"),
    W4A4(4, 4, 0, "4-bit weights per channel, 4-bit inputs"),
    W4A16(4, 16, 128, "4-bit weights in groups of 128, inputs floating point"),
    W8A16(8, 16, 0, "8-bit weights per channel, inputs floating point");

    /** Activation bit width that means "not quantized". */
    public static final int FLOAT_BITS = 16;

    private final int weightBits;
    private final int activationBits;
    private final int weightGroup;
    private final String description;

    QuantPreset(int weightBits, int activationBits, int weightGroup, String description) {
        this.weightBits = weightBits;
        this.activationBits = activationBits;
        this.weightGroup = weightGroup;
        this.description = description;
    }

    public int weightBits() {
        return weightBits;
    }

    public int activationBits() {
        return activationBits;
    }

    public String description() {
        return description;
    }

    /** Whether the preset touches this category at all. */
    public static boolean quantizedByDefault(TensorCategory c) {
        return switch (c) {
            case EMBEDDINGS, LM_HEAD, VISION_PATCH_EMBED -> false;
            default -> true;
        };
    }

    public QuantSpec weightSpec() {
        return weightGroup > 0
                ? QuantSpec.weight(weightBits, false, QuantSpec.Granularity.PER_GROUP, weightGroup)
                : QuantSpec.weight(weightBits, false, QuantSpec.Granularity.PER_CHANNEL, 0);
    }

    /** The input spec for a category, or null when inputs stay floating point. */
    public QuantSpec inputSpec(TensorCategory c) {
        if (activationBits == FLOAT_BITS) {
            return null;
        }
        return c.family() == TensorCategory.Family.LLM
                ? QuantSpec.activation(activationBits, false, QuantSpec.Granularity.PER_CHANNEL, false)
                : QuantSpec.activation(activationBits, false, QuantSpec.Granularity.PER_TOKEN, true);
    }

    /** What this preset does to a category. */
    public LinearQuant entry(TensorCategory c) {
        return quantizedByDefault(c) ? new LinearQuant(weightSpec(), inputSpec(c)) : LinearQuant.FP;
    }

    /** Lower-case name, e.g. {@code w8a8}. */
    public String key() {
        return name().toLowerCase(Locale.ROOT);
    }

    /** The preset with the given name, case-insensitive; an error lists the names. */
    public static QuantPreset parse(String name) {
        for (QuantPreset p : values()) {
            if (p.name().equalsIgnoreCase(name.trim())) {
                return p;
            }
        }
        StringBuilder names = new StringBuilder();
        for (QuantPreset p : values()) {
            names.append(names.isEmpty() ? "" : ", ").append(p.key());
        }
        throw new IllegalArgumentException("unknown preset '" + name + "'; expected one of " + names);
    }

    /** One line per preset: name, weight spec, LLM input spec, vision input spec, description. */
    public static String helpTable() {
        StringBuilder sb = new StringBuilder();
        sb.append(String.format(Locale.ROOT, "%-6s %-16s %-24s %-24s %s%n", "preset", "weights", "llm inputs",
                "vision/projector inputs", "notes"));
        for (QuantPreset p : values()) {
            QuantSpec llm = p.inputSpec(TensorCategory.LLM_Q);
            QuantSpec vis = p.inputSpec(TensorCategory.VISION_Q);
            sb.append(String.format(Locale.ROOT, "%-6s %-16s %-24s %-24s %s%n", p.key(), p.weightSpec(),
                    llm == null ? "fp" : llm.toString(), vis == null ? "fp" : vis.toString(), p.description));
        }
        sb.append("embeddings, lm_head and vision.patch_embed stay floating point in every preset");
        return sb.toString();
    }
}
