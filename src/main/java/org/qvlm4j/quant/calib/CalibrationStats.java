package org.qvlm4j.quant.calib;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.qvlm4j.io.AtomicFiles;
import org.qvlm4j.io.safetensors.SafeTensors;
import org.qvlm4j.io.safetensors.SafeTensorsWriter;
import org.qvlm4j.io.safetensors.TensorEntry;
import org.qvlm4j.kernels.DType;
import org.qvlm4j.model.Linear;
import org.qvlm4j.model.LlavaModel;

/**
 * A calibration statistics directory: {@value #TENSORS_FILE} with one tensor per statistic named
 * {@code <site>.<stat>} plus the top-level {@value #PERCENTILES} grid, and {@value #MANIFEST_FILE}
 * saying what produced it (format and tool version, the model's {@link ModelFingerprint}, data
 * directory and file hashes, split, seed, sample pids, options) and, per site, its channel count,
 * token count and stat names. Both files are written into a temporary sibling directory which is
 * then renamed into place, so a reader never sees a half-written directory.
 *
 * <p>Stats per site (K channels): {@code count} I64 [tokens, passes]; {@code min}, {@code max},
 * {@code token_absmax_min}, {@code token_absmax_max}, {@code hist_range} F32 scalars;
 * {@code channel_min}, {@code channel_max}, {@code channel_absmax}, {@code channel_mean_abs} F32 (K);
 * {@code hist} I64 (B) over [-hist_range, hist_range]; {@code pct_hi}, {@code pct_lo} F32 (G): the
 * histogram's estimates of percentile p and 1 - p for each p of the grid; with channel tails
 * {@code channel_pct_hi}, {@code channel_pct_lo} F32 (G, K), exact; with the Hessian {@code hessian}
 * F32 (K, K) = sum of x^T x over tokens (divide by the token count for a mean); with positions
 * {@code position_min}, {@code position_max} F32 (rows).
 *
 * <p>{@link #load} validates the layout; {@link #checkModel} refuses statistics of another model.
 * Results derived from the statistics may be cached beside the two files under the
 * {@value #DERIVED_PREFIX} prefix; replacing the directory removes them with it.
 */
