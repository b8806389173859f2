package org.qvlm4j.experiments;

import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.Font;
import java.awt.FontMetrics;
import java.awt.Graphics2D;
import java.awt.RenderingHints;
import java.awt.geom.Ellipse2D;
import java.awt.geom.Path2D;
import java.awt.image.BufferedImage;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import org.qvlm4j.io.AtomicFiles;

/**
 * Parameter sweeps as line charts in one PNG, two panels per row, drawn with java.awt (headless) in
 * the manner of the training-loss plot: white background, light grid, black axes, a bold title. The
 * x axis is categorical (one evenly spaced position per swept value, labelled with it), so depths,
 * percentiles and log-spaced weights read alike; a missing value leaves a gap. Accuracy panels span
 * 0–100 % and may carry a dashed reference line (the FP model); others span 0 to 110 % of their
 * largest value. Leaves out: legends, several series per panel, log axes.
 */
final class SweepPlot {
    static final int PANEL_WIDTH = 520;
    static final int PANEL_HEIGHT = 400;
    static final int COLUMNS = 2;
    private static final int TITLE_HEIGHT = 40;
    private static final int LEFT = 80;
    private static final int RIGHT = 25;
    private static final int TOP = 45;
    private static final int BOTTOM = 55;
    private static final int Y_TICKS = 5;
    private static final double PERCENT_MAX = 100;
    private static final double HEADROOM = 1.1;
    private static final double DOT = 7;

    /**
     * One panel.
     *
     * @param labels    the swept values, in order
     * @param y         a value per label, NaN where missing
     * @param reference a horizontal dashed line (NaN for none)
     * @param percent   y is a percentage (axis 0–100)
     */
    record Panel(String title, String xLabel, String yLabel, List<String> labels, double[] y, double reference,
                 boolean percent) {
        Panel {
            if (labels.size() != y.length) {
                throw new IllegalArgumentException("sweep panel '" + title + "': " + labels.size() + " labels but "
                        + y.length + " values");
            }
            labels = List.copyOf(labels);
            y = y.clone();
        }
    }

    private SweepPlot() {
    }

