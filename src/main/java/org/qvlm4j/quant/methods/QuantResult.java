package org.qvlm4j.quant.methods;

import java.util.List;
import java.util.Map;
import org.qvlm4j.kernels.WeightMatrix;
import org.qvlm4j.model.ActivationTap;
import org.qvlm4j.model.LlavaModel;

/**
 * What a {@link QuantMethod} produced.
 *
 * @param method  the method's name
 * @param weights linear name → the new (fake-quantized, scale-folded) weight now in the model, in
 *                forward order
 * @param tap     the activation tap realising the plan's input quantization (static ranges from
 *                the statistics, rescaled by any folded scales; dynamic ones computed on the fly),
 *                preceded by the 1/s input scaling of linears whose scales could not be folded into
 *                a norm; null when nothing happens to activations
 * @param scales  linear name → its per-input-channel scale s (W' = W·diag(s), X' = X·diag(1/s)),
 *                for methods that smooth
 * @param report  per-linear errors, in forward order
 */
public record QuantResult(String method, Map<String, WeightMatrix> weights, ActivationTap tap,
                          Map<String, float[]> scales, List<LayerReport> report) {

    /** Registers the activation tap on the model (the weights are already in place). */
    public void installTap(LlavaModel model) {
        model.setActivationTap(tap);
    }

    /** The report row of a linear. */
    public LayerReport layer(String linear) {
        for (LayerReport r : report) {
            if (r.linear().equals(linear)) {
                return r;
            }
        }
        throw new IllegalArgumentException(method + ": no report row for linear '" + linear + "' (" + report.size()
                + " rows)");
    }
}
