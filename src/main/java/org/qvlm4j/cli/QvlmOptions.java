package org.qvlm4j.cli;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.Locale;
import java.util.Map;
import org.qvlm4j.quant.qvlm.CalibrationSamples;
import org.qvlm4j.quant.qvlm.Dependency;
import org.qvlm4j.quant.qvlm.QvlmMethod;
import org.qvlm4j.quant.qvlm.SoftAssignment;
import org.qvlm4j.quant.qvlm.VeoConfig;
import org.qvlm4j.quant.qvlm.RangeRefinement;
import org.qvlm4j.quant.qvlm.VeoInputs;
import org.qvlm4j.train.TrainableLlava;
import org.qvlm4j.train.QcmExampleEncoder;
import picocli.CommandLine.Option;

/**
 * The options of {@code quantize --method qvlm} (a picocli mixin, so the command itself only wires
 * it in): cross-layer dependency mining and visual encoder optimisation on or off (the four rows of
 * the paper's Table 1), block depth, percentile grid, h0 multiplier, partition rule, dependency proxy
 * and forward, per-site search, the vision percentile, the search subset, VEO's loss weights and
 * schedule, the data directory, the work directory for resuming, and --search-only for writing the
 * searched ranges without a checkpoint. Defaults are {@link QvlmMethod.Config#DEFAULT} and
 * {@link VeoConfig#defaults()}.
 */
public final class QvlmOptions {
    @Option(names = "--cdm", negatable = true, defaultValue = "true", fallbackValue = "true",
            description = "qvlm: cross-layer dependency mining (block-wise joint search); --no-cdm searches layer by "
                    + "layer, the paper's baseline (default: ${DEFAULT-VALUE}).")
    boolean cdm;

    @Option(names = "--veo", negatable = true, defaultValue = "true", fallbackValue = "true",
            description = "qvlm: visual encoder optimisation of the vision tower's activation ranges before the "
                    + "partition (default: ${DEFAULT-VALUE}).")
    boolean veo;

    @Option(names = "--eta", defaultValue = "1.0", paramLabel = "X",
            description = "qvlm VEO: weight of the final layer's error against the vision output's in L_err (Eq. 9; "
                    + "default: ${DEFAULT-VALUE}).")
    double eta;

    @Option(names = "--lambda1", defaultValue = "0.01", paramLabel = "X",
            description = "qvlm VEO: weight of the Jacobian-weighted entropy L_ent (Eq. 10; default: ${DEFAULT-VALUE}).")
    double lambda1;

    @Option(names = "--lambda2", defaultValue = "1.0", paramLabel = "X",
            description = "qvlm VEO: weight of the discretisation error L_err (Eq. 10; default: ${DEFAULT-VALUE}).")
    double lambda2;

    @Option(names = "--veo-epochs", defaultValue = "10", paramLabel = "N",
            description = "qvlm VEO: epochs (default: ${DEFAULT-VALUE}).")
    int veoEpochs;

    @Option(names = "--veo-lr", defaultValue = "0.01", paramLabel = "LR",
            description = "qvlm VEO: peak learning rate of the clipping factors, cosine-decayed (default: "
                    + "${DEFAULT-VALUE}).")
    double veoLr;

    @Option(names = "--veo-samples", defaultValue = "64", paramLabel = "N",
            description = "qvlm VEO: train-split problems with an image drawn with the statistics' seed "
                    + "(default: ${DEFAULT-VALUE}).")
    int veoSamples;

    @Option(names = "--veo-batch", defaultValue = "8", paramLabel = "B",
            description = "qvlm VEO: samples per update (default: ${DEFAULT-VALUE}).")
    int veoBatch;

    @Option(names = "--refine-epochs", defaultValue = "0", paramLabel = "N",
            description = "qvlm: epochs of the gradient refinement of the LLM's input clipping ranges after the "
                    + "block search, on the search prompts (0: off; the paper's setting is 10; default: ${DEFAULT-VALUE}).")
    int refineEpochs;

