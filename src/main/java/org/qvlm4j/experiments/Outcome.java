package org.qvlm4j.experiments;

import java.math.BigDecimal;
import java.util.List;
import java.util.Map;

/**
 * What an experiment knows about one configuration: whether it ran, why not, and the records of its
 * quantization, evaluation and measurement (each null when that step did not happen). Every value
 * comes from a file under the experiment's output directory, so a resumed run reports the same.
 *
 * @param reason why the configuration has no (or incomplete) results, or null
 */
public record Outcome(ConfigSpec config, Status status, String reason, Quantized quantized, Evaluated eval,
                      Benched bench) {

    /** Where a configuration stands. */
    public enum Status {
        /** Quantized (or FP), evaluated and measured. */
        DONE,
        /** The configuration cannot exist (a format that lacks the bit width, a missing option). */
        UNAVAILABLE,
        /** Left out by --only. */
        NOT_SELECTED,
        /** A step refused its input or failed; the reason says which. */
        FAILED
    }

    /**
     * The quantize step.
     *
     * @param args          quantize's arguments as run (paths included)
     * @param seconds       wall time of quantize, NaN when not recorded
     * @param searchSeconds Q-VLM's search time (blocks), NaN for other methods
     * @param searchForwards Q-VLM's single-layer forwards over one prompt, summed; -1 for other methods
     * @param veoSeconds    Q-VLM's visual encoder optimisation time, NaN without it
     */
    public record Quantized(List<String> args, double seconds, double searchSeconds, long searchForwards,
                            double veoSeconds, Load load) {
        public Quantized {
            args = List.copyOf(args);
        }
    }

    /**
     * The evaluation, from its report.json.
     *
     * @param accuracy      column to accuracy in percent as the report prints it, null for an empty column
     * @param seconds       time for all problems at the measured rate, NaN when unknown
     * @param correct       pid to whether the answer was right, from predictions.jsonl; empty when that file
     *                      is absent
     */
    public record Evaluated(Map<String, BigDecimal> accuracy, Map<String, Integer> count, int parseFailures,
                            int problems, double seconds, Load load, Map<String, Boolean> correct) {
        public Evaluated {
            correct = Map.copyOf(correct);
        }
    }

    /** The measurement, from the bench JSON. */
    public record Benched(long safetensorsBytes, long weightBytes, long peakRssBytes, double prefillTokensPerSecond,
                          double decodeTokensPerSecond, int threads, Load load) {
    }

    /**
     * How busy the machine was just before a timed step.
     *
     * @param otherBusyCores CPU cores busy with other processes (NaN when unknown)
     * @param loadAverage    the 1-minute load average (NaN when unknown)
     * @param cores          available cores
     */
    public record Load(double otherBusyCores, double loadAverage, int cores) {
        /** Unknown (no /proc). */
        public static final Load UNKNOWN = new Load(Double.NaN, Double.NaN, 0);
        /** Busy cores of other processes, as a fraction of all, above which a timing is marked. */
        public static final double HIGH_FRACTION = 0.25;

        /** Whether other processes used enough of the machine to distort a timing. */
        public boolean high() {
            return cores > 0 && otherBusyCores > HIGH_FRACTION * cores;
        }
    }

    public static Outcome of(ConfigSpec c, Status s, String reason) {
        return new Outcome(c, s, reason, null, null, null);
    }

    public boolean done() {
        return status == Status.DONE;
    }
}
