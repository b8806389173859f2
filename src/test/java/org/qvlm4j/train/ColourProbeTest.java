package org.qvlm4j.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.function.Function;
import org.junit.jupiter.api.Test;
import org.qvlm4j.io.config.LlavaConfig;

/**
 * The colour probe against features whose content is known: a lossless rearrangement of each
 * patch's pixels scores as well as the pixels, a constant feature no better than the commonest class.
 */
class ColourProbeTest {
    private static final LlavaConfig CFG = TinyModels.config();

    /** (P, 3 p p) features: each patch's pixels, channel-major, negated (a lossless linear map). */
    private static float[] patchPixels(float[] px) {
        int size = CFG.visionConfig().imageSize();
        int patch = CFG.visionConfig().patchSize();
        int grid = size / patch;
        int d = 3 * patch * patch;
        float[] f = new float[grid * grid * d];
        for (int p = 0; p < grid * grid; p++) {
            for (int c = 0; c < 3; c++) {
                for (int y = 0; y < patch; y++) {
                    for (int x = 0; x < patch; x++) {
                        f[p * d + (c * patch + y) * patch + x] =
                                -px[(c * size + (p / grid) * patch + y) * size + (p % grid) * patch + x];
                    }
                }
            }
        }
        return f;
    }

    @Test
    void losslessFeaturesMatchThePixelsAndConstantOnesLearnNothing() {
        List<float[]> images = VisionPretrainerTest.colouredImages(CFG, 400, 9);
        double[] mean = VisionPretrainerTest.MEAN;
        double[] std = VisionPretrainerTest.STD;
        ColourProbe.Result lossless = ColourProbe.run(CFG, images, 300, mean, std, ColourProbeTest::patchPixels, 1);
        assertEquals(400, lossless.pixels().patches());
        assertTrue(lossless.pixels().colouredAccuracy() > 0.95, "pixels " + lossless.pixels());
        assertTrue(lossless.features().colouredAccuracy() > 0.95, "lossless features " + lossless.features());

        int F = CFG.imageSeqLength();
        Function<float[], float[]> constant = px -> new float[F * 8];
        ColourProbe.Result blind = ColourProbe.run(CFG, images, 300, mean, std, constant, 1);
        // Seven classes drawn uniformly: a probe that sees nothing is right about one time in seven.
        assertTrue(blind.features().accuracy() < 0.3, "constant features " + blind.features());
        assertEquals(lossless.pixels(), blind.pixels(), "the pixel probe does not depend on the features");
        assertEquals(lossless, ColourProbe.run(CFG, images, 300, mean, std, ColourProbeTest::patchPixels, 1), "same seed");
    }
}
