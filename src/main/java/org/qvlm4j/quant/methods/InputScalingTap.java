package org.qvlm4j.quant.methods;

import java.util.Map;
import org.qvlm4j.model.ActivationTap;

/**
 * Multiplies the input of selected linears by diag(1/s) (the activation side of a smoothing
 * transform whose scale could not be folded into a preceding norm), then hands every site to the
 * next tap (typically the input quantizer). The division is per element in float, matching a
 * norm whose weight was divided by s only up to float rounding.
 */
public final class InputScalingTap implements ActivationTap {
    private final Map<String, float[]> scales;
    private final ActivationTap next;

    InputScalingTap(Map<String, float[]> scales, ActivationTap next) {
        this.scales = Map.copyOf(scales);
        this.next = next;
    }

    /** Site ({@code <linear>.in}) → the scale s its input is divided by (unmodifiable). */
    public Map<String, float[]> scales() {
        return scales;
    }

    /** The tap every site goes to after the scaling (typically the input quantizer), or null. */
    public ActivationTap next() {
        return next;
    }

    @Override
    public void onActivation(String site, float[] data, int rows, int cols) {
        float[] s = scales.get(site);
        if (s != null) {
            if (s.length != cols) {
                throw new IllegalArgumentException("site " + site + ": " + s.length + " scales for " + cols + " channels");
            }
            for (int r = 0; r < rows; r++) {
                for (int j = 0; j < cols; j++) {
                    data[r * cols + j] /= s[j];
                }
            }
        }
        if (next != null) {
            next.onActivation(site, data, rows, cols);
        }
    }
}
