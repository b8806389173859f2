package org.qvlm4j.quant.export;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.qvlm4j.io.AtomicFiles;
import org.qvlm4j.io.safetensors.Checkpoint;
import org.qvlm4j.io.safetensors.SafeTensorsWriter;
import org.qvlm4j.io.safetensors.TensorEntry;
import org.qvlm4j.kernels.DType;
import org.qvlm4j.kernels.PackedMatrix;
import org.qvlm4j.kernels.WeightMatrix;
import org.qvlm4j.model.ActivationTap;
import org.qvlm4j.model.InputQuantizer;
import org.qvlm4j.model.Linear;
import org.qvlm4j.model.LlavaModel;
import org.qvlm4j.model.LlavaWeights;
import org.qvlm4j.model.QuantizedLayouts;
import org.qvlm4j.quant.FakeQuantTap;
import org.qvlm4j.quant.LinearQuant;
import org.qvlm4j.quant.QuantPlan;
import org.qvlm4j.quant.QuantSpec;
import org.qvlm4j.quant.Ranges;
import org.qvlm4j.quant.TensorCategory;
import org.qvlm4j.quant.calib.CalibrationStats;
import org.qvlm4j.quant.methods.InputScalingTap;
import org.qvlm4j.quant.methods.LayerReport;
import org.qvlm4j.quant.methods.QuantMethod;
import org.qvlm4j.quant.methods.QuantResult;

/**
 * Writes a quantized checkpoint: runs a {@link QuantMethod} on a model and writes a model directory
 * that {@link LlavaModel#load} runs like the in-memory {@link QuantResult} (fake-quantized weights
 * plus activation tap), with the low-bit kernels:
 * <ul>
 *   <li>every planned weight as exact packed codes ({@link PackedWeights}): {@code <prefix>.qweight}
 *       (U8), {@code <prefix>.scales} (F32 (N, groups)) and, for asymmetric uniform formats,
 *       {@code <prefix>.zeros} (U8 (N, groups)) in place of {@code <prefix>.weight}; NF4 with double
 *       quantization is stored exactly by its decoded absmax (F32 scales: the weights are the
 *       double-quantized ones bit for bit, the 0.4 bits per weight DQ saves are not saved);</li>
 *   <li>a weight off its grid by a low-rank term (ZeroQuant-V2's LoRC) as the packed RTN grid part
 *       plus F32 factors {@code <prefix>.lorc_u} (N, r) and {@code <prefix>.lorc_v} (r, K)
 *       ({@link LowRankTerm});</li>
 *   <li>per-input-channel smoothing scales s (SmoothQuant, AWQ): folded into a norm by the method,
 *       the changed norm weight (and bias) is written under its own key as F32; otherwise
 *       {@code <prefix>.input_scale} (F32 (K)) holds s and the runtime divides the input by it,
 *       also when the method folded 1/s back into a weight-only image (the packed codes are those
 *       of W·diag(s));</li>
 *   <li>the plan's input quantization, read off the method's activation tap (spec per linear,
 *       static ranges as calibrated and divided by s): per-tensor ranges, scale and zero point in
 *       the config, per-channel ranges as {@code <prefix>.act_range} (F32 (2, K)), per-token-position
 *       ranges likewise (F32 (2, positions), with the position count in the config); each linear runs
 *       integer codes times packed weights where the kernels allow it (symmetric 8/4-bit inputs per
 *       token, tensor or group) and fake quantization otherwise, and the config says which and why.</li>
 * </ul>
 * {@value QuantizedLayouts#FILE} (read by {@link QuantizedLayouts}) records the method, the plan,
 * each linear's packed format, input scale placement and input quantizer, the calibration
 * manifest's sample pids and seed and the tool version; other tensors keep their bytes; config,
 * tokenizer and preprocessor files are copied. Everything is written into a temporary sibling
 * directory that is renamed at the end.
 *
 * <p>A vision layer past the projector's feature layer, which no forward runs, keeps a floating-point
 * input when the method gives it no static range.
 *
 * <p>Left out (refused with a message): percentile-clipped input specs (the runtime clips by a
 * ratio only), quantizing the patch embedding, the embeddings or a tied lm_head (not linears of
 * their own in the runtime), activation taps other than the library's scaling and fake-quantization
 * taps, bit widths other than 4, 6 and 8, groups the kernels cannot express, off-grid weights that
 * are not a grid image plus a low-rank term.
 */
