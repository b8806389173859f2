package org.qvlm4j.quant.export;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Comparator;
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
import org.qvlm4j.model.Linear;
import org.qvlm4j.model.LlavaModel;
import org.qvlm4j.model.LlavaWeights;
import org.qvlm4j.model.QuantizedLayouts;
import org.qvlm4j.quant.LinearQuant;
import org.qvlm4j.quant.QuantPlan;
import org.qvlm4j.quant.QuantSpec;
import org.qvlm4j.quant.TensorCategory;
import org.qvlm4j.quant.calib.CalibrationStats;
import org.qvlm4j.quant.methods.QuantMethod;
import org.qvlm4j.quant.methods.QuantResult;

/**
 * Writes a quantized checkpoint: runs a {@link QuantMethod} on a model, re-expresses every planned
 * linear's fake-quantized weight exactly as packed codes ({@link PackedWeights}) and writes a model
 * directory that {@link LlavaModel#load} reads with the low-bit kernels.
 *
 * <p>Layout: {@code model.safetensors} holds, under the source checkpoint's own key names,
 * {@code <prefix>.qweight} (U8 packed codes), {@code <prefix>.scales} (F32 (N, groups)) and, for
 * asymmetric uniform formats, {@code <prefix>.zeros} (U8 (N, groups)) in place of each quantized
 * {@code <prefix>.weight}, and every other tensor unchanged; {@value QuantizedLayouts#FILE}
 * records the method, the plan, each packed linear's format / group size / spec, the calibration
 * manifest's sample pids and seed and the tool version; config, tokenizer and preprocessor files
 * are copied. Everything is written into a temporary sibling directory that is renamed at the end.
 *
 * <p>Left out (refused with a message): activation quantization (the checkpoint would need static
 * ranges and the runtime a quantized-input path), methods that fold per-channel scales into norms
 * or inputs (SmoothQuant, AWQ: the changed norms and input scaling are not stored), weights not on
 * a per-row/group grid (ZeroQuant-V2's low-rank compensation, NF4 double quantization), bit widths
 * other than 4, 6 and 8, and groups the kernels cannot express.
 */
public final class QuantizedExport {
    public static final int FORMAT_VERSION = 1;
    public static final String WEIGHTS_FILE = Checkpoint.SINGLE_FILE;
    /** Files copied verbatim when the source model has them. */
    public static final List<String> COPIED_FILES = List.of("config.json", "generation_config.json", "tokenizer.json",
            "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model", "added_tokens.json",
            "chat_template.json", "preprocessor_config.json");

    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    /** What to export: source model, its calibration statistics, the target directory, method and plan. */
    public record Request(Path modelDir, Path statsDir, Path out, QuantMethod method, QuantPlan plan) {}

    /** What was written: packed linears, their packed bytes and the bytes their F32 weights would take. */
    public record Summary(Path out, int packedLinears, long packedBytes, long f32Bytes) {}

    /** A step run after the tensors are written and before the rename (tests inject failures here). */
    @FunctionalInterface
    interface BeforeRename {
        void run(Path tmpDir) throws IOException;
    }

    private QuantizedExport() {
    }

    public static Summary run(Request r) {
        return run(r, tmp -> { });
    }

