package org.qvlm4j.quant.methods;

/**
 * Per-linear outcome of a {@link QuantMethod}.
 *
 * @param linear         linear name (site prefix)
 * @param weightMse      mean over (N, K) of (W_eff − W)², where W_eff is the quantized weight
 *                       expressed in the original input basis (folded scales undone)
 * @param outputMse      mean over calibration tokens and outputs of ((W_eff − W) x)², computed
 *                       exactly from the site's Hessian Σ xᵀx as tr(E H Eᵀ) / (tokens · N); NaN when
 *                       the statistics hold no Hessian for the site
 * @param scalePlacement where per-input-channel scales went: {@code none}, {@code norm:<name>},
 *                       {@code activation} (applied by the tap) or {@code weight} (folded back
 *                       into the fake-quantized weight, weight-only plans)
 * @param detail         method-specific notes (chosen α, clip ratios, rank, ...)
 */
public record LayerReport(String linear, double weightMse, double outputMse, String scalePlacement, String detail) {
}
