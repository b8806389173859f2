package org.qvlm4j.train;

import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.function.Function;
import org.qvlm4j.io.config.LlavaConfig;

/**
 * A linear probe of what a model's image features say about each patch: softmax regression from one
 * feature (one patch) to the patch's palette-colour class ({@link VisionPretrainer#patchColours}),
 * fitted on some images and scored on others, beside the same probe on the patch's raw pixels (what
 * a feature could at best pass on linearly). A feature that scores far below the pixels has lost
 * which colour is where, which the benchmark's picture questions ask.
 *
 * <p>The target can also be the patch's row or column on the patch grid ({@link Target}): a feature
 * that names its colour but not its row lets a language model tell which colours a picture holds,
 * not where they are (the maps). The scores over coloured patches are then over the patches that
 * have a palette colour, as for the colour target.
 *
 * <p>Fit: inputs standardised with the fitting set's mean and std, plain SGD on the cross-entropy
 * (one patch at a time, learning rate 0.05 falling by 0.6 per pass, 8 passes, order shuffled by the
 * seed). The same inputs and seed give the same numbers.
 */
public final class ColourProbe {
    private static final int PASSES = 8;

    /**
     * What the probe names: the patch's palette colour, its row or its column on the patch grid; or,
     * from the features of the first {@link VisionPretrainer#SLOTS} patches, for slot k the kind, row
     * or column {@link VisionPretrainer#slotLabels} gives colour k (what {@code --vision-pretrain-slots}
     * teaches those features to say).
     */
    public enum Target {
        COLOUR, ROW, COLUMN, SLOT_KIND, SLOT_ROW, SLOT_COLUMN;

        boolean slot() {
            return ordinal() >= SLOT_KIND.ordinal();
        }

        /** The target of a lower-case name; the error names the option. */
        public static Target parse(String option, String value) {
            for (Target t : values()) {
                if (t.name().equalsIgnoreCase(value)) {
                    return t;
                }
            }
            throw new IllegalArgumentException(option + ": expected 'colour', 'row', 'column', 'slot_kind', 'slot_row' or "
                    + "'slot_column', got '" + value + "'");
        }
    }

    /**
     * Accuracy over all scored patches and over the coloured ones (label other than none; for the
     * slot targets, the slots whose colour is in the picture).
     *
     * @param patches  scored patches
     * @param coloured scored patches with a colour
     */
    public record Score(double accuracy, double colouredAccuracy, int patches, int coloured) {
    }

    /** The probe on the features and on the raw pixels, scored on the same patches. */
    public record Result(Score features, Score pixels) {
    }

    private ColourProbe() {
    }

    /**
     * Probes the features {@code featuresOf} gives for preprocessed images (each (C, S, S)): the
     * first {@code fit} images fit, the rest score.
     *
     * @param featuresOf the image features (F, D) of one image, F = {@code cfg.imageSeqLength()}
     */
    public static Result run(LlavaConfig cfg, List<float[]> images, int fit, double[] mean, double[] std,
                             Function<float[], float[]> featuresOf, long seed) {
        return run(cfg, images, fit, mean, std, featuresOf, seed, Target.COLOUR);
    }

