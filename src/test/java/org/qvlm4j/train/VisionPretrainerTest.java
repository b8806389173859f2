package org.qvlm4j.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.qvlm4j.data.Scene;
import org.qvlm4j.io.config.LlavaConfig;

/**
 * Perception pretraining: patch labels on hand-built pictures, and a short run that learns them,
 * changes only the vision tower and projector, and repeats to the byte.
 */
class VisionPretrainerTest {
    static final double[] MEAN = {0.48145466, 0.4578275, 0.40821073};
    static final double[] STD = {0.26862954, 0.26130258, 0.27577711};
    private static final int GREY = 0xC8C8C8;

    /** A (3, size, size) normalized image from 0xRRGGBB pixels. */
    private static float[] normalized(int[] rgb, int size) {
        float[] px = new float[3 * size * size];
        for (int i = 0; i < size * size; i++) {
            for (int c = 0; c < 3; c++) {
                int v = (rgb[i] >> (16 - 8 * c)) & 255;
                px[c * size * size + i] = (float) ((v / 255.0 - MEAN[c]) / STD[c]);
            }
        }
        return px;
    }

    @Test
    void patchTakesThePaletteColourCoveringEnoughOfIt() {
        int size = 16;
        int[] rgb = new int[size * size];
        Arrays.fill(rgb, GREY);
        int red = Scene.Colour.RED.rgb;
        int blue = Scene.Colour.BLUE.rgb;
        int green = Scene.Colour.GREEN.rgb;
        for (int y = 0; y < 8; y++) {
            for (int x = 0; x < 8; x++) {
                // Patch (0, 0): red shifted by (30, 30, 30), inside the radius of 80.
                rgb[y * size + x] = red + 0x1E1E1E;
            }
        }
        for (int i = 0; i < 11; i++) { // patch (1, 0): 11 blue pixels of 64, under 3/16 (12)
            rgb[(i / 8) * size + 8 + i % 8] = blue;
        }
        for (int i = 0; i < 12; i++) { // patch (0, 1): 12 green pixels and 5 blue ones
            rgb[(8 + i / 8) * size + i % 8] = green;
        }
        for (int i = 0; i < 5; i++) {
            rgb[(14 + i / 8) * size + i % 8] = blue;
        }
        int[] labels = VisionPretrainer.patchColours(normalized(rgb, size), size, 8, MEAN, STD);
        int redClass = Scene.Colour.RED.ordinal() + 1;
        int greenClass = Scene.Colour.GREEN.ordinal() + 1;
        assertArrayEquals(new int[] {redClass, 0, greenClass, 0}, labels);
    }

    @Test
    void gridLabelsEveryCellOfAPatchFeatureMajor() {
        int size = 16;
        int[] rgb = new int[size * size];
        Arrays.fill(rgb, GREY);
        int red = Scene.Colour.RED.rgb;
        int blue = Scene.Colour.BLUE.rgb;
        for (int y = 0; y < 4; y++) {
            for (int x = 4; x < 8; x++) {
                rgb[y * size + x] = red; // patch (0, 0), its top-right cell
            }
        }
        for (int i = 0; i < 3; i++) { // patch (1, 1), its bottom-left cell: 3 of 16 pixels, exactly 3/16
            rgb[(12 + i) * size + 8] = blue;
        }
        rgb[15 * size + 15] = blue; // patch (1, 1), bottom-right cell: 1 pixel, too few
        float[] px = normalized(rgb, size);
        int r = Scene.Colour.RED.ordinal() + 1;
        int b = Scene.Colour.BLUE.ordinal() + 1;
        assertArrayEquals(new int[] {0, r, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, b, 0},
                VisionPretrainer.featureLabels(px, size, 8, 2, false, MEAN, STD));
        // raster order over the 4 x 4 cells of 4 pixels
        int[] cells = VisionPretrainer.cellColours(px, size, 4, MEAN, STD);
        assertEquals(r, cells[1]);
        assertEquals(b, cells[3 * 4 + 2]);
        assertEquals(16, Arrays.stream(cells).filter(c -> c == 0).count() + 2);
        // grid 1 is the patch colour; a class token gets G^2 ignored labels first
        assertArrayEquals(VisionPretrainer.patchColours(px, size, 8, MEAN, STD),
                VisionPretrainer.featureLabels(px, size, 8, 1, false, MEAN, STD));
        int[] withCls = VisionPretrainer.featureLabels(px, size, 8, 2, true, MEAN, STD);
        assertEquals(20, withCls.length);
        assertArrayEquals(new int[] {org.qvlm4j.tensor.Ops.IGNORE_INDEX, org.qvlm4j.tensor.Ops.IGNORE_INDEX,
                org.qvlm4j.tensor.Ops.IGNORE_INDEX, org.qvlm4j.tensor.Ops.IGNORE_INDEX, 0, r, 0, 0},
                Arrays.copyOf(withCls, 8));
    }

