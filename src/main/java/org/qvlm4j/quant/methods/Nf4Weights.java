package org.qvlm4j.quant.methods;

import org.qvlm4j.model.Linear;
import org.qvlm4j.model.LlavaModel;
import org.qvlm4j.quant.QuantPlan;
import org.qvlm4j.quant.QuantSpec;
import org.qvlm4j.quant.calib.CalibrationStats;

/**
 * The QLoRA weight format as a post-training baseline (Dettmers et al. 2023, "QLoRA: Efficient
 * Finetuning of Quantized LLMs"): every linear the plan quantizes gets NormalFloat4 weights with
 * one absmax per block of 64 (optionally double-quantized to 8 bit per 256 blocks), via
 * {@link org.qvlm4j.quant.Nf4Quantizer}; a plan whose weight spec already is NF4 keeps that spec,
 * a uniform one is replaced by this config's NF4 spec (the bit width of the plan is then ignored:
 * NF4 is always 4 bit). Inputs are quantized per the plan. No adapters (that is fine-tuning).
 */
public final class Nf4Weights implements QuantMethod {
    /**
     * @param blockSize   absmax block size; default 64 (bitsandbytes / QLoRA)
     * @param doubleQuant quantize the absmax constants (blocks of 256); default true (QLoRA)
     */
    public record Config(int blockSize, boolean doubleQuant) {
        public static final Config DEFAULT = new Config(QuantSpec.NF4_BLOCK, true);

        public Config {
            if (blockSize < 1) {
                throw new IllegalArgumentException("NF4 block size must be >= 1, got " + blockSize);
            }
        }

        QuantSpec spec() {
            return new QuantSpec(QuantSpec.Format.NF4, QuantSpec.Target.WEIGHT, 4, true, QuantSpec.Granularity.BLOCK,
                    blockSize, false, QuantSpec.Clip.NONE, doubleQuant ? QuantSpec.NF4_DOUBLE_QUANT_BLOCK : 0);
        }
    }

    private final Config cfg;

    public Nf4Weights(Config cfg) {
        this.cfg = cfg;
    }

    @Override
    public String name() {
        return "nf4";
    }

    @Override
    public QuantResult apply(LlavaModel model, QuantPlan plan, CalibrationStats stats) {
        MethodSupport.Outcome out = new MethodSupport.Outcome(name());
        for (Linear l : model.linears()) {
            QuantSpec planned = plan.forLinear(l.name()).weight();
            if (planned == null) {
                continue;
            }
            QuantSpec spec = planned.format() == QuantSpec.Format.NF4 ? planned : cfg.spec();
            float[] w = l.weight().toFloatArray(); // (N, K)
            out.put(l, MethodSupport.fakeQuant(w, l.outFeatures(), l.inFeatures(), spec), null, "none", spec.toString());
        }
        return out.finish(model, plan, stats);
    }
}
