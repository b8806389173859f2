package org.qvlm4j.experiments;

import java.math.BigDecimal;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.qvlm4j.experiments.ConfigSpec.QvlmVariant;

/**
 * The experiments {@code qvlm4j experiment} runs and the configurations each needs: the
 * quantization toolkit's baseline table, the Q-VLM paper's Tables 1, 2, 4, 5, 6 and Fig. 3 (Wang et
 * al., NeurIPS 2024; layouts in docs/results/README.md), {@link #HEADLINE} (Q-VLM at W4A4 beside FP and
 * every baseline at the same bits: the README's main job), and {@link #ALL}, their union. Table 3
 * (VQA datasets) and Table 7 (OpenFlamingo) need other models and data and are left out.
 */
public enum Experiment {
    BASELINES("baselines", "Quantization baselines: accuracy, size and decode speed"),
    TABLE1("table1", "Q-VLM Table 1: ablation of cross-layer dependency mining (CDM) and visual encoder "
            + "optimisation (VEO)"),
    TABLE2("table2", "Q-VLM Table 2: accuracy per question class"),
    TABLE4("table4", "Q-VLM Table 4: inference time, memory and accuracy"),
    TABLE5("table5", "Q-VLM Table 5: dependency proxy, quantization error versus entropy"),
    TABLE6("table6", "Q-VLM Table 6: comparison with ZeroQuant-V2"),
    FIG3("fig3", "Q-VLM Fig. 3: sweeps of maximum block depth, percentile grid and eta"),
    HEADLINE("headline", "Q-VLM at W4A4 next to the floating-point model and the best baseline"),
    ALL("all", "Every table");

    /** The baselines in table order. */
    public static final List<String> BASELINE_METHODS = List.of("rtn", "smoothquant", "awq", "gptq", "nf4",
            "zeroquant-v2");
    /** Bit widths of the baseline table: (weight bits, activation bits). */
    public static final List<int[]> BASELINE_BITS = List.of(new int[] {8, 8}, new int[] {6, 6}, new int[] {4, 4},
            new int[] {4, 16});
    /** Bit widths of Tables 1, 2 and 5. */
    public static final List<int[]> PAPER_BITS = List.of(new int[] {6, 6}, new int[] {4, 4});
    /** Bit widths of Tables 4 and 6. */
    public static final List<int[]> SPEED_BITS = List.of(new int[] {8, 8}, new int[] {4, 4});
    /** The bit width of the headline comparison. */
    public static final int[] HEADLINE_BITS = {4, 4};
    /** The bit width of the Fig. 3 sweeps. */
    public static final int[] FIG3_BITS = {4, 4};
    /** Fig. 3a: maximum decoder layers per block. */
    public static final List<Integer> DEPTHS = List.of(1, 2, 3, 4);
    /**
     * Fig. 3b: lower ends of the percentile grid (the paper's is 0.98). Every 5-point grid from 1 to
     * these falls on the calibration statistics' percentile grid (0.980 to 1 in steps of 0.001).
     */
    public static final List<BigDecimal> P_MINS = List.of(new BigDecimal("0.996"), new BigDecimal("0.992"),
            new BigDecimal("0.988"), new BigDecimal("0.984"), new BigDecimal("0.98"));
    /** Fig. 3b: weights of the final-layer error in VEO's discretisation loss (the default is 1). */
    public static final List<BigDecimal> ETAS = List.of(new BigDecimal("0.1"), new BigDecimal("0.3"), BigDecimal.ONE,
            new BigDecimal("3"), new BigDecimal("10"));

    /** The CLI name. */
    public final String key;
    /** The table's title. */
    public final String title;

    Experiment(String key, String title) {
        this.key = key;
        this.title = title;
    }

    /** The experiment of a CLI name. */
    public static Experiment parse(String name) {
        for (Experiment e : values()) {
            if (e.key.equals(name.toLowerCase(Locale.ROOT))) {
                return e;
            }
        }
        List<String> names = new ArrayList<>();
        for (Experiment e : values()) {
            names.add(e.key);
        }
        throw new IllegalArgumentException("experiment: expected one of " + String.join(", ", names) + ", got '"
                + name + "'");
    }

    /** The experiments whose tables this one writes: itself, or every table for {@link #ALL}. */
    public List<Experiment> tables() {
        if (this != ALL) {
            return List.of(this);
        }
        List<Experiment> l = new ArrayList<>(List.of(values()));
        l.remove(ALL);
        return l;
    }