    /** {@link #run} naming the given target. */
    public static Result run(LlavaConfig cfg, List<float[]> images, int fit, double[] mean, double[] std,
                             Function<float[], float[]> featuresOf, long seed, Target target) {
        if (fit < 1 || fit >= images.size()) {
            throw new IllegalArgumentException("colour probe: need 1 <= fitting images < " + images.size() + ", got " + fit);
        }
        int size = cfg.visionConfig().imageSize();
        int patch = cfg.visionConfig().patchSize();
        int grid = size / patch;
        int F = cfg.imageSeqLength();
        int skip = F - grid * grid; // a class token first under the "full" strategy
        int P = target.slot() ? VisionPretrainer.SLOTS : grid * grid;
        if (P > grid * grid) {
            throw new IllegalArgumentException("colour probe: " + target.name().toLowerCase(java.util.Locale.ROOT) + " needs " + P
                    + " patch features, the model makes " + grid * grid);
        }
        int n = images.size() * P;
        int[] labels = new int[n];
        boolean[] coloured = new boolean[n];
        float[][] feats = new float[n][];
        float[][] raw = new float[n][];
        for (int i = 0; i < images.size(); i++) {
            float[] px = images.get(i);
            int[] l = VisionPretrainer.patchColours(px, size, patch, mean, std);
            int[] slots = target.slot() ? VisionPretrainer.slotLabels(px, size, mean, std) : null;
            float[] f = featuresOf.apply(px);
            int D = f.length / F;
            for (int p = 0; p < P; p++) {
                int row = i * P + p;
                coloured[row] = slots != null ? slots[3 * p] != 0 : l[p] != 0;
                labels[row] = switch (target) {
                    case COLOUR -> l[p];
                    case ROW -> p / grid;
                    case COLUMN -> p % grid;
                    case SLOT_KIND -> slots[3 * p];
                    case SLOT_ROW -> slots[3 * p + 1];
                    case SLOT_COLUMN -> slots[3 * p + 2];
                };
                feats[row] = Arrays.copyOfRange(f, (skip + p) * D, (skip + p + 1) * D);
                float[] r = new float[3 * patch * patch];
                int gy = p / grid;
                int gx = p % grid;
                for (int c = 0; c < 3; c++) {
                    for (int y = 0; y < patch; y++) {
                        for (int x = 0; x < patch; x++) {
                            r[(c * patch + y) * patch + x] = px[(c * size + gy * patch + y) * size + gx * patch + x];
                        }
                    }
                }
                raw[row] = r;
            }
        }
        int split = fit * P;
        int classes = switch (target) {
            case COLOUR -> VisionPretrainer.CLASSES;
            case ROW, COLUMN -> grid;
            case SLOT_KIND -> VisionPretrainer.SLOT_KINDS;
            case SLOT_ROW, SLOT_COLUMN -> VisionPretrainer.SLOT_CELLS + 1;
        };
        return new Result(probe(feats, labels, coloured, classes, split, seed),
                probe(raw, labels, coloured, classes, split, seed));
    }

    private static Score probe(float[][] x, int[] y, boolean[] colouredPatch, int C, int split, long seed) {
        int d = x[0].length;
        double[] mu = new double[d];
        double[] sd = new double[d];
        for (int i = 0; i < split; i++) {
            for (int j = 0; j < d; j++) {
                mu[j] += x[i][j];
            }
        }
        for (int j = 0; j < d; j++) {
            mu[j] /= split;
        }
        for (int i = 0; i < split; i++) {
            for (int j = 0; j < d; j++) {
                double t = x[i][j] - mu[j];
                sd[j] += t * t;
            }
        }
        for (int j = 0; j < d; j++) {
            sd[j] = Math.sqrt(sd[j] / split) + 1e-6;
        }
        double[][] w = new double[C][d + 1];
        int[] order = new int[split];
        for (int i = 0; i < split; i++) {
            order[i] = i;
        }
        SplittableRandom rng = new SplittableRandom(seed);
        double lr = 0.05;
        double[] z = new double[C];
        double[] v = new double[d];
        for (int pass = 0; pass < PASSES; pass++) {
            for (int i = split - 1; i > 0; i--) {
                int j = rng.nextInt(i + 1);
                int t = order[i];
                order[i] = order[j];
                order[j] = t;
            }
            for (int i : order) {
                standardise(x[i], mu, sd, v);
                logits(w, v, z);
                double max = Arrays.stream(z).max().orElseThrow();
                double sum = 0;
                for (int c = 0; c < C; c++) {
                    z[c] = Math.exp(z[c] - max);
                    sum += z[c];
                }
                for (int c = 0; c < C; c++) {
                    double g = z[c] / sum - (c == y[i] ? 1 : 0);
                    for (int j = 0; j < d; j++) {
                        w[c][j] -= lr * g * v[j];
                    }
                    w[c][d] -= lr * g;
                }
            }
            lr *= 0.6;
        }
        int right = 0;
        int coloured = 0;
        int colouredRight = 0;
        for (int i = split; i < x.length; i++) {
            standardise(x[i], mu, sd, v);
            logits(w, v, z);
            int arg = 0;
            for (int c = 1; c < C; c++) {
                if (z[c] > z[arg]) {
                    arg = c;
                }
            }
            boolean ok = arg == y[i];
            right += ok ? 1 : 0;
            if (colouredPatch[i]) {
                coloured++;
                colouredRight += ok ? 1 : 0;
            }
        }
        int scored = x.length - split;
        return new Score((double) right / scored, coloured == 0 ? Double.NaN : (double) colouredRight / coloured, scored, coloured);
    }

    private static void standardise(float[] x, double[] mu, double[] sd, double[] out) {
        for (int j = 0; j < x.length; j++) {
            out[j] = (x[j] - mu[j]) / sd[j];
        }
    }

    private static void logits(double[][] w, double[] v, double[] z) {
        int d = v.length;
        for (int c = 0; c < w.length; c++) {
            double s = w[c][d];
            for (int j = 0; j < d; j++) {
                s += w[c][j] * v[j];
            }
            z[c] = s;
        }
    }
}