public final class CalibrationStats implements AutoCloseable {
    public static final String TENSORS_FILE = "stats.safetensors";
    public static final String MANIFEST_FILE = "manifest.json";
    public static final String FORMAT = "qvlm4j-calibration-stats";
    public static final int FORMAT_VERSION = 1;
    /** Name of the percentile grid tensor (F64 (G)). */
    public static final String PERCENTILES = "percentiles";
    static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);
    /**
     * Name prefix of results derived from these statistics and cached in the same directory (such
     * as Q-VLM's cross-layer dependency); they count as part of the directory when it is replaced.
     */
    public static final String DERIVED_PREFIX = "dependency";

    private final Path dir;
    private final JsonNode manifest;
    private final SafeTensors tensors;

    private CalibrationStats(Path dir, JsonNode manifest, SafeTensors tensors) {
        this.dir = dir;
        this.manifest = manifest;
        this.tensors = tensors;
    }

    /**
     * Writes the statistics and the manifest (to which the per-site summary is added) to out.
     * An existing out is refused unless overwrite, and even then only when it is a statistics
     * directory (holding nothing but this format's two files and cached derived results).
     */
    public static void write(Path out, ObjectNode manifest, Map<String, SiteStats> stats, double[] grid,
                             boolean overwrite) {
        checkTarget(out, overwrite);
        SafeTensorsWriter w = new SafeTensorsWriter();
        w.metadata("format", FORMAT);
        ByteBuffer gb = ByteBuffer.allocate(8 * grid.length).order(ByteOrder.LITTLE_ENDIAN);
        for (double p : grid) {
            gb.putDouble(p);
        }
        w.addBytes(PERCENTILES, DType.F64, new long[] {grid.length}, gb.array());
        ObjectNode sites = manifest.putObject("sites");
        for (Map.Entry<String, SiteStats> e : stats.entrySet()) {
            List<String> names = addSite(w, e.getKey(), e.getValue(), grid);
            ObjectNode s = sites.putObject(e.getKey());
            s.put("cols", e.getValue().cols());
            s.put("tokens", e.getValue().tokens());
            s.put("passes", e.getValue().observations());
            ArrayNode arr = s.putArray("stats");
            names.forEach(arr::add);
        }
        Path tmp = null;
        try {
            Path abs = out.toAbsolutePath().normalize();
            Files.createDirectories(abs.getParent());
            tmp = AtomicFiles.tempSiblingDirectory(abs);
            w.write(tmp.resolve(TENSORS_FILE));
            Files.write(tmp.resolve(MANIFEST_FILE), JSON.writeValueAsBytes(manifest));
            if (Files.exists(abs)) {
                Path old = AtomicFiles.tempSiblingDirectory(abs);
                Files.delete(old);
                Files.move(abs, old);
                Files.move(tmp, abs);
                tmp = null;
                deleteStatsDirectory(old);
            } else {
                Files.move(tmp, abs);
                tmp = null;
            }
        } catch (IOException e) {
            throw new UncheckedIOException(out + ": cannot write calibration statistics: " + e.getMessage(), e);
        } finally {
            if (tmp != null) {
                try {
                    deleteStatsDirectory(tmp);
                } catch (IOException ignored) {
                    // the original failure is what the caller needs to see
                }
            }
        }
    }

    /** Refuses an existing out unless overwrite and it is a statistics directory. */
    public static void checkTarget(Path out, boolean overwrite) {
        if (!Files.exists(out)) {
            return;
        }
        if (!overwrite) {
            throw new IllegalArgumentException(out + ": already exists; choose another output or pass --overwrite");
        }
        if (!Files.isDirectory(out) || !isStatsDirectory(out)) {
            throw new IllegalArgumentException(out + ": exists and is not a calibration statistics directory (expected only "
                    + TENSORS_FILE + ", " + MANIFEST_FILE + " and " + DERIVED_PREFIX + "*.json); refusing to replace it");
        }
    }

    private static boolean isStatsDirectory(Path dir) {
        try (Stream<Path> s = Files.list(dir)) {
            return s.allMatch(p -> isStatsFile(p.getFileName().toString()));
        } catch (IOException e) {
            return false;
        }
    }

    /** The two files of the format, and derived results cached beside them ({@value #DERIVED_PREFIX}*.json). */
    private static boolean isStatsFile(String name) {
        return name.equals(TENSORS_FILE) || name.equals(MANIFEST_FILE)
                || (name.startsWith(DERIVED_PREFIX) && name.endsWith(".json"))
                || (name.startsWith("." + DERIVED_PREFIX) && name.endsWith(".tmp"));
    }

    private static void deleteStatsDirectory(Path dir) throws IOException {
        try (Stream<Path> s = Files.list(dir)) {
            for (Path p : s.toList()) {
                if (isStatsFile(p.getFileName().toString())) {
                    Files.deleteIfExists(p);
                }
            }
        }
        Files.deleteIfExists(dir);
    }

    private static List<String> addSite(SafeTensorsWriter w, String site, SiteStats s, double[] grid) {
        List<String> names = new ArrayList<>();
        int K = s.cols();
        long[] scalar = {};
        long[] k = {K};
        add(w, names, site, "count", DType.I64, new long[] {2}, new long[] {s.tokens(), s.observations()});
        add(w, names, site, "min", scalar, new float[] {s.min()});
        add(w, names, site, "max", scalar, new float[] {s.max()});
        add(w, names, site, "token_absmax_min", scalar, new float[] {s.tokenAbsMaxMin()});
        add(w, names, site, "token_absmax_max", scalar, new float[] {s.tokenAbsMaxMax()});
        add(w, names, site, "channel_min", k, s.channelMin());
        add(w, names, site, "channel_max", k, s.channelMax());
        add(w, names, site, "channel_absmax", k, s.channelAbsMax());
        add(w, names, site, "channel_mean_abs", k, toFloats(s.channelMeanAbs()));
        RangeHistogram h = s.histogram();
        add(w, names, site, "hist", DType.I64, new long[] {h.bins()}, h.counts());
        add(w, names, site, "hist_range", scalar, new float[] {(float) h.range()});
        float[] hi = new float[grid.length];
        float[] lo = new float[grid.length];
        for (int g = 0; g < grid.length; g++) {
            hi[g] = (float) h.quantile(grid[g]);
            lo[g] = (float) h.quantile(1 - grid[g]);
        }
        add(w, names, site, "pct_hi", new long[] {grid.length}, hi);
        add(w, names, site, "pct_lo", new long[] {grid.length}, lo);
        ChannelTails tails = s.tails();
        if (tails != null) {
            float[] chi = new float[grid.length * K]; // (G, K)
            float[] clo = new float[grid.length * K]; // (G, K)
            double[] lower = new double[grid.length];
            for (int g = 0; g < grid.length; g++) {
                lower[g] = 1 - grid[g];
            }
            for (int c = 0; c < K; c++) {
                double[] qh = tails.quantiles(c, grid);
                double[] ql = tails.quantiles(c, lower);
                for (int g = 0; g < grid.length; g++) {
                    chi[g * K + c] = (float) qh[g];
                    clo[g * K + c] = (float) ql[g];
                }
            }
            add(w, names, site, "channel_pct_hi", new long[] {grid.length, K}, chi);
            add(w, names, site, "channel_pct_lo", new long[] {grid.length, K}, clo);
        }
        double[] H = s.hessian();
        if (H != null) {
            add(w, names, site, "hessian", new long[] {K, K}, toFloats(H));
        }
        float[] pmin = s.positionMin();
        if (pmin != null) {
            add(w, names, site, "position_min", new long[] {pmin.length}, pmin);
            add(w, names, site, "position_max", new long[] {pmin.length}, s.positionMax());
        }
        return names;
    }

    private static void add(SafeTensorsWriter w, List<String> names, String site, String stat, long[] shape, float[] v) {
        w.addFloats(site + "." + stat, DType.F32, shape, v);
        names.add(stat);
    }

    private static void add(SafeTensorsWriter w, List<String> names, String site, String stat, DType t, long[] shape,
                            long[] v) {
        w.addLongs(site + "." + stat, t, shape, v);
        names.add(stat);
    }

    static float[] toFloats(double[] d) {
        float[] f = new float[d.length];
        for (int i = 0; i < d.length; i++) {
            f[i] = (float) d[i];
        }
        return f;
    }

    /** Opens a statistics directory and checks that manifest and tensors agree. */
    public static CalibrationStats load(Path dir) {
        Path mf = dir.resolve(MANIFEST_FILE);
        Path tf = dir.resolve(TENSORS_FILE);
        if (!Files.isRegularFile(mf) || !Files.isRegularFile(tf)) {
            throw new IllegalArgumentException(dir + ": not a calibration statistics directory (expected " + MANIFEST_FILE
                    + " and " + TENSORS_FILE + ")");
        }
        JsonNode m;
        try {
            m = JSON.readTree(Files.readAllBytes(mf));
        } catch (JsonProcessingException e) {
            throw new IllegalArgumentException(mf + ": not valid JSON: " + e.getOriginalMessage(), e);
        } catch (IOException e) {
            throw new UncheckedIOException(mf + ": " + e.getMessage(), e);
        }
        if (!FORMAT.equals(m.path("format").asText()) || m.path("version").asInt() != FORMAT_VERSION) {
            throw new IllegalArgumentException(mf + ": key format/version: expected " + FORMAT + " " + FORMAT_VERSION
                    + ", got " + m.path("format").asText("(none)") + " " + m.path("version").asText("(none)"));
        }
        if (!m.path("sites").isObject() || !m.path("model").path("digest").isTextual()) {
            throw new IllegalArgumentException(mf + ": keys sites and model.digest are required");
        }
        SafeTensors st = SafeTensors.open(tf);
        try {
            CalibrationStats s = new CalibrationStats(dir, m, st);
            s.checkLayout();
            return s;
        } catch (RuntimeException e) {
            st.close();
            throw e;
        }
    }

    private void checkLayout() {
        Path tf = dir.resolve(TENSORS_FILE);
        if (!tensors.tensors().containsKey(PERCENTILES)) {
            throw new IllegalArgumentException(tf + ": no tensor '" + PERCENTILES + "'");
        }
        for (var e : manifest.get("sites").properties()) {
            String site = e.getKey();
            int K = e.getValue().path("cols").asInt(-1);
            for (JsonNode stat : e.getValue().path("stats")) {
                String name = site + "." + stat.asText();
                TensorEntry t = tensors.tensors().get(name);
                if (t == null) {
                    throw new IllegalArgumentException(tf + ": manifest lists tensor '" + name + "' but the file lacks it");
                }
                if (stat.asText().startsWith("channel_") && t.shape()[t.shape().length - 1] != K) {
                    throw new IllegalArgumentException(tf + ": tensor '" + name + "' has shape "
                            + Arrays.toString(t.shape()) + ", expected last dimension " + K + " (site cols)");
                }
            }
        }
    }

    public Path directory() {
        return dir;
    }

    /** The manifest as read. */
    public JsonNode manifest() {
        return manifest;
    }

    /** Observed sites in forward order. */
    public List<String> sites() {
        List<String> out = new ArrayList<>();
        manifest.get("sites").properties().forEach(e -> out.add(e.getKey()));
        return out;
    }

    /** Channel count of a site. */
    public int cols(String site) {
        return siteNode(site).get("cols").asInt();
    }

    public boolean has(String site, String stat) {
        return tensors.tensors().containsKey(site + "." + stat);
    }

    /** A statistic as floats (any float dtype), e.g. {@code floats("llm.layers.0.mlp.down_proj.in", "channel_absmax")}. */
    public float[] floats(String site, String stat) {
        return entry(site, stat).toFloatArray();
    }

    /** An integer statistic ({@code count}, {@code hist}). */
    public long[] longs(String site, String stat) {
        return entry(site, stat).toLongArray();
    }

    /** The shape of a statistic. */
    public long[] shape(String site, String stat) {
        return entry(site, stat).shape().clone();
    }

    /** The percentile grid p of pct_hi / channel_pct_hi (1 - p for the _lo tensors). */
    public double[] percentiles() {
        TensorEntry t = tensors.tensors().get(PERCENTILES);
        double[] out = new double[(int) t.numel()];
        for (int i = 0; i < out.length; i++) {
            out[i] = t.getDouble(i);
        }
        return out;
    }

    /**
     * The site's value histogram as calibrated ({@code hist}, {@code hist_range}, {@code min},
     * {@code max}), for per-tensor percentiles off the stored grid.
     */
    public RangeHistogram histogram(String site) {
        return RangeHistogram.restore(longs(site, "hist"), floats(site, "hist_range")[0], floats(site, "min")[0],
                floats(site, "max")[0]);
    }

    private TensorEntry entry(String site, String stat) {
        siteNode(site);
        TensorEntry t = tensors.tensors().get(site + "." + stat);
        if (t == null) {
            throw new IllegalArgumentException(dir.resolve(TENSORS_FILE) + ": site " + site + " has no statistic '" + stat
                    + "'; it has " + tensorsOf(site));
        }
        return t;
    }

    private JsonNode siteNode(String site) {
        JsonNode n = manifest.get("sites").get(site);
        if (n == null) {
            throw new IllegalArgumentException(dir.resolve(MANIFEST_FILE) + ": no site '" + site + "'; the statistics hold "
                    + sites().size() + " sites");
        }
        return n;
    }

    private List<String> tensorsOf(String site) {
        List<String> out = new ArrayList<>();
        siteNode(site).get("stats").forEach(n -> out.add(n.asText()));
        return out;
    }

    /**
     * Refuses statistics computed on another model: the fingerprint of modelDir must equal the
     * manifest's, and every site must exist in the model with the same channel count.
     */
    public void checkModel(Path modelDir, LlavaModel model) {
        ModelFingerprint fp = ModelFingerprint.of(modelDir);
        String expected = manifest.get("model").get("digest").asText();
        if (!expected.equals(fp.digest())) {
            String recorded = manifest.get("model").path("dir").asText("?");
            throw new IllegalArgumentException(dir.resolve(MANIFEST_FILE) + ": key model.digest: statistics were computed for "
                    + "model " + recorded + " (fingerprint " + expected + ", config.json sha256 "
                    + manifest.get("model").path("config_sha256").asText("?") + ") but " + modelDir
                    + " has fingerprint " + fp.digest() + " (config.json sha256 " + fp.configSha256() + ")");
        }
        Map<String, Integer> cols = siteColumns(model);
        for (String site : sites()) {
            Integer want = cols.get(site);
            if (want == null) {
                throw new IllegalArgumentException(dir.resolve(MANIFEST_FILE) + ": site " + site + " does not exist in "
                        + modelDir);
            }
            if (want != cols(site)) {
                throw new IllegalArgumentException(dir.resolve(MANIFEST_FILE) + ": site " + site + " has " + cols(site)
                        + " channels in the statistics, expected " + want + " for " + modelDir);
            }
        }
    }

    /** Every observable input and residual-stream site of the model with its channel count. */
    public static Map<String, Integer> siteColumns(LlavaModel model) {
        Map<String, Integer> out = new LinkedHashMap<>();
        for (Linear l : model.linears()) {
            out.put(l.name() + ".in", l.inFeatures());
        }
        int dv = model.config().visionConfig().hiddenSize();
        for (int i = 0; i < model.config().visionConfig().numHiddenLayers(); i++) {
            out.put("vision.layers." + i + ".in", dv);
            out.put("vision.layers." + i + ".out", dv);
        }
        int d = model.config().textConfig().hiddenSize();
        for (int i = 0; i < model.config().textConfig().numHiddenLayers(); i++) {
            out.put("llm.layers." + i + ".in", d);
            out.put("llm.layers." + i + ".out", d);
        }
        return out;
    }

    @Override
    public void close() {
        tensors.close();
    }
}
