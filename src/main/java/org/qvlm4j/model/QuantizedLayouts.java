package org.qvlm4j.model;

import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.qvlm4j.kernels.QuantFormat;

/**
 * Reads what a quantized checkpoint's {@value #FILE} (written by
 * {@code org.qvlm4j.quant.export.QuantizedExport}) says about each linear, for {@link LlavaWeights}:
 * <ul>
 *   <li>{@code tensors.<linear>}: the packed weight, {@code {"format": "INT4", "group_size": 32,
 *       "symmetric": false, "spec": ..., "shape": [N, K]}}, optionally with
 *       {@code "lorc": {"rank": r, "dtype": "F32"}} (a low-rank term next to the packed codes);</li>
 *   <li>{@code input_scales.<linear>}: {@code {"placement": "norm", "norms": [...]}} (a smoothing
 *       scale folded into those norm tensors, nothing to do at run time) or
 *       {@code {"placement": "runtime", "method_placement": ...}} (the tensor
 *       {@code <prefix>.input_scale} divides the input);</li>
 *   <li>{@code activations.<linear>}: the input quantizer, {@code {"spec": "a8-sym-token-dynamic",
 *       "bits": 8, "symmetric": true, "granularity": "per_token", "group_size": 0, "dynamic": true,
 *       "clip_ratio": 1.0, "path": "integer"}}; static ranges come with
 *       {@code "static": {"range": [lo, hi], "scale": Δ, "zero_point": z}} (per tensor: Δ and z must
 *       be what the range gives) or {@code "static": {"ranges_tensor": "act_range"}} (per channel:
 *       the tensor {@code <prefix>.act_range}), with {@code "positions": P} added for per-token
 *       ranges (one per token position, {@code act_range} (2, P)); a {@code "fake"} path may carry a
 *       {@code "reason"}.</li>
 * </ul>
 * A directory without the file is an ordinary floating-point checkpoint ({@link #NONE}). Every
 * malformed entry is an error naming the file, the key, what was expected and what was found.
 * Floats are read from their decimal text exactly (a float written by its shortest decimal comes
 * back with the same bits). Leaves out: versions above {@value #VERSION}.
 */