public final class QuantizedExport {
    public static final int FORMAT_VERSION = QuantizedLayouts.VERSION;
    public static final String WEIGHTS_FILE = Checkpoint.SINGLE_FILE;
    /** Files copied verbatim when the source model has them. */
    public static final List<String> COPIED_FILES = List.of("config.json", "generation_config.json", "tokenizer.json",
            "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model", "added_tokens.json",
            "chat_template.json", "preprocessor_config.json", "smoothing.json");

    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    /** What to export: source model, its calibration statistics, the target directory, method and plan. */
    public record Request(Path modelDir, Path statsDir, Path out, QuantMethod method, QuantPlan plan) {}

    /**
     * What was written: packed linears, their packed bytes and the bytes their F32 weights would
     * take; bytes of the extra F32 tensors (low-rank factors, input scales, input ranges); linears
     * whose inputs run integer codes or fake quantization; linears whose smoothing scale was folded
     * into a norm or is applied at run time; linears with a low-rank term.
     */
    public record Summary(Path out, int packedLinears, long packedBytes, long f32Bytes, long extraBytes,
                          int integerInputs, int fakeInputs, int foldedScales, int runtimeScales, int lowRankLinears) {}

    /**
     * A step run after the tensors are written and before the rename, on the temporary directory:
     * files a method adds beside the checkpoint (a report), or a test's injected failure.
     */
    @FunctionalInterface
    public interface BeforeRename {
        void run(Path tmpDir) throws IOException;
    }

    /** What one linear becomes in the checkpoint; null fields are absent. */
    private record Exported(String name, int n, int k, PackedMatrix packed, QuantSpec weightSpec, float[] f32Weight,
                            float[] inputScale, String methodPlacement, List<String> foldedNorms,
                            LowRankTerm.Split lowRank, QuantSpec inputSpec, InputQuantizer quantizer, String fakeReason) {
        boolean touched() {
            return packed != null || f32Weight != null || inputScale != null || inputSpec != null;
        }
    }

    private QuantizedExport() {
    }

    public static Summary run(Request r) {
        return run(r, tmp -> { });
    }

    /** As {@link #run(Request)}, with hook run on the temporary directory just before the rename. */
    public static Summary run(Request r, BeforeRename hook) {
        Path out = r.out().toAbsolutePath().normalize();
        if (Files.exists(out)) {
            throw new IllegalArgumentException("--out " + out + ": already exists; refusing to overwrite it");
        }
        if (Files.exists(r.modelDir().resolve(QuantizedLayouts.FILE))) {
            throw new IllegalArgumentException("--model " + r.modelDir() + ": already a quantized checkpoint ("
                    + QuantizedLayouts.FILE + " present); quantize the floating-point model instead");
        }
        checkPlan(r.plan());
        try (LlavaModel model = LlavaModel.load(r.modelDir());
             CalibrationStats stats = CalibrationStats.load(r.statsDir());
             Checkpoint source = Checkpoint.open(r.modelDir())) {
            stats.checkModel(r.modelDir(), model);
            Map<String, TensorEntry> sourceByName = new HashMap<>(); // canonical name → source tensor
            source.tensors().forEach((key, e) -> {
                String c = LlavaWeights.canonicalName(key);
                if (c != null) {
                    sourceByName.put(c, e);
                }
            });
            QuantResult res = r.method().apply(model, r.plan(), stats);
            Map<String, float[]> changedNorms = changedNorms(model, sourceByName);
            TapParts tap = TapParts.of(res, r.plan());
            Map<String, Exported> linears = new LinkedHashMap<>();
            for (Linear l : model.linears()) {
                Exported e = export(l, res, r.plan(), tap, sourceByName, changedNorms,
                        neverRun(l.name(), model.config().visionFeatureLayerIndex()));
                if (e.touched()) {
                    checkLoadable(l, model);
                    linears.put(l.name(), e);
                }
            }
            Summary s = summary(out, linears);
            if (s.packedLinears() == 0) {
                throw new IllegalArgumentException("method " + res.method() + " quantized no weight: a quantized "
                        + "checkpoint needs at least one packed linear");
            }
            ObjectNode config = config(res.method(), r.plan(), linears, stats.manifest());
            write(out, source, linears, changedNorms, config, r.modelDir(), hook);
            return s;
        }
    }

