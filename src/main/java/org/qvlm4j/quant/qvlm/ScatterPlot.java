package org.qvlm4j.quant.qvlm;

import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.Font;
import java.awt.FontMetrics;
import java.awt.Graphics2D;
import java.awt.RenderingHints;
import java.awt.geom.Ellipse2D;
import java.awt.geom.Line2D;
import java.awt.image.BufferedImage;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.function.DoubleUnaryOperator;
import org.qvlm4j.io.AtomicFiles;

/**
 * Scatter plots with a least-squares line, side by side in one PNG, drawn with java.awt (headless)
 * in the manner of the training-loss plot: the layout of Q-VLM's Fig. 2 / Fig. 5 (a proxy on x,
 * the discretization error difference on y, R² in the panel title). Axes span the data with a 5%
 * margin and carry about six ticks at 1, 2 or 5 times a power of ten. Left out: legends, log axes.
 */
final class ScatterPlot {
    static final int PANEL_WIDTH = 560;
    static final int HEIGHT = 480;
    private static final int LEFT = 90;
    private static final int RIGHT = 25;
    private static final int TOP = 50;
    private static final int BOTTOM = 60;
    private static final int TICKS = 6;
    private static final double MARGIN = 0.05;
    private static final double DOT = 6;

    /** One panel: points (x[i], y[i]), axis labels, title; the fit line is drawn when slope is finite. */
    record Panel(double[] x, double[] y, String xLabel, String yLabel, String title, double slope, double intercept) {
    }

    private ScatterPlot() {
    }

    static BufferedImage render(List<Panel> panels) {
        System.setProperty("java.awt.headless", "true");
        BufferedImage img = new BufferedImage(PANEL_WIDTH * panels.size(), HEIGHT, BufferedImage.TYPE_INT_RGB);
        Graphics2D g = img.createGraphics();
        try {
            g.setRenderingHint(RenderingHints.KEY_ANTIALIASING, RenderingHints.VALUE_ANTIALIAS_ON);
            g.setRenderingHint(RenderingHints.KEY_TEXT_ANTIALIASING, RenderingHints.VALUE_TEXT_ANTIALIAS_ON);
            g.setColor(Color.WHITE);
            g.fillRect(0, 0, img.getWidth(), HEIGHT);
            for (int i = 0; i < panels.size(); i++) {
                Graphics2D p = (Graphics2D) g.create(i * PANEL_WIDTH, 0, PANEL_WIDTH, HEIGHT);
                try {
                    drawPanel(p, panels.get(i));
                } finally {
                    p.dispose();
                }
            }
        } finally {
            g.dispose();
        }
        return img;
    }

    private static void drawPanel(Graphics2D g, Panel panel) {
        double[] xr = span(panel.x());
        double[] yr = span(panel.y());
        int w = PANEL_WIDTH - LEFT - RIGHT;
        int h = HEIGHT - TOP - BOTTOM;
        DoubleUnaryOperator px = v -> LEFT + (v - xr[0]) / (xr[1] - xr[0]) * w;
        DoubleUnaryOperator py = v -> TOP + h - (v - yr[0]) / (yr[1] - yr[0]) * h;
        g.setFont(new Font(Font.SANS_SERIF, Font.PLAIN, 12));
        FontMetrics fm = g.getFontMetrics();
        double ys = tickStep((yr[1] - yr[0]) / TICKS);
        for (double v = Math.ceil(yr[0] / ys) * ys; v <= yr[1]; v += ys) {
            int yy = (int) Math.round(py.applyAsDouble(v));
            g.setColor(new Color(230, 230, 230));
            g.drawLine(LEFT, yy, LEFT + w, yy);
            g.setColor(Color.BLACK);
            String s = tickLabel(v);
            g.drawString(s, LEFT - 8 - fm.stringWidth(s), yy + fm.getAscent() / 2 - 1);
        }
        double xs = tickStep((xr[1] - xr[0]) / TICKS);
        for (double v = Math.ceil(xr[0] / xs) * xs; v <= xr[1]; v += xs) {
            int xx = (int) Math.round(px.applyAsDouble(v));
            g.setColor(new Color(230, 230, 230));
            g.drawLine(xx, TOP, xx, TOP + h);
            g.setColor(Color.BLACK);
            String s = tickLabel(v);
            g.drawString(s, xx - fm.stringWidth(s) / 2, TOP + h + 8 + fm.getAscent());
        }
        g.setColor(Color.BLACK);
        g.drawRect(LEFT, TOP, w, h);
        g.drawString(panel.xLabel(), LEFT + w / 2 - fm.stringWidth(panel.xLabel()) / 2, HEIGHT - 15);
        Graphics2D rot = (Graphics2D) g.create();
        rot.rotate(-Math.PI / 2);
        rot.drawString(panel.yLabel(), -(TOP + h / 2) - fm.stringWidth(panel.yLabel()) / 2, 18);
        rot.dispose();
        g.setFont(new Font(Font.SANS_SERIF, Font.BOLD, 14));
        g.drawString(panel.title(), LEFT, TOP - 16);

        g.setClip(LEFT, TOP, w + 1, h + 1);
        g.setColor(new Color(30, 90, 180));
        for (int i = 0; i < panel.x().length; i++) {
            double cx = px.applyAsDouble(panel.x()[i]);
            double cy = py.applyAsDouble(panel.y()[i]);
            g.fill(new Ellipse2D.Double(cx - DOT / 2, cy - DOT / 2, DOT, DOT));
        }
        if (Double.isFinite(panel.slope()) && Double.isFinite(panel.intercept())) {
            g.setColor(new Color(200, 40, 40));
            g.setStroke(new BasicStroke(2f));
            g.draw(new Line2D.Double(px.applyAsDouble(xr[0]), py.applyAsDouble(panel.intercept() + panel.slope() * xr[0]),
                    px.applyAsDouble(xr[1]), py.applyAsDouble(panel.intercept() + panel.slope() * xr[1])));
        }
    }

    /** [min, max] of the finite values widened by the margin; a unit span around a single value. */
    static double[] span(double[] v) {
        double lo = Double.POSITIVE_INFINITY;
        double hi = Double.NEGATIVE_INFINITY;
        for (double d : v) {
            if (Double.isFinite(d)) {
                lo = Math.min(lo, d);
                hi = Math.max(hi, d);
            }
        }
        if (lo > hi) {
            return new double[] {0, 1};
        }
        double pad = hi > lo ? (hi - lo) * MARGIN : Math.max(Math.abs(lo), 1) * MARGIN;
        return new double[] {lo - pad, hi + pad};
    }

    /** The smallest of 1, 2 or 5 times a power of ten that is at least raw. */
    static double tickStep(double raw) {
        double mag = Math.pow(10, Math.floor(Math.log10(raw)));
        for (double m : new double[] {1, 2, 5}) {
            if (m * mag >= raw) {
                return m * mag;
            }
        }
        return 10 * mag;
    }

    private static String tickLabel(double v) {
        return String.format(Locale.ROOT, "%.3g", Math.abs(v) < 1e-300 ? 0.0 : v);
    }

    /** Renders and writes the PNG through a temporary sibling and a rename. */
    static void write(Path png, List<Panel> panels) {
        AtomicFiles.writePng(png, render(panels));
    }
}
