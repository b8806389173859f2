package org.qvlm4j.quant.methods;

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
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.Consumer;
import org.qvlm4j.io.AtomicFiles;
import org.qvlm4j.io.config.LlamaTextConfig;
import org.qvlm4j.io.config.LlavaConfig;
import org.qvlm4j.io.safetensors.Checkpoint;
import org.qvlm4j.io.safetensors.SafeTensorsWriter;
import org.qvlm4j.io.safetensors.TensorEntry;
import org.qvlm4j.kernels.DType;
import org.qvlm4j.model.LlavaWeights;
import org.qvlm4j.quant.calib.CalibrationStats;
import org.qvlm4j.quant.calib.Calibrator;
import org.qvlm4j.quant.calib.ModelFingerprint;

/**
 * SmoothQuant's per-channel scales folded into the weights of a floating-point checkpoint, so that
 * the written model computes the same function (up to float rounding) with no run-time scale, and
 * every later step (calibration, any quantization method) sees the smoothed activations.
 *
 * <p>For a linear with input X and scale s (SmoothQuant's s_j = max|X_j|^α / max|W_{:,j}|^(1−α),
 * {@link SmoothQuant#scales}) the weight's columns are multiplied by s and the producer of X
 * divides channel j by s_j. Producers that admit the division exactly:
 * <ul>
 *   <li>a norm feeding q/k/v (input_layernorm, CLIP layer_norm1), gate/up (post_attention_layernorm)
 *       or CLIP's fc1 (layer_norm2): its weight (and bias) divided by s, one s per group with the
 *       column absmax taken over the group's members;</li>
 *   <li>attention feeding o_proj (CLIP out_proj): the attention output is a convex combination of
 *       value rows, so channel j scales with v_proj's output row j (and its bias); exact when every
 *       query head has its own key/value head (the scale would otherwise have to be shared by the
 *       heads of a group);</li>
 *   <li>SwiGLU feeding down_proj: silu(gate)·up is linear in up's output, so up_proj's row j (and
 *       bias) is divided by s_j.</li>
 * </ul>
 * CLIP's fc2 (after GELU) and the projector (after GELU) are left as they are, and so are CLIP layers
 * past the feature layer (never run). The scales come
 * from the statistics of the source model; each transform changes only its own linear's input, so
 * all of them stay valid while the others are applied. o_proj and down_proj are smoothed first, so
 * the norm-fed groups' column absmax sees the v_proj and up_proj actually written.
 */
public final class SmoothedCheckpoint {
    /** Which part of the model is smoothed. */
    public enum Scope {
        /** The language model's linears only. */
        LLM,
        /** The language model's and the vision tower's (CLIP's fc2 excepted). */
        ALL
    }

    /** What was smoothed: canonical linear name → the scale applied to its input channels. */
    public record Summary(Path out, double alpha, Scope scope, Map<String, float[]> scales, List<String> skipped) {}

