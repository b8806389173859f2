package org.qvlm4j.io.safetensors;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qvlm4j.kernels.DType;

/** Sharded checkpoints written by the writer, and inconsistent indexes built by hand. */
class CheckpointTest {
    @TempDir
    Path dir;

    /** Ten F32 tensors of 40 bytes and one of 400 bytes, named so that name order is t00..t10. */
    private Map<String, float[]> sample() {
        Random rnd = new Random(11);
        Map<String, float[]> m = new TreeMap<>();
        for (int t = 0; t <= 10; t++) {
            float[] v = new float[t == 5 ? 100 : 10];
            for (int i = 0; i < v.length; i++) {
                v[i] = (float) rnd.nextGaussian();
            }
            m.put(String.format("t%02d", t), v);
        }
        return m;
    }

    @Test
    void shardedRoundTrip() throws IOException {
        Map<String, float[]> tensors = sample();
        SafeTensorsWriter w = new SafeTensorsWriter().metadata("format", "pt");
        tensors.forEach((n, v) -> w.addFloats(n, DType.F32, new long[] {v.length}, v));
        List<Path> shards = w.writeSharded(dir, 120);
        // Greedy in name order with 120-byte shards: t00-t02 | t03-t04 | t05 (400 B, alone) | t06-t08 | t09-t10.
        assertEquals(5, shards.size());
        for (int i = 0; i < 5; i++) {
            assertEquals(String.format("model-%05d-of-00005.safetensors", i + 1), shards.get(i).getFileName().toString());
        }
        JsonNode index = new ObjectMapper().readTree(dir.resolve(Checkpoint.INDEX_FILE).toFile());
        assertEquals(10 * 40 + 400, index.get("metadata").get("total_size").asLong());
        Map<String, String> weightMap = new TreeMap<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = index.get("weight_map").fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            weightMap.put(e.getKey(), e.getValue().asText());
        }
        assertEquals(tensors.keySet(), weightMap.keySet());
        assertEquals("model-00001-of-00005.safetensors", weightMap.get("t02"));
        assertEquals("model-00002-of-00005.safetensors", weightMap.get("t03"));
        assertEquals("model-00003-of-00005.safetensors", weightMap.get("t05"));
        assertEquals("model-00005-of-00005.safetensors", weightMap.get("t10"));
        try (Checkpoint ck = Checkpoint.open(dir)) {
            assertEquals(tensors.keySet(), new TreeMap<>(ck.tensors()).keySet());
            tensors.forEach((n, v) -> assertArrayEquals(v, ck.get(n).toFloatArray(), n));
            assertEquals(dir.toAbsolutePath().normalize(), ck.dir());
            assertTrue(ck.contains("t07"));
        }
        for (Path s : shards) {
            try (SafeTensors st = SafeTensors.open(s)) {
                assertEquals("pt", st.metadata().get("format"));
                long bytes = st.tensors().values().stream().mapToLong(e -> e.data().byteSize()).sum();
                assertTrue(bytes <= 120 || st.names().size() == 1, s + " holds " + bytes + " bytes");
            }
        }
        // Five shards and the index, no temporary files left behind.
        List<Path> expected = new ArrayList<>(shards);
        expected.add(dir.resolve(Checkpoint.INDEX_FILE));
        expected.sort(null);
        assertEquals(expected, listDir());
    }

    @Test
    void singleFileDirectoryAndBareFile() {
        new SafeTensorsWriter().addFloats("w", DType.BF16, new long[] {2}, new float[] {1, 2})
                .write(dir.resolve(Checkpoint.SINGLE_FILE));
        try (Checkpoint a = Checkpoint.open(dir); Checkpoint b = Checkpoint.open(dir.resolve(Checkpoint.SINGLE_FILE))) {
            assertArrayEquals(new float[] {1, 2}, a.get("w").toFloatArray());
            assertEquals(a.dir(), b.dir());
            SafeTensorsException e = assertThrows(SafeTensorsException.class, () -> a.get("nope"));
            assertTrue(e.getMessage().contains("'nope'") && e.getMessage().contains(dir.toString()), e.getMessage());
        }
    }

    @Test
    void failingShardedWriteLeavesNothingBehind() throws IOException {
        SafeTensorsWriter w = new SafeTensorsWriter()
                .addFloats("a", DType.F32, new long[] {4}, new float[4])
                .addFloats("b", DType.F32, new long[] {4}, new float[4])
                .addFloats("c", DType.F32, new long[] {4}, () -> {
                    throw new IllegalStateException("boom");
                });
        assertThrows(IllegalStateException.class, () -> w.writeSharded(dir, 16));
        assertEquals(List.of(), listDir());
    }

    @Test
    void failingShardedWriteKeepsTheEarlierCheckpoint() throws IOException {
        SafeTensorsWriter good = new SafeTensorsWriter();
        good.addFloats("a", DType.F32, new long[] {4}, new float[] {1, 2, 3, 4})
                .addFloats("b", DType.F32, new long[] {4}, new float[] {5, 6, 7, 8});
        good.writeSharded(dir, 16);
        Map<Path, byte[]> before = new TreeMap<>();
        for (Path p : listDir()) {
            before.put(p, Files.readAllBytes(p));
        }
        // Same shard names (2 shards); the second shard's source fails after the first is complete.
        SafeTensorsWriter bad = new SafeTensorsWriter()
                .addFloats("a", DType.F32, new long[] {4}, new float[] {9, 9, 9, 9})
                .add("b", DType.F32, new long[] {4}, ch -> {
                    throw new IOException("read error");
                });
        java.io.UncheckedIOException err = assertThrows(java.io.UncheckedIOException.class, () -> bad.writeSharded(dir, 16));
        assertTrue(err.getMessage().contains("model-00002-of-00002.safetensors") && err.getMessage().contains("'b'")
                && err.getMessage().contains("read error"), err.getMessage());
        assertEquals(new ArrayList<>(before.keySet()), listDir());
        for (Map.Entry<Path, byte[]> e : before.entrySet()) {
            assertArrayEquals(e.getValue(), Files.readAllBytes(e.getKey()), e.getKey().toString());
        }
        try (Checkpoint ck = Checkpoint.open(dir)) {
            assertArrayEquals(new float[] {1, 2, 3, 4}, ck.get("a").toFloatArray());
        }
    }

    private void writeShard(String name, String... tensors) {
        SafeTensorsWriter w = new SafeTensorsWriter();
        for (String t : tensors) {
            w.addFloats(t, DType.F32, new long[] {1}, new float[] {t.length()});
        }
        w.write(dir.resolve(name));
    }

    private Path writeIndex(String weightMapJson) throws IOException {
        Path p = dir.resolve(Checkpoint.INDEX_FILE);
        Files.writeString(p, "{\"metadata\":{\"total_size\":8},\"weight_map\":" + weightMapJson + "}");
        return p;
    }

    private void assertRejected(String... parts) {
        SafeTensorsException e = assertThrows(SafeTensorsException.class, () -> Checkpoint.open(dir).close());
        for (String p : parts) {
            assertTrue(e.getMessage().contains(p), "'" + p + "' not in: " + e.getMessage());
        }
    }

    @Test
    void indexNamingAMissingShard() throws IOException {
        writeShard("s1.safetensors", "a");
        Path index = writeIndex("{\"a\":\"s1.safetensors\",\"b\":\"s2.safetensors\"}");
        assertRejected(index.toString(), "weight_map.b", "s2.safetensors", "does not exist");
    }

    @Test
    void tensorAbsentFromItsShard() throws IOException {
        writeShard("s1.safetensors", "a");
        writeShard("s2.safetensors", "b");
        Path index = writeIndex("{\"a\":\"s1.safetensors\",\"b\":\"s1.safetensors\"}");
        assertRejected(index.toString(), "weight_map.b", "s1.safetensors", "no such tensor");
    }

    @Test
    void shardTensorMissingFromIndex() throws IOException {
        writeShard("s1.safetensors", "a", "extra");
        Path index = writeIndex("{\"a\":\"s1.safetensors\"}");
        assertRejected(index.toString(), "'extra'", "s1.safetensors", "not listed");
    }

    @Test
    void shardPathEscapingTheDirectory() throws IOException {
        Path model = Files.createDirectory(dir.resolve("model"));
        writeShard("x.safetensors", "a");
        Path index = model.resolve(Checkpoint.INDEX_FILE);
        Files.writeString(index, "{\"weight_map\":{\"a\":\"../x.safetensors\"}}");
        SafeTensorsException e = assertThrows(SafeTensorsException.class, () -> Checkpoint.open(model).close());
        assertTrue(e.getMessage().contains(index.toString()) && e.getMessage().contains("../x.safetensors")
                && e.getMessage().contains("weight_map.a") && e.getMessage().contains("not directly inside"), e.getMessage());
        Files.writeString(index, "{\"weight_map\":{\"a\":\"" + dir.resolve("x.safetensors") + "\"}}");
        e = assertThrows(SafeTensorsException.class, () -> Checkpoint.open(model).close());
        assertTrue(e.getMessage().contains("not directly inside"), e.getMessage());
    }

    @Test
    void malformedIndexes() throws IOException {
        writeShard("s1.safetensors", "a");
        Path index = writeIndex("{\"a\":\"s1.safetensors\",\"a\":\"s1.safetensors\"}");
        assertRejected(index.toString(), "duplicate", "'a'");
        writeIndex("{\"a\":7}");
        assertRejected(index.toString(), "weight_map.a", "7");
        Files.writeString(index, "{\"metadata\":{}}");
        assertRejected(index.toString(), "weight_map");
        Files.writeString(index, "{\"weight_map\":{\"a\":\"s1.safetensors\"}");
        assertRejected(index.toString(), "not valid JSON");
    }

    @Test
    void emptyDirectory() {
        assertRejected(dir.toString(), Checkpoint.SINGLE_FILE, Checkpoint.INDEX_FILE);
    }

    private List<Path> listDir() throws IOException {
        try (Stream<Path> s = Files.list(dir)) {
            return new ArrayList<>(s.sorted().toList());
        }
    }
}
