package org.qvlm4j.io.safetensors;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The tensors of a model directory, whether in one {@code model.safetensors} or sharded through
 * {@code model.safetensors.index.json} (HF's {"weight_map": {name: shard file}}). Shards are
 * mapped, not read; closing the checkpoint unmaps them all.
 */
public final class Checkpoint implements AutoCloseable {
    public static final String SINGLE_FILE = "model.safetensors";
    public static final String INDEX_FILE = "model.safetensors.index.json";

    private final Path dir;
    private final List<SafeTensors> files;
    private final Map<String, TensorEntry> tensors;

    private Checkpoint(Path dir, List<SafeTensors> files, Map<String, TensorEntry> tensors) {
        this.dir = dir;
        this.files = files;
        this.tensors = tensors;
    }

    /** Opens the checkpoint in a model directory (or a single .safetensors file). */
    public static Checkpoint open(Path dirOrFile) {
        if (Files.isRegularFile(dirOrFile)) {
            SafeTensors st = SafeTensors.open(dirOrFile);
            return new Checkpoint(dirOrFile.getParent(), List.of(st), st.tensors());
        }
        Path index = dirOrFile.resolve(INDEX_FILE);
        Path single = dirOrFile.resolve(SINGLE_FILE);
        if (Files.isRegularFile(index)) {
            return openSharded(dirOrFile, index);
        }
        if (Files.isRegularFile(single)) {
            SafeTensors st = SafeTensors.open(single);
            return new Checkpoint(dirOrFile, List.of(st), st.tensors());
        }
        throw new SafeTensorsException(dirOrFile + ": no " + SINGLE_FILE + " or " + INDEX_FILE + " found");
    }

    private static Checkpoint openSharded(Path dir, Path index) {
        JsonNode root;
        try {
            root = new ObjectMapper().readTree(index.toFile());
        } catch (IOException e) {
            throw new SafeTensorsException(index + ": not valid JSON: " + e.getMessage(), e);
        }
        JsonNode map = root == null ? null : root.get("weight_map");
        if (map == null || !map.isObject()) {
            throw new SafeTensorsException(index + ": missing object 'weight_map'");
        }
        Map<String, SafeTensors> shards = new LinkedHashMap<>();
        Map<String, TensorEntry> tensors = new LinkedHashMap<>();
        List<SafeTensors> opened = new ArrayList<>();
        try {
            for (Iterator<Map.Entry<String, JsonNode>> it = map.fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                String shardName = e.getValue().asText();
                Path shardPath = dir.resolve(shardName).normalize();
                if (!shardPath.startsWith(dir.normalize()) || !Files.isRegularFile(shardPath)) {
                    throw new SafeTensorsException(index + ": weight_map." + e.getKey() + " names shard '"
                            + shardName + "', which is not a file in " + dir);
                }
                SafeTensors st = shards.get(shardName);
                if (st == null) {
                    st = SafeTensors.open(shardPath);
                    shards.put(shardName, st);
                    opened.add(st);
                }
                if (!st.contains(e.getKey())) {
                    throw new SafeTensorsException(index + ": weight_map." + e.getKey() + " points to "
                            + shardName + ", which has no such tensor");
                }
                tensors.put(e.getKey(), st.get(e.getKey()));
            }
            for (SafeTensors st : opened) {
                for (String name : st.names()) {
                    if (!tensors.containsKey(name)) {
                        throw new SafeTensorsException(st.file() + ": tensor '" + name + "' is not listed in " + index);
                    }
                }
            }
        } catch (RuntimeException ex) {
            opened.forEach(SafeTensors::close);
            throw ex;
        }
        return new Checkpoint(dir, List.copyOf(opened), Collections.unmodifiableMap(tensors));
    }

    public Path dir() {
        return dir;
    }

    public Set<String> names() {
        return tensors.keySet();
    }

    public Map<String, TensorEntry> tensors() {
        return tensors;
    }

    public boolean contains(String name) {
        return tensors.containsKey(name);
    }

    /** The tensor called name; throws naming the directory and the key when absent. */
    public TensorEntry get(String name) {
        TensorEntry e = tensors.get(name);
        if (e == null) {
            throw new SafeTensorsException(dir + ": checkpoint has no tensor '" + name + "'");
        }
        return e;
    }

    @Override
    public void close() {
        files.forEach(SafeTensors::close);
    }
}
