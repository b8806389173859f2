package org.qvlm4j.experiments;

import java.math.BigDecimal;
import java.math.RoundingMode;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import org.qvlm4j.quant.qvlm.QvlmMethod;
import org.qvlm4j.quant.qvlm.VeoConfig;

/**
 * One configuration of an experiment: the floating-point model, or a {@code quantize} invocation
 * (method, bits and the method's options), under a stable id that names its directories
 * ({@code OUT/models/<id>}, {@code OUT/eval/<id>}, ...). Two tables that ask for the same
 * configuration build the same id and so share its checkpoint, evaluation and measurement: the
 * factories below leave options at their defaults out of the id (Q-VLM at depth 3, the paper's
 * percentile grid and VEO's default eta is plain {@code qvlm-w4a4}).
 *
 * <p>Options of {@code quantize} that may not exist yet (VEO's switches, added to
 * {@code --method qvlm} separately) are {@link Flag}s: a required one whose option is unknown makes
 * the configuration unavailable with that reason; an optional one (switching a missing feature
 * off) is simply not passed. Leaves out: group sizes other than per channel, plan overrides.
 *
 * @param id          directory name, unique per distinct quantize invocation
 * @param method      quantize's --method, or {@value #FP} for the floating-point model
 * @param unavailable why no checkpoint can exist for this configuration, or null
 */
public record ConfigSpec(String id, String method, int wbits, int abits, List<Flag> flags, String unavailable) {
    /** The method name of the floating-point model. */
    public static final String FP = "fp";
    /** Bits of a floating-point operand in quantize's options. */
    public static final int FLOAT_BITS = 16;
    /** The paper's maximum block depth (§4.1, Fig. 3a). */
    public static final int DEFAULT_DEPTH = 3;
    /** The lower end of the paper's percentile grid 1.0 … 0.98 (§4.1). */
    public static final BigDecimal DEFAULT_P_MIN = new BigDecimal("0.98");
    /** Points of a percentile grid from 1 down to its lower end, as the paper's five. */
    public static final int GRID_POINTS = 5;
    private static final int GRID_DECIMALS = 6;

    /**
     * Option tokens passed to quantize when it knows {@code probe}.
     *
     * @param probe    the option whose presence decides (e.g. {@code --veo} for {@code --no-veo})
     * @param tokens   what to pass
     * @param required without the option the configuration cannot be made
     */
    public record Flag(String probe, List<String> tokens, boolean required) {
        public Flag {
            tokens = List.copyOf(tokens);
        }
    }

    public ConfigSpec {
        flags = List.copyOf(flags);
    }

    /** The floating-point model itself. */
    public static ConfigSpec fp() {
        return new ConfigSpec(FP, FP, FLOAT_BITS, FLOAT_BITS, List.of(), null);
    }

    /**
     * A baseline at W{wbits}A{abits} with its default configuration; nf4 is QLoRA's NF4 with double
     * quantization and exists only at 4 weight bits.
     */
    public static ConfigSpec baseline(String method, int wbits, int abits) {
        String id = method + "-" + bits(wbits, abits).toLowerCase(Locale.ROOT);
        if (method.equals("nf4")) {
            if (wbits != 4) {
                return new ConfigSpec(id, method, wbits, abits, List.of(), "NF4 (QLoRA) is a 4-bit weight format; "
                        + "there is no " + wbits + "-bit NF4");
            }
            return new ConfigSpec(id, method, wbits, abits, List.of(new Flag("--double-quant",
                    List.of("--double-quant"), true)), null);
        }
        return new ConfigSpec(id, method, wbits, abits, List.of(), null);
    }

    /** SmoothQuant's migration strength of {@link #smoothQuantAll}: all of the outliers' range moved into the weights. */
    public static final String STRONG_ALPHA = "1.0";

    /**
     * SmoothQuant with migration strength {@value #STRONG_ALPHA} and every linear smoothed
     * ({@code --alpha 1.0 --smooth-all}): the configuration that holds up best at 4-bit inputs with
     * one range per tensor, where the defaults (0.5, norm-fed linears only) collapse.
     */
    public static ConfigSpec smoothQuantAll(int wbits, int abits) {
        return new ConfigSpec("smoothquant-a1-all-" + bits(wbits, abits).toLowerCase(Locale.ROOT), "smoothquant", wbits,
                abits, List.of(new Flag("--smooth-all", List.of("--alpha", STRONG_ALPHA, "--smooth-all"), true)), null);
    }