    @Option(names = "--refine-objective", defaultValue = "blocks", paramLabel = "NAME",
            description = "qvlm refinement: blocks (Eq. 3's block output errors) or decisions (cross-entropy against "
                    + "the FP model's greedy next tokens) (default: ${DEFAULT-VALUE}).")
    String refineObjective;

    @Option(names = "--refine-lr", defaultValue = "0.01", paramLabel = "LR",
            description = "qvlm refinement: peak learning rate of the clipping factors, cosine-decayed (default: "
                    + "${DEFAULT-VALUE}).")
    double refineLr;

    @Option(names = "--refine-batch", defaultValue = "8", paramLabel = "B",
            description = "qvlm refinement: prompts per update (default: ${DEFAULT-VALUE}).")
    int refineBatch;

    @Option(names = "--veo-answer-style", paramLabel = "STYLE",
            description = "qvlm VEO: supervised answer of L_reg, letter, reasoned, labelled or stepwise (default: the model's "
                    + "train_manifest.json answer_style, else letter).")
    String veoAnswerStyle;

    @Option(names = "--dependency-on", defaultValue = "quantized", paramLabel = "FORWARD",
            description = "qvlm: measure the layer dependency on the quantized forward left by VEO (RTN weights, "
                    + "min/max LLM ranges) or on the fp model (default: ${DEFAULT-VALUE}).")
    String dependencyOn;

    @Option(names = "--weight-rounding", defaultValue = "rtn", paramLabel = "NAME",
            description = "qvlm: round the weights to nearest (rtn, the paper's reading), by GPTQ on the calibration "
                    + "Hessians (gptq; the statistics need them: calibrate --hessian all), or to NF4 in blocks of 64 "
                    + "(nf4, the official code's weights; --group and --double-quant apply) before the activation search "
                    + "(default: ${DEFAULT-VALUE}).")
    String weightRounding;

    @Option(names = "--block-error", defaultValue = "residual", paramLabel = "NAME",
            description = "qvlm: what the block search's output error is measured on: the residual stream after the "
                    + "block (residual) or that stream through the RMSNorm that reads it next (normed) "
                    + "(default: ${DEFAULT-VALUE}).")
    String blockError;

    @Option(names = "--max-depth", defaultValue = "3", paramLabel = "N",
            description = "qvlm: most decoder layers per block (default: ${DEFAULT-VALUE}).")
    int maxDepth;

    @Option(names = "--p-grid", defaultValue = "1.0,0.995,0.99,0.985,0.98", split = ",", paramLabel = "P,...",
            description = "qvlm: clipping percentiles to search (default: ${DEFAULT-VALUE}).")
    double[] pGrid;

    @Option(names = "--h0", defaultValue = "1.0", paramLabel = "X",
            description = "qvlm: block threshold h0 as a multiple of the mean pair dependency (default: ${DEFAULT-VALUE}).")
    double h0;

    @Option(names = "--partition", defaultValue = "greedy", paramLabel = "RULE",
            description = "qvlm: greedy (Eq. 7) or dp (search-cost aware) (default: ${DEFAULT-VALUE}).")
    String partition;

    @Option(names = "--proxy", defaultValue = "entropy", paramLabel = "NAME",
            description = "qvlm: dependency proxy, entropy or error (quantization error) (default: ${DEFAULT-VALUE}).")
    String proxy;

    @Option(names = "--per-site",
            description = "qvlm: after the per-layer search, refine each layer's four input sites by coordinate descent.")
    boolean perSite;

    @Option(names = "--vision-pct", defaultValue = "1.0", paramLabel = "P",
            description = "qvlm: clipping percentile of vision-tower and projector inputs; 1 = per-token-position "
                    + "min/max, below 1 per-channel percentile ranges (default: ${DEFAULT-VALUE}).")
    double visionPct;

    @Option(names = "--search-samples", defaultValue = "0", paramLabel = "N",
            description = "qvlm: search on a seeded subset of N calibration prompts (0 = all; default: ${DEFAULT-VALUE}).")
    int searchSamples;

