/**
 * Q-VLM (Wang et al., NeurIPS 2024, arXiv 2410.08119) on the fake-quantizing runtime: visual encoder
 * optimisation of §3.3 ({@link org.qvlm4j.quant.qvlm.VisualEncoderOptimizer} with
 * {@link org.qvlm4j.quant.qvlm.VeoForward}, {@link org.qvlm4j.quant.qvlm.VeoOps}, its samples
 * {@link org.qvlm4j.quant.qvlm.VeoInputs} and per-epoch state {@code VeoCheckpoint}), cross-layer
 * dependency mining of §3.2: the entropy proxy of Eq. 4–5 ({@link org.qvlm4j.quant.qvlm.SoftAssignment},
 * {@link org.qvlm4j.quant.qvlm.JointHistogram}, {@link org.qvlm4j.quant.qvlm.DependencyAnalysis},
 * {@link org.qvlm4j.quant.qvlm.Dependency}), block partitions by Eq. 7 or a search-cost-aware DP
 * ({@link org.qvlm4j.quant.qvlm.Partition}), the block-wise joint search of clipping percentiles of
 * Eq. 3 ({@code BlockSearch}); the {@link org.qvlm4j.quant.qvlm.QvlmMethod} that runs them in the
 * paper's order as one {@link org.qvlm4j.quant.methods.QuantMethod} with checkpoints, a report
 * ({@code QvlmReport}) and export to a quantized checkpoint; and the per-prompt DED analysis of
 * Fig. 2 ({@link org.qvlm4j.quant.qvlm.DedAnalysis}). Every reading of an ambiguity of the paper is
 * listed in {@code docs/qvlm.md} and {@code docs/qvlm-veo.md}, following {@code qvlm-method.md} §6.
 *
 * <p>Of the official code's behaviour (code-compat mode) only its NF4 weights are offered
 * ({@code WeightRounding.NF4}); its dynamic ranges for o_proj and down_proj and its per-decode-step
 * range expansion are left out.
 */
package org.qvlm4j.quant.qvlm;