    /** The variant of Q-VLM's parts: cross-layer dependency mining and visual encoder optimisation. */
    public record QvlmVariant(boolean cdm, boolean veo, int maxDepth, BigDecimal pMin, BigDecimal eta,
                              boolean errorProxy) {
        /** The full method with the paper's settings. */
        public static final QvlmVariant FULL = new QvlmVariant(true, true, DEFAULT_DEPTH, DEFAULT_P_MIN,
                BigDecimal.valueOf(VeoConfig.DEFAULT_ETA), false);

        public QvlmVariant withParts(boolean cdm, boolean veo) {
            return new QvlmVariant(cdm, veo, maxDepth, pMin, eta, errorProxy);
        }

        public QvlmVariant withDepth(int d) {
            return new QvlmVariant(cdm, veo, d, pMin, eta, errorProxy);
        }

        public QvlmVariant withPMin(BigDecimal p) {
            return new QvlmVariant(cdm, veo, maxDepth, p, eta, errorProxy);
        }

        public QvlmVariant withEta(BigDecimal e) {
            return new QvlmVariant(cdm, veo, maxDepth, pMin, e, errorProxy);
        }

        public QvlmVariant withErrorProxy() {
            return new QvlmVariant(cdm, veo, maxDepth, pMin, eta, true);
        }
    }

    /** Q-VLM at W{wbits}A{abits} in the given variant. */
    public static ConfigSpec qvlm(int wbits, int abits, QvlmVariant v) {
        StringBuilder id = new StringBuilder(QvlmMethod.NAME);
        id.append(v.cdm() && v.veo() ? "" : v.cdm() ? "-cdm" : v.veo() ? "-veo" : "-layerwise");
        List<Flag> flags = new ArrayList<>();
        flags.add(new Flag("--cdm", List.of(v.cdm() ? "--cdm" : "--no-cdm"), true));
        flags.add(new Flag("--veo", List.of(v.veo() ? "--veo" : "--no-veo"), v.veo()));
        if (v.errorProxy()) {
            id.append("-errproxy");
            flags.add(new Flag("--proxy", List.of("--proxy", "error"), true));
        }
        if (v.maxDepth() != DEFAULT_DEPTH) {
            id.append("-depth").append(v.maxDepth());
            flags.add(new Flag("--max-depth", List.of("--max-depth", Integer.toString(v.maxDepth())), true));
        }
        if (v.pMin().compareTo(DEFAULT_P_MIN) != 0) {
            id.append("-pmin").append(v.pMin().stripTrailingZeros().toPlainString());
            flags.add(new Flag("--p-grid", List.of("--p-grid", pGrid(v.pMin())), true));
        }
        if (v.veo() && v.eta().compareTo(BigDecimal.valueOf(VeoConfig.DEFAULT_ETA)) != 0) {
            id.append("-eta").append(v.eta().stripTrailingZeros().toPlainString());
            flags.add(new Flag("--eta", List.of("--eta", v.eta().toPlainString()), true));
        }
        id.append('-').append(bits(wbits, abits).toLowerCase(Locale.ROOT));
        return new ConfigSpec(id.toString(), QvlmMethod.NAME, wbits, abits, flags, null);
    }

    /** {@value #GRID_POINTS} evenly spaced percentiles from 1 down to pMin, as quantize's --p-grid. */
    public static String pGrid(BigDecimal pMin) {
        if (pMin.compareTo(new BigDecimal("0.5")) <= 0 || pMin.compareTo(BigDecimal.ONE) >= 0) {
            throw new IllegalArgumentException("percentile grid lower end: expected a value in (0.5, 1), got " + pMin);
        }
        BigDecimal step = BigDecimal.ONE.subtract(pMin).divide(BigDecimal.valueOf(GRID_POINTS - 1), GRID_DECIMALS,
                RoundingMode.HALF_EVEN);
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < GRID_POINTS; i++) {
            BigDecimal p = i == GRID_POINTS - 1 ? pMin : BigDecimal.ONE.subtract(step.multiply(BigDecimal.valueOf(i)));
            sb.append(i == 0 ? "" : ",").append(p.stripTrailingZeros().toPlainString());
        }
        return sb.toString();
    }

    /** "W8A8", "W4A16", or "FP". */
    public static String bits(int wbits, int abits) {
        return wbits >= FLOAT_BITS && abits >= FLOAT_BITS ? "FP" : "W" + wbits + "A" + abits;
    }

    public boolean isFp() {
        return method.equals(FP);
    }

    public String bits() {
        return bits(wbits, abits);
    }

    /** Whether quantize runs Q-VLM's visual encoder optimisation for this configuration. */
    public boolean veo() {
        return flags.stream().anyMatch(f -> f.tokens().contains("--veo"));
    }

    /** quantize's arguments that define this configuration (without model, statistics, output and work paths). */
    public List<String> baseArgs() {
        return List.of("--method", method, "--wbits", Integer.toString(wbits), "--abits", Integer.toString(abits));
    }
}
