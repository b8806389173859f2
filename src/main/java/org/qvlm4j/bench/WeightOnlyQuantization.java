package org.qvlm4j.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.Map;
import java.util.function.Consumer;
import org.qvlm4j.io.AtomicFiles;
import org.qvlm4j.io.config.LlavaConfig;
import org.qvlm4j.model.QuantizedLayouts;
import org.qvlm4j.quant.QuantPlan;
import org.qvlm4j.quant.QuantSpec;
import org.qvlm4j.quant.calib.CalibrationStats;
import org.qvlm4j.quant.calib.Calibrator;
import org.qvlm4j.quant.calib.ModelFingerprint;
import org.qvlm4j.quant.export.QuantizedExport;
import org.qvlm4j.quant.methods.Rtn;

/**
 * A weight-only round-to-nearest copy of a floating-point model, for timing low-bit decode against
 * the model it came from ({@code qvlm4j bench --quantize SPEC}): every linear the presets quantize
 * (vision tower, projector, decoder layers) and lm_head, unless lm_head is tied to the embedding
 * table, get one weight spec (e.g. {@code w4-asym-g128}); inputs stay floating point. The copy is
 * written by {@link QuantizedExport} with {@link Rtn}, so it is the checkpoint {@code qvlm4j
 * quantize --method rtn} writes for the same plan, loaded onto the packed weight-only kernels.
 *
 * <p>Weight-only RTN reads no activations, so the export gets an empty statistics directory (the
 * model's {@link ModelFingerprint}, no sites), made in a temporary directory and removed
 * afterwards. The copy is kept in the work directory under the model's name and the spec, and
 * reused when the model fingerprint it records is the model's. Leaves out: input quantization and
 * other methods (use {@code qvlm4j calibrate} and {@code qvlm4j quantize}), and the patch
 * embedding and token embeddings, which have no packed form.
 */
public final class WeightOnlyQuantization {
    /** The option this class serves, named in its messages. */
    public static final String OPTION = "--quantize";

    private static final ObjectMapper JSON = new ObjectMapper();

    private WeightOnlyQuantization() {
    }

    /** The weight spec of an option value such as {@code w4-asym-g128}; anything else is refused. */
    public static QuantSpec weightSpec(String text) {
        QuantSpec s;
        try {
            s = QuantSpec.parse(text);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(OPTION + " '" + text + "': " + e.getMessage(), e);
        }
        if (s.target() != QuantSpec.Target.WEIGHT) {
            throw new IllegalArgumentException(OPTION + " '" + text + "': expected a weight spec such as "
                    + "w4-asym-g128, got an input spec");
        }
        return s;
    }

    /** The plan: the spec for every linear quantized by default and, when asked, for lm_head. */
    public static QuantPlan plan(QuantSpec weight, boolean withLmHead) {
        QuantPlan.Builder b = QuantPlan.builder().override("all=" + weight);
        if (withLmHead) {
            b.override("lm_head=" + weight);
        }
        return b.build();
    }

    /** Where {@link #ensure} keeps the copy of fpDir for the spec. */
    public static Path target(Path fpDir, Path workDir, QuantSpec weight) {
        Path name = fpDir.toAbsolutePath().normalize().getFileName();
        return workDir.resolve((name == null ? "model" : name.toString()) + "-rtn-" + weight);
    }

    /**
     * The weight-only RTN copy of the floating-point model in fpDir under the spec (see the class
     * comment): written into workDir on first use, afterwards reused. A directory of that name
     * quantized from another model is refused.
     */
    public static Path ensure(Path fpDir, Path workDir, String spec, Consumer<String> progress) {
        QuantSpec weight = weightSpec(spec);
        if (ModelBench.isQuantized(fpDir)) {
            throw new IllegalArgumentException(OPTION + ": " + fpDir + " is already a quantized checkpoint ("
                    + QuantizedLayouts.FILE + " present); expected a floating-point model");
        }
        String digest = ModelFingerprint.of(fpDir).digest();
        Path out = target(fpDir, workDir, weight);
        if (Files.exists(out)) {
            checkMadeFrom(out, fpDir, digest);
            return out;
        }
        boolean withLmHead = !LlavaConfig.load(fpDir).tieWordEmbeddings();
        progress.accept("quantizing " + fpDir + " with round-to-nearest " + weight + " weights ("
                + (withLmHead ? "lm_head included" : "lm_head is tied to the embeddings and stays floating point")
                + ", inputs floating point) to " + out);
        Path stats = null;
        try {
            Files.createDirectories(workDir);
            stats = Files.createTempDirectory(workDir, ".rtn-stats-");
            Path statsDir = stats.resolve("stats");
            ObjectNode manifest = JSON.createObjectNode();
            manifest.put("format", CalibrationStats.FORMAT).put("version", CalibrationStats.FORMAT_VERSION);
            manifest.putObject("model").put("digest", digest).put("dir", fpDir.toAbsolutePath().normalize().toString());
            manifest.put("inputs", "none: weight-only round-to-nearest observes no activations");
            CalibrationStats.write(statsDir, manifest, Map.of(), Calibrator.PERCENTILE_GRID, false);
            QuantizedExport.Summary s = QuantizedExport.run(new QuantizedExport.Request(fpDir, statsDir, out, new Rtn(),
                    plan(weight, withLmHead)));
            progress.accept(String.format(Locale.ROOT, "wrote %s: %d packed linears, %,d bytes", out,
                    s.packedLinears(), s.packedBytes()));
            return out;
        } catch (IOException e) {
            throw new UncheckedIOException(OPTION + ": cannot prepare " + out + ": " + e.getMessage(), e);
        } finally {
            AtomicFiles.deleteTreeQuietly(stats);
        }
    }

    /** Refuses an existing copy that is not a quantized checkpoint of the model with this fingerprint. */
    private static void checkMadeFrom(Path out, Path fpDir, String digest) {
        Path config = out.resolve(QuantizedLayouts.FILE);
        if (!Files.isRegularFile(config)) {
            throw new IllegalArgumentException(OPTION + ": " + out + " exists but is not a quantized checkpoint (no "
                    + QuantizedLayouts.FILE + "); remove it or choose another --work-dir");
        }
        JsonNode recorded;
        try {
            recorded = JSON.readTree(config.toFile()).path("calibration").path("model_digest");
        } catch (IOException e) {
            throw new UncheckedIOException(config + ": " + e.getMessage(), e);
        }
        if (!digest.equals(recorded.asText())) {
            throw new IllegalArgumentException(OPTION + ": " + config + " key calibration.model_digest: expected "
                    + digest + " (the fingerprint of " + fpDir + "), got " + recorded.asText("(none)")
                    + "; it was quantized from another model: remove it or choose another --work-dir");
        }
    }

}