    static BufferedImage render(List<Panel> panels, String title) {
        System.setProperty("java.awt.headless", "true");
        int rows = (panels.size() + COLUMNS - 1) / COLUMNS;
        BufferedImage img = new BufferedImage(PANEL_WIDTH * COLUMNS, TITLE_HEIGHT + PANEL_HEIGHT * rows,
                BufferedImage.TYPE_INT_RGB);
        Graphics2D g = img.createGraphics();
        try {
            g.setRenderingHint(RenderingHints.KEY_ANTIALIASING, RenderingHints.VALUE_ANTIALIAS_ON);
            g.setRenderingHint(RenderingHints.KEY_TEXT_ANTIALIASING, RenderingHints.VALUE_TEXT_ANTIALIAS_ON);
            g.setColor(Color.WHITE);
            g.fillRect(0, 0, img.getWidth(), img.getHeight());
            g.setColor(Color.BLACK);
            g.setFont(new Font(Font.SANS_SERIF, Font.BOLD, 16));
            g.drawString(title, 20, 27);
            for (int i = 0; i < panels.size(); i++) {
                Graphics2D p = (Graphics2D) g.create(i % COLUMNS * PANEL_WIDTH, TITLE_HEIGHT + i / COLUMNS * PANEL_HEIGHT,
                        PANEL_WIDTH, PANEL_HEIGHT);
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
        int w = PANEL_WIDTH - LEFT - RIGHT;
        int h = PANEL_HEIGHT - TOP - BOTTOM;
        double yMax = PERCENT_MAX;
        if (!panel.percent()) {
            yMax = 0;
            for (double v : panel.y()) {
                if (Double.isFinite(v)) {
                    yMax = Math.max(yMax, v);
                }
            }
            yMax = yMax > 0 ? yMax * HEADROOM : 1;
        }
        int n = panel.labels().size();
        double top = yMax;
        java.util.function.IntToDoubleFunction px = i -> LEFT + (i + 0.5) / n * w;
        java.util.function.DoubleUnaryOperator py = v -> TOP + h - v / top * h;

        g.setFont(new Font(Font.SANS_SERIF, Font.PLAIN, 12));
        FontMetrics fm = g.getFontMetrics();
        for (int t = 0; t <= Y_TICKS; t++) {
            double v = yMax * t / Y_TICKS;
            int yy = (int) Math.round(py.applyAsDouble(v));
            g.setColor(new Color(230, 230, 230));
            g.drawLine(LEFT, yy, LEFT + w, yy);
            g.setColor(Color.BLACK);
            g.drawLine(LEFT - 5, yy, LEFT, yy);
            String s = panel.percent() ? String.format(Locale.ROOT, "%.0f", v) : String.format(Locale.ROOT, "%.3g", v);
            g.drawString(s, LEFT - 8 - fm.stringWidth(s), yy + fm.getAscent() / 2 - 1);
        }
        for (int i = 0; i < n; i++) {
            int xx = (int) Math.round(px.applyAsDouble(i));
            g.setColor(Color.BLACK);
            g.drawLine(xx, TOP + h, xx, TOP + h + 5);
            String s = panel.labels().get(i);
            g.drawString(s, xx - fm.stringWidth(s) / 2, TOP + h + 8 + fm.getAscent());
        }
        g.setColor(Color.BLACK);
        g.drawLine(LEFT, TOP, LEFT, TOP + h);
        g.drawLine(LEFT, TOP + h, LEFT + w, TOP + h);
        g.drawString(panel.xLabel(), LEFT + w / 2 - fm.stringWidth(panel.xLabel()) / 2, PANEL_HEIGHT - 12);
        Graphics2D rot = (Graphics2D) g.create();
        rot.rotate(-Math.PI / 2);
        rot.drawString(panel.yLabel(), -(TOP + h / 2) - fm.stringWidth(panel.yLabel()) / 2, 22);
        rot.dispose();
        g.setFont(new Font(Font.SANS_SERIF, Font.BOLD, 14));
        g.drawString(panel.title(), LEFT, TOP - 15);

        if (Double.isFinite(panel.reference())) {
            int yy = (int) Math.round(py.applyAsDouble(panel.reference()));
            g.setColor(new Color(120, 120, 120));
            g.setStroke(new BasicStroke(1.2f, BasicStroke.CAP_BUTT, BasicStroke.JOIN_MITER, 10f, new float[] {6f, 5f},
                    0f));
            g.drawLine(LEFT, yy, LEFT + w, yy);
            g.setFont(new Font(Font.SANS_SERIF, Font.PLAIN, 11));
            g.drawString("FP", LEFT + w - 20, yy - 4);
        }
        boolean any = false;
        Path2D line = new Path2D.Double();
        boolean open = false;
        g.setColor(new Color(20, 60, 160));
        g.setStroke(new BasicStroke(2.2f));
        for (int i = 0; i < n; i++) {
            double v = panel.y()[i];
            if (!Double.isFinite(v)) {
                open = false;
                continue;
            }
            any = true;
            double x = px.applyAsDouble(i);
            double y = py.applyAsDouble(v);
            if (open) {
                line.lineTo(x, y);
            } else {
                line.moveTo(x, y);
                open = true;
            }
            g.fill(new Ellipse2D.Double(x - DOT / 2, y - DOT / 2, DOT, DOT));
        }
        g.draw(line);
        if (!any) {
            g.setColor(new Color(150, 150, 150));
            g.setFont(new Font(Font.SANS_SERIF, Font.ITALIC, 13));
            String s = "no results";
            g.drawString(s, LEFT + w / 2 - g.getFontMetrics().stringWidth(s) / 2, TOP + h / 2);
        }
    }

    /** Renders and writes the PNG atomically. */
    static void write(Path png, List<Panel> panels, String title) {
        AtomicFiles.writePng(png, render(panels, title));
    }
}