    static Summary run(Request r, BeforeRename hook) {
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
            Map<String, float[]> originals = new LinkedHashMap<>(); // name → (N, K) pre-quantization weight
            for (Linear l : model.linears()) {
                if (r.plan().forLinear(l.name()).weight() != null) {
                    originals.put(l.name(), l.weight().toFloatArray());
                }
            }
            QuantResult res = r.method().apply(model, r.plan(), stats);
            if (res.scales() != null && !res.scales().isEmpty()) {
                throw new IllegalArgumentException("method " + res.method() + " folds per-channel scales into norms or "
                        + "inputs (" + res.scales().size() + " linears, e.g. " + res.scales().keySet().iterator().next()
                        + "); exporting the changed norms and input scaling is not supported yet");
            }
            if (res.tap() != null) {
                throw new IllegalArgumentException("method " + res.method() + " needs an activation tap at runtime; "
                        + "exporting activation quantization is not supported yet");
            }
            Map<String, PackedMatrix> packed = new LinkedHashMap<>();
            Map<String, QuantSpec> specs = new LinkedHashMap<>();
            long f32Bytes = 0;
            long packedBytes = 0;
            for (Map.Entry<String, WeightMatrix> e : res.weights().entrySet()) {
                WeightMatrix w = e.getValue();
                QuantSpec spec = r.plan().forLinear(e.getKey()).weight();
                PackedMatrix p = PackedWeights.pack(res.method() + " linear " + e.getKey(), w.toFloatArray(),
                        originals.get(e.getKey()), w.rows(), w.cols(), spec);
                packed.put(e.getKey(), p);
                specs.put(e.getKey(), spec);
                f32Bytes += 4L * w.rows() * w.cols();
                packedBytes += p.byteSize();
            }
            ObjectNode config = config(res.method(), r.plan(), packed, specs, stats.manifest());
            write(out, source, packed, config, r.modelDir(), hook);
            return new Summary(out, packed.size(), packedBytes, f32Bytes);
        }
    }

    private static void checkPlan(QuantPlan plan) {
        for (Map.Entry<TensorCategory, LinearQuant> e : plan.entries().entrySet()) {
            if (e.getValue().input() != null) {
                throw new IllegalArgumentException("plan quantizes the inputs of " + e.getKey().key() + " ("
                        + e.getValue().input() + "): quantized checkpoints hold weight-only quantization so far; "
                        + "use --abits 16 (e.g. W8A16, W4A16)");
            }
        }
        if (plan.entry(TensorCategory.EMBEDDINGS).weight() != null) {
            throw new IllegalArgumentException("plan quantizes EMBEDDINGS (" + plan.entry(TensorCategory.EMBEDDINGS)
                    + "): the embedding table is not a linear and has no packed form");
        }
        if (plan.isFloatingPoint()) {
            throw new IllegalArgumentException("plan quantizes nothing: a quantized checkpoint needs at least one "
                    + "quantized weight");
        }
    }

    private static ObjectNode config(String method, QuantPlan plan, Map<String, PackedMatrix> packed,
                                     Map<String, QuantSpec> specs, JsonNode manifest) {
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
        for (Map.Entry<String, PackedMatrix> e : packed.entrySet()) {
            PackedMatrix p = e.getValue();
            ObjectNode o = t.putObject(e.getKey());
            o.put("format", p.format().name());
            o.put("group_size", p.groupSize());
            o.put("symmetric", p.symmetric());
            o.put("spec", specs.get(e.getKey()).toString());
            o.putArray("shape").add(p.rows()).add(p.cols());
        }
        c.putObject("activations");
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

    private static void write(Path out, Checkpoint source, Map<String, PackedMatrix> packed, ObjectNode config,
                              Path modelDir, BeforeRename hook) {
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
                String prefix = canon != null && canon.endsWith(".weight")
                        ? canon.substring(0, canon.length() - ".weight".length()) : null;
                PackedMatrix p = prefix == null ? null : packed.get(prefix);
                if (p == null) {
                    w.add(key, e.getValue());
                    continue;
                }
                String base = key.substring(0, key.length() - ".weight".length());
                w.addSegment(base + LlavaWeights.QWEIGHT, DType.U8, new long[] {p.rows(), p.rowBytes()}, p.codes());
                w.addFloats(base + LlavaWeights.SCALES, DType.F32, new long[] {p.rows(), p.groups()},
                        PackedWeights.scales(p));
                if (!p.symmetric() && p.format().isUniform()) {
                    w.addBytes(base + LlavaWeights.ZEROS, DType.U8, new long[] {p.rows(), p.groups()},
                            PackedWeights.zeros(p));
                }
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
