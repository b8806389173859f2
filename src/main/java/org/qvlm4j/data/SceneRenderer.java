package org.qvlm4j.data;

import java.awt.Color;
import java.awt.Graphics2D;
import java.awt.Polygon;
import java.awt.RenderingHints;
import java.awt.image.BufferedImage;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.SplittableRandom;
import javax.imageio.ImageIO;

/**
 * Draws a {@link Scene} into an RGB {@link BufferedImage} with java.awt, antialiasing off so every
 * object pixel has exactly its palette colour before noise, and encodes PNGs. The same scene always
 * gives the same pixels and the same PNG bytes (the JDK PNG writer stores no timestamp).
 *
 * <p>A clean render (white background, no marks, no noise) exists for checking answers against the
 * picture; the benchmark's pictures are the noisy renders.
 */
public final class SceneRenderer {

    private SceneRenderer() {
    }

    /** Renders the scene; {@code clean} drops background, marks and noise. */
    public static BufferedImage render(Scene s, boolean clean) {
        int n = s.size();
        BufferedImage img = new BufferedImage(n, n, BufferedImage.TYPE_INT_RGB);
        if (clean) {
            int[] white = new int[n * n];
            java.util.Arrays.fill(white, 0xFFFFFF);
            img.setRGB(0, 0, n, n, white, 0, n);
        } else {
            paintBackground(img, s);
        }
        Graphics2D g = img.createGraphics();
        g.setRenderingHint(RenderingHints.KEY_ANTIALIASING, RenderingHints.VALUE_ANTIALIAS_OFF);
        g.setRenderingHint(RenderingHints.KEY_RENDERING, RenderingHints.VALUE_RENDER_QUALITY);
        g.setRenderingHint(RenderingHints.KEY_STROKE_CONTROL, RenderingHints.VALUE_STROKE_PURE);
        if (!clean) {
            for (Scene.Mark m : s.marks()) {
                g.setColor(new Color(m.grey(), m.grey(), m.grey()));
                g.drawLine(m.x0(), m.y0(), m.x1(), m.y1());
            }
        }
        for (Scene.SceneObject o : s.objects()) {
            g.setColor(new Color(o.colour().rgb));
            fill(g, o);
        }
        g.dispose();
        if (!clean) {
            addNoise(img, s.noiseAmplitude(), s.noiseSeed());
        }
        return img;
    }

    /**
     * The pixels one shape of half-size r covers when drawn as {@link #render} draws it, centred at
     * (r + 1, r + 1) on a square of 2r + 4 pixels, row-major: what a blob of that shape looks like.
     */
    public static boolean[] mask(Scene.Shape shape, int r) {
        if (r < 0) {
            throw new IllegalArgumentException("shape mask: expected half-size >= 0, got " + r);
        }
        int n = 2 * r + 4;
        BufferedImage img = new BufferedImage(n, n, BufferedImage.TYPE_INT_RGB);
        Graphics2D g = img.createGraphics();
        g.setRenderingHint(RenderingHints.KEY_ANTIALIASING, RenderingHints.VALUE_ANTIALIAS_OFF);
        g.setRenderingHint(RenderingHints.KEY_RENDERING, RenderingHints.VALUE_RENDER_QUALITY);
        g.setRenderingHint(RenderingHints.KEY_STROKE_CONTROL, RenderingHints.VALUE_STROKE_PURE);
        g.setColor(Color.WHITE);
        fill(g, new Scene.SceneObject(shape, Scene.Colour.RED, r + 1, r + 1, r, false));
        g.dispose();
        int[] rgb = img.getRGB(0, 0, n, n, null, 0, n);
        boolean[] m = new boolean[n * n];
        for (int i = 0; i < m.length; i++) {
            m[i] = (rgb[i] & 0xFFFFFF) != 0;
        }
        return m;
    }

    private static void fill(Graphics2D g, Scene.SceneObject o) {
        int cx = o.cx();
        int cy = o.cy();
        int r = o.r();
        int d = 2 * r + 1;
        switch (o.shape()) {
            case CIRCLE -> g.fillOval(cx - r, cy - r, d, d);
            case SQUARE -> g.fillRect(cx - r, cy - r, d, d);
            case TRIANGLE -> g.fillPolygon(new Polygon(new int[] {cx, cx + r + 1, cx - r},
                    new int[] {cy - r, cy + r + 1, cy + r + 1}, 3));
            case DIAMOND -> g.fillPolygon(new Polygon(new int[] {cx, cx + r + 1, cx, cx - r},
                    new int[] {cy - r, cy, cy + r + 1, cy}, 4));
            case CROSS -> {
                // Arm thickness about two fifths of the width keeps the cross one blob at the smallest size.
                int t = Math.max(1, (2 * r + 1) * 2 / 5 / 2);
                g.fillRect(cx - t, cy - r, 2 * t + 1, d);
                g.fillRect(cx - r, cy - t, d, 2 * t + 1);
            }
            default -> throw new IllegalStateException(o.shape().name());
        }
    }

    private static void paintBackground(BufferedImage img, Scene s) {
        int n = s.size();
        int[] px = new int[n * n];
        for (int y = 0; y < n; y++) {
            for (int x = 0; x < n; x++) {
                double t = (s.horizontalGradient() ? x : y) / (double) (n - 1);
                int stripe = ((x + y) % s.stripePeriod() == 0) ? s.stripeDepth() : 0;
                int rgb = 0;
                for (int shift = 16; shift >= 0; shift -= 8) {
                    int a = (s.backgroundTop() >> shift) & 0xFF;
                    int b = (s.backgroundBottom() >> shift) & 0xFF;
                    int v = (int) Math.round(a + (b - a) * t) - stripe;
                    rgb |= clamp(v) << shift;
                }
                px[y * n + x] = rgb;
            }
        }
        img.setRGB(0, 0, n, n, px, 0, n);
    }

    private static void addNoise(BufferedImage img, int amplitude, long seed) {
        if (amplitude == 0) {
            return;
        }
        SplittableRandom rnd = new SplittableRandom(seed);
        int n = img.getWidth();
        int[] px = img.getRGB(0, 0, n, n, null, 0, n);
        for (int i = 0; i < px.length; i++) {
            int rgb = 0;
            for (int shift = 16; shift >= 0; shift -= 8) {
                int v = ((px[i] >> shift) & 0xFF) + rnd.nextInt(-amplitude, amplitude + 1);
                rgb |= clamp(v) << shift;
            }
            px[i] = rgb;
        }
        img.setRGB(0, 0, n, n, px, 0, n);
    }

    private static int clamp(int v) {
        return Math.max(0, Math.min(255, v));
    }

    /** PNG bytes of the image. */
    public static byte[] png(BufferedImage img) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        try {
            if (!ImageIO.write(img, "png", out)) {
                throw new IllegalStateException("no PNG writer available");
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return out.toByteArray();
    }
}
