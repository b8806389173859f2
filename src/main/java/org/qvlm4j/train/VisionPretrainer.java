package org.qvlm4j.train;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import org.qvlm4j.data.Scene;
import org.qvlm4j.data.SceneRenderer;
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
 * <p>With a grid G > 1 ({@link Options#grid}) each patch is cut into G x G cells and the head names
 * the colour of every cell ({@link #cellColours} with cells of patch/G pixels, the same rule within
 * each cell): G^2 labels per feature, so the features must also say where inside its patch a colour
 * lies (at 64 px with patches of 8, G = 2 resolves the 4-pixel margins the benchmark's maps keep
 * between squares). G = 1 is the patch colour alone.
 *
 * <p>With places ({@link Options#places}) a second linear head names every patch feature's row and
 * column on the patch grid ({@link #placeLabels}), its cross-entropy added to the colour loss. The
 * colour labels alone let the tower drop the position embedding: a linear probe reads a coloured
 * patch's row from such features at chance (about 14% on 8 rows), so a language model over the
 * frozen features can tell which colours a picture holds but not where; with places each feature
 * says both, as CLIP's features do.
 *
 * <p>With slots ({@link Options#slots}) the features of the first {@value #SLOTS} patches (raster
 * order) also serve as one slot per palette colour: three linear heads over slot k's feature name
 * whether colour k is in the picture and a square or another shape, and the row and the column of
 * the {@value #SLOT_CELLS} x {@value #SLOT_CELLS} grid that holds it ({@link #slotLabels}). Where a
 * named colour is then sits at a fixed image token, the same for every picture, so that a language
 * model reads it from one place instead of searching the image tokens for that colour; the tower
 * computes the search, under this dense supervision, in its own attention.
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
    /** Slot features: one per palette colour, the first patches in raster order. */
    public static final int SLOTS = Scene.Colour.values().length;
    /** Cells of the slot's row and column labels per picture side (the synthetic maps' coordinate grid). */
    public static final int SLOT_CELLS = 8;
    /** Fewest pixels of a colour for its slot to count it present. */
    public static final int SLOT_MIN_PIXELS = 4;
    /** Fraction of its bounding box a colour must fill to count as a square. */
    public static final double SQUARE_FILL = 0.92;
    /** Slot kind classes: absent, a square, another shape. */
    public static final int SLOT_KINDS = 3;
    /** Largest number of shapes a slot's count label names; more count as this many. */
    public static final int SLOT_MAX_COUNT = 9;
    /** Slot shape classes: none, then the {@link Scene.Shape}s in declaration order. */
    public static final int SLOT_SHAPES = Scene.Shape.values().length + 1;

    /**
     * @param steps optimizer steps
     * @param batch images per step
     * @param lr    peak learning rate
     * @param seed  seed of the head's initialisation and of the shuffles
     * @param grid  cells per patch side, each with its own label (1: the patch colour)
     * @param places also name every patch feature's row and column
     * @param slots  the features of the first {@value #SLOTS} patches also name where the picture's
     *               colour of that index is and whether it is a square ({@link #slotLabels})
     * @param counts with slots, each slot also names how many shapes of its colour the picture has and
     *               the shape of the largest ({@link #slotObjectLabels})
     */
    public record Options(int steps, int batch, double lr, long seed, int grid, boolean places, boolean slots,
                          boolean counts) {
        public Options {
            if (steps < 1 || batch < 1 || !(lr > 0) || grid < 1) {
                throw new IllegalArgumentException("vision pretraining: need steps >= 1, batch >= 1, lr > 0, grid >= 1; got steps="
                        + steps + " batch=" + batch + " lr=" + lr + " grid=" + grid);
            }
            if (counts && !slots) {
                throw new IllegalArgumentException("vision pretraining: count and shape labels are slot labels; need slots");
            }
        }

        /** Slots without counts. */
        public Options(int steps, int batch, double lr, long seed, int grid, boolean places, boolean slots) {
            this(steps, batch, lr, seed, grid, places, slots, false);
        }

        /** No slots. */
        public Options(int steps, int batch, double lr, long seed, int grid, boolean places) {
            this(steps, batch, lr, seed, grid, places, false);
        }

        /** Colour labels on a grid of cells, no places. */
        public Options(int steps, int batch, double lr, long seed, int grid) {
            this(steps, batch, lr, seed, grid, false);
        }

        /** One label per patch. */
        public Options(int steps, int batch, double lr, long seed) {
            this(steps, batch, lr, seed, 1);
        }
    }

    /** Receives the loss after every step. */
    public interface Listener {
        void onStep(int step, int totalSteps, double loss, double elapsedSeconds);
    }

    /**
     * The per-step losses, the wall time and, with slots, the fraction of slot labels (kind, row and
     * column of every slot, with counts also count and shape) the heads name right over the last
     * {@value #SLOT_CHECK_IMAGES} images (NaN without slots), and that fraction per head in the order
     * {@link #SLOT_HEADS} names them (empty without slots).
     */
    public record Result(List<Double> losses, double seconds, double slotAccuracy, double[] slotHeadAccuracy) {
    }

    /** The slot heads in label order: the first three always, count and shape with counts. */
    public static final List<String> SLOT_HEADS = List.of("kind", "row", "column", "count", "shape");

    /** Images the slot accuracy of {@link Result} is measured on: the last of the list. */
    public static final int SLOT_CHECK_IMAGES = 256;

    private VisionPretrainer() {
    }

    /**
     * The colour class of every patch of one preprocessed image (C, S, S), patches in raster order.
     *
     * @param mean the preprocessor's per-channel mean (on the 0-1 scale)
     * @param std  the preprocessor's per-channel std
     */
    public static int[] patchColours(float[] pixels, int size, int patch, double[] mean, double[] std) {
        return cellColours(pixels, size, patch, mean, std);
    }

    /**
     * The colour class of every square cell of {@code cell} pixels of one preprocessed image (C, S, S),
     * cells in raster order over the (S/cell, S/cell) grid: the palette colour with the most pixels in
     * the cell if it covers at least {@link #MIN_COVER} of them, else 0.
     */
    public static int[] cellColours(float[] pixels, int size, int cell, double[] mean, double[] std) {
        if (cell < 1 || pixels.length != 3 * size * size || size % cell != 0) {
            throw new IllegalArgumentException("cell colours: expected (3, " + size + ", " + size + ") pixels with size a multiple of "
                    + cell + ", got " + pixels.length + " floats");
        }
        Scene.Colour[] palette = Scene.Colour.values();
        int grid = size / cell;
        int[] labels = new int[grid * grid];
        int plane = size * size;
        double r2 = COLOUR_RADIUS * COLOUR_RADIUS;
        for (int gy = 0; gy < grid; gy++) {
            for (int gx = 0; gx < grid; gx++) {
                int[] count = new int[CLASSES];
                for (int y = gy * cell; y < (gy + 1) * cell; y++) {
                    for (int x = gx * cell; x < (gx + 1) * cell; x++) {
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
                labels[gy * grid + gx] = most >= MIN_COVER * cell * cell ? label : 0;
            }
        }
        return labels;
    }

    /**
     * The labels of every image feature's G x G cells, feature-major ({@code [f * G^2 + sy * G + sx]}),
     * with {@link Ops#IGNORE_INDEX} for a class token.
     */
    static int[] featureLabels(float[] pixels, int size, int patch, int grid, boolean cls, double[] mean, double[] std) {
        if (patch % grid != 0) {
            throw new IllegalArgumentException("vision pretraining: grid " + grid + " must divide the patch size " + patch);
        }
        int[] cells = cellColours(pixels, size, patch / grid, mean, std);
        int side = size / patch;
        int g2 = grid * grid;
        int first = cls ? 1 : 0;
        int[] l = new int[(side * side + first) * g2];
        if (cls) {
            Arrays.fill(l, 0, g2, Ops.IGNORE_INDEX);
        }
        int row = side * grid;
        for (int py = 0; py < side; py++) {
            for (int px = 0; px < side; px++) {
                int f = first + py * side + px;
                for (int sy = 0; sy < grid; sy++) {
                    for (int sx = 0; sx < grid; sx++) {
                        l[f * g2 + sy * grid + sx] = cells[(py * grid + sy) * row + px * grid + sx];
                    }
                }
            }
        }
        return l;
    }

    /**
     * The row and column of every image feature's patch on the (S/patch)-wide grid, feature-major
     * ({@code [2 f] = row, [2 f + 1] = column}, patches in raster order), with {@link Ops#IGNORE_INDEX}
     * for a class token.
     */
    static int[] placeLabels(int size, int patch, boolean cls) {
        int side = size / patch;
        int first = cls ? 1 : 0;
        int[] l = new int[2 * (side * side + first)];
        if (cls) {
            l[0] = Ops.IGNORE_INDEX;
            l[1] = Ops.IGNORE_INDEX;
        }
        for (int p = 0; p < side * side; p++) {
            l[2 * (first + p)] = p / side;
            l[2 * (first + p) + 1] = p % side;
        }
        return l;
    }

    /**
     * Labels of the {@value #SLOTS} slots of one preprocessed image (C, S, S), slot-major ({@code [3 k]}
     * kind, {@code [3 k + 1]} row, {@code [3 k + 2]} column) for the colour of declaration index k: the
     * pixels nearest that palette colour within {@link #COLOUR_RADIUS}; with fewer than
     * {@value #SLOT_MIN_PIXELS} of them the colour is absent (kind, row and column 0), else the middle of
     * their bounding box gives row and column, 1 to {@value #SLOT_CELLS} from the top and the left (the
     * cell of the picture's {@value #SLOT_CELLS} x {@value #SLOT_CELLS} grid holding it), and the kind is
     * 1 when the pixels fill at least {@link #SQUARE_FILL} of the box (a square), else 2.
     */
    public static int[] slotLabels(float[] pixels, int size, double[] mean, double[] std) {
        if (pixels.length != 3 * size * size) {
            throw new IllegalArgumentException("slot labels: expected (3, " + size + ", " + size + ") pixels, got "
                    + pixels.length + " floats");
        }
        int[] nearest = cellColours(pixels, size, 1, mean, std);
        int[] l = new int[3 * SLOTS];
        for (int k = 0; k < SLOTS; k++) {
            int count = 0;
            int x0 = size;
            int x1 = -1;
            int y0 = size;
            int y1 = -1;
            for (int y = 0; y < size; y++) {
                for (int x = 0; x < size; x++) {
                    if (nearest[y * size + x] == k + 1) {
                        count++;
                        x0 = Math.min(x0, x);
                        x1 = Math.max(x1, x);
                        y0 = Math.min(y0, y);
                        y1 = Math.max(y1, y);
                    }
                }
            }
            if (count < SLOT_MIN_PIXELS) {
                continue;
            }
            double box = (double) (x1 - x0 + 1) * (y1 - y0 + 1);
            l[3 * k] = count >= SQUARE_FILL * box ? 1 : 2;
            l[3 * k + 1] = Math.min(SLOT_CELLS - 1, (y0 + y1) / 2 * SLOT_CELLS / size) + 1;
            l[3 * k + 2] = Math.min(SLOT_CELLS - 1, (x0 + x1) / 2 * SLOT_CELLS / size) + 1;
        }
        return l;
    }

    /**
     * Count and shape labels of the {@value #SLOTS} slots of one preprocessed image (C, S, S),
     * slot-major ({@code [2 k]} count, {@code [2 k + 1]} shape) for the colour of declaration index k:
     * the pixels nearest that palette colour (as in {@link #slotLabels}) split into 8-connected blobs,
     * those of at least {@value #SLOT_MIN_PIXELS} pixels counted (at most {@value #SLOT_MAX_COUNT}); the
     * shape is that of the largest blob, 1 + its {@link Scene.Shape} ordinal (0 without a blob): the
     * shape whose drawing ({@link SceneRenderer#mask}) overlaps the blob best, over the half-sizes its
     * bounding box allows and shifts of one pixel.
     */
    public static int[] slotObjectLabels(float[] pixels, int size, double[] mean, double[] std) {
        if (pixels.length != 3 * size * size) {
            throw new IllegalArgumentException("slot object labels: expected (3, " + size + ", " + size + ") pixels, got "
                    + pixels.length + " floats");
        }
        int[] nearest = cellColours(pixels, size, 1, mean, std);
        int[] blob = new int[size * size];
        Arrays.fill(blob, -1);
        int[] stack = new int[size * size];
        int[] members = new int[size * size];
        int[] l = new int[2 * SLOTS];
        int[] largestPixels = new int[SLOTS];
        int[][] largest = new int[SLOTS][];
        int blobs = 0;
        for (int start = 0; start < size * size; start++) {
            int k = nearest[start] - 1;
            if (k < 0 || blob[start] >= 0) {
                continue;
            }
            int n = 0;
            int top = 0;
            stack[top++] = start;
            blob[start] = blobs;
            while (top > 0) {
                int p = stack[--top];
                members[n++] = p;
                int py = p / size;
                int px = p % size;
                for (int dy = -1; dy <= 1; dy++) {
                    for (int dx = -1; dx <= 1; dx++) {
                        int y = py + dy;
                        int x = px + dx;
                        if (y >= 0 && y < size && x >= 0 && x < size && blob[y * size + x] < 0
                                && nearest[y * size + x] == k + 1) {
                            blob[y * size + x] = blobs;
                            stack[top++] = y * size + x;
                        }
                    }
                }
            }
            blobs++;
            if (n < SLOT_MIN_PIXELS) {
                continue;
            }
            l[2 * k] = Math.min(SLOT_MAX_COUNT, l[2 * k] + 1);
            if (n > largestPixels[k]) {
                largestPixels[k] = n;
                largest[k] = Arrays.copyOf(members, n);
            }
        }
        for (int k = 0; k < SLOTS; k++) {
            if (largest[k] != null) {
                l[2 * k + 1] = 1 + shapeOf(largest[k], size).ordinal();
            }
        }
        return l;
    }

    /**
     * The slot labels of one image, slot-major: {@link #slotLabels}' kind, row and column, and with
     * counts {@link #slotObjectLabels}' count and shape after them (five per slot).
     */
    static int[] slotTargets(float[] pixels, int size, double[] mean, double[] std, boolean counts) {
        int[] where = slotLabels(pixels, size, mean, std);
        if (!counts) {
            return where;
        }
        int[] objects = slotObjectLabels(pixels, size, mean, std);
        int[] l = new int[5 * SLOTS];
        for (int k = 0; k < SLOTS; k++) {
            System.arraycopy(where, 3 * k, l, 5 * k, 3);
            System.arraycopy(objects, 2 * k, l, 5 * k + 3, 2);
        }
        return l;
    }

    /** Drawn shapes by half-size, filled as needed: [r][shape] = (2r + 4)^2 mask. */
    private static final java.util.concurrent.ConcurrentHashMap<Integer, boolean[][]> SHAPE_MASKS =
            new java.util.concurrent.ConcurrentHashMap<>();

    private static boolean[][] masks(int r) {
        return SHAPE_MASKS.computeIfAbsent(r, h -> {
            Scene.Shape[] shapes = Scene.Shape.values();
            boolean[][] m = new boolean[shapes.length][];
            for (Scene.Shape s : shapes) {
                m[s.ordinal()] = SceneRenderer.mask(s, h);
            }
            return m;
        });
    }

    /** The shape whose drawing best overlaps (intersection over union) the blob's pixels (indices y * size + x). */
    static Scene.Shape shapeOf(int[] pixels, int size) {
        int x0 = size;
        int x1 = -1;
        int y0 = size;
        int y1 = -1;
        for (int p : pixels) {
            x0 = Math.min(x0, p % size);
            x1 = Math.max(x1, p % size);
            y0 = Math.min(y0, p / size);
            y1 = Math.max(y1, p / size);
        }
        int w = x1 - x0 + 1;
        int h = y1 - y0 + 1;
        boolean[] in = new boolean[w * h];
        for (int p : pixels) {
            in[(p / size - y0) * w + p % size - x0] = true;
        }
        int extent = Math.max(w, h);
        Scene.Shape best = Scene.Shape.values()[0];
        double bestScore = -1;
        for (int r = Math.max(0, (extent - 3) / 2); r <= extent / 2; r++) {
            boolean[][] drawn = masks(r);
            int n = 2 * r + 4;
            for (Scene.Shape s : Scene.Shape.values()) {
                boolean[] m = drawn[s.ordinal()];
                // the drawing's box centre is (r + 1.5, r + 1.5) at most; align its centre with the blob's, +-1
                int cx = x0 + w / 2;
                int cy = y0 + h / 2;
                for (int oy = -1; oy <= 1; oy++) {
                    for (int ox = -1; ox <= 1; ox++) {
                        // drawing pixel (mx, my) lies at picture (mx - (r + 1) + cx + ox, my - (r + 1) + cy + oy)
                        int dx = cx + ox - (r + 1);
                        int dy = cy + oy - (r + 1);
                        int both = 0;
                        int drawnCount = 0;
                        for (int my = 0; my < n; my++) {
                            for (int mx = 0; mx < n; mx++) {
                                if (!m[my * n + mx]) {
                                    continue;
                                }
                                drawnCount++;
                                int bx = mx + dx - x0;
                                int by = my + dy - y0;
                                if (bx >= 0 && bx < w && by >= 0 && by < h && in[by * w + bx]) {
                                    both++;
                                }
                            }
                        }
                        double score = both / (double) (drawnCount + pixels.length - both);
                        if (score > bestScore) {
                            bestScore = score;
                            best = s;
                        }
                    }
                }
            }
        }
        return best;
    }

    /** Trains the model's vision tower and projector in place on the images (each (C, S, S)). */
    public static Result run(TrainableLlava model, List<float[]> images, double[] mean, double[] std, Options o,
                             Listener listener) {
        return run(model, images, mean, std, o, null, listener);
    }

    /**
     * As {@link #run(TrainableLlava, List, double[], double[], Options, Listener)}; with colourTokens
     * (the token ids of the {@link Scene.Colour} words, in declaration order) the colour head's rows
     * are the language model's own input embeddings of those words (the "none" row alone is the
     * head's), trained with the tower: a feature then names its patch's colour by pointing where the
     * word does, and the stage also moves those embedding rows (no other row gets a gradient).
     */
    public static Result run(TrainableLlava model, List<float[]> images, double[] mean, double[] std, Options o,
                             int[] colourTokens, Listener listener) {
        if (images.isEmpty()) {
            throw new IllegalArgumentException("vision pretraining: no images");
        }
        LlavaConfig cfg = model.config();
        int size = cfg.visionConfig().imageSize();
        int patch = cfg.visionConfig().patchSize();
        int F = cfg.imageSeqLength();
        boolean cls = cfg.visionFeatureSelectStrategy() == LlavaConfig.FeatureSelectStrategy.FULL;
        int D = cfg.textConfig().hiddenSize();
        int g2 = o.grid() * o.grid();
        List<int[]> labels = new ArrayList<>(images.size());
        for (float[] px : images) {
            int[] l = featureLabels(px, size, patch, o.grid(), cls, mean, std);
            if (l.length != F * g2) {
                throw new IllegalStateException("vision pretraining: " + l.length / g2 + " labelled features, the model makes " + F);
            }
            labels.add(l);
        }
        SplittableRandom root = new SplittableRandom(o.seed());
        SplittableRandom init = root.split();
        float[] w = new float[g2 * CLASSES * D];
        for (int i = 0; i < w.length; i++) {
            w[i] = (float) (init.nextGaussian() * TrainableLlava.INIT_STD);
        }
        Tensor headB = Tensor.param("head.bias", new float[g2 * CLASSES], g2 * CLASSES);
        List<Tensor> decay = new ArrayList<>();
        List<Tensor> noDecay = new ArrayList<>(List.of(headB));
        Tensor headW = null;
        Tensor noneRow = null;
        Tensor embed = null;
        if (colourTokens == null) {
            headW = Tensor.param("head.weight", w, g2 * CLASSES, D);
            decay.add(headW);
        } else {
            if (colourTokens.length != CLASSES - 1 || o.grid() != 1) {
                throw new IllegalArgumentException("vision pretraining with the word head: expected " + (CLASSES - 1)
                        + " colour tokens and grid 1, got " + colourTokens.length + " tokens and grid " + o.grid());
            }
            embed = model.parameters().get(TrainableLlava.EMBED_TOKENS);
            for (int t : colourTokens) {
                if (t < 0 || t >= embed.dim(0)) {
                    throw new IllegalArgumentException("vision pretraining with the word head: colour token " + t
                            + " is outside the vocabulary of " + embed.dim(0));
                }
            }
            noneRow = Tensor.param("head.none", Arrays.copyOf(w, D), 1, D);
            decay.add(noneRow);
            noDecay.add(embed);
        }
        int side = size / patch;
        int[] places = o.places() ? placeLabels(size, patch, cls) : null;
        Tensor placeW = null;
        Tensor placeB = null;
        if (o.places()) {
            float[] pw = new float[2 * side * D];
            for (int i = 0; i < pw.length; i++) {
                pw[i] = (float) (init.nextGaussian() * TrainableLlava.INIT_STD);
            }
            placeW = Tensor.param("place_head.weight", pw, 2 * side, D);
            placeB = Tensor.param("place_head.bias", new float[2 * side], 2 * side);
            decay.add(placeW);
            noDecay.add(placeB);
        }
        int[][] slotTargets = null;
        int heads = o.counts() ? 5 : 3;
        Tensor[] slotW = null;
        Tensor[] slotB = null;
        if (o.slots()) {
            if (side * side < SLOTS) {
                throw new IllegalArgumentException("vision pretraining with slots: " + side * side + " patches, need "
                        + SLOTS);
            }
            int[][] labelled = new int[images.size()][];
            java.util.stream.IntStream.range(0, images.size()).parallel().forEach(i ->
                    labelled[i] = slotTargets(images.get(i), size, mean, std, o.counts()));
            slotTargets = labelled;
            int[] classes = {SLOT_KINDS, SLOT_CELLS + 1, SLOT_CELLS + 1, SLOT_MAX_COUNT + 1, SLOT_SHAPES};
            String[] names = SLOT_HEADS.toArray(String[]::new);
            slotW = new Tensor[heads];
            slotB = new Tensor[heads];
            for (int h = 0; h < heads; h++) {
                float[] sw = new float[classes[h] * D];
                for (int i = 0; i < sw.length; i++) {
                    sw[i] = (float) (init.nextGaussian() * TrainableLlava.INIT_STD);
                }
                slotW[h] = Tensor.param("slot_" + names[h] + ".weight", sw, classes[h], D);
                slotB[h] = Tensor.param("slot_" + names[h] + ".bias", new float[classes[h]], classes[h]);
                decay.add(slotW[h]);
                noDecay.add(slotB[h]);
            }
        }
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
            List<Integer> picked = new ArrayList<>(o.batch());
            int[] targets = new int[Math.min(o.batch(), n) * F * g2];
            for (int b = 0; b < Math.min(o.batch(), n); b++) {
                if (pos == n) {
                    shuffle(order, root.split());
                    pos = 0;
                }
                int i = order[pos++];
                batch.add(images.get(i));
                picked.add(i);
                System.arraycopy(labels.get(i), 0, targets, b * F * g2, F * g2);
            }
            for (Tensor p : params) {
                p.zeroGrad();
            }
            Tape tape = new Tape();
            Tensor features = model.imageFeatures(tape, batch, TrainableLlava.Hook.NONE); // (b F, D)
            Tensor head = headW != null ? headW
                    : Ops.concatRows(tape, noneRow, Ops.embedding(tape, embed, colourTokens)); // (classes, D)
            Tensor logits = Ops.linear(tape, features, head, headB); // (b F, G^2 classes)
            if (g2 > 1) {
                logits = Ops.reshape(tape, logits, logits.shape()[0] * g2, CLASSES);
            }
            Tensor loss = Ops.crossEntropy(tape, logits, targets);
            if (places != null) {
                int rows = batch.size() * F;
                int[] placeTargets = new int[rows * 2];
                for (int b = 0; b < batch.size(); b++) {
                    System.arraycopy(places, 0, placeTargets, b * F * 2, F * 2);
                }
                Tensor where = Ops.reshape(tape, Ops.linear(tape, features, placeW, placeB), rows * 2, side);
                loss = Ops.add(tape, loss, Ops.crossEntropy(tape, where, placeTargets));
            }
            if (slotTargets != null) {
                int bs = batch.size();
                int[] rows = new int[bs * SLOTS];
                int[][] t = new int[heads][bs * SLOTS];
                for (int b = 0; b < bs; b++) {
                    int[] sl = slotTargets[picked.get(b)];
                    for (int k = 0; k < SLOTS; k++) {
                        rows[b * SLOTS + k] = b * F + (cls ? 1 : 0) + k;
                        for (int h = 0; h < heads; h++) {
                            t[h][b * SLOTS + k] = sl[heads * k + h];
                        }
                    }
                }
                Tensor slotFeatures = Ops.embedding(tape, features, rows); // (b SLOTS, D)
                for (int h = 0; h < heads; h++) {
                    loss = Ops.add(tape, loss, Ops.crossEntropy(tape, Ops.linear(tape, slotFeatures, slotW[h], slotB[h]), t[h]));
                }
            }
            tape.backward(loss);
            GradClip.clipByGlobalNorm(params, 1.0);
            opt.step(schedule.lr(step));
            losses.add((double) loss.item());
            if (listener != null) {
                listener.onStep(step + 1, o.steps(), loss.item(), (System.nanoTime() - t0) / 1e9);
            }
        }
        double slotAccuracy = Double.NaN;
        double[] headAccuracy = new double[0];
        if (slotTargets != null) {
            int right = 0;
            int total = 0;
            int[] headRight = new int[heads];
            int[] headTotal = new int[heads];
            for (int from = Math.max(0, n - SLOT_CHECK_IMAGES); from < n; from += o.batch()) {
                int to = Math.min(n, from + o.batch());
                Tensor features = model.imageFeatures(new Tape(), images.subList(from, to), TrainableLlava.Hook.NONE);
                for (int h = 0; h < heads; h++) {
                    Tensor logits = Ops.linear(new Tape(), features, slotW[h], slotB[h]);
                    int c = logits.dim(1);
                    float[] z = logits.data();
                    for (int i = from; i < to; i++) {
                        for (int k = 0; k < SLOTS; k++) {
                            int row = (i - from) * F + (cls ? 1 : 0) + k;
                            int best = 0;
                            for (int j = 1; j < c; j++) {
                                if (z[row * c + j] > z[row * c + best]) {
                                    best = j;
                                }
                            }
                            int hit = best == slotTargets[i][heads * k + h] ? 1 : 0;
                            right += hit;
                            total++;
                            headRight[h] += hit;
                            headTotal[h]++;
                        }
                    }
                }
            }
            slotAccuracy = right / (double) total;
            headAccuracy = new double[heads];
            for (int h = 0; h < heads; h++) {
                headAccuracy[h] = headRight[h] / (double) headTotal[h];
            }
        }
        return new Result(List.copyOf(losses), (System.nanoTime() - t0) / 1e9, slotAccuracy, headAccuracy);
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
