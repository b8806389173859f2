/**
 * Experiments that regenerate results tables on a model: the quantization toolkit's baseline table
 * and the Q-VLM paper's Tables 1, 2, 4, 5, 6 and Fig. 3 (Wang et al., NeurIPS 2024). An
 * {@link org.qvlm4j.experiments.Experiment} names the configurations it needs
 * ({@link org.qvlm4j.experiments.ConfigSpec}: the FP model or a {@code quantize} invocation);
 * {@link org.qvlm4j.experiments.ExperimentRunner} calibrates once, quantizes, evaluates and
 * measures each configuration into one output directory, skipping whatever is already complete, and
 * {@code ResultTables} writes each table as Markdown and JSON (Fig. 3 also as a PNG). Quantize is
 * reached through {@link org.qvlm4j.experiments.QuantizeStep}, which the CLI implements, so this
 * package sits between the CLI and the packages it drives (quant.calib, eval, bench).
 * docs/results/README.md describes each table.
 */
package org.qvlm4j.experiments;