    private static void checkPlan(QuantPlan plan) {
        for (Map.Entry<TensorCategory, LinearQuant> e : plan.entries().entrySet()) {
            QuantSpec in = e.getValue().input();
            if (in != null && in.clip().kind() == QuantSpec.ClipKind.PERCENTILE) {
                throw new IllegalArgumentException("plan quantizes the inputs of " + e.getKey().key() + " with " + in
                        + ": the runtime's input quantizer clips by a ratio only; expected no clip or -clip<ratio>");
            }
        }
        if (plan.entry(TensorCategory.EMBEDDINGS).weight() != null) {
            throw new IllegalArgumentException("plan quantizes EMBEDDINGS (" + plan.entry(TensorCategory.EMBEDDINGS)
                    + "): the embedding table is not a linear and has no packed form");
        }
        if (!plan.entry(TensorCategory.VISION_PATCH_EMBED).isFloatingPoint()) {
            throw new IllegalArgumentException("plan quantizes VISION_PATCH_EMBED ("
                    + plan.entry(TensorCategory.VISION_PATCH_EMBED) + "): the patch embedding is a convolution "
                    + "whose weight has 4 dimensions; expected fp");
        }
        if (plan.isFloatingPoint()) {
            throw new IllegalArgumentException("plan quantizes nothing: a quantized checkpoint needs at least one "
                    + "quantized weight");
        }
    }

    /** The linear must be one the loader builds from its own {@code .weight} (not the tied lm_head). */
    private static void checkLoadable(Linear l, LlavaModel model) {
        if (l.name().equals("lm_head") && model.config().tieWordEmbeddings()) {
            throw new IllegalArgumentException("plan quantizes lm_head, which shares the embedding table "
                    + "(tie_word_embeddings); expected lm_head=fp");
        }
    }

    /** The method's activation tap taken apart: input scales it applies and its fake quantizer. */
    private record TapParts(Map<String, float[]> scales, FakeQuantTap quant) {
        static TapParts of(QuantResult res, QuantPlan plan) {
            ActivationTap t = res.tap();
            Map<String, float[]> scales = Map.of();
            if (t instanceof InputScalingTap s) {
                scales = s.scales();
                t = s.next();
            }
            FakeQuantTap q = null;
            if (t instanceof FakeQuantTap f) {
                if (f.next() != null || !f.plan().equals(plan)) {
                    throw new IllegalArgumentException("method " + res.method() + ": its fake-quantization tap "
                            + (f.next() != null ? "chains another tap" : "follows another plan") + "; expected the "
                            + "request's plan alone");
                }
                q = f;
                t = null;
            }
            if (t != null) {
                throw new IllegalArgumentException("method " + res.method() + " needs an activation tap of type "
                        + t.getClass().getName() + " at run time; the export stores input scaling and fake "
                        + "quantization only");
            }
            return new TapParts(scales, q);
        }
    }

    /**
     * Whether the forward never runs linear: a vision layer at or past the layer whose hidden state the
     * projector reads (so calibration saw no input there).
     */
    public static boolean neverRun(String linear, int visionFeatureLayers) {
        if (!linear.startsWith("vision.layers.")) {
            return false;
        }
        String rest = linear.substring("vision.layers.".length());
        return Integer.parseInt(rest.substring(0, rest.indexOf('.'))) >= visionFeatureLayers;
    }

