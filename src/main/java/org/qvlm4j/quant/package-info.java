/**
 * Quantizers as data: {@link org.qvlm4j.quant.QuantSpec} (one tensor's format, bits, symmetry,
 * granularity, range source, clipping; compact strings like {@code w4-asym-g128}),
 * {@link org.qvlm4j.quant.Quantizer} implementations on float[] with explicit (rows, cols) shapes
 * ({@link org.qvlm4j.quant.UniformQuantizer}, {@link org.qvlm4j.quant.Nf4Quantizer}),
 * {@link org.qvlm4j.quant.QuantPlan} (per {@link org.qvlm4j.quant.TensorCategory} a weight and an
 * input spec, with the {@link org.qvlm4j.quant.QuantPreset} table and JSON via
 * {@link org.qvlm4j.quant.QuantJson}), and the two hooks that let the FP runtime evaluate a plan in
 * fake-quant mode: {@link org.qvlm4j.quant.FakeQuantTap} (inputs) and
 * {@link org.qvlm4j.quant.WeightFakeQuantizer} (weights).
 *
 * <p>Semantics fixed here for every method built on top (Q-VLM and the RTN, SmoothQuant, AWQ, GPTQ,
 * QLoRA-NF4 and ZeroQuant-V2 baselines):
 * <ul>
 *   <li>Rounding is half to even (torch.round), in float arithmetic.</li>
 *   <li>Asymmetric ranges are widened to contain 0, so 0 is always exact; the zero point is an
 *       integer in [0, 2^b − 1].</li>
 *   <li>Symmetric grids are [−(2^(b−1) − 1), 2^(b−1) − 1] (the most negative two's-complement code
 *       is unused).</li>
 *   <li>Weight PER_CHANNEL = output row; activation PER_CHANNEL = input column; PER_GROUP runs along
 *       the reduction axis with a partial last group; NF4 blocks run over the row-major flattened
 *       weight, as bitsandbytes.</li>
 * </ul>
 * Calibration observers that produce static {@link org.qvlm4j.quant.Ranges} live in
 * {@code org.qvlm4j.quant.calib}.
 */
package org.qvlm4j.quant;
