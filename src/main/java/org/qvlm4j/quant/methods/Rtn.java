package org.qvlm4j.quant.methods;

import org.qvlm4j.model.Linear;
import org.qvlm4j.model.LlavaModel;
import org.qvlm4j.quant.QuantPlan;
import org.qvlm4j.quant.QuantSpec;
import org.qvlm4j.quant.calib.CalibrationStats;

/**
 * Round-to-nearest: every planned weight becomes its quantize-dequantize image under the plan's
 * weight spec (ranges from the weight itself); inputs are quantized per the plan's input spec,
 * with static ranges from the statistics' per-channel min/max (per-tensor: min/max over channels)
 * or dynamic ranges. The reference point every other baseline is compared against. No options.
 */
public final class Rtn implements QuantMethod {
    @Override
    public String name() {
        return "rtn";
    }

    @Override
    public QuantResult apply(LlavaModel model, QuantPlan plan, CalibrationStats stats) {
        MethodSupport.Outcome out = new MethodSupport.Outcome(name());
        for (Linear l : model.linears()) {
            QuantSpec spec = plan.forLinear(l.name()).weight();
            if (spec == null) {
                continue;
            }
            float[] w = l.weight().toFloatArray(); // (N, K)
            out.put(l, MethodSupport.fakeQuant(w, l.outFeatures(), l.inFeatures(), spec), null, "none", spec.toString());
        }
        return out.finish(model, plan, stats);
    }
}