    private static Exported export(Linear l, QuantResult res, QuantPlan plan, TapParts tap,
                                   Map<String, TensorEntry> source, Map<String, float[]> changedNorms, boolean neverRun) {
        String name = l.name();
        int n = l.outFeatures();
        int k = l.inFeatures();
        String what = res.method() + " linear " + name;
        LinearQuant lq = plan.forLinear(name);
        WeightMatrix stored = res.weights().get(name);
        LayerReport row = res.report().stream().filter(x -> x.linear().equals(name)).findFirst().orElse(null);
        String placement = row == null ? "none" : row.scalePlacement();
        float[] s = res.scales() == null ? null : res.scales().get(name);
        float[] tapScale = tap.scales().get(name + ".in");
        if ((tapScale != null) != (s != null && placement.equals("activation"))) {
            throw new IllegalArgumentException(what + ": scale placement '" + placement + "' disagrees with the "
                    + "activation tap, which " + (tapScale == null ? "does not scale" : "scales") + " its input");
        }
        PackedMatrix packed = null;
        LowRankTerm.Split lowRank = null;
        float[] f32 = null;
        float[] inputScale = tapScale;
        List<String> folded = List.of();
        if (s != null && placement.startsWith("norm:")) {
            folded = foldedNorms(placement.substring("norm:".length()), changedNorms);
        }
        QuantSpec wspec = lq.weight();
        if (stored != null) {
            float[] image = stored.toFloatArray(); // (N, K)
            if (wspec != null) {
                float[] original = source.get(name + ".weight").toFloatArray(); // (N, K)
                boolean scaledBasis = s != null && !placement.equals("none");
                float[] gridSource = scaledBasis ? scaleColumns(original, n, k, s) : original;
                boolean weightPlacement = s != null && placement.equals("weight");
                try {
                    packed = PackedWeights.pack(what, image, weightPlacement ? s : null, gridSource, n, k, wspec);
                } catch (IllegalArgumentException offGrid) {
                    if (weightPlacement) {
                        throw offGrid;
                    }
                    try {
                        lowRank = LowRankTerm.split(what, image, gridSource, n, k, wspec);
                    } catch (IllegalArgumentException notLowRank) {
                        offGrid.addSuppressed(notLowRank);
                        throw new IllegalArgumentException(offGrid.getMessage() + "; nor is it a grid image plus a "
                                + "low-rank term: " + notLowRank.getMessage(), offGrid);
                    }
                    packed = lowRank.packed();
                }
                if (weightPlacement) {
                    inputScale = s;
                }
            } else if (!Arrays.equals(image, source.get(name + ".weight").toFloatArray())) {
                f32 = image;
            }
        }
        QuantSpec ispec = lq.input();
        if (ispec != null && !ispec.dynamic() && neverRun && tap.quant() != null
                && !tap.quant().staticRanges().containsKey(name + ".in")) {
            ispec = null; // no static range exists for a linear no forward runs, and none is needed
        }
        InputQuantizer quantizer = null;
        String reason = null;
        if (ispec != null) {
            if (tap.quant() == null) {
                throw new IllegalArgumentException(what + ": the plan quantizes its input (" + ispec + ") but the "
                        + "method's result has no fake-quantization tap");
            }
            InputQuantizer.Spec rs = runtimeSpec(ispec);
            reason = packed == null ? "the weight is not packed"
                    : InputQuantizer.integerUnsupported(rs, packed.format(), packed.groupSize(), k);
            InputQuantizer.Execution exec = reason == null ? InputQuantizer.Execution.INTEGER
                    : InputQuantizer.Execution.FAKE;
            if (rs.dynamic()) {
                quantizer = InputQuantizer.dynamic(rs, exec, k);
            } else {
                Ranges rg = tap.quant().staticRanges().get(name + ".in");
                if (rg == null) {
                    throw new IllegalArgumentException(what + ": the fake-quantization tap has no static ranges for "
                            + name + ".in (spec " + ispec + ")");
                }
                quantizer = InputQuantizer.fromRanges(rs, exec, k, rg.lo(), rg.hi());
            }
        }
        String methodPlacement = inputScale == null ? null : placement;
        return new Exported(name, n, k, packed, wspec, f32, inputScale, methodPlacement, folded, lowRank, ispec,
                quantizer, reason);
    }

    /**
     * The norm tensors a scale placement {@code norm:<name>.weight} changed: the weight and, for
     * LayerNorm, the bias (the named weight alone when dividing by s changed no value).
     */
    private static List<String> foldedNorms(String norm, Map<String, float[]> changed) {
        String base = norm.substring(0, norm.lastIndexOf('.'));
        List<String> out = new ArrayList<>();
        for (String suffix : List.of(".weight", ".bias")) {
            if (changed.containsKey(base + suffix)) {
                out.add(base + suffix);
            }
        }
        return out.isEmpty() ? List.of(norm) : out;
    }

