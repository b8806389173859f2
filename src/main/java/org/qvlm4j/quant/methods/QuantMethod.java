package org.qvlm4j.quant.methods;

import org.qvlm4j.model.LlavaModel;
import org.qvlm4j.quant.QuantPlan;
import org.qvlm4j.quant.calib.CalibrationStats;

/**
 * A post-training quantization method: given a loaded model, a {@link QuantPlan} and calibration
 * statistics of that model, it rewrites the model in place into its fake-quantized image (every
 * planned linear's weight replaced by the dequantized F32 matrix, per-layer norms changed where
 * scales are folded into them) and returns a {@link QuantResult} holding the new weights, the
 * activation tap to register for the plan's input quantization, the scales it folded and a
 * per-layer error report. Each implementation takes its named configuration record in its
 * constructor.
 *
 * <p>The rewrite is not undone here: reload the model to get the floating-point one back.
 * Left out: packed integer export (the weights are fake-quantized floats).
 */
public interface QuantMethod {
    /** Short name used in reports, e.g. {@code rtn}, {@code gptq}. */
    String name();

    QuantResult apply(LlavaModel model, QuantPlan plan, CalibrationStats stats);
}
