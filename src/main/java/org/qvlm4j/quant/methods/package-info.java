/**
 * Post-training quantization baselines on a loaded {@link org.qvlm4j.model.LlavaModel}, each a
 * {@link org.qvlm4j.quant.methods.QuantMethod} with a named config record:
 * {@link org.qvlm4j.quant.methods.Rtn} (round to nearest),
 * {@link org.qvlm4j.quant.methods.SmoothQuant} (Xiao et al. 2023),
 * {@link org.qvlm4j.quant.methods.Awq} (Lin et al. 2024),
 * {@link org.qvlm4j.quant.methods.Gptq} (Frantar et al. 2023),
 * {@link org.qvlm4j.quant.methods.Nf4Weights} (QLoRA's NF4, Dettmers et al. 2023) and
 * {@link org.qvlm4j.quant.methods.ZeroQuantV2} (Yao et al. 2023, group RTN + LoRC).
 *
 * <p>All of them read a {@link org.qvlm4j.quant.QuantPlan} (which linears, which weight and input
 * specs) and {@link org.qvlm4j.quant.calib.CalibrationStats} (per-channel input ranges and mean
 * magnitudes, and the input Hessians H = Σ xᵀx that AWQ and GPTQ need), rewrite the model into its
 * fake-quantized image and return a {@link org.qvlm4j.quant.methods.QuantResult}. Output errors are
 * measured through the Hessian: for a weight error E, Σ over calibration tokens of ||E x||² is
 * tr(E H Eᵀ), so no second pass over the calibration data is needed. Everything is deterministic.
 *
 * <p>Left out: packed integer export, the {@code quantize} command, per-layer α tables, LoRC factor
 * quantization, GPTQ's true-sequential re-calibration (the Hessians are those of the FP model).
 */
package org.qvlm4j.quant.methods;
