package org.qvlm4j.bench;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.function.Consumer;
import org.qvlm4j.kernels.DType;
import org.qvlm4j.model.LlavaModel;

/**
 * Prefill and decode throughput of a LLaVA model with a llava-1.5 prompt shape: one image
 * (its features spliced into the prompt) plus text tokens, then greedy-free decode steps on fixed
 * token ids (the tokens do not matter for speed). The model is either given or the random
 * llava-1.5-7b-shaped checkpoint of {@link RandomLlavaCheckpoint}, created once in a work folder.
 */
public final class ModelBench {

    /** One measurement: times are medians over the repetitions, in seconds. */
    public record Result(String model, int promptTokens, int imageTokens, double prefillSeconds,
                         int decodeTokens, double decodeSeconds, long weightBytes) {
        public double prefillTokensPerSecond() {
            return promptTokens / prefillSeconds;
        }

        public double decodeTokensPerSecond() {
            return decodeTokens / decodeSeconds;
        }
    }

    private ModelBench() {
    }

    /**
     * Creates (unless already there) the random llava-1.5-7b-shaped BF16 checkpoint with the given
     * depths in dir and returns its path. A finished checkpoint is recognised by its config.json,
     * which is written last.
     */
    public static Path ensureRandom7bShaped(Path dir, int visionLayers, int textLayers, long seed,
                                            Consumer<String> progress) {
        Path modelDir = dir.resolve("llava15-7b-shaped-v" + visionLayers + "-t" + textLayers + "-seed" + seed);
        if (Files.isRegularFile(modelDir.resolve("config.json"))) {
            return modelDir;
        }
        progress.accept("writing random BF16 llava-1.5-7b-shaped checkpoint (" + visionLayers + " vision, " + textLayers
                + " decoder layers) to " + modelDir);
        RandomLlavaCheckpoint.write(modelDir, RandomLlavaCheckpoint.Shape.llava15_7b(visionLayers, textLayers), DType.BF16, seed);
        return modelDir;
    }

    /** Measures prefill of (image + textTokens) and decodeTokens decode steps, median of reps. */
    public static Result run(Path modelDir, int textTokens, int decodeTokens, int reps, long seed) {
        try (LlavaModel model = LlavaModel.load(modelDir)) {
            var cfg = model.config();
            int imageTokens = cfg.imageSeqLength();
            int S = cfg.visionConfig().imageSize();
            SplittableRandom rng = new SplittableRandom(seed);
            float[] pixels = new float[3 * S * S]; // (3, S, S)
            for (int i = 0; i < pixels.length; i++) {
                pixels[i] = (float) (rng.nextDouble() * 4 - 2);
            }
            int vocab = cfg.textConfig().vocabSize();
            int[] ids = new int[1 + imageTokens + textTokens];
            ids[0] = cfg.textConfig().bosTokenId();
            for (int i = 0; i < imageTokens; i++) {
                ids[1 + i] = cfg.imageTokenIndex();
            }
            for (int i = 0; i < textTokens; i++) {
                ids[1 + imageTokens + i] = pickText(rng, vocab, cfg.imageTokenIndex());
            }
            double[] prefill = new double[reps];
            double[] decode = new double[reps];
            for (int r = -1; r < reps; r++) { // r = -1 warms up
                LlavaModel.Session s = model.newSession(ids.length + decodeTokens + 1);
                long t0 = System.nanoTime();
                s.prefill(ids, pixels);
                long t1 = System.nanoTime();
                for (int i = 0; i < decodeTokens; i++) {
                    s.decode(pickText(rng, vocab, cfg.imageTokenIndex()));
                }
                long t2 = System.nanoTime();
                if (r >= 0) {
                    prefill[r] = (t1 - t0) / 1e9;
                    decode[r] = (t2 - t1) / 1e9;
                }
            }
            long bytes = 0;
            try (var ckpt = org.qvlm4j.io.safetensors.Checkpoint.open(modelDir)) {
                for (var e : ckpt.tensors().values()) {
                    bytes += e.data().byteSize();
                }
            }
            return new Result(modelDir.getFileName().toString(), ids.length, imageTokens, KernelBench.median(prefill),
                    decodeTokens, KernelBench.median(decode), bytes);
        }
    }

    private static int pickText(SplittableRandom rng, int vocab, int imageToken) {
        int t;
        do {
            t = rng.nextInt(3, vocab);
        } while (t == imageToken);
        return t;
    }
}
