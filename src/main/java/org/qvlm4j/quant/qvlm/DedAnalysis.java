package org.qvlm4j.quant.qvlm;

import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.Consumer;
import org.qvlm4j.io.AtomicFiles;
import org.qvlm4j.kernels.WeightMatrix;
import org.qvlm4j.model.LlavaModel;
import org.qvlm4j.quant.QuantPlan;
import org.qvlm4j.quant.calib.CalibrationStats;

/**
 * The per-prompt analysis behind Q-VLM's Fig. 2 and Fig. 5: for decoder layers K and K+1 and each
 * calibration prompt alone, the discretization error difference DED = (error of layer-wise search)
 * − (error of joint search), against the two dependency proxies of that prompt (the conditional
 * entropy D(K, K+1) and the pair's relative quantization error, see {@link Dependency}), with the R²
 * of a least-squares line for each (the paper reports 0.97 for entropy and 0.81 for the error).
 *
 * <p>Setting (our reading; the paper gives none): both layers run with quantized weights and inputs
 * from the FP hidden state entering layer K (every other layer floating point); the error is the MSE
 * of layer K+1's output against floating point on that prompt; layer-wise search picks layer K's
 * percentile by layer K's output error, then layer K+1's; joint search picks both by layer K+1's
 * output error. DED ≥ 0 because the layer-wise pair is one of the joint candidates.
 *
 * <p>Outputs: {@value #TABLE_FILE} (one row per prompt), {@value #SUMMARY_FILE} (R², fits, setup)
 * and {@value #PLOT_FILE} (the two scatter plots).
 */
public final class DedAnalysis {
    public static final String TABLE_FILE = "ded.csv";
    public static final String SUMMARY_FILE = "summary.json";
    public static final String PLOT_FILE = "ded.png";

    /** One prompt's row. */
    public record Row(String id, int tokens, double entropy, double quantError, double errorLayerwise,
                      double errorJoint, double[] percentilesLayerwise, double[] percentilesJoint) {
        public double ded() {
            return errorLayerwise - errorJoint;
        }
    }

    /** Least-squares line y = intercept + slope·x and its R² (NaN slope when x is constant). */
    public record Fit(double slope, double intercept, double r2) {
    }

    /** All rows and both fits. */
    public record Result(int layer, List<Row> rows, Fit entropyFit, Fit errorFit) {
    }

    private DedAnalysis() {
    }

    /**
     * Runs the analysis for layers (layer, layer + 1) on the model holding its floating-point
     * weights; grid holds the candidate percentiles (distinct, descending).
     */
    public static Result run(LlavaModel model, QuantPlan plan, CalibrationStats stats,
                             List<CalibrationSamples.Sample> samples, Dependency dep, int layer, double[] grid,
                             Consumer<String> progress) {
        int L = model.config().textConfig().numHiddenLayers();
        if (layer < 0 || layer + 1 >= L) {
            throw new IllegalArgumentException("--layer " + layer + ": expected a decoder layer K with K+1 in the model, "
                    + "i.e. 0 .. " + (L - 2) + " (the model has " + L + " decoder layers)");
        }
        if (!dep.sampleIds().equals(samples.stream().map(CalibrationSamples.Sample::id).toList())) {
            throw new IllegalArgumentException("dependency was computed on other prompts than the " + samples.size()
                    + " calibration prompts given");
        }
        Map<String, WeightMatrix> qWeights = QvlmMethod.quantizeWeights(model, plan);
        Partition.Block first = new Partition.Block(layer, layer);
        Partition.Block second = new Partition.Block(layer + 1, layer + 1);
        Partition.Block both = new Partition.Block(layer, layer + 1);
        List<Row> rows = new ArrayList<>();
        for (int s = 0; s < samples.size(); s++) {
            CalibrationSamples.Sample sample = samples.get(s);
            BlockSearch search = new BlockSearch(model, plan, stats, grid, qWeights, List.of(sample),
                    QvlmMethod.BlockError.RESIDUAL);
            search.startAtLayer(layer);
            BlockSearch.State start = search.snapshot();
            BlockSearch.Outcome a = search.search(first, false, 1);
            BlockSearch.Outcome b = search.search(second, false, 1);
            search.restore(start);
            BlockSearch.Outcome joint = search.search(both, false, 1);
            double[] pLw = {search.p(a.choice()[0][0]), search.p(b.choice()[0][0])};
            double[] pJ = {search.p(joint.choice()[0][0]), search.p(joint.choice()[1][0])};
            rows.add(new Row(sample.id(), sample.tokens(), dep.samplePairs(Dependency.Proxy.ENTROPY, s)[layer],
                    dep.samplePairs(Dependency.Proxy.QUANT_ERROR, s)[layer], b.mse(), joint.mse(), pLw, pJ));
            progress.accept(String.format(Locale.ROOT, "analyze: %d/%d prompts", s + 1, samples.size()));
        }
        double[] ded = rows.stream().mapToDouble(Row::ded).toArray();
        Fit fe = fit(rows.stream().mapToDouble(Row::entropy).toArray(), ded);
        Fit fq = fit(rows.stream().mapToDouble(Row::quantError).toArray(), ded);
        return new Result(layer, List.copyOf(rows), fe, fq);
    }

