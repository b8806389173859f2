package org.qvlm4j.cli;

import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import org.qvlm4j.data.ScienceQaDataset;
import org.qvlm4j.data.ScienceQaProblem;
import org.qvlm4j.io.image.ClipImageProcessor;
import org.qvlm4j.io.image.PadMode;
import org.qvlm4j.model.LlavaModel;
import org.qvlm4j.train.ColourProbe;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code qvlm4j probe --model DIR --data DIR [--target colour|row|column]}: how well a model's image
 * features name each patch's palette colour, or its row or column ({@link ColourProbe}), against the
 * raw pixels. Exit code 2 for bad input.
 */
@Command(name = "probe", mixinStandardHelpOptions = true,
        description = "Linear probe of a model's image features: does each patch's feature still say which palette colour covers it, "
                + "or where the patch is?")
final class ProbeCommand implements Callable<Integer> {
    static final int EXIT_BAD_INPUT = 2;

    @Option(names = "--model", required = true, paramLabel = "DIR", description = "LLaVA model directory.")
    Path model;

    @Option(names = "--data", required = true, paramLabel = "DIR", description = "ScienceQA-format benchmark (qvlm4j synth).")
    Path data;

    @Option(names = "--split", defaultValue = "test", description = "Split whose pictures are probed (default: ${DEFAULT-VALUE}).")
    String split;

    @Option(names = "--fit", defaultValue = "1500", description = "Pictures the probe is fitted on (default: ${DEFAULT-VALUE}).")
    int fit;

    @Option(names = "--score", defaultValue = "500", description = "Further pictures it is scored on (default: ${DEFAULT-VALUE}).")
    int score;

    @Option(names = "--target", defaultValue = "colour", description = "What the probe names: colour (the palette colour "
            + "covering the patch), row or column (the patch's place on the patch grid), slot_kind, slot_row or slot_column "
            + "(from the first six patch features, whether colour k is present and a square, and the row and column of "
            + "the 8 x 8 grid that holds it); default: ${DEFAULT-VALUE}.")
    String target;

    @Option(names = "--seed", defaultValue = "0", description = "Seed of the probe's shuffles (default: ${DEFAULT-VALUE}).")
    long seed;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        try {
            ColourProbe.Target t = ColourProbe.Target.parse("--target", target);
            if (fit < 1 || score < 1) {
                throw new IllegalArgumentException("--fit and --score must be >= 1, got " + fit + " and " + score);
            }
            ScienceQaDataset dataset = ScienceQaDataset.load(data);
            List<Path> files = new ArrayList<>();
            for (ScienceQaProblem p : dataset.split(split)) {
                if (p.imagePath() != null && files.size() < fit + score) {
                    files.add(p.imagePath());
                }
            }
            if (files.size() < fit + score) {
                throw new IllegalArgumentException(data + ": split '" + split + "' has " + files.size()
                        + " pictures, --fit + --score need " + (fit + score));
            }
            ClipImageProcessor proc = ClipImageProcessor.forModelDir(model, PadMode.PAD_TO_SQUARE);
            List<float[]> images = new ArrayList<>(files.size());
            for (Path f : files) {
                images.add(proc.preprocess(f).data());
            }
            ColourProbe.Result r;
            try (LlavaModel m = LlavaModel.load(model)) {
                r = ColourProbe.run(m.config(), images, fit, proc.config().imageMean(), proc.config().imageStd(),
                        m::imageFeatures, seed, t);
            }
            boolean slot = t.name().startsWith("SLOT");
            out.printf("%s probe: %d pictures fitted, %d scored (%d %s, %d %s)%n", t.name().toLowerCase(java.util.Locale.ROOT), fit,
                    score, r.features().patches(), slot ? "slots" : "patches", r.features().coloured(),
                    slot ? "of colours present" : "coloured");
            out.println(slot ? "| input | all slots | colours present |" : "| input | all patches | coloured patches |");
            out.println("|---|---|---|");
            out.printf("| image features | %.2f | %.2f |%n", 100 * r.features().accuracy(), 100 * r.features().colouredAccuracy());
            out.printf("| raw pixels | %.2f | %.2f |%n", 100 * r.pixels().accuracy(), 100 * r.pixels().colouredAccuracy());
            out.flush();
            return 0;
        } catch (IllegalArgumentException | UncheckedIOException e) {
            err.println("qvlm4j probe: " + e.getMessage());
            err.flush();
            return EXIT_BAD_INPUT;
        }
    }
}
