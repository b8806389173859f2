package org.qvlm4j.train;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.qvlm4j.data.Scene;
import org.qvlm4j.io.config.LlavaConfig;
import org.qvlm4j.tensor.Ops;
import org.qvlm4j.tensor.Tape;
import org.qvlm4j.tensor.Tensor;
import org.qvlm4j.train.optim.AdamW;
import org.qvlm4j.train.optim.CosineSchedule;
import org.qvlm4j.train.optim.GradClip;

/**
 * Perception pretraining of the vision tower and projector, the stage a pretrained CLIP covers in
 * LLaVA: before the language model is trained, a linear head over each image feature (one per
 * patch) learns to name the palette colour of the synthetic benchmark ({@link Scene.Colour}) that
 * covers most of that feature's patch, or "none", with cross-entropy over every patch of every
 * image. Trained through the language-model loss alone, the reference model's features lose that
 * information (a linear probe names a coloured patch's colour about half the time, against 96% from
 * the raw pixels); this stage supervises every patch directly. The head is dropped afterwards; only
 * the vision tower's and projector's parameters change.
 *
 * <p>Labels ({@link #patchColours}) come from the pixels themselves: each pixel, mapped back to
 * 0-255 RGB through the preprocessor's mean and std, takes the nearest palette colour within
 * {@link #COLOUR_RADIUS} (Euclidean in RGB), else none; a patch takes the colour with the most
 * pixels if at least {@link #MIN_COVER} of its pixels have it, else none. A class token among the
 * features (the "full" feature strategy) is not labelled.
 *
 * <p>Steps draw batches of images by a seeded shuffle per pass, run them as one packed forward,
 * clip the global gradient norm at 1 and take an AdamW step (decay 0.01 on matrices) on a cosine
 * schedule with 5% warm-up down to 10% of the peak rate. The same model, images, options and seed
 * give the same bytes.
 */
public final class VisionPretrainer {
    /** Classes: 0 none, then {@link Scene.Colour} in declaration order. */
    public static final int CLASSES = Scene.Colour.values().length + 1;
    /** Largest RGB distance at which a pixel counts as a palette colour. */
    public static final double COLOUR_RADIUS = 80;
    /** Fraction of a patch's pixels the winning colour must cover. */
    public static final double MIN_COVER = 3.0 / 16;

    /**
     * @param steps optimizer steps
     * @param batch images per step
     * @param lr    peak learning rate
     * @param seed  seed of the head's initialisation and of the shuffles
     */
    public record Options(int steps, int batch, double lr, long seed) {
        public Options {
            if (steps < 1 || batch < 1 || !(lr > 0)) {
                throw new IllegalArgumentException("vision pretraining: need steps >= 1, batch >= 1, lr > 0; got steps=" + steps
                        + " batch=" + batch + " lr=" + lr);
            }
        }
    }

    /** Receives the loss after every step. */
    public interface Listener {
        void onStep(int step, int totalSteps, double loss, double elapsedSeconds);
    }

    /** The per-step losses and the wall time. */
    public record Result(List<Double> losses, double seconds) {
    }

    private VisionPretrainer() {
    }

    /**
     * The colour class of every patch of one preprocessed image (C, S, S), patches in raster order.
     *
     * @param mean the preprocessor's per-channel mean (on the 0-1 scale)
     * @param std  the preprocessor's per-channel std
     */
    public static int[] patchColours(float[] pixels, int size, int patch, double[] mean, double[] std) {
        if (pixels.length != 3 * size * size || size % patch != 0) {
            throw new IllegalArgumentException("patch colours: expected (3, " + size + ", " + size + ") pixels with size a multiple of "
                    + patch + ", got " + pixels.length + " floats");
        }
        Scene.Colour[] palette = Scene.Colour.values();
        int grid = size / patch;
        int[] labels = new int[grid * grid];
        int plane = size * size;
        double r2 = COLOUR_RADIUS * COLOUR_RADIUS;
        for (int gy = 0; gy < grid; gy++) {
            for (int gx = 0; gx < grid; gx++) {
                int[] count = new int[CLASSES];
                for (int y = gy * patch; y < (gy + 1) * patch; y++) {
                    for (int x = gx * patch; x < (gx + 1) * patch; x++) {
                        int o = y * size + x;
                        double r = (pixels[o] * std[0] + mean[0]) * 255;
                        double g = (pixels[plane + o] * std[1] + mean[1]) * 255;
                        double b = (pixels[2 * plane + o] * std[2] + mean[2]) * 255;
                        int best = 0;
                        double bestD = r2;
                        for (int c = 0; c < palette.length; c++) {
                            int rgb = palette[c].rgb;
                            double dr = r - ((rgb >> 16) & 255);
                            double dg = g - ((rgb >> 8) & 255);
                            double db = b - (rgb & 255);
                            double d = dr * dr + dg * dg + db * db;
                            if (d < bestD) {
                                bestD = d;
                                best = c + 1;
                            }
                        }
                        count[best]++;
                    }
                }
                int label = 0;
                int most = 0;
                for (int c = 1; c < CLASSES; c++) {
                    if (count[c] > most) {
                        most = count[c];
                        label = c;
                    }
                }
                labels[gy * grid + gx] = most >= MIN_COVER * patch * patch ? label : 0;
            }
        }
        return labels;
    }

