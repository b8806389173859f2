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
import java.util.Iterator;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import org.qvlm4j.io.AtomicFiles;

/**
 * The checkpoint directory of a Q-VLM search, so that a killed run resumes to the same result:
 * {@value #RUN_FILE} holds the run's identity (configuration, plan, statistics, prompts and VEO's
 * samples; a different run refuses the directory, naming the first key that differs),
 * {@value #VEO_FILE} VEO's state after its last finished epoch, {@value #DEPENDENCY_FILE} the
 * dependency measured on the quantized forward, {@value #PARTITION_FILE} the partition and the
 * dependencies behind it, {@code block-NNNN.json} each finished block's choice and cost (written
 * atomically right after the block), {@code result.json} the report of a finished run. Without a directory nothing is stored and nothing resumes.
 */
final class WorkDir {
    static final String RUN_FILE = "run.json";
    static final String PARTITION_FILE = "partition.json";
    /** VEO's state after its last finished epoch ({@link VeoCheckpoint}). */
    static final String VEO_FILE = "veo.safetensors";
    /** The dependency measured on the quantized forward. */
    static final String DEPENDENCY_FILE = "dependency.json";
    static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    private final Path dir; // or null

    private WorkDir(Path dir) {
        this.dir = dir;
    }

    /** No checkpoints. */
    static WorkDir none() {
        return new WorkDir(null);
    }

    /** Opens (creating) dir for the run with this identity; an existing directory must belong to the same run. */
    static WorkDir open(Path dir, JsonNode identity) {
        JsonNode run = canonical(identity);
        try {
            Files.createDirectories(dir);
        } catch (IOException e) {
            throw new IllegalArgumentException(dir + ": cannot create the work directory: " + e.getMessage(), e);
        }
        Path f = dir.resolve(RUN_FILE);
        if (Files.isRegularFile(f)) {
            JsonNode old = read(f);
            String diff = firstDifference("", old, run);
            if (diff != null) {
                throw new IllegalArgumentException(f + ": key " + diff + " differs from this run (the work directory belongs "
                        + "to another search); use another --work directory or delete it");
            }
        } else {
            write(f, run);
        }
        return new WorkDir(dir);
    }

    boolean enabled() {
        return dir != null;
    }

    Path path() {
        return dir;
    }

    /** The finished block i, if recorded. */
    Optional<JsonNode> block(int i) {
        if (dir == null) {
            return Optional.empty();
        }
        Path f = blockFile(i);
        return Files.isRegularFile(f) ? Optional.of(read(f)) : Optional.empty();
    }

    Path blockFile(int i) {
        return dir.resolve(String.format(Locale.ROOT, "block-%04d.json", i));
    }

    void save(String name, JsonNode n) {
        if (dir != null) {
            write(dir.resolve(name), n);
        }
    }

    void saveBlock(int i, JsonNode n) {
        if (dir != null) {
            write(blockFile(i), n);
        }
    }

    /** The tree as it reads back from its JSON text, so that numbers compare by value and not by node type. */
    static JsonNode canonical(JsonNode n) {
        try {
            return JSON.readTree(JSON.writeValueAsBytes(n));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static JsonNode read(Path f) {
        try {
            return JSON.readTree(Files.readAllBytes(f));
        } catch (IOException e) {
            throw new IllegalArgumentException(f + ": cannot read JSON: " + e.getMessage(), e);
        }
    }

    static void write(Path f, JsonNode n) {
        try {
            AtomicFiles.write(f, JSON.writeValueAsBytes(n));
        } catch (IOException e) {
            throw new UncheckedIOException(f + ": " + e.getMessage(), e);
        }
    }

    /** The dotted path of the first difference between two JSON trees, or null when equal. */
    static String firstDifference(String path, JsonNode a, JsonNode b) {
        if (a.equals(b)) {
            return null;
        }
        if (a.isObject() && b.isObject()) {
            Iterator<Map.Entry<String, JsonNode>> it = ((ObjectNode) b).fields();
            while (it.hasNext()) {
                Map.Entry<String, JsonNode> e = it.next();
                String key = path.isEmpty() ? e.getKey() : path + "." + e.getKey();
                if (!a.has(e.getKey())) {
                    return key;
                }
                String d = firstDifference(key, a.get(e.getKey()), e.getValue());
                if (d != null) {
                    return d;
                }
            }
            Iterator<String> names = a.fieldNames();
            while (names.hasNext()) {
                String n = names.next();
                if (!b.has(n)) {
                    return path.isEmpty() ? n : path + "." + n;
                }
            }
        }
        if (a.isArray() && b.isArray() && a.size() == b.size()) {
            for (int i = 0; i < a.size(); i++) {
                String d = firstDifference(path + "[" + i + "]", a.get(i), b.get(i));
                if (d != null) {
                    return d;
                }
            }
        }
        return path.isEmpty() ? "(root)" : path;
    }

    static ArrayNode doubles(double[] v) {
        ArrayNode a = JSON.createArrayNode();
        for (double d : v) {
            a.add(d);
        }
        return a;
    }
}
