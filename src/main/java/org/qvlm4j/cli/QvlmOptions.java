package org.qvlm4j.cli;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.Locale;
import java.util.Map;
import org.qvlm4j.quant.qvlm.CalibrationSamples;
import org.qvlm4j.quant.qvlm.Dependency;
import org.qvlm4j.quant.qvlm.QvlmMethod;
import org.qvlm4j.quant.qvlm.SoftAssignment;
import picocli.CommandLine.Option;

/**
 * The options of {@code quantize --method qvlm} (a picocli mixin, so the command itself only wires
 * it in): cross-layer dependency mining on or off, block depth, percentile grid, h0 multiplier,
 * partition rule, dependency proxy, per-site search, the vision percentile, the search subset, the
 * work directory for resuming, and --search-only for writing the searched ranges without a packed
 * checkpoint. Defaults are {@link QvlmMethod.Config#DEFAULT}.
 */
public final class QvlmOptions {
    @Option(names = "--cdm", negatable = true, defaultValue = "true", fallbackValue = "true",
            description = "qvlm: cross-layer dependency mining (block-wise joint search); --no-cdm searches layer by "
                    + "layer, the paper's baseline (default: ${DEFAULT-VALUE}).")
    boolean cdm;

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
            description = "qvlm: calibration data directory, if it has moved since calibrate (default: the statistics' "
                    + "data.dir).")
    Path data;

    @Option(names = "--work", paramLabel = "DIR",
            description = "qvlm: checkpoint directory; a killed run restarted with the same DIR resumes.")
    Path work;

    @Option(names = "--search-only",
            description = "qvlm: write the searched ranges and search report to --out instead of a packed checkpoint.")
    boolean searchOnly;

    /** The method these options describe, for the FP model at modelDir; progress lines go to err. */
    QvlmMethod method(Path modelDir, PrintWriter err) {
        QvlmMethod.Config c = new QvlmMethod.Config(cdm, maxDepth, pGrid, h0, enumValue(QvlmMethod.PartitionStrategy.class,
                "--partition", partition), proxy(), perSite, QvlmMethod.Config.DEFAULT.perSiteSweeps(), visionPct,
                searchSamples, searchSeed, enumValue(SoftAssignment.Temperature.class, "--entropy-temperature", temperature),
                QvlmMethod.Config.DEFAULT.tau());
        return new QvlmMethod(c, CalibrationSamples.fromStats(modelDir, data), work, Map.of(), line -> {
            err.println(line);
            err.flush();
        });
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