    /** The runtime form of a uniform input spec (percentile clipping was refused with the plan). */
    static InputQuantizer.Spec runtimeSpec(QuantSpec a) {
        InputQuantizer.Granularity g = switch (a.granularity()) {
            case PER_TENSOR -> InputQuantizer.Granularity.PER_TENSOR;
            case PER_CHANNEL -> InputQuantizer.Granularity.PER_CHANNEL;
            case PER_TOKEN -> InputQuantizer.Granularity.PER_TOKEN;
            case PER_GROUP -> InputQuantizer.Granularity.PER_GROUP;
            case BLOCK -> throw new IllegalArgumentException("input spec " + a + " has no runtime form");
        };
        double clip = a.clip().kind() == QuantSpec.ClipKind.RATIO ? a.clip().value() : 1.0;
        return new InputQuantizer.Spec(a.bits(), a.symmetric(), g, a.groupSize(), a.dynamic(), clip);
    }

    /** w (N, K) · diag(s), element by element in float as the smoothing methods compute it. */
    private static float[] scaleColumns(float[] w, int n, int k, float[] s) {
        float[] out = new float[n * k];
        for (int r = 0; r < n; r++) {
            for (int j = 0; j < k; j++) {
                out[r * k + j] = w[r * k + j] * s[j];
            }
        }
        return out;
    }

    /** Names of the per-layer norm vectors a method may fold scales into. */
    static List<String> normNames(LlavaModel model) {
        List<String> names = new ArrayList<>();
        for (int i = 0; i < model.config().visionConfig().numHiddenLayers(); i++) {
            for (String ln : List.of("layer_norm1", "layer_norm2")) {
                names.add("vision.layers." + i + "." + ln + ".weight");
                names.add("vision.layers." + i + "." + ln + ".bias");
            }
        }
        for (int i = 0; i < model.config().textConfig().numHiddenLayers(); i++) {
            names.add("llm.layers." + i + ".input_layernorm.weight");
            names.add("llm.layers." + i + ".post_attention_layernorm.weight");
        }
        return names;
    }

    /** Norm vectors whose live values differ from the checkpoint's, by canonical name. */
    private static Map<String, float[]> changedNorms(LlavaModel model, Map<String, TensorEntry> source) {
        Map<String, float[]> out = new LinkedHashMap<>();
        for (String name : normNames(model)) {
            float[] live = model.normVector(name);
            if (!Arrays.equals(live, source.get(name).toFloatArray())) {
                out.put(name, live.clone());
            }
        }
        return out;
    }

    private static Summary summary(Path out, Map<String, Exported> linears) {
        int packed = 0;
        long packedBytes = 0;
        long f32Bytes = 0;
        long extra = 0;
        int integer = 0;
        int fake = 0;
        int folded = 0;
        int runtime = 0;
        int lowRank = 0;
        for (Exported e : linears.values()) {
            if (e.packed() != null) {
                packed++;
                packedBytes += e.packed().byteSize();
                f32Bytes += 4L * e.n() * e.k();
            }
            if (e.lowRank() != null) {
                lowRank++;
                extra += 4L * e.lowRank().rank() * (e.n() + e.k());
            }
            if (e.inputScale() != null) {
                runtime++;
                extra += 4L * e.k();
            }
            if (!e.foldedNorms().isEmpty()) {
                folded++;
            }
            if (e.quantizer() != null) {
                if (e.quantizer().execution() == InputQuantizer.Execution.INTEGER) {
                    integer++;
                } else {
                    fake++;
                }
                if (rangeTensor(e.quantizer())) {
                    extra += 8L * e.quantizer().staticLo().length;
                }
            }
        }
        return new Summary(out, packed, packedBytes, f32Bytes, extra, integer, fake, folded, runtime, lowRank);
    }

