package org.qvlm4j.train;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.qvlm4j.io.config.LlavaConfig;
import org.qvlm4j.tensor.Ops;
import org.qvlm4j.tensor.Tensor;

/** Tiny configs, randomised weights and a learnable synthetic task for the training tests. */
final class TinyModels {
    static final int VOCAB = 24;
    static final int BOS = 1;
    static final int EOS = 2;
    static final int PAD = 3;
    static final int IMAGE = 4;
    /** First id of ordinary words; ids below are special. */
    static final int FIRST_WORD = 5;

    private TinyModels() {
    }

    /** Image 8 px, patch 4 (4 patches), vision 16 x 1 layer, text 16 x 2 layers with 2 heads over 1 kv head. */
    static ModelShape shape() {
        return new ModelShape(8, 4, 16, 1, 2, 16, 2, 2, 1, 64);
    }

    static LlavaConfig config() {
        return shape().toConfig(VOCAB, IMAGE, BOS, EOS);
    }

    /** Overwrites every parameter with uniform(-amp, amp) values so outputs are far from zero. */
    static void randomise(TrainableLlava m, long seed, double amp) {
        SplittableRandom rng = new SplittableRandom(seed);
        for (Tensor p : m.parameters().values()) {
            float[] d = p.data();
            for (int i = 0; i < d.length; i++) {
                d[i] = (float) ((rng.nextDouble() * 2 - 1) * amp);
            }
        }
    }

    static float[] pixels(LlavaConfig cfg, SplittableRandom rng) {
        int s = cfg.visionConfig().imageSize();
        float[] px = new float[3 * s * s];
        for (int i = 0; i < px.length; i++) {
            px[i] = (float) (rng.nextDouble() * 4 - 2);
        }
        return px;
    }

    /**
     * n examples of a task a tiny model learns in a few steps: BOS, the image placeholders (when
     * {@code withImage}), five random words, then the answer, which is the first word shifted by
     * one, and EOS; only the answer and EOS are supervised.
     */
    static List<TrainingExample> task(LlavaConfig cfg, int n, long seed, boolean withImage) {
        SplittableRandom rng = new SplittableRandom(seed);
        int features = cfg.imageSeqLength();
        int words = VOCAB - FIRST_WORD;
        List<TrainingExample> out = new ArrayList<>();
        for (int e = 0; e < n; e++) {
            boolean image = withImage && e % 2 == 0;
            int T = 1 + (image ? features : 0) + 5 + 2;
            int[] ids = new int[T];
            int[] labels = new int[T];
            java.util.Arrays.fill(labels, Ops.IGNORE_INDEX);
            int t = 0;
            ids[t++] = BOS;
            if (image) {
                for (int f = 0; f < features; f++) {
                    ids[t++] = IMAGE;
                }
            }
            int first = rng.nextInt(words);
            ids[t++] = FIRST_WORD + first;
            for (int w = 1; w < 5; w++) {
                ids[t++] = FIRST_WORD + rng.nextInt(words);
            }
            ids[t] = FIRST_WORD + (first + 1) % words;
            labels[t] = ids[t];
            t++;
            ids[t] = EOS;
            labels[t] = EOS;
            out.add(new TrainingExample(image ? pixels(cfg, rng) : null, ids, labels));
        }
        return out;
    }
}
