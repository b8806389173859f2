package org.qvlm4j.experiments;

import java.util.List;
import java.util.function.Consumer;

/**
 * The {@code quantize} command as the experiments call it: with its own option parsing, so that a
 * configuration is exactly the quantize command line that makes it, and options added to quantize
 * later (VEO's switches) are picked up without a change here. The CLI supplies it (running the
 * command in-process); this package stays below the CLI.
 */
public interface QuantizeStep {
    /** Whether quantize has this option (e.g. {@code --veo}). */
    boolean knowsOption(String name);

    /**
     * Runs quantize with these arguments, sending its progress lines to progress.
     *
     * @throws Refused when quantize rejects its input (its exit code 2), with its message
     * @throws IllegalStateException when it fails otherwise
     */
    void run(List<String> args, Consumer<String> progress);

    /** Quantize's rejection of its input or options, with its one-line message. */
    final class Refused extends IllegalArgumentException {
        public Refused(String message) {
            super(message);
        }
    }
}