    /** Ordinary least squares of y on x; R² is the squared Pearson correlation (NaN if either is constant). */
    public static Fit fit(double[] x, double[] y) {
        int n = x.length;
        if (n != y.length || n == 0) {
            throw new IllegalArgumentException("fit needs equally many x and y values, at least one; got " + n + " and "
                    + y.length);
        }
        double mx = 0;
        double my = 0;
        for (int i = 0; i < n; i++) {
            mx += x[i];
            my += y[i];
        }
        mx /= n;
        my /= n;
        double sxx = 0;
        double syy = 0;
        double sxy = 0;
        for (int i = 0; i < n; i++) {
            double dx = x[i] - mx;
            double dy = y[i] - my;
            sxx += dx * dx;
            syy += dy * dy;
            sxy += dx * dy;
        }
        double slope = sxx > 0 ? sxy / sxx : Double.NaN;
        double r2 = sxx > 0 && syy > 0 ? sxy * sxy / (sxx * syy) : Double.NaN;
        return new Fit(slope, Double.isNaN(slope) ? Double.NaN : my - slope * mx, r2);
    }

    /** Writes the table, summary and plot into a new directory out (created through a temporary sibling). */
    public static void write(Path out, Result r, ObjectNode setup) {
        if (Files.exists(out)) {
            throw new IllegalArgumentException("--out " + out + ": already exists; choose a new directory");
        }
        Path tmp = null;
        try {
            Path abs = out.toAbsolutePath().normalize();
            Files.createDirectories(abs.getParent());
            tmp = AtomicFiles.tempSiblingDirectory(abs);
            Files.writeString(tmp.resolve(TABLE_FILE), table(r));
            ObjectNode s = WorkDir.JSON.createObjectNode();
            s.put("layer", r.layer());
            s.put("pair", r.layer() + "," + (r.layer() + 1));
            s.put("samples", r.rows().size());
            putFit(s.putObject("entropy"), r.entropyFit());
            putFit(s.putObject("quant_error"), r.errorFit());
            s.set("setup", setup);
            Files.write(tmp.resolve(SUMMARY_FILE), WorkDir.JSON.writeValueAsBytes(s));
            double[] ded = r.rows().stream().mapToDouble(Row::ded).toArray();
            String pair = "layers " + r.layer() + "," + (r.layer() + 1);
            ScatterPlot.write(tmp.resolve(PLOT_FILE), List.of(
                    new ScatterPlot.Panel(r.rows().stream().mapToDouble(Row::entropy).toArray(), ded,
                            "entropy D(K,K+1) [nats]", "DED (MSE)", String.format(Locale.ROOT, "entropy vs DED, %s: R² = %.4f",
                            pair, r.entropyFit().r2()), r.entropyFit().slope(), r.entropyFit().intercept()),
                    new ScatterPlot.Panel(r.rows().stream().mapToDouble(Row::quantError).toArray(), ded,
                            "quantization error (relative MSE)", "DED (MSE)", String.format(Locale.ROOT,
                            "quant. error vs DED, %s: R² = %.4f", pair, r.errorFit().r2()), r.errorFit().slope(),
                            r.errorFit().intercept())));
            Files.move(tmp, abs);
            tmp = null;
        } catch (IOException e) {
            throw new UncheckedIOException(out + ": cannot write the analysis: " + e.getMessage(), e);
        } finally {
            if (tmp != null) {
                deleteQuietly(tmp);
            }
        }
    }

    /** The CSV table: one header line, one row per prompt, numbers in their shortest exact form. */
    static String table(Result r) {
        StringBuilder sb = new StringBuilder(
                "sample,tokens,entropy,quant_error,error_layerwise,error_joint,ded,p_layerwise_k,p_layerwise_k1,p_joint_k,p_joint_k1\n");
        for (Row row : r.rows()) {
            sb.append(row.id()).append(',').append(row.tokens());
            for (double v : new double[] {row.entropy(), row.quantError(), row.errorLayerwise(), row.errorJoint(), row.ded(),
                    row.percentilesLayerwise()[0], row.percentilesLayerwise()[1], row.percentilesJoint()[0],
                    row.percentilesJoint()[1]}) {
                sb.append(',').append(v);
            }
            sb.append('\n');
        }
        return sb.toString();
    }

    private static void putFit(ObjectNode n, Fit f) {
        n.put("r2", f.r2());
        n.put("slope", f.slope());
        n.put("intercept", f.intercept());
    }

    private static void deleteQuietly(Path dir) {
        try (var s = Files.list(dir)) {
            for (Path p : s.toList()) {
                Files.deleteIfExists(p);
            }
            Files.deleteIfExists(dir);
        } catch (IOException ignored) {
            // a hidden temporary directory; the original failure is what matters
        }
    }
}
