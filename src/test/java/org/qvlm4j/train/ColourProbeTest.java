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

    /** (P, 2 grid) features: one-hot row then one-hot column of each patch, whatever the pixels. */
    private static float[] places(float[] px) {
        int grid = CFG.visionConfig().imageSize() / CFG.visionConfig().patchSize();
        float[] f = new float[grid * grid * 2 * grid];
        for (int p = 0; p < grid * grid; p++) {
            f[p * 2 * grid + p / grid] = 1;
            f[p * 2 * grid + grid + p % grid] = 1;
        }
        return f;
    }

    @Test
    void rowAndColumnTargetsReadPlacesNotColours() {
        List<float[]> images = VisionPretrainerTest.colouredImages(CFG, 400, 9);
        double[] mean = VisionPretrainerTest.MEAN;
        double[] std = VisionPretrainerTest.STD;
        int grid = CFG.visionConfig().imageSize() / CFG.visionConfig().patchSize();
        for (ColourProbe.Target t : List.of(ColourProbe.Target.ROW, ColourProbe.Target.COLUMN)) {
            ColourProbe.Result placed = ColourProbe.run(CFG, images, 300, mean, std, ColourProbeTest::places, 1, t);
            assertTrue(placed.features().accuracy() > 0.99 && placed.features().colouredAccuracy() > 0.99, t + " " + placed);
            // every patch's colour is drawn independently of its place: pixels tell the row no better than chance
            ColourProbe.Result colours = ColourProbe.run(CFG, images, 300, mean, std, ColourProbeTest::patchPixels, 1, t);
            assertTrue(colours.features().accuracy() < 1.0 / grid + 0.15, t + " " + colours);
            assertEquals(colours.features().coloured(), placed.features().coloured(), "the same patches count as coloured");
        }
        ColourProbe.Result colour = ColourProbe.run(CFG, images, 300, mean, std, ColourProbeTest::places, 1,
                ColourProbe.Target.COLOUR);
        assertTrue(colour.features().colouredAccuracy() < 0.4, "places say nothing of colours: " + colour);
        assertEquals(ColourProbe.Target.ROW, ColourProbe.Target.parse("--target", "row"));
        IllegalArgumentException e = org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class,
                () -> ColourProbe.Target.parse("--target", "size"));
        assertTrue(e.getMessage().contains("--target") && e.getMessage().contains("'size'"), e.getMessage());
    }

    @Test
    void slotTargetsReadTheSlotLabelsFromTheFirstPatches() {
        LlavaConfig cfg = new ModelShape(16, 4, 24, 2, 2, 16, 1, 2, 1, 64).toConfig(TinyModels.VOCAB, TinyModels.IMAGE,
                TinyModels.BOS, TinyModels.EOS);
        List<float[]> images = VisionPretrainerTest.squarePictures(600, 4);
        double[] mean = VisionPretrainerTest.MEAN;
        double[] std = VisionPretrainerTest.STD;
        int F = cfg.imageSeqLength();
        int d = VisionPretrainer.SLOT_KINDS + 2 * (VisionPretrainer.SLOT_CELLS + 1);
        // features holding the labels one-hot at slot k's patch, nothing elsewhere
        Function<float[], float[]> oracle = px -> {
            int[] l = VisionPretrainer.slotLabels(px, 16, mean, std);
            float[] f = new float[F * d];
            for (int k = 0; k < VisionPretrainer.SLOTS; k++) {
                f[k * d + l[3 * k]] = 1;
                f[k * d + VisionPretrainer.SLOT_KINDS + l[3 * k + 1]] = 1;
                f[k * d + VisionPretrainer.SLOT_KINDS + VisionPretrainer.SLOT_CELLS + 1 + l[3 * k + 2]] = 1;
            }
            return f;
        };
        for (ColourProbe.Target t : List.of(ColourProbe.Target.SLOT_KIND, ColourProbe.Target.SLOT_ROW,
                ColourProbe.Target.SLOT_COLUMN)) {
            ColourProbe.Result r = ColourProbe.run(cfg, images, 450, mean, std, oracle, 1, t);
            assertEquals(150 * VisionPretrainer.SLOTS, r.features().patches());
            assertTrue(r.features().accuracy() > 0.99, t + " " + r);
            // a constant feature can do no better than naming every colour absent: present colours all wrong
            ColourProbe.Result blind = ColourProbe.run(cfg, images, 450, mean, std, px -> new float[F * 4], 1, t);
            assertEquals(0.0, blind.features().colouredAccuracy(), t + " " + blind);
            assertTrue(blind.features().coloured() > 100, "present colours scored: " + blind.features().coloured());
        }
        assertEquals(ColourProbe.Target.SLOT_ROW, ColourProbe.Target.parse("--target", "slot_row"));
    }
}
