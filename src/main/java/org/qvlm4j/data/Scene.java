package org.qvlm4j.data;

import java.util.List;

/**
 * The scene graph behind one synthetic benchmark picture: non-overlapping coloured shapes, small
 * distractor marks, a textured gradient background and a seed for per-pixel noise. Answers to
 * picture questions are computed from this graph, and {@link SceneRenderer} draws it.
 *
 * <p>Objects occupy the square {@code [cx - r, cx + r]} in both axes; boxes of different objects
 * (and of marks) are at least {@link #GAP} pixels apart so that every object is its own connected
 * blob in the picture.
 */
public record Scene(int size, List<SceneObject> objects, List<Mark> marks, int backgroundTop, int backgroundBottom,
                    boolean horizontalGradient, int stripePeriod, int stripeDepth, int noiseAmplitude, long noiseSeed) {

    /** Minimum distance in pixels between boxes of objects and marks. */
    public static final int GAP = 2;

    public Scene {
        objects = List.copyOf(objects);
        marks = List.copyOf(marks);
    }

    /** Shapes the benchmark draws, with their English singular and plural nouns. */
    public enum Shape {
        CIRCLE("circle", "circles"), SQUARE("square", "squares"), TRIANGLE("triangle", "triangles"),
        DIAMOND("diamond", "diamonds"), CROSS("cross", "crosses");

        public final String singular;
        public final String plural;

        Shape(String singular, String plural) {
            this.singular = singular;
            this.plural = plural;
        }
    }

    /** Named palette colours, saturated so they stand apart from the light grey background and dark marks. */
    public enum Colour {
        RED("red", 0xD62828), BLUE("blue", 0x1D4ED8), GREEN("green", 0x16A34A), YELLOW("yellow", 0xF2C200),
        PURPLE("purple", 0x8E24AA), ORANGE("orange", 0xF07B12);

        public final String word;
        public final int rgb;

        Colour(String word, int rgb) {
            this.word = word;
            this.rgb = rgb;
        }
    }

    /** One shape: centre, half-size r and whether it was drawn from the large size range. */
    public record SceneObject(Shape shape, Colour colour, int cx, int cy, int r, boolean large) {
        public int minX() {
            return cx - r;
        }

        public int maxX() {
            return cx + r;
        }

        public int minY() {
            return cy - r;
        }

        public int maxY() {
            return cy + r;
        }
    }

    /** A short dark stroke from (x0, y0) to (x1, y1), grey level {@code grey}: clutter that is no object. */
    public record Mark(int x0, int y0, int x1, int y1, int grey) {
    }

    /** Objects of this colour (any shape) in drawing order. */
    public List<SceneObject> withColour(Colour c) {
        return objects.stream().filter(o -> o.colour() == c).toList();
    }

    /** Number of objects with this colour and shape. */
    public long count(Colour c, Shape s) {
        return objects.stream().filter(o -> o.colour() == c && o.shape() == s).count();
    }
}