public record QuantizedLayouts(String method, Map<String, LlavaWeights.LinearLayout> linears,
                               Map<String, String> inputSpecs, Map<String, String> fakeReasons,
                               Map<String, List<String>> foldedNorms) {
    public static final String FILE = "quantization_config.json";
    public static final String FORMAT = "qvlm4j-quantized";
    /** Highest config version this reader understands (1: weight-only packed linears). */
    public static final int VERSION = 2;
    public static final String PATH_INTEGER = "integer";
    public static final String PATH_FAKE = "fake";
    public static final String PLACEMENT_NORM = "norm";
    public static final String PLACEMENT_RUNTIME = "runtime";
    /** The only tensor name per-channel static ranges are stored under (after the linear's prefix). */
    public static final String RANGES_TENSOR = "act_range";

    /** A floating-point checkpoint: nothing quantized. */
    public static final QuantizedLayouts NONE = new QuantizedLayouts(null, Map.of(), Map.of(), Map.of(), Map.of());

    public QuantizedLayouts {
        linears = Collections.unmodifiableMap(new LinkedHashMap<>(linears));
        inputSpecs = Collections.unmodifiableMap(new LinkedHashMap<>(inputSpecs));
        fakeReasons = Collections.unmodifiableMap(new LinkedHashMap<>(fakeReasons));
        foldedNorms = Collections.unmodifiableMap(new LinkedHashMap<>(foldedNorms));
    }

    /** The packed layouts alone, by linear. */
    public Map<String, LlavaWeights.PackedLayout> packed() {
        Map<String, LlavaWeights.PackedLayout> m = new LinkedHashMap<>();
        linears.forEach((k, v) -> {
            if (v.packed() != null) {
                m.put(k, v.packed());
            }
        });
        return m;
    }

    public boolean isEmpty() {
        return linears.isEmpty() && foldedNorms.isEmpty();
    }

    public static QuantizedLayouts read(Path modelDir) {
        Path f = modelDir.resolve(FILE);
        if (!Files.isRegularFile(f)) {
            return NONE;
        }
        JsonNode root;
        try {
            root = new ObjectMapper().enable(DeserializationFeature.USE_BIG_DECIMAL_FOR_FLOATS).readTree(f.toFile());
        } catch (IOException e) {
            throw new UncheckedIOException(f + ": cannot read quantization config", e);
        }
        return new Reader(f).read(root);
    }

    /** Parsing state: the file, for messages, and the maps being filled. */
    private static final class Reader {
        private final Path f;
        private final Map<String, LlavaWeights.PackedLayout> packed = new LinkedHashMap<>();
        private final Map<String, Integer> lowRank = new LinkedHashMap<>();
        private final Map<String, JsonNode> tensorShapes = new LinkedHashMap<>();
        private final Map<String, Boolean> runtimeScale = new LinkedHashMap<>();
        private final Map<String, InputQuantizer.Spec> inputs = new LinkedHashMap<>();
        private final Map<String, InputQuantizer.Execution> executions = new LinkedHashMap<>();
        private final Map<String, float[]> tensorRanges = new LinkedHashMap<>();
        private final Map<String, Integer> positions = new LinkedHashMap<>();
        private final Map<String, String> inputSpecs = new LinkedHashMap<>();
        private final Map<String, String> fakeReasons = new LinkedHashMap<>();
        private final Map<String, List<String>> foldedNorms = new LinkedHashMap<>();

        Reader(Path f) {
            this.f = f;
        }

        private IllegalArgumentException bad(String key, String expected, Object actual) {
            return new IllegalArgumentException(f + ": key " + key + ": expected " + expected + ", got " + actual);
        }

        QuantizedLayouts read(JsonNode root) {
            if (!FORMAT.equals(root.path("format").asText())) {
                throw bad("format", "'" + FORMAT + "'", "'" + root.path("format").asText() + "'");
            }
            JsonNode version = root.path("version");
            if (!version.isIntegralNumber() || version.asInt() < 1 || version.asInt() > VERSION) {
                throw bad("version", "an integer 1.." + VERSION, version.isMissingNode() ? "nothing" : version);
            }
            forEach(root, "tensors", true, this::tensor);
            forEach(root, "input_scales", false, this::inputScale);
            forEach(root, "activations", false, this::activation);
            Map<String, LlavaWeights.LinearLayout> out = new LinkedHashMap<>();
            List<String> names = new ArrayList<>(packed.keySet());
            for (String n : runtimeScale.keySet()) {
                if (!names.contains(n)) {
                    names.add(n);
                }
            }
            for (String n : inputs.keySet()) {
                if (!names.contains(n)) {
                    names.add(n);
                }
            }
            for (String n : names) {
                out.put(n, new LlavaWeights.LinearLayout(packed.get(n), runtimeScale.getOrDefault(n, false),
                        lowRank.getOrDefault(n, 0), inputs.get(n), executions.get(n), tensorRanges.get(n),
                        positions.getOrDefault(n, 0)));
            }
            String method = root.path("method").isTextual() ? root.path("method").asText() : null;
            return new QuantizedLayouts(method, out, inputSpecs, fakeReasons, foldedNorms);
        }

        private interface EntryReader {
            void read(String key, String linear, JsonNode entry);
        }

        private void forEach(JsonNode root, String section, boolean required, EntryReader r) {
            JsonNode s = root.path(section);
            if (s.isMissingNode() && !required) {
                return;
            }
            if (!s.isObject()) {
                throw bad(section, "an object", s.isMissingNode() ? "nothing" : s.getNodeType());
            }
            for (Iterator<Map.Entry<String, JsonNode>> it = s.fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                String key = section + "." + e.getKey();
                if (!e.getValue().isObject()) {
                    throw bad(key, "an object", e.getValue().getNodeType());
                }
                r.read(key, e.getKey(), e.getValue());
            }
        }

        private void tensor(String key, String linear, JsonNode t) {
            QuantFormat fmt;
            try {
                fmt = QuantFormat.valueOf(t.path("format").asText());
            } catch (IllegalArgumentException ex) {
                throw bad(key + ".format", "one of INT8, INT6, INT4, NF4", "'" + t.path("format").asText() + "'");
            }
            int group = t.path("group_size").asInt(-1);
            if (!t.path("group_size").isIntegralNumber() || group <= 0) {
                throw bad(key + ".group_size", "an integer > 0", t.path("group_size"));
            }
            boolean sym = t.has("symmetric") && bool(key + ".symmetric", t.path("symmetric"));
            packed.put(linear, new LlavaWeights.PackedLayout(fmt, group, sym));
            JsonNode shape = t.path("shape");
            if (shape.isArray() && shape.size() == 2 && shape.get(1).isIntegralNumber()) {
                tensorShapes.put(linear, shape);
            }
            JsonNode lorc = t.path("lorc");
            if (!lorc.isMissingNode()) {
                if (!lorc.path("rank").isIntegralNumber() || lorc.path("rank").asInt() < 1) {
                    throw bad(key + ".lorc.rank", "an integer >= 1", lorc.path("rank"));
                }
                if (!"F32".equals(lorc.path("dtype").asText())) {
                    throw bad(key + ".lorc.dtype", "'F32'", lorc.path("dtype"));
                }
                lowRank.put(linear, lorc.path("rank").asInt());
            }
        }

        private void inputScale(String key, String linear, JsonNode t) {
            String placement = t.path("placement").asText();
            if (placement.equals(PLACEMENT_RUNTIME)) {
                runtimeScale.put(linear, true);
            } else if (placement.equals(PLACEMENT_NORM)) {
                JsonNode norms = t.path("norms");
                if (!norms.isArray() || norms.isEmpty()) {
                    throw bad(key + ".norms", "a non-empty array of norm tensor names", norms);
                }
                List<String> n = new ArrayList<>();
                for (JsonNode x : norms) {
                    if (!x.isTextual()) {
                        throw bad(key + ".norms", "norm tensor names", norms);
                    }
                    n.add(x.asText());
                }
                foldedNorms.put(linear, List.copyOf(n));
            } else {
                throw bad(key + ".placement", "'" + PLACEMENT_NORM + "' or '" + PLACEMENT_RUNTIME + "'",
                        t.path("placement"));
            }
        }

        private void activation(String key, String linear, JsonNode a) {
            JsonNode bitsNode = a.path("bits");
            int bits = bitsNode.asInt(-1);
            if (!bitsNode.isIntegralNumber() || bits < InputQuantizer.MIN_BITS || bits > InputQuantizer.MAX_BITS) {
                throw bad(key + ".bits", "an integer " + InputQuantizer.MIN_BITS + ".." + InputQuantizer.MAX_BITS,
                        bitsNode.isMissingNode() ? "nothing" : bitsNode);
            }
            boolean sym = bool(key + ".symmetric", a.path("symmetric"));
            boolean dynamic = bool(key + ".dynamic", a.path("dynamic"));
            InputQuantizer.Granularity g = null;
            String gText = a.path("granularity").asText();
            for (InputQuantizer.Granularity c : InputQuantizer.Granularity.values()) {
                if (c.name().toLowerCase(Locale.ROOT).equals(gText)) {
                    g = c;
                }
            }
            if (g == null) {
                throw bad(key + ".granularity", "one of per_tensor, per_channel, per_token, per_group",
                        "'" + gText + "'");
            }
            JsonNode groupNode = a.path("group_size");
            int group = groupNode.asInt(-1);
            boolean grouped = g == InputQuantizer.Granularity.PER_GROUP;
            if (!groupNode.isIntegralNumber() || (grouped ? group <= 0 : group != 0)) {
                throw bad(key + ".group_size", grouped ? "an integer > 0 for per_group" : "0 unless per_group",
                        groupNode.isMissingNode() ? "nothing" : groupNode);
            }
            if (!dynamic && g == InputQuantizer.Granularity.PER_GROUP) {
                throw bad(key + ".dynamic", "true for " + gText + " ranges (static ranges are per_tensor, per_channel "
                        + "or per_token)", false);
            }
            JsonNode clipNode = a.path("clip_ratio");
            double clip = clipNode.isNumber() ? clipNode.doubleValue() : Double.NaN;
            if (!(clip > 0 && clip <= 1)) {
                throw bad(key + ".clip_ratio", "a number in (0, 1] (1 = no clipping)",
                        clipNode.isMissingNode() ? "nothing" : clipNode);
            }
            String path = a.path("path").asText();
            InputQuantizer.Execution exec = switch (path) {
                case PATH_INTEGER -> InputQuantizer.Execution.INTEGER;
                case PATH_FAKE -> InputQuantizer.Execution.FAKE;
                default -> throw bad(key + ".path", "'" + PATH_INTEGER + "' or '" + PATH_FAKE + "'", a.path("path"));
            };
            InputQuantizer.Spec spec = new InputQuantizer.Spec(bits, sym, g, grouped ? group : 0, dynamic, clip);
            if (exec == InputQuantizer.Execution.INTEGER) {
                LlavaWeights.PackedLayout pl = packed.get(linear);
                JsonNode shape = tensorShapes.get(linear);
                String why = pl == null ? "the weight is not packed"
                        : shape == null ? null
                        : InputQuantizer.integerUnsupported(spec, pl.format(), pl.groupSize(), shape.get(1).asInt());
                if (why != null) {
                    throw bad(key + ".path", "'" + PATH_FAKE + "' (" + why + ")", "'" + path + "'");
                }
            }
            if (!dynamic) {
                JsonNode st = a.path("static");
                if (!st.isObject()) {
                    throw bad(key + ".static", "an object with the static ranges", st.isMissingNode() ? "nothing" : st);
                }
                if (g == InputQuantizer.Granularity.PER_CHANNEL || g == InputQuantizer.Granularity.PER_TOKEN) {
                    if (!RANGES_TENSOR.equals(st.path("ranges_tensor").asText())) {
                        throw bad(key + ".static.ranges_tensor", "'" + RANGES_TENSOR + "'", st.path("ranges_tensor"));
                    }
                    if (g == InputQuantizer.Granularity.PER_TOKEN) {
                        JsonNode p = st.path("positions");
                        if (!p.isIntegralNumber() || p.asInt() < 1) {
                            throw bad(key + ".static.positions", "the number of token positions (an integer >= 1)",
                                    p.isMissingNode() ? "nothing" : p);
                        }
                        positions.put(linear, p.asInt());
                    }
                } else {
                    tensorRanges.put(linear, perTensorRange(key + ".static", st, spec));
                }
            }
            inputs.put(linear, spec);
            executions.put(linear, exec);
            inputSpecs.put(linear, a.path("spec").asText(""));
            if (exec == InputQuantizer.Execution.FAKE && a.has("reason")) {
                fakeReasons.put(linear, a.path("reason").asText());
            }
        }

        /** {lo, hi} of a per-tensor static entry, after checking that its scale and zero point are the range's. */
        private float[] perTensorRange(String key, JsonNode st, InputQuantizer.Spec spec) {
            JsonNode range = st.path("range");
            if (!range.isArray() || range.size() != 2 || !range.get(0).isNumber() || !range.get(1).isNumber()) {
                throw bad(key + ".range", "[lo, hi] (two numbers)", range.isMissingNode() ? "nothing" : range);
            }
            float lo = exactFloat(range.get(0));
            float hi = exactFloat(range.get(1));
            if (!(lo <= hi) || !Float.isFinite(lo) || !Float.isFinite(hi)) {
                throw bad(key + ".range", "finite lo <= hi", range);
            }
            InputQuantizer q = InputQuantizer.fromRanges(spec, InputQuantizer.Execution.FAKE, 1, new float[] {lo},
                    new float[] {hi});
            float scale = q.staticScales()[0];
            int zero = q.staticZeroPoints()[0];
            JsonNode s = st.path("scale");
            if (!s.isNumber() || Float.floatToIntBits(exactFloat(s)) != Float.floatToIntBits(scale)) {
                throw bad(key + ".scale", scale + " (the scale of range [" + lo + ", " + hi + "])",
                        s.isMissingNode() ? "nothing" : s);
            }
            JsonNode z = st.path("zero_point");
            if (!z.isIntegralNumber() || z.asInt() != zero) {
                throw bad(key + ".zero_point", zero + " (the zero point of range [" + lo + ", " + hi + "])",
                        z.isMissingNode() ? "nothing" : z);
            }
            return new float[] {lo, hi};
        }

        private boolean bool(String key, JsonNode n) {
            if (!n.isBoolean()) {
                throw bad(key, "true or false", n.isMissingNode() ? "nothing" : n);
            }
            return n.booleanValue();
        }
    }

    /** The float a JSON number's decimal text denotes, correctly rounded. */
    static float exactFloat(JsonNode n) {
        return Float.parseFloat(n.decimalValue().toString());
    }
}
