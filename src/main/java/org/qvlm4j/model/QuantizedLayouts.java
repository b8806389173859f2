package org.qvlm4j.model;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;
import org.qvlm4j.kernels.QuantFormat;

/**
 * Reads the packed-linear layouts from a quantized checkpoint's {@value #FILE} (written by
 * {@code org.qvlm4j.quant.export.QuantizedExport}): its {@code tensors} object maps each packed
 * linear's canonical name to {@code {"format": "INT4", "group_size": 32, "symmetric": false, ...}}.
 * A directory without the file is an ordinary floating-point checkpoint (empty map). Leaves out
 * activation quantization: a config that asks for it is refused, since the runtime would silently
 * run inputs in floating point.
 */
public final class QuantizedLayouts {
    public static final String FILE = "quantization_config.json";
    public static final String FORMAT = "qvlm4j-quantized";

    private QuantizedLayouts() {
    }

    public static Map<String, LlavaWeights.PackedLayout> read(Path modelDir) {
        Path f = modelDir.resolve(FILE);
        Map<String, LlavaWeights.PackedLayout> out = new LinkedHashMap<>();
        if (!Files.isRegularFile(f)) {
            return out;
        }
        JsonNode root;
        try {
            root = new ObjectMapper().readTree(f.toFile());
        } catch (IOException e) {
            throw new UncheckedIOException(f + ": cannot read quantization config", e);
        }
        if (!FORMAT.equals(root.path("format").asText())) {
            throw new IllegalArgumentException(f + ": key format: expected '" + FORMAT + "', got '"
                    + root.path("format").asText() + "'");
        }
        if (root.path("activations").size() > 0) {
            throw new IllegalArgumentException(f + ": key activations: expected none (the runtime loads weight-only "
                    + "quantized checkpoints), got " + root.path("activations").size() + " entries");
        }
        JsonNode tensors = root.path("tensors");
        if (!tensors.isObject()) {
            throw new IllegalArgumentException(f + ": key tensors: expected an object, got " + tensors.getNodeType());
        }
        for (Iterator<Map.Entry<String, JsonNode>> it = tensors.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            JsonNode t = e.getValue();
            QuantFormat fmt;
            try {
                fmt = QuantFormat.valueOf(t.path("format").asText());
            } catch (IllegalArgumentException ex) {
                throw new IllegalArgumentException(f + ": key tensors." + e.getKey() + ".format: expected one of INT8, "
                        + "INT6, INT4, NF4, got '" + t.path("format").asText() + "'", ex);
            }
            int group = t.path("group_size").asInt(-1);
            if (group <= 0) {
                throw new IllegalArgumentException(f + ": key tensors." + e.getKey() + ".group_size: expected > 0, got "
                        + t.path("group_size"));
            }
            out.put(e.getKey(), new LlavaWeights.PackedLayout(fmt, group, t.path("symmetric").asBoolean(false)));
        }
        return out;
    }
}