    /** The manifest written beside the weights. */
    public static final String MANIFEST = "smoothing.json";

    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);
    private static final List<String> COPIED = List.of(LlavaConfig.FILE_NAME, "generation_config.json", "tokenizer.json",
            "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model", "added_tokens.json",
            "chat_template.json", "preprocessor_config.json", "train_manifest.json");

    private final Map<String, float[]> values = new LinkedHashMap<>(); // canonical → values (modified ones)
    private final Map<String, TensorEntry> entries = new HashMap<>();  // canonical → source entry
    private final Map<String, float[]> scales = new LinkedHashMap<>();
    private final List<String> skipped = new ArrayList<>();
    private final CalibrationStats stats;
    private final double alpha;

    private SmoothedCheckpoint(Checkpoint ckpt, CalibrationStats stats, double alpha) {
        this.stats = stats;
        this.alpha = alpha;
        for (TensorEntry e : ckpt.tensors().values()) {
            String c = LlavaWeights.canonicalName(e.name());
            if (c != null) {
                entries.put(c, e);
            }
        }
    }

    /**
     * Reads modelDir, smooths it with the statistics (computed on that very model) and writes the
     * result to out (created; must not exist), atomically: the directory appears complete or not at
     * all.
     */
    public static Summary write(Path modelDir, CalibrationStats stats, double alpha, Scope scope, Path out) {
        if (!(alpha >= 0 && alpha <= 1)) {
            throw new IllegalArgumentException("smoothing alpha must be in [0, 1], got " + alpha);
        }
        if (Files.exists(out)) {
            throw new IllegalArgumentException(out + ": already exists; choose a new output directory");
        }
        ModelFingerprint fp = ModelFingerprint.of(modelDir);
        String expected = stats.manifest().path("model").path("digest").asText();
        if (!expected.equals(fp.digest())) {
            throw new IllegalArgumentException(stats.directory().resolve(CalibrationStats.MANIFEST_FILE)
                    + ": key model.digest: statistics were computed for fingerprint " + expected + " but " + modelDir
                    + " has fingerprint " + fp.digest());
        }
        LlavaConfig cfg = LlavaConfig.load(modelDir);
        try (Checkpoint ckpt = Checkpoint.open(modelDir)) {
            SmoothedCheckpoint s = new SmoothedCheckpoint(ckpt, stats, alpha);
            s.smoothLlm(cfg.textConfig());
            if (scope == Scope.ALL) {
                s.smoothVision(cfg.visionFeatureLayerIndex()); // the layers whose output reaches the projector
            }
            s.writeTo(modelDir, ckpt, out, scope, fp.digest());
            return new Summary(out, alpha, scope, Map.copyOf(s.scales), List.copyOf(s.skipped));
        }
    }

    /** A smoothed model directory and its statistics. */
    public record Prepared(Path model, Path stats, boolean reused) {}

    /**
     * The smoothed model of modelDir and its statistics under dir ({@code dir/model},
     * {@code dir/stats}), the statistics being stats' calibration repeated on the smoothed model
     * ({@link Calibrator#repeat}). What an earlier call left there is reused when it was made from
     * the same model, statistics, alpha and scope, and refused when it was not.
     */
    public static Prepared prepare(Path modelDir, CalibrationStats stats, double alpha, Scope scope, Path dir,
                                   int threads, Consumer<String> log) {
        Path model = dir.resolve("model");
        Path smoothedStats = dir.resolve("stats");
        boolean reused = Files.isDirectory(model);
        if (reused) {
            checkManifest(model, modelDir, stats, alpha, scope);
        } else {
            Summary s = write(modelDir, stats, alpha, scope, model);
            log.accept(String.format(Locale.ROOT, "smooth: folded alpha %s scales into %d linears (scope %s); wrote %s",
                    alpha, s.scales().size(), scope.name().toLowerCase(Locale.ROOT), model));
        }
        if (Files.isDirectory(smoothedStats)) {
            try (CalibrationStats old = CalibrationStats.load(smoothedStats)) {
                String want = ModelFingerprint.of(model).digest();
                String got = old.manifest().path("model").path("digest").asText();
                if (!want.equals(got)) {
                    throw new IllegalArgumentException(smoothedStats.resolve(CalibrationStats.MANIFEST_FILE)
                            + ": key model.digest: expected " + want + " (the smoothed model " + model + "), got " + got);
                }
            }
        } else {
            reused = false;
            Calibrator.Result r = Calibrator.run(Calibrator.repeat(stats, model, smoothedStats, threads), p -> { });
            log.accept(String.format(Locale.ROOT, "smooth: recalibrated the smoothed model on %d prompts (%d tokens) "
                    + "in %.1f s; wrote %s", r.samples(), r.tokens(), r.seconds(), smoothedStats));
        }
        return new Prepared(model, smoothedStats, reused);
    }

    /** Refuses a smoothed model made from another source, statistics, alpha or scope. */
    private static void checkManifest(Path model, Path modelDir, CalibrationStats stats, double alpha, Scope scope) {
        Path f = model.resolve(MANIFEST);
        JsonNode m;
        try {
            m = JSON.readTree(f.toFile());
        } catch (IOException e) {
            throw new IllegalArgumentException(f + ": cannot read the smoothing manifest (" + e.getMessage()
                    + "); remove " + model + " to smooth again", e);
        }
        String[][] checks = {
            {"alpha", Double.toString(alpha), m.path("alpha").asText()},
            {"scope", scope.name().toLowerCase(Locale.ROOT), m.path("scope").asText()},
            {"source.digest", ModelFingerprint.of(modelDir).digest(), m.path("source").path("digest").asText()},
            {"stats", stats.directory().toAbsolutePath().normalize().toString(), m.path("stats").asText()},
        };
        for (String[] c : checks) {
            if (!c[1].equals(c[2])) {
                throw new IllegalArgumentException(f + ": key " + c[0] + ": expected " + c[1] + ", got " + c[2]
                        + " (made by another run; remove " + model.getParent() + " or choose another directory)");
            }
        }
    }

    private void smoothLlm(LlamaTextConfig t) {
        boolean ownKv = t.numKeyValueHeads() == t.numAttentionHeads();
        for (int i = 0; i < t.numHiddenLayers(); i++) {
            String p = "llm.layers." + i;
            if (ownKv) {
                intoRows(p + ".self_attn.o_proj", p + ".self_attn.v_proj");
            } else {
                skipped.add(p + ".self_attn.o_proj (" + t.numAttentionHeads() + " query heads share "
                        + t.numKeyValueHeads() + " key/value heads)");
            }
            intoRows(p + ".mlp.down_proj", p + ".mlp.up_proj");
            intoNorm(List.of(p + ".self_attn.q_proj", p + ".self_attn.k_proj", p + ".self_attn.v_proj"),
                    List.of(p + ".input_layernorm.weight"));
            intoNorm(List.of(p + ".mlp.gate_proj", p + ".mlp.up_proj"), List.of(p + ".post_attention_layernorm.weight"));
        }
    }

    private void smoothVision(int layers) {
        for (int i = 0; i < layers; i++) {
            String p = "vision.layers." + i;
            intoRows(p + ".self_attn.out_proj", p + ".self_attn.v_proj");
            intoNorm(List.of(p + ".self_attn.q_proj", p + ".self_attn.k_proj", p + ".self_attn.v_proj"),
                    List.of(p + ".layer_norm1.weight", p + ".layer_norm1.bias"));
            intoNorm(List.of(p + ".mlp.fc1"), List.of(p + ".layer_norm2.weight", p + ".layer_norm2.bias"));
            skipped.add(p + ".mlp.fc2 (its input comes through GELU)");
        }
    }

    /** Smooths consumer with the scale divided out of producer's output rows (weight and bias). */
    private void intoRows(String consumer, String producer) {
        float[] w = tensor(consumer + ".weight");
        int k = cols(consumer);
        int n = w.length / k;
        float[] s = SmoothQuant.scales(activationAbsMax(consumer, k), SmoothQuant.columnAbsMax(w, n, k), alpha);
        values.put(consumer + ".weight", MethodSupport.scaleColumns(w, n, k, s));
        float[] pw = tensor(producer + ".weight");
        int pk = cols(producer);
        if (pw.length / pk != k) {
            throw new IllegalArgumentException(producer + ".weight: " + pw.length / pk + " output rows but " + consumer
                    + " reads " + k + " channels");
        }
        float[] scaled = pw.clone();
        for (int r = 0; r < k; r++) {
            for (int j = 0; j < pk; j++) {
                scaled[r * pk + j] /= s[r];
            }
        }
        values.put(producer + ".weight", scaled);
        divideVector(producer + ".bias", s, false);
        scales.put(consumer, s);
    }

    /** Smooths the linears of one norm-fed group with one scale, divided out of the norm's parameters. */
    private void intoNorm(List<String> members, List<String> norm) {
        int k = cols(members.getFirst());
        float[] wMax = new float[k];
        for (String m : members) {
            float[] w = tensor(m + ".weight");
            float[] c = SmoothQuant.columnAbsMax(w, w.length / k, k);
            for (int j = 0; j < k; j++) {
                wMax[j] = Math.max(wMax[j], c[j]);
            }
        }
        float[] s = SmoothQuant.scales(activationAbsMax(members.getFirst(), k), wMax, alpha);
        for (String m : members) {
            float[] w = tensor(m + ".weight");
            values.put(m + ".weight", MethodSupport.scaleColumns(w, w.length / k, k, s));
            scales.put(m, s);
        }
        for (String n : norm) {
            divideVector(n, s, true);
        }
    }

    private void divideVector(String name, float[] s, boolean required) {
        if (!entries.containsKey(name)) {
            if (required) {
                throw new IllegalArgumentException("checkpoint has no tensor " + name + " to fold the smoothing scale into");
            }
            return;
        }
        float[] v = tensor(name).clone();
        if (v.length != s.length) {
            throw new IllegalArgumentException(name + ": " + v.length + " channels, expected " + s.length);
        }
        for (int j = 0; j < v.length; j++) {
            v[j] /= s[j];
        }
        values.put(name, v);
    }

    private float[] activationAbsMax(String linear, int k) {
        String site = linear + ".in";
        if (!stats.has(site, "channel_absmax")) {
            throw new IllegalArgumentException(stats.directory() + ": no channel_absmax for site " + site
                    + "; calibrate the source model with every linear's input");
        }
        float[] a = stats.floats(site, "channel_absmax");
        if (a.length != k) {
            throw new IllegalArgumentException(stats.directory() + ": site " + site + " has " + a.length
                    + " channels, expected " + k);
        }
        return a;
    }

    private float[] tensor(String canonical) {
        float[] v = values.get(canonical);
        if (v != null) {
            return v;
        }
        TensorEntry e = entries.get(canonical);
        if (e == null) {
            throw new IllegalArgumentException("checkpoint has no tensor " + canonical);
        }
        return e.toFloatArray();
    }

    private int cols(String linear) {
        TensorEntry e = entries.get(linear + ".weight");
        if (e == null) {
            throw new IllegalArgumentException("checkpoint has no tensor " + linear + ".weight");
        }
        if (e.rank() != 2) {
            throw new IllegalArgumentException(e.name() + ": expected a matrix, got rank " + e.rank());
        }
        return e.intShape()[1];
    }

    private void writeTo(Path modelDir, Checkpoint ckpt, Path out, Scope scope, String sourceDigest) {
        try {
            Files.createDirectories(out.toAbsolutePath().getParent());
            Path tmp = AtomicFiles.tempSiblingDirectory(out);
            try {
                SafeTensorsWriter w = new SafeTensorsWriter().metadata("format", "pt");
                for (TensorEntry e : ckpt.tensors().values()) {
                    String c = LlavaWeights.canonicalName(e.name());
                    float[] v = c == null ? null : values.get(c);
                    if (v == null) {
                        w.add(e);
                    } else {
                        w.addFloats(e.name(), DType.F32, e.shape(), v);
                    }
                }
                w.write(tmp.resolve(Checkpoint.SINGLE_FILE));
                for (String f : COPIED) {
                    if (Files.exists(modelDir.resolve(f))) {
                        Files.copy(modelDir.resolve(f), tmp.resolve(f));
                    }
                }
                ObjectNode m = JSON.createObjectNode();
                m.put("format", "qvlm4j-smoothed-checkpoint");
                m.put("alpha", alpha);
                m.put("scope", scope.name().toLowerCase(Locale.ROOT));
                ObjectNode src = m.putObject("source");
                src.put("dir", modelDir.toAbsolutePath().normalize().toString());
                src.put("digest", sourceDigest);
                m.put("stats", stats.directory().toAbsolutePath().normalize().toString());
                ArrayNode sm = m.putArray("smoothed");
                scales.keySet().forEach(sm::add);
                ArrayNode sk = m.putArray("left_unsmoothed");
                skipped.forEach(sk::add);
                Files.writeString(tmp.resolve(MANIFEST), JSON.writeValueAsString(m));
                Files.move(tmp, out);
            } catch (IOException | RuntimeException e) {
                AtomicFiles.deleteTreeQuietly(tmp);
                throw e;
            }
        } catch (IOException e) {
            throw new UncheckedIOException(out + ": cannot write the smoothed checkpoint: " + e.getMessage(), e);
        }
    }

}
