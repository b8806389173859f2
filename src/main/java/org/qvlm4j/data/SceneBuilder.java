package org.qvlm4j.data;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.function.IntBinaryOperator;

/**
 * Places shapes without overlap by seeded rejection sampling, then adds clutter marks, a textured
 * gradient background and the noise seed. Sizes are given for 64-pixel pictures and scaled to the
 * picture size. {@link #place} returns false when no free spot was found, and the caller then
 * starts the scene again with the same random stream, so the result stays a function of the seed.
 */
final class SceneBuilder {

    /** Half-size range of small objects at 64 px. */
    static final int SMALL_MIN = 4;
    static final int SMALL_MAX = 5;
    /** Half-size range of large objects at 64 px. */
    static final int LARGE_MIN = 8;
    static final int LARGE_MAX = 10;
    /** Random positions tried per object before giving up. */
    static final int TRIES = 300;
    /** Per-channel noise amplitude of easy and hard pictures. */
    static final int NOISE_EASY = 6;
    static final int NOISE_HARD = 14;

    private final SplittableRandom rnd;
    private final int size;
    private final boolean hard;
    private final double scale;
    private final List<Scene.SceneObject> objects = new ArrayList<>();

    SceneBuilder(SplittableRandom rnd, int size, boolean hard) {
        this.rnd = rnd;
        this.size = size;
        this.hard = hard;
        this.scale = size / 64.0;
    }

    List<Scene.SceneObject> objects() {
        return objects;
    }

    int size() {
        return size;
    }

    int radius(boolean large) {
        int lo = large ? LARGE_MIN : SMALL_MIN;
        int hi = large ? LARGE_MAX : SMALL_MAX;
        return (int) Math.round(rnd.nextInt(lo, hi + 1) * scale);
    }

    /** Places an object anywhere free. */
    boolean place(Scene.Shape shape, Scene.Colour colour, boolean large) {
        return place(shape, colour, large, (x, y) -> 1);
    }

    /** Places an object at a free spot whose centre passes {@code accept} (returns non-zero to accept). */
    boolean place(Scene.Shape shape, Scene.Colour colour, boolean large, IntBinaryOperator accept) {
        int r = radius(large);
        int gap = gap();
        for (int t = 0; t < TRIES; t++) {
            int cx = rnd.nextInt(r + 1, size - r - 1);
            int cy = rnd.nextInt(r + 1, size - r - 1);
            if (accept.applyAsInt(cx, cy) != 0 && free(cx - r, cy - r, cx + r + 1, cy + r + 1, gap)) {
                objects.add(new Scene.SceneObject(shape, colour, cx, cy, r, large));
                return true;
            }
        }
        return false;
    }

    private int gap() {
        return Math.max(Scene.GAP, (int) Math.round(Scene.GAP * scale));
    }

    // Boxes include the one-pixel overhang of polygons on the right and bottom.
    private boolean free(int x0, int y0, int x1, int y1, int gap) {
        for (Scene.SceneObject o : objects) {
            if (x0 <= o.maxX() + 1 + gap && o.minX() <= x1 + gap && y0 <= o.maxY() + 1 + gap && o.minY() <= y1 + gap) {
                return false;
            }
        }
        return true;
    }

    /** Finishes the scene: clutter marks (more when hard), background and noise. */
    Scene build() {
        int marksWanted = hard ? rnd.nextInt(8, 16) : rnd.nextInt(2, 7);
        List<Scene.Mark> marks = new ArrayList<>();
        int gap = gap();
        for (int t = 0; t < marksWanted * 20 && marks.size() < marksWanted; t++) {
            int len = Math.max(1, (int) Math.round(rnd.nextInt(1, 4) * scale));
            int x0 = rnd.nextInt(1, size - len - 1);
            int y0 = rnd.nextInt(1, size - len - 1);
            int dir = rnd.nextInt(3);
            int x1 = dir == 1 ? x0 : x0 + len;
            int y1 = dir == 0 ? y0 : y0 + len;
            if (free(x0, y0, x1, y1, gap)) {
                marks.add(new Scene.Mark(x0, y0, x1, y1, rnd.nextInt(40, 110)));
            }
        }
        int top = lightGrey();
        int bottom = lightGrey();
        boolean horizontal = rnd.nextBoolean();
        int period = rnd.nextInt(3, 8);
        int depth = hard ? rnd.nextInt(6, 16) : rnd.nextInt(0, 8);
        return new Scene(size, objects, marks, top, bottom, horizontal, period, depth,
                hard ? NOISE_HARD : NOISE_EASY, rnd.nextLong());
    }

    private int lightGrey() {
        int g = rnd.nextInt(185, 235);
        int rgb = 0;
        for (int shift = 16; shift >= 0; shift -= 8) {
            rgb |= Math.max(0, Math.min(255, g + rnd.nextInt(-12, 13))) << shift;
        }
        return rgb;
    }
}
