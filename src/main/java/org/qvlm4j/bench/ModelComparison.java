package org.qvlm4j.bench;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.function.ToDoubleFunction;

/**
 * A model measured against a baseline (usually a quantized checkpoint against the floating-point
 * model it came from) in the same run: one row per metric with both values and the ratio
 * {@code model / vs}, as a text table and as JSON for results scripts.
 *
 * <p>Values are doubles; a resident-memory field the platform does not report is NaN (printed
 * {@code n/a}, written as JSON null), as is a ratio whose baseline is 0. Leaves out: uncertainty of
 * the timings (one run's medians), and any judgement of which differences matter.
 */
public final class ModelComparison {
    /** Identifies the JSON document. */
    public static final String FORMAT = "qvlm4j-bench";
    public static final int FORMAT_VERSION = 1;

    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);
    private static final String BYTES = "bytes";
    private static final String SECONDS = "s";
    private static final String TOKENS = "tokens";
    private static final String TOKENS_PER_S = "tokens/s";

    /** A metric: stable key (JSON), label (table), unit and how to read it from a report. */
    public record Metric(String key, String label, String unit, ToDoubleFunction<ModelBench.Report> value) {}

    /** Every metric, in table order. */
    public static final List<Metric> METRICS = List.of(
            new Metric("disk.safetensors_bytes", "size on disk: *.safetensors", BYTES,
                    r -> r.footprint().safetensorsBytes()),
            new Metric("disk.directory_bytes", "size on disk: whole directory", BYTES,
                    r -> r.footprint().directoryBytes()),
            new Metric("weights.total_bytes", "weights held (mapped tensors)", BYTES,
                    r -> r.footprint().tensorBytes()),
            new Metric("weights.float_linear_bytes", "  float linears", BYTES, r -> r.footprint().floatLinearBytes()),
            new Metric("weights.packed_code_bytes", "  packed linears: codes", BYTES,
                    r -> r.footprint().packedCodeBytes()),
            new Metric("weights.packed_scale_zero_bytes", "  packed linears: scales + zero points", BYTES,
                    r -> r.footprint().packedScaleZeroBytes()),
            new Metric("weights.other_bytes", "  embeddings, norms, biases", BYTES,
                    r -> r.footprint().otherTensorBytes()),
            new Metric("weights.linear_bytes", "linears, float and packed together", BYTES,
                    r -> r.footprint().linearBytes()),
            new Metric("memory.rss_before_load_bytes", "resident before load: VmRSS", BYTES,
                    r -> known(r.beforeLoad().vmRss())),
            new Metric("memory.rss_after_load_bytes", "resident after load: VmRSS", BYTES,
                    r -> known(r.afterLoad().vmRss())),
            new Metric("memory.rss_anon_after_load_bytes", "  RssAnon", BYTES, r -> known(r.afterLoad().rssAnon())),
            new Metric("memory.rss_file_after_load_bytes", "  RssFile", BYTES, r -> known(r.afterLoad().rssFile())),
            new Metric("memory.rss_after_generate_bytes", "resident after generate: VmRSS", BYTES,
                    r -> known(r.afterGenerate().vmRss())),
            new Metric("memory.rss_anon_after_generate_bytes", "  RssAnon", BYTES,
                    r -> known(r.afterGenerate().rssAnon())),
            new Metric("memory.rss_file_after_generate_bytes", "  RssFile", BYTES,
                    r -> known(r.afterGenerate().rssFile())),
            new Metric("memory.rss_peak_bytes", "resident peak: VmHWM", BYTES, r -> known(r.afterGenerate().vmHwm())),
            new Metric("memory.rss_growth_bytes", "resident growth, load + generate", BYTES,
                    r -> known(r.afterGenerate().vmRss()) - known(r.beforeLoad().vmRss())),
            new Metric("prefill.tokens", "prefill: prompt tokens", TOKENS, ModelBench.Report::promptTokens),
            new Metric("prefill.seconds", "prefill: time (median)", SECONDS, ModelBench.Report::prefillSeconds),
            new Metric("prefill.tokens_per_s", "prefill: throughput", TOKENS_PER_S,
                    ModelBench.Report::prefillTokensPerSecond),
            new Metric("decode.tokens", "decode: greedy steps", TOKENS, ModelBench.Report::decodeTokens),
            new Metric("decode.seconds", "decode: time (median)", SECONDS, ModelBench.Report::decodeSeconds),
            new Metric("decode.tokens_per_s", "decode: throughput", TOKENS_PER_S,
                    ModelBench.Report::decodeTokensPerSecond));

    /** One metric of both models; vs and ratio are NaN without a baseline. */
    public record Row(Metric metric, double model, double vs, double ratio) {}

    private ModelComparison() {
    }

    private static double known(long v) {
        return v < 0 ? Double.NaN : v;
    }

    /** model / vs, or NaN when either is unknown or vs is 0. */
    public static double ratio(double model, double vs) {
        return Double.isFinite(model) && Double.isFinite(vs) && vs != 0 ? model / vs : Double.NaN;
    }

    /** The rows of every metric; vs may be null. */
    public static List<Row> rows(ModelBench.Report model, ModelBench.Report vs) {
        List<Row> rows = new ArrayList<>();
        for (Metric m : METRICS) {
            double a = m.value().applyAsDouble(model);
            double b = vs == null ? Double.NaN : m.value().applyAsDouble(vs);
            rows.add(new Row(m, a, b, ratio(a, b)));
        }
        return rows;
    }

    /** A value as the table prints it: bytes and token counts exact, times and rates rounded. */
    public static String format(double v, String unit) {
        if (Double.isNaN(v)) {
            return "n/a";
        }
        return switch (unit) {
            case BYTES, TOKENS -> String.format(Locale.ROOT, "%,d", Math.round(v));
            case SECONDS -> String.format(Locale.ROOT, "%.4f", v);
            default -> String.format(Locale.ROOT, "%.2f", v);
        };
    }

    /** A ratio as the table prints it. */
    public static String formatRatio(double r) {
        return Double.isNaN(r) ? "-" : String.format(Locale.ROOT, "%.3f", r);
    }

    /** The text table: a header naming both models and how they were measured, then one row per metric. */
    public static String table(ModelBench.Report model, ModelBench.Report vs, ModelBench.Isolation isolation) {
        StringBuilder sb = new StringBuilder();
        sb.append("model: ").append(describe(model)).append('\n');
        if (vs != null) {
            sb.append("vs:    ").append(describe(vs)).append('\n');
        }
        sb.append("measured: ").append(isolation.description).append('\n');
        sb.append("prompt: ").append(model.promptSource()).append("; image: ").append(model.imageSource()).append('\n');
        sb.append(String.format(Locale.ROOT, "timing: medians of %d repetition(s); prefill includes the vision tower "
                + "and the first token%n", model.reps()));
        sb.append(String.format(Locale.ROOT, "  %-50s %16s", "metric", "model"));
        sb.append(vs == null ? "\n" : String.format(Locale.ROOT, " %16s %9s%n", "vs", "model/vs"));
        for (Row r : rows(model, vs)) {
            String unit = r.metric().unit();
            sb.append(String.format(Locale.ROOT, "  %-50s %16s", r.metric().label() + " (" + unit + ")",
                    format(r.model(), unit)));
            sb.append(vs == null ? "\n" : String.format(Locale.ROOT, " %16s %9s%n", format(r.vs(), unit),
                    formatRatio(r.ratio())));
        }
        return sb.toString().stripTrailing();
    }

    /**
     * The comparison in one line: decode and prefill throughput of model over vs, and how many
     * times fewer bytes model's linears take (vs / model of {@link ModelFootprint#linearBytes}).
     */
    public static String headline(ModelBench.Report model, ModelBench.Report vs) {
        long a = model.footprint().linearBytes();
        long b = vs.footprint().linearBytes();
        return String.format(Locale.ROOT, "model / vs: decode %sx the tokens/s, prefill %sx; linears take %sx fewer "
                        + "bytes (%,d vs %,d)",
                formatRatio(ratio(model.decodeTokensPerSecond(), vs.decodeTokensPerSecond())),
                formatRatio(ratio(model.prefillTokensPerSecond(), vs.prefillTokensPerSecond())),
                formatRatio(ratio(b, a)), a, b);
    }

    /** Path and weight layout in a few words. */
    static String describe(ModelBench.Report r) {
        ModelFootprint f = r.footprint();
        StringBuilder sb = new StringBuilder(r.model()).append(" (");
        if (f.packed().isEmpty()) {
            sb.append("floating point, ").append(f.floatLinears()).append(" linears");
        } else {
            List<String> parts = new ArrayList<>();
            for (ModelFootprint.PackedUse u : f.packed()) {
                parts.add(u.layout().name() + " x" + u.linears());
            }
            sb.append("packed ").append(String.join(", ", parts)).append("; ").append(f.floatLinears())
                    .append(" float linears");
        }
        return sb.append(')').toString();
    }

    /**
     * The JSON document: format, how the models were measured, every metric with both values and
     * the ratio, both full reports and, when given, the kernel results (any record).
     */
    public static String json(ModelBench.Report model, ModelBench.Report vs, ModelBench.Isolation isolation, int threads,
                              ModelBench.Options options, Object kernels) {
        ObjectNode root = JSON.createObjectNode();
        root.put("format", FORMAT).put("version", FORMAT_VERSION);
        root.put("isolation", isolation.key).put("threads", threads);
        root.set("options", JSON.valueToTree(options));
        root.put("model", model.model());
        if (vs == null) {
            root.putNull("vs");
        } else {
            root.put("vs", vs.model());
        }
        ArrayNode metrics = root.putArray("metrics");
        for (Row r : rows(model, vs)) {
            ObjectNode m = metrics.addObject();
            m.put("key", r.metric().key()).put("label", r.metric().label().strip()).put("unit", r.metric().unit());
            putNumber(m, "model", r.model());
            putNumber(m, "vs", r.vs());
            putNumber(m, "ratio", r.ratio());
        }
        ObjectNode reports = root.putObject("reports");
        reports.set("model", JSON.valueToTree(model));
        if (vs != null) {
            reports.set("vs", JSON.valueToTree(vs));
        }
        if (kernels != null) {
            root.set("kernels", JSON.valueToTree(kernels));
        }
        try {
            return JSON.writeValueAsString(root);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("cannot serialise the bench results", e);
        }
    }

    private static void putNumber(ObjectNode o, String key, double v) {
        if (Double.isNaN(v)) {
            o.putNull(key);
        } else {
            o.put(key, v);
        }
    }
}
