package org.qvlm4j.quant.qvlm;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * Cross-layer dependency of a model's decoder layers on its calibration prompts, as measured by
 * {@link DependencyAnalysis}: for every consecutive pair of decoder-layer outputs the conditional
 * entropy D(k, k+1) = H(X^(k+1) | X^(k)) of their quantization levels (Q-VLM Eq. 4–5), and for every
 * layer the relative error of quantizing its output on the same grid (the proxy of App. A /
 * Table 5), each over all prompts together and per prompt. Layers are decoder layers and X^(k) is
 * layer k's output hidden state (T, D) (qvlm-method.md §6.4); a pair's quantization-error proxy is
 * the mean of its two layers' errors.
 *
 * <p>{@link #span} is Eq. 6 as §6.6 reads it: the sum of the pair values inside [k_r, k_s].
 * Stored as JSON; doubles round-trip exactly.
 *
 * @param settings          how the entropy was estimated
 * @param source            identity of the statistics and prompts it was computed from (model
 *                          digest, calibration seed, sample ids)
 * @param lo                per layer, the grid's first level (the output's calibration minimum)
 * @param hi                per layer, the grid's last level (the output's calibration maximum)
 * @param entropy           (L − 1) D(k, k+1) in nats over all prompts
 * @param quantError        (L) ||Q(X^(k)) − X^(k)||² / ||X^(k)||² over all prompts
 * @param sampleIds         the prompts, in order
 * @param sampleTokens      their token counts
 * @param sampleEntropy     (n, L − 1) D(k, k+1) of each prompt alone
 * @param sampleQuantError  (n, L) each prompt's relative quantization error
 */