    /**
     * Images of square tiles of {@code tile} pixels, each of one of the first {@code colours} palette
     * colours or grey, equally likely.
     */
    static List<float[]> tiledImages(int size, int tile, int colours, int n, long seed) {
        int grid = size / tile;
        Scene.Colour[] palette = Scene.Colour.values();
        SplittableRandom rng = new SplittableRandom(seed);
        List<float[]> out = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            int[] rgb = new int[size * size];
            for (int g = 0; g < grid * grid; g++) {
                int k = rng.nextInt(colours + 1);
                int colour = k == colours ? GREY : palette[k].rgb;
                for (int y = 0; y < tile; y++) {
                    for (int x = 0; x < tile; x++) {
                        rgb[((g / grid) * tile + y) * size + (g % grid) * tile + x] = colour;
                    }
                }
            }
            out.add(normalized(rgb, size));
        }
        return out;
    }

    @Test
    void aGridRunLearnsWhereInThePatchEachColourLies() {
        LlavaConfig cfg = TinyModels.config();
        // patches cut into four cells of red, blue or grey
        List<float[]> images = tiledImages(cfg.visionConfig().imageSize(), cfg.visionConfig().patchSize() / 2, 2, 48, 4);
        VisionPretrainer.Options o = new VisionPretrainer.Options(400, 8, 1e-2, 5, 2);
        VisionPretrainer.Result r = VisionPretrainer.run(TrainableLlava.initialize(cfg, TinyModels.PAD, 1), images, MEAN, STD, o, null);
        double first = r.losses().subList(0, 5).stream().mapToDouble(Double::doubleValue).average().orElseThrow();
        double last = r.losses().subList(395, 400).stream().mapToDouble(Double::doubleValue).average().orElseThrow();
        assertTrue(first > 1.5, "initial loss near ln 7, got " + first);
        // three equally likely colours per cell: a feature that knows which colours a patch holds but not
        // where can do no better than the expected entropy of the four cells' colour counts, 0.783 per cell
        assertTrue(last < 0.4, "loss " + first + " -> " + last);
    }

    @Test
    void placeLabelsAreEachPatchsRowAndColumn() {
        assertArrayEquals(new int[] {0, 0, 0, 1, 0, 2, 1, 0, 1, 1, 1, 2, 2, 0, 2, 1, 2, 2},
                VisionPretrainer.placeLabels(24, 8, false));
        int[] withCls = VisionPretrainer.placeLabels(16, 8, true);
        int ig = org.qvlm4j.tensor.Ops.IGNORE_INDEX;
        assertArrayEquals(new int[] {ig, ig, 0, 0, 0, 1, 1, 0, 1, 1}, withCls);
    }

    @Test
    void aPlacesRunLearnsWhereEachPatchIs() {
        LlavaConfig cfg = TinyModels.config();
        int side = cfg.visionConfig().imageSize() / cfg.visionConfig().patchSize();
        List<float[]> images = colouredImages(cfg, 48, 3);
        VisionPretrainer.Options o = new VisionPretrainer.Options(800, 8, 1e-2, 5, 1, true);
        VisionPretrainer.Result r = VisionPretrainer.run(TrainableLlava.initialize(cfg, TinyModels.PAD, 1), images, MEAN, STD, o, null);
        double first = r.losses().subList(0, 5).stream().mapToDouble(Double::doubleValue).average().orElseThrow();
        double last = r.losses().subList(795, 800).stream().mapToDouble(Double::doubleValue).average().orElseThrow();
        // colour (ln 7) plus place (ln side) at the start; a feature blind to its place stays above ln side
        assertTrue(first > 1.5 + Math.log(side) - 0.3, "initial loss near ln 7 + ln " + side + ", got " + first);
        assertTrue(last < 0.1 * Math.log(side), "loss " + first + " -> " + last);
        VisionPretrainer.Result again = VisionPretrainer.run(TrainableLlava.initialize(cfg, TinyModels.PAD, 1), images, MEAN,
                STD, o, null);
        assertEquals(r.losses(), again.losses(), "same seed, same losses");
    }

    /** Renders a scene the benchmark's way (background, marks, noise) and preprocesses it. */
    private static float[] rendered(Scene scene) {
        int n = scene.size();
        int[] rgb = org.qvlm4j.data.SceneRenderer.render(scene, false).getRGB(0, 0, n, n, null, 0, n);
        return normalized(rgb, n);
    }

    @Test
    void slotLabelsNameWhereEachColourIsAndWhetherItIsASquare() {
        int size = 64;
        // centres 4 pixels from the 8-pixel cell borders: row and column are the scene's own cells
        List<Scene.SceneObject> objects = List.of(
                new Scene.SceneObject(Scene.Shape.SQUARE, Scene.Colour.RED, 12, 44, 3, false),
                new Scene.SceneObject(Scene.Shape.CIRCLE, Scene.Colour.BLUE, 52, 12, 4, false),
                new Scene.SceneObject(Scene.Shape.CROSS, Scene.Colour.GREEN, 28, 28, 4, false),
                new Scene.SceneObject(Scene.Shape.SQUARE, Scene.Colour.ORANGE, 44, 52, 9, true),
                new Scene.SceneObject(Scene.Shape.TRIANGLE, Scene.Colour.PURPLE, 4, 4, 0, false));
        List<Scene.Mark> marks = List.of(new Scene.Mark(40, 20, 43, 20, 60), new Scene.Mark(20, 58, 20, 61, 100));
        Scene scene = new Scene(size, objects, marks, 0xD0D0D0, 0xB8C0C8, false, 5, 12, 14, 99L);
        int[] l = VisionPretrainer.slotLabels(rendered(scene), size, MEAN, STD);
        // (kind, row, column) per colour in declaration order: red, blue, green, yellow, purple, orange
        int[] expected = {
            1, 44 / 8 + 1, 12 / 8 + 1, // red square
            2, 12 / 8 + 1, 52 / 8 + 1, // blue circle: not a square
            2, 28 / 8 + 1, 28 / 8 + 1, // green cross
            0, 0, 0, // no yellow
            0, 0, 0, // a purple shape of half-size 0: too few pixels
            1, 52 / 8 + 1, 44 / 8 + 1}; // a large orange square
        assertArrayEquals(expected, l);
        // the same picture without noise, background or marks gives the same labels
        assertArrayEquals(expected, VisionPretrainer.slotLabels(normalized(
                org.qvlm4j.data.SceneRenderer.render(scene, true).getRGB(0, 0, size, size, null, 0, size), size), size, MEAN, STD));
    }

    /**
     * Random scenes drawn as the benchmark draws them (small and large shapes of every kind, boxes
     * two pixels apart, noise and marks): the count label of every colour is the scene graph's number
     * of shapes of that colour, and where they all have one shape the shape label names it.
     */
    @Test
    void slotObjectLabelsCountEachColoursShapesAndNameTheLargest() {
        int size = 64;
        int[] radii = {4, 5, 8, 9, 10};
        SplittableRandom rng = new SplittableRandom(11);
        int slots = 0;
        int countsRight = 0;
        int shapesNamed = 0;
        int shapesRight = 0;
        for (int picture = 0; picture < 300; picture++) {
            List<Scene.SceneObject> objects = new ArrayList<>();
            int want = rng.nextInt(1, 10);
            for (int tries = 0; tries < 400 && objects.size() < want; tries++) {
                int r = radii[rng.nextInt(radii.length)];
                int cx = rng.nextInt(r, size - r - 1);
                int cy = rng.nextInt(r, size - r - 1);
                boolean free = objects.stream().allMatch(o -> cx + r + 1 + Scene.GAP < o.minX() || o.maxX() + 1 + Scene.GAP < cx - r
                        || cy + r + 1 + Scene.GAP < o.minY() || o.maxY() + 1 + Scene.GAP < cy - r);
                if (free) {
                    objects.add(new Scene.SceneObject(Scene.Shape.values()[rng.nextInt(Scene.Shape.values().length)],
                            Scene.Colour.values()[rng.nextInt(3)], cx, cy, r, r >= 8));
                }
            }
            Scene scene = new Scene(size, objects, List.of(new Scene.Mark(2, 62, 6, 62, 60)), 0xD0D0D0, 0xB8C0C8, false, 5, 12,
                    14, picture);
            int[] l = VisionPretrainer.slotObjectLabels(rendered(scene), size, MEAN, STD);
            for (Scene.Colour c : Scene.Colour.values()) {
                List<Scene.SceneObject> mine = scene.withColour(c);
                slots++;
                countsRight += l[2 * c.ordinal()] == mine.size() ? 1 : 0;
                List<Scene.Shape> largest = mine.stream().map(Scene.SceneObject::shape).distinct().toList();
                if (mine.isEmpty()) {
                    assertEquals(0, l[2 * c.ordinal() + 1], "no " + c.word + " shape, picture " + picture);
                } else if (largest.size() == 1) {
                    shapesNamed++;
                    shapesRight += l[2 * c.ordinal() + 1] == 1 + largest.get(0).ordinal() ? 1 : 0;
                }
            }
        }
        assertTrue(shapesNamed > 200, "largest shapes checked: " + shapesNamed);
        assertTrue(countsRight >= 0.99 * slots, "counts right " + countsRight + " of " + slots);
        assertTrue(shapesRight >= 0.98 * shapesNamed, "shapes right " + shapesRight + " of " + shapesNamed);
    }

    /**
     * Pictures of a 16-pixel model: on grey, one to three 4-pixel squares, each of a distinct palette
     * colour, at distinct places on the 4 x 4 grid of patches.
     */
    static List<float[]> squarePictures(int n, long seed) {
        int size = 16;
        Scene.Colour[] palette = Scene.Colour.values();
        SplittableRandom rng = new SplittableRandom(seed);
        List<float[]> out = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            int[] rgb = new int[size * size];
            Arrays.fill(rgb, GREY);
            int m = rng.nextInt(1, 4);
            List<Integer> colours = new ArrayList<>(List.of(0, 1, 2, 3, 4, 5));
            List<Integer> places = new ArrayList<>();
            for (int p = 0; p < 16; p++) {
                places.add(p);
            }
            for (int k = 0; k < m; k++) {
                int c = colours.remove(rng.nextInt(colours.size()));
                int p = places.remove(rng.nextInt(places.size()));
                for (int y = 0; y < 4; y++) {
                    for (int x = 0; x < 4; x++) {
                        rgb[((p / 4) * 4 + y) * size + (p % 4) * 4 + x] = palette[c].rgb;
                    }
                }
            }
            out.add(normalized(rgb, size));
        }
        return out;
    }

    @Test
    void aSlotRunLearnsWhereEachColourIs() {
        // 16 patches of 4 pixels, two vision layers: the first patches can gather a colour from anywhere
        LlavaConfig cfg = new ModelShape(16, 4, 24, 2, 2, 16, 1, 2, 1, 64).toConfig(TinyModels.VOCAB, TinyModels.IMAGE,
                TinyModels.BOS, TinyModels.EOS);
        List<float[]> images = squarePictures(256, 3);
        // a head that names every colour absent is right on this share of the labels
        long absent = images.stream().mapToLong(px -> Arrays.stream(VisionPretrainer.slotLabels(px, 16, MEAN, STD))
                .filter(v -> v == 0).count()).sum();
        double allAbsent = absent / (double) (images.size() * 3 * VisionPretrainer.SLOTS);
        VisionPretrainer.Options o = new VisionPretrainer.Options(600, 16, 1e-2, 5, 1, false, true);
        VisionPretrainer.Result r = VisionPretrainer.run(TrainableLlava.initialize(cfg, TinyModels.PAD, 1), images, MEAN, STD,
                o, null);
        assertTrue(r.slotAccuracy() > allAbsent + 0.5 * (1 - allAbsent),
                "slot accuracy " + r.slotAccuracy() + ", all-absent " + allAbsent);
        VisionPretrainer.Result again = VisionPretrainer.run(TrainableLlava.initialize(cfg, TinyModels.PAD, 1), images, MEAN,
                STD, o, null);
        assertEquals(r.losses(), again.losses(), "same seed, same losses");
        assertEquals(r.slotAccuracy(), again.slotAccuracy());
        // with counts, each slot also names how many squares of its colour (0 or 1 here) and their shape
        long countAbsent = images.stream().mapToLong(px -> Arrays.stream(VisionPretrainer.slotTargets(px, 16, MEAN, STD, true))
                .filter(v -> v == 0).count()).sum();
        double allAbsentCounts = countAbsent / (double) (images.size() * 5 * VisionPretrainer.SLOTS);
        VisionPretrainer.Result counted = VisionPretrainer.run(TrainableLlava.initialize(cfg, TinyModels.PAD, 1), images, MEAN,
                STD, new VisionPretrainer.Options(600, 16, 1e-2, 5, 1, false, true, true), null);
        assertTrue(counted.slotAccuracy() > allAbsentCounts + 0.5 * (1 - allAbsentCounts),
                "slot accuracy with counts " + counted.slotAccuracy() + ", all-absent " + allAbsentCounts);
        // every head names one label per slot, so the overall fraction is the mean of the heads'
        assertEquals(5, counted.slotHeadAccuracy().length);
        assertEquals(Arrays.stream(counted.slotHeadAccuracy()).average().orElseThrow(), counted.slotAccuracy(), 1e-12);
        assertEquals(3, r.slotHeadAccuracy().length);
        assertThrows(IllegalArgumentException.class, () -> new VisionPretrainer.Options(10, 16, 1e-2, 5, 1, false, false, true));
        VisionPretrainer.Result plain = VisionPretrainer.run(TrainableLlava.initialize(cfg, TinyModels.PAD, 1), images, MEAN,
                STD, new VisionPretrainer.Options(20, 16, 1e-2, 5), null);
        assertTrue(Double.isNaN(plain.slotAccuracy()), "no slots, no slot accuracy");
    }

    /** Images whose patches each have one colour of the palette or grey. */
    static List<float[]> colouredImages(LlavaConfig cfg, int n, long seed) {
        return tiledImages(cfg.visionConfig().imageSize(), cfg.visionConfig().patchSize(), Scene.Colour.values().length, n, seed);
    }

    @Test
    void aShortRunLearnsThePatchColoursAndTouchesOnlyTheVisionSide() throws Exception {
        LlavaConfig cfg = TinyModels.config();
        List<float[]> images = colouredImages(cfg, 48, 3);
        VisionPretrainer.Options o = new VisionPretrainer.Options(120, 8, 1e-2, 5);
        TrainableLlava before = TrainableLlava.initialize(cfg, TinyModels.PAD, 1);
        TrainableLlava a = TrainableLlava.initialize(cfg, TinyModels.PAD, 1);
        VisionPretrainer.Result r = VisionPretrainer.run(a, images, MEAN, STD, o, null);
        assertEquals(120, r.losses().size());
        double first = r.losses().subList(0, 5).stream().mapToDouble(Double::doubleValue).average().orElseThrow();
        double last = r.losses().subList(115, 120).stream().mapToDouble(Double::doubleValue).average().orElseThrow();
        assertTrue(first > 1.5, "initial loss near ln 7, got " + first);
        assertTrue(last < 0.2 * first, "loss " + first + " -> " + last);
        List<String> changed = TrainableLlava.differingParameters(before, a);
        assertFalse(changed.isEmpty());
        for (String name : changed) {
            assertTrue(name.startsWith("vision_tower.") || name.startsWith("multi_modal_projector."), name + " changed");
        }
        assertTrue(changed.contains("multi_modal_projector.linear_2.weight") && changed.stream()
                .anyMatch(n -> n.contains("encoder.layers.0.self_attn.q_proj")), changed.toString());

        TrainableLlava b = TrainableLlava.initialize(cfg, TinyModels.PAD, 1);
        VisionPretrainer.Result again = VisionPretrainer.run(b, images, MEAN, STD, o, null);
        assertEquals(r.losses(), again.losses());
        assertTrue(TrainableLlava.differingParameters(a, b).isEmpty(), "same seed, same bytes");
    }

    @Test
    void theWordHeadNamesColoursThroughTheColourWordsEmbeddings() {
        LlavaConfig cfg = TinyModels.config();
        List<float[]> images = colouredImages(cfg, 48, 3);
        int[] words = {11, 12, 13, 14, 15, 16}; // stand-ins for the six colour words' token ids
        VisionPretrainer.Options o = new VisionPretrainer.Options(200, 8, 1e-2, 5);
        TrainableLlava before = TrainableLlava.initialize(cfg, TinyModels.PAD, 1);
        TrainableLlava a = TrainableLlava.initialize(cfg, TinyModels.PAD, 1);
        VisionPretrainer.Result r = VisionPretrainer.run(a, images, MEAN, STD, o, words, null);
        double first = r.losses().subList(0, 5).stream().mapToDouble(Double::doubleValue).average().orElseThrow();
        double last = r.losses().subList(195, 200).stream().mapToDouble(Double::doubleValue).average().orElseThrow();
        assertTrue(last < 0.2 * first, "loss " + first + " -> " + last);

        // the vision side and, of the language model, only the colour words' embedding rows moved
        for (String name : TrainableLlava.differingParameters(before, a)) {
            assertTrue(name.startsWith("vision_tower.") || name.startsWith("multi_modal_projector.")
                    || name.equals(TrainableLlava.EMBED_TOKENS), name + " changed");
        }
        float[] e0 = before.parameters().get(TrainableLlava.EMBED_TOKENS).data();
        float[] e1 = a.parameters().get(TrainableLlava.EMBED_TOKENS).data();
        int d = cfg.textConfig().hiddenSize();
        for (int t = 0; t < cfg.textConfig().vocabSize(); t++) {
            int row = t;
            boolean colour = Arrays.stream(words).anyMatch(w -> w == row);
            float[] r0 = Arrays.copyOfRange(e0, t * d, (t + 1) * d);
            float[] r1 = Arrays.copyOfRange(e1, t * d, (t + 1) * d);
            assertEquals(colour, !Arrays.equals(r0, r1), "embedding row " + t);
        }

        // a coloured patch's feature lies closest, by dot product, to its colour word's embedding
        int size = cfg.visionConfig().imageSize();
        int patch = cfg.visionConfig().patchSize();
        int right = 0;
        int coloured = 0;
        for (float[] px : images) {
            int[] labels = VisionPretrainer.featureLabels(px, size, patch, 1, false, MEAN, STD);
            float[] f = a.imageFeatures(new org.qvlm4j.tensor.Tape(), px).data(); // (F, D)
            for (int p = 0; p < labels.length; p++) {
                if (labels[p] == 0) {
                    continue;
                }
                coloured++;
                int best = -1;
                double bestDot = Double.NEGATIVE_INFINITY;
                for (int c = 0; c < words.length; c++) {
                    double dot = 0;
                    for (int j = 0; j < d; j++) {
                        dot += (double) f[p * d + j] * e1[words[c] * d + j];
                    }
                    if (dot > bestDot) {
                        bestDot = dot;
                        best = c;
                    }
                }
                right += best + 1 == labels[p] ? 1 : 0;
            }
        }
        assertTrue(coloured > 50, "coloured patches " + coloured);
        assertTrue(right > 0.9 * coloured, right + " of " + coloured + " coloured patches");

        TrainableLlava b = TrainableLlava.initialize(cfg, TinyModels.PAD, 1);
        assertEquals(r.losses(), VisionPretrainer.run(b, images, MEAN, STD, o, words, null).losses());
        assertTrue(TrainableLlava.differingParameters(a, b).isEmpty(), "same seed, same bytes");
    }
}