    /** The configurations this experiment needs, in run order, each id once. */
    public List<ConfigSpec> configs() {
        Map<String, ConfigSpec> m = new LinkedHashMap<>();
        for (Experiment e : tables()) {
            for (ConfigSpec c : e.own()) {
                m.putIfAbsent(c.id(), c);
            }
        }
        return List.copyOf(m.values());
    }

    private List<ConfigSpec> own() {
        List<ConfigSpec> l = new ArrayList<>();
        l.add(ConfigSpec.fp());
        switch (this) {
            case BASELINES -> {
                for (int[] b : BASELINE_BITS) {
                    for (String m : BASELINE_METHODS) {
                        l.add(ConfigSpec.baseline(m, b[0], b[1]));
                    }
                }
            }
            case TABLE1 -> {
                for (int[] b : PAPER_BITS) {
                    l.addAll(table1Row(b));
                }
            }
            case TABLE2 -> {
                for (int[] b : PAPER_BITS) {
                    l.add(ConfigSpec.baseline("awq", b[0], b[1]));
                    l.add(ConfigSpec.baseline("nf4", b[0], b[1]));
                    l.add(ConfigSpec.qvlm(b[0], b[1], QvlmVariant.FULL));
                }
            }
            case TABLE4 -> {
                for (int[] b : SPEED_BITS) {
                    l.add(ConfigSpec.baseline("nf4", b[0], b[1]));
                    l.add(ConfigSpec.baseline("awq", b[0], b[1]));
                    l.add(ConfigSpec.qvlm(b[0], b[1], QvlmVariant.FULL));
                }
            }
            case TABLE5 -> {
                for (int[] b : PAPER_BITS) {
                    l.add(ConfigSpec.qvlm(b[0], b[1], table5Error()));
                    l.add(ConfigSpec.qvlm(b[0], b[1], table5Entropy()));
                }
            }
            case TABLE6 -> {
                for (int[] b : SPEED_BITS) {
                    l.add(ConfigSpec.baseline("zeroquant-v2", b[0], b[1]));
                    l.add(ConfigSpec.qvlm(b[0], b[1], QvlmVariant.FULL));
                }
            }
            case FIG3 -> {
                for (int d : DEPTHS) {
                    l.add(ConfigSpec.qvlm(FIG3_BITS[0], FIG3_BITS[1], QvlmVariant.FULL.withDepth(d)));
                }
                for (BigDecimal p : P_MINS) {
                    l.add(ConfigSpec.qvlm(FIG3_BITS[0], FIG3_BITS[1], QvlmVariant.FULL.withPMin(p)));
                }
                for (BigDecimal e : ETAS) {
                    l.add(ConfigSpec.qvlm(FIG3_BITS[0], FIG3_BITS[1], QvlmVariant.FULL.withEta(e)));
                }
            }
            case HEADLINE -> {
                l.add(ConfigSpec.qvlm(HEADLINE_BITS[0], HEADLINE_BITS[1], QvlmVariant.FULL));
                for (String m : BASELINE_METHODS) {
                    l.add(ConfigSpec.baseline(m, HEADLINE_BITS[0], HEADLINE_BITS[1]));
                }
                l.add(ConfigSpec.smoothQuantAll(HEADLINE_BITS[0], HEADLINE_BITS[1]));
            }
            case ALL -> throw new IllegalStateException("ALL has no table of its own");
        }
        return l;
    }

    /** Table 1's rows at one bit width: layer-wise search, +CDM, +VEO, both. */
    static List<ConfigSpec> table1Row(int[] b) {
        return List.of(ConfigSpec.qvlm(b[0], b[1], QvlmVariant.FULL.withParts(false, false)),
                ConfigSpec.qvlm(b[0], b[1], QvlmVariant.FULL.withParts(true, false)),
                ConfigSpec.qvlm(b[0], b[1], QvlmVariant.FULL.withParts(false, true)),
                ConfigSpec.qvlm(b[0], b[1], QvlmVariant.FULL));
    }

    /** Table 5's quantization-error proxy: CDM without VEO, the paper's "+CDM" row with the other proxy. */
    static QvlmVariant table5Error() {
        return QvlmVariant.FULL.withParts(true, false).withErrorProxy();
    }

    /** Table 5's entropy proxy: Table 1's "+CDM" row (the paper's numbers are equal). */
    static QvlmVariant table5Entropy() {
        return QvlmVariant.FULL.withParts(true, false);
    }
}
