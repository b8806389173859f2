package org.qvlm4j.io.config;

import java.util.Arrays;

/**
 * The activation functions a LLaVA config may name in {@code hidden_act} or
 * {@code projector_hidden_act}, keyed by transformers' ACT2FN names. The math lives in the model
 * package; this enum only fixes which names are accepted and what they mean.
 */
public enum Activation {
    /** x * sigmoid(x) (HF "silu" / "swish"). */
    SILU("silu", "swish"),
    /** Exact GELU with erf (HF "gelu", nn.GELU()). */
    GELU_ERF("gelu"),
    /** GELU with the tanh approximation (HF "gelu_pytorch_tanh", "gelu_new"). */
    GELU_TANH("gelu_pytorch_tanh", "gelu_new"),
    /** x * sigmoid(1.702 x) (HF "quick_gelu", used by OpenAI CLIP). */
    QUICK_GELU("quick_gelu");

    private final String[] hfNames;

    Activation(String... hfNames) {
        this.hfNames = hfNames;
    }

    /** The activation with HF name {@code name}, or null when it is not supported. */
    public static Activation fromHf(String name) {
        for (Activation a : values()) {
            for (String n : a.hfNames) {
                if (n.equals(name)) {
                    return a;
                }
            }
        }
        return null;
    }

    /** All accepted HF names, for error messages. */
    public static String acceptedNames() {
        return Arrays.stream(values()).flatMap(a -> Arrays.stream(a.hfNames)).toList().toString();
    }

    /** The canonical HF name. */
    public String hfName() {
        return hfNames[0];
    }
}
