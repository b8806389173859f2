package org.qvlm4j.cli;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import org.qvlm4j.data.ScienceQaDataset;
import org.qvlm4j.data.SynthBenchmark;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code qvlm4j synth}: writes the procedural ScienceQA-format benchmark ({@link SynthBenchmark})
 * into a new directory, reporting progress on stderr about every tenth of the way. Exit code 2
 * for bad options or an existing non-empty output directory.
 */
@Command(name = "synth", mixinStandardHelpOptions = true,
        description = "Generate a procedural ScienceQA-format benchmark (problems.json, pid_splits.json, images, vocab.txt).")
public final class SynthCommand implements Callable<Integer> {

    /** Exit code for bad input, the same as Main's. */
    static final int EXIT_BAD_INPUT = 2;
    /** Progress lines per run. */
    static final int PROGRESS_STEPS = 10;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Option(names = "--out", required = true, description = "Output directory; must not exist or be empty.")
    Path out;

    @Option(names = "--seed", required = true, description = "Random seed; the same seed gives the same bytes.")
    long seed;

    @Option(names = "--train", defaultValue = "6000", description = "Training problems (default: ${DEFAULT-VALUE}).")
    int train;

    @Option(names = "--val", defaultValue = "500", description = "Validation problems (default: ${DEFAULT-VALUE}).")
    int val;

    @Option(names = "--test", defaultValue = "1000", description = "Test problems (default: ${DEFAULT-VALUE}).")
    int test;

    @Option(names = "--image-size", defaultValue = "64", description = "Picture width and height in pixels (default: ${DEFAULT-VALUE}).")
    int imageSize;

    @Option(names = "--solutions", defaultValue = "plain", paramLabel = "STYLE",
            description = "Solution text of the families that compare several items: plain (one sentence), steps "
                    + "(a chain of local steps), positions (steps, and the map questions as a running comparison "
                    + "of the squares' positions), described (positions, and every solution of a problem with a picture "
                    + "opening with a description of it), coordinates (steps, and the map questions as a running "
                    + "comparison of the squares' row or column numbers on an 8 x 8 grid) or keyed (coordinates, "
                    + "with a map that has a key walked through the key's sentences, keeping towns) or counts (coordinates, "
                    + "and the picture families that count or name the shapes of a colour writing the colour and then "
                    + "its count or shape first: \"yellow 3. orange 1. 3 minus 1 is 2.\"); the problems, images and answers are the same (default: ${DEFAULT-VALUE}).")
    String solutions;

    @Override
    public Integer call() {
        PrintWriter err = spec.commandLine().getErr();
        PrintWriter stdout = spec.commandLine().getOut();
        try {
            SynthBenchmark.Options o = new SynthBenchmark.Options(seed, train, val, test, imageSize,
                    SynthBenchmark.Solutions.parse("--solutions", solutions));
            long t0 = System.nanoTime();
            int[] lastStep = {0};
            SynthBenchmark.write(out, o, (done, total) -> {
                int step = (int) ((long) done * PROGRESS_STEPS / total);
                if (step > lastStep[0]) {
                    lastStep[0] = step;
                    err.printf("synth: %d/%d problems (%d%%)%n", done, total, 100L * done / total);
                    err.flush();
                }
            });
            double secs = (System.nanoTime() - t0) / 1e9;
            stdout.printf("wrote %d problems (train %d, val %d, test %d) to %s in %.1f s; see %s and %s%n", o.total(),
                    train, val, test, out.toAbsolutePath().normalize(), secs, ScienceQaDataset.PROBLEMS_FILE,
                    SynthBenchmark.VOCAB_FILE);
            stdout.flush();
            return 0;
        } catch (IllegalArgumentException e) {
            err.println("qvlm4j synth: " + e.getMessage());
            err.flush();
            return EXIT_BAD_INPUT;
        }
    }
}