    /** Trains the model's vision tower and projector in place on the images (each (C, S, S)). */
    public static Result run(TrainableLlava model, List<float[]> images, double[] mean, double[] std, Options o,
                             Listener listener) {
        if (images.isEmpty()) {
            throw new IllegalArgumentException("vision pretraining: no images");
        }
        LlavaConfig cfg = model.config();
        int size = cfg.visionConfig().imageSize();
        int patch = cfg.visionConfig().patchSize();
        int F = cfg.imageSeqLength();
        boolean cls = cfg.visionFeatureSelectStrategy() == LlavaConfig.FeatureSelectStrategy.FULL;
        int D = cfg.textConfig().hiddenSize();
        List<int[]> labels = new ArrayList<>(images.size());
        for (float[] px : images) {
            int[] patches = patchColours(px, size, patch, mean, std);
            int[] l = new int[F];
            if (cls) {
                l[0] = Ops.IGNORE_INDEX;
            }
            System.arraycopy(patches, 0, l, cls ? 1 : 0, patches.length);
            labels.add(l);
        }
        SplittableRandom root = new SplittableRandom(o.seed());
        SplittableRandom init = root.split();
        float[] w = new float[CLASSES * D];
        for (int i = 0; i < w.length; i++) {
            w[i] = (float) (init.nextGaussian() * TrainableLlava.INIT_STD);
        }
        Tensor headW = Tensor.param("head.weight", w, CLASSES, D);
        Tensor headB = Tensor.param("head.bias", new float[CLASSES], CLASSES);
        List<Tensor> decay = new ArrayList<>(List.of(headW));
        List<Tensor> noDecay = new ArrayList<>(List.of(headB));
        for (var e : model.parameters().entrySet()) {
            if (e.getKey().startsWith("vision_tower.") || e.getKey().startsWith("multi_modal_projector.")) {
                (e.getValue().rank() >= 2 ? decay : noDecay).add(e.getValue());
            }
        }
        List<Tensor> params = new ArrayList<>(decay);
        params.addAll(noDecay);
        AdamW opt = new AdamW(List.of(new AdamW.Group(decay, 0.01), new AdamW.Group(noDecay, 0.0)),
                AdamW.DEFAULT_BETA1, AdamW.DEFAULT_BETA2, AdamW.DEFAULT_EPS);
        CosineSchedule schedule = new CosineSchedule(o.lr(), Math.max(1, o.steps() / 20), o.steps(), 0.1);
        int n = images.size();
        int[] order = new int[n];
        int pos = n;
        List<Double> losses = new ArrayList<>(o.steps());
        long t0 = System.nanoTime();
        for (int step = 0; step < o.steps(); step++) {
            List<float[]> batch = new ArrayList<>(o.batch());
            int[] targets = new int[Math.min(o.batch(), n) * F];
            for (int b = 0; b < Math.min(o.batch(), n); b++) {
                if (pos == n) {
                    shuffle(order, root.split());
                    pos = 0;
                }
                int i = order[pos++];
                batch.add(images.get(i));
                System.arraycopy(labels.get(i), 0, targets, b * F, F);
            }
            for (Tensor p : params) {
                p.zeroGrad();
            }
            Tape tape = new Tape();
            Tensor features = model.imageFeatures(tape, batch, TrainableLlava.Hook.NONE); // (b F, D)
            Tensor loss = Ops.crossEntropy(tape, Ops.linear(tape, features, headW, headB), targets);
            tape.backward(loss);
            GradClip.clipByGlobalNorm(params, 1.0);
            opt.step(schedule.lr(step));
            losses.add((double) loss.item());
            if (listener != null) {
                listener.onStep(step + 1, o.steps(), loss.item(), (System.nanoTime() - t0) / 1e9);
            }
        }
        return new Result(List.copyOf(losses), (System.nanoTime() - t0) / 1e9);
    }

    private static void shuffle(int[] order, SplittableRandom rng) {
        for (int i = 0; i < order.length; i++) {
            order[i] = i;
        }
        for (int i = order.length - 1; i > 0; i--) {
            int j = rng.nextInt(i + 1);
            int t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
    }
}
