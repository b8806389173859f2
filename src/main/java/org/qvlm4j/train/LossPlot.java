package org.qvlm4j.train;

import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.Font;
import java.awt.FontMetrics;
import java.awt.Graphics2D;
import java.awt.RenderingHints;
import java.awt.geom.Path2D;
import java.awt.image.BufferedImage;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import org.qvlm4j.io.AtomicFiles;

/**
 * Draws a training-loss curve as a PNG with java.awt: the loss of every step (light), its moving
 * average over about 2% of the steps (dark), axes with "nice" ticks (1, 2 or 5 times a power of
 * ten), tick labels, axis titles and a title. Headless; written through a temporary file and a
 * rename. Left out: log scales, several series, validation curves.
 */
public final class LossPlot {
    /** Image width in pixels. */
    public static final int WIDTH = 900;
    /** Image height in pixels. */
    public static final int HEIGHT = 540;
    private static final int LEFT = 80;
    private static final int RIGHT = 30;
    private static final int TOP = 50;
    private static final int BOTTOM = 60;
    private static final int TARGET_TICKS = 6;
    private static final double SMOOTH_FRACTION = 0.02;

    private LossPlot() {
    }

    /** Renders the curve of the log's loss against step. */
    public static BufferedImage render(List<Trainer.LogRow> log, String title) {
        System.setProperty("java.awt.headless", "true");
        BufferedImage img = new BufferedImage(WIDTH, HEIGHT, BufferedImage.TYPE_INT_RGB);
        Graphics2D g = img.createGraphics();
        try {
            g.setRenderingHint(RenderingHints.KEY_ANTIALIASING, RenderingHints.VALUE_ANTIALIAS_ON);
            g.setRenderingHint(RenderingHints.KEY_TEXT_ANTIALIASING, RenderingHints.VALUE_TEXT_ANTIALIAS_ON);
            g.setColor(Color.WHITE);
            g.fillRect(0, 0, WIDTH, HEIGHT);
            int n = log.size();
            double xMin = n == 0 ? 0 : log.getFirst().step();
            double xMax = n == 0 ? 1 : Math.max(xMin + 1, log.getLast().step());
            double yMax = 0;
            for (Trainer.LogRow r : log) {
                if (Double.isFinite(r.loss())) {
                    yMax = Math.max(yMax, r.loss());
                }
            }
            if (yMax <= 0) {
                yMax = 1;
            }
            double yStep = niceStep(yMax / TARGET_TICKS);
            yMax = Math.ceil(yMax / yStep) * yStep;
            double xStep = niceStep((xMax - xMin) / TARGET_TICKS);
            int plotW = WIDTH - LEFT - RIGHT;
            int plotH = HEIGHT - TOP - BOTTOM;
            double x0 = xMin;
            double x1 = xMax;
            double y1 = yMax;
            java.util.function.DoubleUnaryOperator px = x -> LEFT + (x - x0) / (x1 - x0) * plotW;
            java.util.function.DoubleUnaryOperator py = y -> TOP + plotH - y / y1 * plotH;

            g.setFont(new Font(Font.SANS_SERIF, Font.PLAIN, 12));
            FontMetrics fm = g.getFontMetrics();
            g.setStroke(new BasicStroke(1f));
            for (double y = 0; y <= yMax + yStep / 2; y += yStep) {
                int yy = (int) Math.round(py.applyAsDouble(y));
                g.setColor(new Color(230, 230, 230));
                g.drawLine(LEFT, yy, LEFT + plotW, yy);
                g.setColor(Color.BLACK);
                g.drawLine(LEFT - 5, yy, LEFT, yy);
                String s = label(y, yStep);
                g.drawString(s, LEFT - 8 - fm.stringWidth(s), yy + fm.getAscent() / 2 - 1);
            }
            for (double x = Math.ceil(xMin / xStep) * xStep; x <= xMax + 1e-9; x += xStep) {
                int xx = (int) Math.round(px.applyAsDouble(x));
                g.setColor(new Color(230, 230, 230));
                g.drawLine(xx, TOP, xx, TOP + plotH);
                g.setColor(Color.BLACK);
                g.drawLine(xx, TOP + plotH, xx, TOP + plotH + 5);
                String s = label(x, xStep);
                g.drawString(s, xx - fm.stringWidth(s) / 2, TOP + plotH + 8 + fm.getAscent());
            }
            g.setColor(Color.BLACK);
            g.drawLine(LEFT, TOP, LEFT, TOP + plotH);
            g.drawLine(LEFT, TOP + plotH, LEFT + plotW, TOP + plotH);
            g.drawString("step", LEFT + plotW / 2 - fm.stringWidth("step") / 2, HEIGHT - 15);
            Graphics2D rot = (Graphics2D) g.create();
            rot.rotate(-Math.PI / 2);
            rot.drawString("training loss", -(TOP + plotH / 2) - fm.stringWidth("training loss") / 2, 20);
            rot.dispose();
            g.setFont(new Font(Font.SANS_SERIF, Font.BOLD, 15));
            g.drawString(title, LEFT, TOP - 18);

            if (n > 0) {
                g.setClip(LEFT, TOP, plotW + 1, plotH + 1);
                Path2D raw = new Path2D.Double();
                Path2D smooth = new Path2D.Double();
                int window = Math.max(1, (int) Math.round(n * SMOOTH_FRACTION));
                double sum = 0;
                for (int i = 0; i < n; i++) {
                    Trainer.LogRow r = log.get(i);
                    double x = px.applyAsDouble(r.step());
                    double y = py.applyAsDouble(r.loss());
                    sum += r.loss();
                    if (i >= window) {
                        sum -= log.get(i - window).loss();
                    }
                    double ys = py.applyAsDouble(sum / Math.min(i + 1, window));
                    if (i == 0) {
                        raw.moveTo(x, y);
                        smooth.moveTo(x, ys);
                    } else {
                        raw.lineTo(x, y);
                        smooth.lineTo(x, ys);
                    }
                }
                g.setStroke(new BasicStroke(1f));
                g.setColor(new Color(150, 180, 230));
                g.draw(raw);
                g.setStroke(new BasicStroke(2.2f));
                g.setColor(new Color(20, 60, 160));
                g.draw(smooth);
            }
        } finally {
            g.dispose();
        }
        return img;
    }

    /** Renders and writes the PNG atomically. */
    public static void write(Path png, List<Trainer.LogRow> log, String title) {
        AtomicFiles.writePng(png, render(log, title));
    }

    /** 1, 2 or 5 times a power of ten, at least raw. */
    static double niceStep(double raw) {
        if (!(raw > 0)) {
            return 1;
        }
        double p = Math.pow(10, Math.floor(Math.log10(raw)));
        double f = raw / p;
        return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
    }

    private static String label(double v, double step) {
        int decimals = Math.max(0, (int) Math.ceil(-Math.log10(step) - 1e-9));
        return String.format(Locale.ROOT, "%." + decimals + "f", v);
    }
}
