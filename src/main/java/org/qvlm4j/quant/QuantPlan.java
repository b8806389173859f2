package org.qvlm4j.quant;

import com.fasterxml.jackson.annotation.JsonIgnore;
import java.util.ArrayList;
import java.util.Collections;
import java.util.EnumMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Which tensors are quantized and how: per {@link TensorCategory}, a weight spec and an
 * input-activation spec (either may be null = floating point). Every category is present in
 * {@link #entries()} (FP ones explicitly), so a plan printed or saved as JSON states everything.
 *
 * <p>Defaults follow the Q-VLM paper: {@link #preset} quantizes weights and inputs of every linear
 * of the vision tower, projector and LLM (see {@link QuantPreset} for the granularities and what
 * stays FP); norms and the attention matmuls are never quantized (the runtime has no hook there).
 *
 * <p><b>Overrides</b> ({@link Builder#override}): a list separated by ';' or ',' of
 * {@code <target>=<value>}. target is a category key ({@code llm.down}, {@code vision.fc1},
 * {@code projector}, {@code lm_head}, ...) or a family: {@code vision} (the six vision-layer
 * linears), {@code llm} (the seven decoder-layer linears), {@code all} (both plus the projector);
 * families never include the patch embedding, embeddings or lm_head, which must be named.
 * value is a preset ({@code w8a8}), {@code fp}, or specs joined by '+'
 * ({@code w4-asym-g128+a8-asym-channel-static}; a missing part stays FP). Later items win.
 */
public record QuantPlan(Map<TensorCategory, LinearQuant> entries) {

    public QuantPlan {
        EnumMap<TensorCategory, LinearQuant> full = new EnumMap<>(TensorCategory.class);
        for (TensorCategory c : TensorCategory.values()) {
            LinearQuant e = entries == null ? null : entries.get(c);
            full.put(c, e == null ? LinearQuant.FP : e);
        }
        LinearQuant emb = full.get(TensorCategory.EMBEDDINGS);
        if (emb.input() != null) {
            throw new IllegalArgumentException("QuantPlan: EMBEDDINGS takes no input spec (its input is token ids), got "
                    + emb.input());
        }
        entries = Collections.unmodifiableMap(full);
    }

    /** Nothing quantized. */
    public static QuantPlan none() {
        return new QuantPlan(null);
    }

    /** The paper's default plan at the preset's bit widths. */
    public static QuantPlan preset(QuantPreset p) {
        return builder().preset(p).build();
    }

    public static Builder builder() {
        return new Builder();
    }

    /** A builder starting from this plan. */
    public Builder toBuilder() {
        Builder b = new Builder();
        b.entries.putAll(entries);
        return b;
    }

    public LinearQuant entry(TensorCategory c) {
        return entries.get(c);
    }

    /** The entry for a runtime linear name; an unknown name is an error. */
    public LinearQuant forLinear(String linearName) {
        return entries.get(TensorCategory.of(linearName));
    }

    /**
     * This plan with the input spec of every category of the family that has one moved to another
     * granularity, bits, symmetry, static or dynamic and clip kept; weights unchanged. Per-tensor
     * static LLM inputs (one range per linear input) are the harder setting of the W4A4 comparison.
     */
    public QuantPlan withInputGranularity(TensorCategory.Family family, QuantSpec.Granularity granularity) {
        if (granularity != QuantSpec.Granularity.PER_TENSOR && granularity != QuantSpec.Granularity.PER_CHANNEL
                && granularity != QuantSpec.Granularity.PER_TOKEN) {
            throw new IllegalArgumentException("input granularity: expected PER_TENSOR, PER_CHANNEL or PER_TOKEN, got "
                    + granularity);
        }
        Builder b = toBuilder();
        for (Map.Entry<TensorCategory, LinearQuant> e : entries.entrySet()) {
            QuantSpec in = e.getValue().input();
            if (e.getKey().family() == family && in != null) {
                b.input(e.getKey(), new QuantSpec(in.format(), in.target(), in.bits(), in.symmetric(), granularity,
                        in.groupSize(), in.dynamic(), in.clip(), in.doubleQuantBlock()));
            }
        }
        return b.build();
    }

    /** Whether nothing at all is quantized. */
    @JsonIgnore
    public boolean isFloatingPoint() {
        return entries.values().stream().allMatch(LinearQuant::isFloatingPoint);
    }

    /** One line per category, {@code key = spec}, for reports. */
    public String describe() {
        StringBuilder sb = new StringBuilder();
        for (Map.Entry<TensorCategory, LinearQuant> e : entries.entrySet()) {
            sb.append(String.format(Locale.ROOT, "%-18s = %s%n", e.getKey().key(), e.getValue()));
        }
        return sb.toString();
    }

    public String toJson() {
        return QuantJson.write(this);
    }

    public static QuantPlan fromJson(String json) {
        return QuantJson.read(json, QuantPlan.class);
    }

    /** Mutable plan under construction; starts with everything FP. */
    public static final class Builder {
        private final EnumMap<TensorCategory, LinearQuant> entries = new EnumMap<>(TensorCategory.class);

        private Builder() {
        }

        /** Replaces every entry with the preset's. */
        public Builder preset(QuantPreset p) {
            for (TensorCategory c : TensorCategory.values()) {
                entries.put(c, p.entry(c));
            }
            return this;
        }

        public Builder set(TensorCategory c, LinearQuant q) {
            entries.put(c, q == null ? LinearQuant.FP : q);
            return this;
        }

        public Builder weight(TensorCategory c, QuantSpec spec) {
            LinearQuant old = entries.getOrDefault(c, LinearQuant.FP);
            return set(c, new LinearQuant(spec, old.input()));
        }

        public Builder input(TensorCategory c, QuantSpec spec) {
            LinearQuant old = entries.getOrDefault(c, LinearQuant.FP);
            return set(c, new LinearQuant(old.weight(), spec));
        }

        /** Applies an override list such as {@code llm.down=w8a8;vision=fp} (see the class comment). */
        public Builder override(String text) {
            if (text == null || text.isBlank()) {
                return this;
            }
            for (String item : text.trim().split("[;,\\s]+")) {
                int eq = item.indexOf('=');
                if (eq <= 0 || eq == item.length() - 1) {
                    throw new IllegalArgumentException("plan override '" + item
                            + "': expected <category|vision|llm|all>=<preset|fp|spec[+spec]>");
                }
                String target = item.substring(0, eq).trim();
                String value = item.substring(eq + 1).trim();
                for (TensorCategory c : targets(target)) {
                    entries.put(c, value(c, value, item));
                }
            }
            return this;
        }

        private static List<TensorCategory> targets(String target) {
            String t = target.toLowerCase(Locale.ROOT);
            List<TensorCategory> out = new ArrayList<>();
            if (t.equals("vision") || t.equals("llm") || t.equals("all")) {
                for (TensorCategory c : TensorCategory.values()) {
                    boolean family = t.equals("all")
                            || (t.equals("vision") && c.family() == TensorCategory.Family.VISION)
                            || (t.equals("llm") && c.family() == TensorCategory.Family.LLM);
                    if (family && QuantPreset.quantizedByDefault(c)) {
                        out.add(c);
                    }
                }
                return out;
            }
            return List.of(TensorCategory.ofKey(t));
        }

        private static LinearQuant value(TensorCategory c, String value, String item) {
            if (value.equalsIgnoreCase("fp")) {
                return LinearQuant.FP;
            }
            if (value.toLowerCase(Locale.ROOT).matches("w\\d+a\\d+")) {
                QuantPreset p = QuantPreset.parse(value);
                return new LinearQuant(p.weightSpec(), c == TensorCategory.EMBEDDINGS ? null : p.inputSpec(c));
            }
            QuantSpec w = null;
            QuantSpec a = null;
            for (String part : value.split("\\+")) {
                QuantSpec s = QuantSpec.parse(part);
                if (s.target() == QuantSpec.Target.WEIGHT) {
                    if (w != null) {
                        throw new IllegalArgumentException("plan override '" + item + "': two weight specs");
                    }
                    w = s;
                } else {
                    if (a != null) {
                        throw new IllegalArgumentException("plan override '" + item + "': two input specs");
                    }
                    a = s;
                }
            }
            return new LinearQuant(w, a);
        }

        public QuantPlan build() {
            return new QuantPlan(entries);
        }
    }
}