    @Option(names = "--search-seed", defaultValue = "0", paramLabel = "S",
            description = "qvlm: seed of that subset (default: ${DEFAULT-VALUE}).")
    long searchSeed;

    @Option(names = "--entropy-temperature", defaultValue = "grid", paramLabel = "MODE",
            description = "qvlm: Eq. 5 temperature: grid (tau grid steps, scale-free) or paper (T = level spacing, "
                    + "as printed) (default: ${DEFAULT-VALUE}).")
    String temperature;

    @Option(names = "--data", paramLabel = "DIR",
            description = "qvlm: data directory of the calibration prompts and VEO's samples, if it has moved since "
                    + "calibrate (default: the statistics' data.dir).")
    Path data;

    @Option(names = "--work", paramLabel = "DIR",
            description = "qvlm: checkpoint directory; a killed run restarted with the same DIR resumes.")
    Path work;

    @Option(names = "--search-only",
            description = "qvlm: write the searched ranges and the report to --out instead of a quantized checkpoint.")
    boolean searchOnly;

    /** The configuration these options describe. */
    QvlmMethod.Config config() {
        VeoConfig v;
        try {
            v = new VeoConfig(eta, lambda1, lambda2, veoLr, veoEpochs, veoBatch, veoSamples, VeoConfig.DEFAULT_SEED,
                    VeoConfig.DEFAULT_BITS);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("qvlm VEO options (--eta, --lambda1, --lambda2, --veo-lr, --veo-epochs, "
                    + "--veo-batch, --veo-samples): " + e.getMessage(), e);
        }
        return new QvlmMethod.Config(cdm, veo, maxDepth, pGrid, h0, enumValue(QvlmMethod.PartitionStrategy.class,
                "--partition", partition), proxy(), enumValue(QvlmMethod.DependencyForward.class, "--dependency-on",
                dependencyOn), perSite, QvlmMethod.Config.DEFAULT.perSiteSweeps(), visionPct, searchSamples, searchSeed,
                enumValue(SoftAssignment.Temperature.class, "--entropy-temperature", temperature),
                QvlmMethod.Config.DEFAULT.tau(), v, new RangeRefinement.Config(enumValue(
                        RangeRefinement.Objective.class, "--refine-objective", refineObjective), refineEpochs, refineBatch, refineLr,
                        RangeRefinement.Config.DEFAULT.seed()),
                enumValue(QvlmMethod.WeightRounding.class, "--weight-rounding", weightRounding),
                enumValue(QvlmMethod.BlockError.class, "--block-error", blockError));
    }

    /** The method these options describe, for the FP model at modelDir; progress lines go to err. */
    QvlmMethod method(Path modelDir, PrintWriter err) {
        QcmExampleEncoder.AnswerStyle style = veoAnswerStyle == null ? null
                : VeoInputs.answerStyle("--veo-answer-style", veoAnswerStyle);
        return new QvlmMethod(config(), CalibrationSamples.fromStats(modelDir, data),
                VeoInputs.fromStats(modelDir, data, style), work, Map.of(), line -> {
                    err.println(line);
                    err.flush();
                }).trainableModel(() -> TrainableLlava.load(modelDir));
    }

    private Dependency.Proxy proxy() {
        return switch (proxy.toLowerCase(Locale.ROOT)) {
            case "entropy" -> Dependency.Proxy.ENTROPY;
            case "error", "quant-error" -> Dependency.Proxy.QUANT_ERROR;
            default -> throw new IllegalArgumentException("--proxy: expected entropy or error, got '" + proxy + "'");
        };
    }

    private static <E extends Enum<E>> E enumValue(Class<E> type, String option, String value) {
        for (E e : type.getEnumConstants()) {
            if (e.name().equalsIgnoreCase(value)) {
                return e;
            }
        }
        StringBuilder names = new StringBuilder();
        for (E e : type.getEnumConstants()) {
            names.append(names.isEmpty() ? "" : " or ").append(e.name().toLowerCase(Locale.ROOT));
        }
        throw new IllegalArgumentException(option + ": expected " + names + ", got '" + value + "'");
    }
}
