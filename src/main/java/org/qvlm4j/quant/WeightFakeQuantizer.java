package org.qvlm4j.quant;

import java.util.LinkedHashMap;
import java.util.Map;
import org.qvlm4j.kernels.WeightMatrix;
import org.qvlm4j.model.Linear;
import org.qvlm4j.model.LlavaModel;

/**
 * Replaces the weight of every linear that a {@link QuantPlan} quantizes by its
 * quantize-dequantize image (an F32 {@link WeightMatrix}), so the FP runtime evaluates the plan's
 * weight quantization (round-to-nearest, the RTN baseline when used alone). Returns the original
 * matrices so a caller can {@link #restore} them.
 *
 * <p>Left out: the embedding table (not a linear; a plan that quantizes EMBEDDINGS is rejected
 * here) and packed integer storage (the kernels' formats).
 */
public final class WeightFakeQuantizer {
    private WeightFakeQuantizer() {
    }

    /**
     * Fake-quantizes the planned weights of model in place; returns linear name → original weight
     * for each replaced linear, in forward order.
     */
    public static Map<String, WeightMatrix> apply(LlavaModel model, QuantPlan plan) {
        if (plan.entry(TensorCategory.EMBEDDINGS).weight() != null) {
            throw new IllegalArgumentException("plan quantizes EMBEDDINGS (" + plan.entry(TensorCategory.EMBEDDINGS)
                    + ") but the embedding table is not a linear and cannot be replaced");
        }
        Map<String, WeightMatrix> originals = new LinkedHashMap<>();
        for (Linear l : model.linears()) {
            QuantSpec spec = plan.forLinear(l.name()).weight();
            if (spec == null) {
                continue;
            }
            WeightMatrix w = l.weight();
            l.replaceWeight(WeightMatrix.ofFloats(fakeQuantized(w, spec), w.rows(), w.cols()));
            originals.put(l.name(), w);
        }
        return originals;
    }

    /** Puts back the weights {@link #apply} returned. */
    public static void restore(LlavaModel model, Map<String, WeightMatrix> originals) {
        for (Linear l : model.linears()) {
            WeightMatrix w = originals.get(l.name());
            if (w != null) {
                l.replaceWeight(w);
            }
        }
    }

    /** The quantize-dequantize image (rows, cols) of w under spec. */
    public static float[] fakeQuantized(WeightMatrix w, QuantSpec spec) {
        if (spec.target() != QuantSpec.Target.WEIGHT) {
            throw new IllegalArgumentException("weight fake quantization needs a WEIGHT spec, got " + spec);
        }
        float[] values = w.toFloatArray(); // (N, K)
        Quantizer.of(spec).fakeQuantize(values, w.rows(), w.cols());
        return values;
    }
}
