package org.qvlm4j.io.safetensors;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The tensors of a model directory, whether in one {@code model.safetensors} or sharded through
 * {@code model.safetensors.index.json} (HF's {"weight_map": {name: shard file}}). Shards are
 * mapped, not read; closing the checkpoint unmaps them all.
 *
 * <p>A sharded checkpoint must be consistent: every shard named in the index lies directly in the
 * model directory (no "../" or absolute paths), exists, and holds the tensor the index assigns to
 * it, and every tensor of an opened shard is listed in the index. The index's
 * {@code metadata.total_size} is informational and not checked (HF counts shared storage once).
 * {@link SafeTensorsWriter#writeSharded} writes this layout.
 */
public final class Checkpoint implements TensorSource, AutoCloseable {
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
        // Absolute, so that dir() is never null for a bare file name and the shard containment
        // check below compares like with like.
        dirOrFile = dirOrFile.toAbsolutePath().normalize();
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
        byte[] bytes;
        try {
            bytes = Files.readAllBytes(index);
        } catch (IOException e) {
            throw new SafeTensorsException(index + ": cannot read: " + e.getMessage(), e);
        }
        JsonNode root = SafeTensors.parseJson(index, "index", bytes);
        JsonNode map = root.get("weight_map");
        if (map == null || !map.isObject()) {
            throw new SafeTensorsException(index + ": missing object 'weight_map'");
        }
        Map<String, SafeTensors> shards = new LinkedHashMap<>();
        Map<String, TensorEntry> tensors = new LinkedHashMap<>();
        List<SafeTensors> opened = new ArrayList<>();
        try {
            for (Iterator<Map.Entry<String, JsonNode>> it = map.fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                if (!e.getValue().isTextual()) {
                    throw new SafeTensorsException(index + ": weight_map." + e.getKey()
                            + " must be a shard file name, got " + e.getValue());
                }
                String shardName = e.getValue().asText();
                Path shardPath = dir.resolve(shardName).normalize();
                if (!dir.equals(shardPath.getParent())) {
                    throw new SafeTensorsException(index + ": weight_map." + e.getKey() + " names shard '"
                            + shardName + "', which is not directly inside " + dir);
                }
                if (!Files.isRegularFile(shardPath)) {
                    throw new SafeTensorsException(index + ": weight_map." + e.getKey() + " names shard '"
                            + shardName + "', which does not exist in " + dir);
                }
                String shardKey = shardPath.getFileName().toString();
                SafeTensors st = shards.get(shardKey);
                if (st == null) {
                    st = SafeTensors.open(shardPath);
                    shards.put(shardKey, st);
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

    @Override
    public Map<String, TensorEntry> tensors() {
        return tensors;
    }

    @Override
    public String describe() {
        return dir + " (checkpoint)";
    }

    @Override
    public void close() {
        files.forEach(SafeTensors::close);
    }
}