public record Dependency(Settings settings, JsonNode source, double[] lo, double[] hi, double[] entropy,
                         double[] quantError, List<String> sampleIds, long[] sampleTokens, double[][] sampleEntropy,
                         double[][] sampleQuantError) {

    public static final String FORMAT = "qvlm4j-qvlm-dependency";
    public static final int FORMAT_VERSION = 1;
    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    /** Which dependency proxy drives the block partition (the paper's Table 5 compares the two). */
    public enum Proxy { ENTROPY, QUANT_ERROR }

    /**
     * How the entropy is estimated.
     *
     * @param bits        activation bits b_A: the grid has M = 2^b_A levels
     * @param temperature how Eq. 5's temperature is set
     * @param tau         temperature in grid units for {@link SoftAssignment.Temperature#GRID}
     * @param tail        truncation bound of the soft assignment
     */
    public record Settings(int bits, SoftAssignment.Temperature temperature, double tau, double tail) {
        public static final double DEFAULT_TAU = 1.0;

        public Settings {
            if (bits < 1 || bits > 12) {
                throw new IllegalArgumentException("dependency: activation bits must be in 1..12, got " + bits);
            }
            if (temperature == null) {
                throw new IllegalArgumentException("dependency: temperature mode must not be null");
            }
            if (!(tau > 0) || !Double.isFinite(tau)) {
                throw new IllegalArgumentException("dependency: tau must be positive and finite, got " + tau);
            }
            if (!(tail > 0 && tail < 1)) {
                throw new IllegalArgumentException("dependency: tail bound must be in (0, 1), got " + tail);
            }
        }

        /** τ = 1 grid step, tail 1e-6. */
        public static Settings defaults(int bits) {
            return new Settings(bits, SoftAssignment.Temperature.GRID, DEFAULT_TAU, SoftAssignment.DEFAULT_TAIL);
        }

        public int levels() {
            return 1 << bits;
        }

        /** The grid of one layer's output range under these settings. */
        public SoftAssignment grid(double lo, double hi) {
            return SoftAssignment.of(lo, hi, levels(), temperature, tau, tail);
        }

        ObjectNode toJson() {
            ObjectNode n = JSON.createObjectNode();
            n.put("bits", bits);
            n.put("temperature", temperature.name());
            n.put("tau", tau);
            n.put("tail", tail);
            return n;
        }
    }

    /** Decoder layers L. */
    public int layers() {
        return lo.length;
    }

    /** The pair values D(k, k+1), k = 0 .. L − 2, of a proxy over all prompts. */
    public double[] pairs(Proxy proxy) {
        return proxy == Proxy.ENTROPY ? entropy.clone() : pairErrors(quantError);
    }

    /** The pair values of one prompt. */
    public double[] samplePairs(Proxy proxy, int sample) {
        return proxy == Proxy.ENTROPY ? sampleEntropy[sample].clone() : pairErrors(sampleQuantError[sample]);
    }

    private static double[] pairErrors(double[] perLayer) {
        double[] out = new double[Math.max(0, perLayer.length - 1)];
        for (int k = 0; k < out.length; k++) {
            out[k] = (perLayer[k] + perLayer[k + 1]) / 2;
        }
        return out;
    }

    /** D(k_r, k_s) = Σ_{k = k_r}^{k_s − 1} D(k, k+1) of pair values (0 for a single layer). */
    public static double span(double[] pairs, int kr, int ks) {
        if (kr < 0 || ks < kr || ks > pairs.length) {
            throw new IllegalArgumentException("dependency span [" + kr + ", " + ks + "] outside layers 0 .. " + pairs.length);
        }
        double s = 0;
        for (int k = kr; k < ks; k++) {
            s += pairs[k];
        }
        return s;
    }

    /** The JSON form. */
    public String toJson() {
        ObjectNode n = JSON.createObjectNode();
        n.put("format", FORMAT);
        n.put("version", FORMAT_VERSION);
        n.set("settings", settings.toJson());
        n.set("source", source);
        n.put("layers", layers());
        putArray(n, "lo", lo);
        putArray(n, "hi", hi);
        putArray(n, "entropy", entropy);
        putArray(n, "quant_error", quantError);
        ArrayNode samples = n.putArray("samples");
        for (int s = 0; s < sampleIds.size(); s++) {
            ObjectNode o = samples.addObject();
            o.put("id", sampleIds.get(s));
            o.put("tokens", sampleTokens[s]);
            putArray(o, "entropy", sampleEntropy[s]);
            putArray(o, "quant_error", sampleQuantError[s]);
        }
        try {
            return JSON.writeValueAsString(n);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static void putArray(ObjectNode n, String key, double[] v) {
        ArrayNode a = n.putArray(key);
        for (double d : v) {
            a.add(d);
        }
    }

    /** Reads the JSON form of file; errors name the file and key. */
    public static Dependency read(Path file) {
        JsonNode n;
        try {
            n = JSON.readTree(Files.readAllBytes(file));
        } catch (IOException e) {
            throw new IllegalArgumentException(file + ": cannot read dependency JSON: " + e.getMessage(), e);
        }
        if (!FORMAT.equals(n.path("format").asText()) || n.path("version").asInt() != FORMAT_VERSION) {
            throw new IllegalArgumentException(file + ": key format/version: expected " + FORMAT + " " + FORMAT_VERSION
                    + ", got " + n.path("format").asText("(none)") + " " + n.path("version").asText("(none)"));
        }
        JsonNode st = n.path("settings");
        Settings settings;
        try {
            settings = new Settings(st.path("bits").asInt(), SoftAssignment.Temperature.valueOf(
                    st.path("temperature").asText().toUpperCase(Locale.ROOT)), st.path("tau").asDouble(),
                    st.path("tail").asDouble());
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(file + ": key settings: " + e.getMessage(), e);
        }
        int layers = n.path("layers").asInt(-1);
        double[] lo = doubles(file, n, "lo", layers);
        double[] hi = doubles(file, n, "hi", layers);
        double[] entropy = doubles(file, n, "entropy", Math.max(0, layers - 1));
        double[] qe = doubles(file, n, "quant_error", layers);
        List<String> ids = new ArrayList<>();
        JsonNode samples = n.path("samples");
        long[] tokens = new long[samples.size()];
        double[][] se = new double[samples.size()][];
        double[][] sq = new double[samples.size()][];
        for (int s = 0; s < samples.size(); s++) {
            JsonNode o = samples.get(s);
            ids.add(o.path("id").asText());
            tokens[s] = o.path("tokens").asLong();
            se[s] = doubles(file, o, "entropy", Math.max(0, layers - 1));
            sq[s] = doubles(file, o, "quant_error", layers);
        }
        return new Dependency(settings, n.path("source"), lo, hi, entropy, qe, ids, tokens, se, sq);
    }

    private static double[] doubles(Path file, JsonNode n, String key, int expected) {
        JsonNode a = n.path(key);
        if (!a.isArray() || a.size() != expected) {
            throw new IllegalArgumentException(file + ": key " + key + ": expected an array of " + expected + " numbers, got "
                    + (a.isArray() ? a.size() + " entries" : "no array"));
        }
        double[] out = new double[expected];
        for (int i = 0; i < expected; i++) {
            out[i] = a.get(i).asDouble();
        }
        return out;
    }
}
