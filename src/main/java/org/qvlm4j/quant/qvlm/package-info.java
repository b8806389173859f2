/**
 * Q-VLM's cross-layer dependency mining (Wang et al., NeurIPS 2024, arXiv 2410.08119, §3.2) on the
 * fake-quantizing runtime: the entropy proxy of Eq. 4–5 ({@link org.qvlm4j.quant.qvlm.SoftAssignment},
 * {@link org.qvlm4j.quant.qvlm.JointHistogram}, {@link org.qvlm4j.quant.qvlm.DependencyAnalysis},
 * {@link org.qvlm4j.quant.qvlm.Dependency}), block partitions by Eq. 7 or a search-cost-aware DP
 * ({@link org.qvlm4j.quant.qvlm.Partition}), the block-wise joint search of clipping percentiles of
 * Eq. 3 ({@code BlockSearch}), the {@link org.qvlm4j.quant.qvlm.QvlmMethod} that ties them into a
 * {@link org.qvlm4j.quant.methods.QuantMethod} with per-block checkpoints, and the per-prompt DED
 * analysis of Fig. 2 ({@link org.qvlm4j.quant.qvlm.DedAnalysis}). Every reading of an ambiguity of the
 * paper is listed in {@code docs/qvlm.md}, following {@code qvlm-method.md} §6.
 *
 * <p>Left out: the visual encoder optimisation (VEO, it supplies vision ranges through the method's
 * constructor), the paper's unspecified gradient refinement of quantizer parameters, NF4 code-compat
 * mode.
 */
package org.qvlm4j.quant.qvlm;