    private static ObjectNode config(String method, QuantPlan plan, Map<String, Exported> linears, JsonNode manifest) {
        ObjectNode c = JSON.createObjectNode();
        c.put("format", QuantizedLayouts.FORMAT);
        c.put("version", FORMAT_VERSION);
        String v = QuantizedExport.class.getPackage().getImplementationVersion();
        c.put("tool_version", v == null ? "dev" : v);
        c.put("method", method);
        try {
            c.set("plan", JSON.readTree(plan.toJson()));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        ObjectNode t = c.putObject("tensors");
        ObjectNode scales = c.putObject("input_scales");
        ObjectNode acts = c.putObject("activations");
        for (Exported e : linears.values()) {
            PackedMatrix p = e.packed();
            if (p != null) {
                ObjectNode o = t.putObject(e.name());
                o.put("format", p.format().name());
                o.put("group_size", p.groupSize());
                o.put("symmetric", p.symmetric());
                o.put("spec", e.weightSpec().toString());
                o.putArray("shape").add(p.rows()).add(p.cols());
                if (e.lowRank() != null) {
                    ObjectNode lr = o.putObject("lorc");
                    lr.put("rank", e.lowRank().rank());
                    lr.put("dtype", DType.F32.name());
                    lr.put("max_deviation", e.lowRank().maxDeviation());
                }
            }
            if (!e.foldedNorms().isEmpty()) {
                ObjectNode o = scales.putObject(e.name());
                o.put("placement", QuantizedLayouts.PLACEMENT_NORM);
                ArrayNode norms = o.putArray("norms");
                e.foldedNorms().forEach(norms::add);
            } else if (e.inputScale() != null) {
                ObjectNode o = scales.putObject(e.name());
                o.put("placement", QuantizedLayouts.PLACEMENT_RUNTIME);
                o.put("method_placement", e.methodPlacement());
            }
            if (e.quantizer() != null) {
                acts.set(e.name(), activation(e));
            }
        }
        ObjectNode cal = c.putObject("calibration");
        for (String key : List.of("seed", "n", "split", "samples", "tool_version")) {
            if (manifest.has(key)) {
                cal.set(key, manifest.get(key));
            }
        }
        if (manifest.has("model")) {
            cal.set("model_digest", manifest.get("model").path("digest"));
        }
        return c;
    }

    private static ObjectNode activation(Exported e) {
        InputQuantizer q = e.quantizer();
        InputQuantizer.Spec s = q.spec();
        ObjectNode o = JSON.createObjectNode();
        o.put("spec", e.inputSpec().toString());
        o.put("bits", s.bits());
        o.put("symmetric", s.symmetric());
        o.put("granularity", s.granularity().name().toLowerCase(java.util.Locale.ROOT));
        o.put("group_size", s.groupSize());
        o.put("dynamic", s.dynamic());
        o.put("clip_ratio", s.clipRatio());
        o.put("path", q.execution() == InputQuantizer.Execution.INTEGER ? QuantizedLayouts.PATH_INTEGER
                : QuantizedLayouts.PATH_FAKE);
        if (e.fakeReason() != null) {
            o.put("reason", e.fakeReason());
        }
        if (!s.dynamic()) {
            ObjectNode st = o.putObject("static");
            if (rangeTensor(q)) {
                st.put("ranges_tensor", QuantizedLayouts.RANGES_TENSOR);
                if (s.granularity() == InputQuantizer.Granularity.PER_TOKEN) {
                    st.put("positions", q.staticLo().length);
                }
            } else {
                st.putArray("range").add(q.staticLo()[0]).add(q.staticHi()[0]);
                st.put("scale", q.staticScales()[0]);
                st.put("zero_point", q.staticZeroPoints()[0]);
            }
        }
        return o;
    }

    private static void write(Path out, Checkpoint source, Map<String, Exported> linears,
                              Map<String, float[]> changedNorms, ObjectNode config, Path modelDir, BeforeRename hook) {
        Path tmp;
        try {
            Files.createDirectories(out.getParent());
            tmp = AtomicFiles.tempSiblingDirectory(out);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot create a temporary directory beside " + out, e);
        }
        try {
            SafeTensorsWriter w = new SafeTensorsWriter().metadata("format", "pt")
                    .metadata("quantization", QuantizedLayouts.FORMAT);
            for (Map.Entry<String, TensorEntry> e : source.tensors().entrySet()) {
                String key = e.getKey();
                String canon = LlavaWeights.canonicalName(key);
                float[] norm = canon == null ? null : changedNorms.get(canon);
                if (norm != null) {
                    w.addFloats(key, DType.F32, new long[] {norm.length}, norm);
                    continue;
                }
                String prefix = canon != null && canon.endsWith(".weight")
                        ? canon.substring(0, canon.length() - ".weight".length()) : null;
                Exported x = prefix == null ? null : linears.get(prefix);
                if (x == null) {
                    w.add(key, e.getValue());
                    continue;
                }
                addLinear(w, key.substring(0, key.length() - ".weight".length()), x, e.getValue());
            }
            w.write(tmp.resolve(WEIGHTS_FILE));
            Files.writeString(tmp.resolve(QuantizedLayouts.FILE), JSON.writeValueAsString(config));
            for (String f : COPIED_FILES) {
                Path src = modelDir.resolve(f);
                if (Files.isRegularFile(src)) {
                    Files.copy(src, tmp.resolve(f));
                }
            }
            hook.run(tmp);
            try {
                Files.move(tmp, out, StandardCopyOption.ATOMIC_MOVE);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(tmp, out);
            }
        } catch (IOException | RuntimeException e) {
            deleteTree(tmp, e);
            if (e instanceof IOException io) {
                throw new UncheckedIOException("writing " + out + " failed", io);
            }
            throw (RuntimeException) e;
        }
    }

    /** The tensors of one exported linear under the source key prefix base (in place of {@code base.weight}). */
    private static void addLinear(SafeTensorsWriter w, String base, Exported x, TensorEntry sourceWeight) {
        PackedMatrix p = x.packed();
        if (p != null) {
            w.addSegment(base + LlavaWeights.QWEIGHT, DType.U8, new long[] {p.rows(), p.rowBytes()}, p.codes());
            w.addFloats(base + LlavaWeights.SCALES, DType.F32, new long[] {p.rows(), p.groups()},
                    PackedWeights.scales(p));
            if (!p.symmetric() && p.format().isUniform()) {
                w.addBytes(base + LlavaWeights.ZEROS, DType.U8, new long[] {p.rows(), p.groups()},
                        PackedWeights.zeros(p));
            }
        } else if (x.f32Weight() != null) {
            w.addFloats(base + ".weight", DType.F32, new long[] {x.n(), x.k()}, x.f32Weight());
        } else {
            w.add(base + ".weight", sourceWeight);
        }
        if (x.lowRank() != null) {
            int r = x.lowRank().rank();
            w.addFloats(base + LlavaWeights.LORC_U, DType.F32, new long[] {x.n(), r}, x.lowRank().u());
            w.addFloats(base + LlavaWeights.LORC_V, DType.F32, new long[] {r, x.k()}, x.lowRank().v());
        }
        if (x.inputScale() != null) {
            w.addFloats(base + LlavaWeights.INPUT_SCALE, DType.F32, new long[] {x.k()}, x.inputScale());
        }
        InputQuantizer q = x.quantizer();
        if (q != null && rangeTensor(q)) {
            int n = q.staticLo().length;
            float[] range = new float[2 * n]; // (2, K) or (2, positions): lo, hi
            System.arraycopy(q.staticLo(), 0, range, 0, n);
            System.arraycopy(q.staticHi(), 0, range, n, n);
            w.addFloats(base + LlavaWeights.ACT_RANGE, DType.F32, new long[] {2, n}, range);
        }
    }

    /** Whether a quantizer's static ranges go into the {@code .act_range} tensor (per channel or token position). */
    private static boolean rangeTensor(InputQuantizer q) {
        InputQuantizer.Granularity g = q.spec().granularity();
        return !q.spec().dynamic() && (g == InputQuantizer.Granularity.PER_CHANNEL
                || g == InputQuantizer.Granularity.PER_TOKEN);
    }

    private static void deleteTree(Path dir, Exception cause) {
        if (!Files.exists(dir)) {
            return;
        }
        try (Stream<Path> s = Files.walk(dir)) {
            for (Path p : s.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        } catch (IOException e) {
            cause.addSuppressed(e);
        }
    }
}
