package org.qvlm4j.model;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.SplittableRandom;
import org.qvlm4j.io.safetensors.SafeTensors;
import org.qvlm4j.io.safetensors.TensorEntry;
import org.qvlm4j.kernels.DType;

/**
 * Test-only construction of model directories: read the fixture's tensors as floats, edit them,
 * and write them back as a safetensors file in F32, F16 or BF16. A minimal writer (header JSON,
 * tensors in insertion order, no alignment padding beyond what the format needs).
 */
final class TestCheckpoints {
    private static final ObjectMapper JSON = new ObjectMapper();

    /** A tensor as float values with its shape. */
    record T(long[] shape, float[] values) {
        T copy() {
            return new T(shape.clone(), values.clone());
        }
    }

    private TestCheckpoints() {
    }

    static Map<String, T> read(Path file) {
        Map<String, T> out = new LinkedHashMap<>();
        try (SafeTensors st = SafeTensors.open(file)) {
            for (TensorEntry e : st.tensors().values()) {
                out.put(e.name(), new T(e.shape().clone(), e.toFloatArray()));
            }
        }
        return out;
    }

    static Map<String, T> copy(Map<String, T> m) {
        Map<String, T> out = new LinkedHashMap<>();
        m.forEach((k, v) -> out.put(k, v.copy()));
        return out;
    }

    static float[] random(SplittableRandom rnd, int n, double std) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) (std * (rnd.nextDouble() * 2 - 1) * Math.sqrt(3));
        }
        return a;
    }

    /** Writes tensors in the given dtype to file (temp file, then rename). */
    static void write(Path file, Map<String, T> tensors, DType dtype) {
        ObjectNode header = JSON.createObjectNode();
        long offset = 0;
        for (Map.Entry<String, T> e : tensors.entrySet()) {
            ObjectNode t = header.putObject(e.getKey());
            t.put("dtype", dtype.name());
            ArrayNode shape = t.putArray("shape");
            for (long d : e.getValue().shape()) {
                shape.add(d);
            }
            long bytes = (long) e.getValue().values().length * dtype.bytes;
            t.putArray("data_offsets").add(offset).add(offset + bytes);
            offset += bytes;
        }
        byte[] h;
        try {
            h = JSON.writeValueAsString(header).getBytes(StandardCharsets.UTF_8);
        } catch (IOException ex) {
            throw new UncheckedIOException(ex);
        }
        int padded = (h.length + 7) / 8 * 8;
        ByteBuffer buf = ByteBuffer.allocate(Math.toIntExact(8 + padded + offset)).order(ByteOrder.LITTLE_ENDIAN);
        buf.putLong(padded);
        buf.put(h);
        for (int i = h.length; i < padded; i++) {
            buf.put((byte) ' ');
        }
        for (T t : tensors.values()) {
            for (float f : t.values()) {
                switch (dtype) {
                    case F32 -> buf.putFloat(f);
                    case F16 -> buf.putShort(DType.floatToF16(f));
                    case BF16 -> buf.putShort(DType.floatToBf16(f));
                    default -> throw new IllegalArgumentException("unsupported test dtype " + dtype);
                }
            }
        }
        writeAtomically(file, buf.array());
    }

    static void writeAtomically(Path file, byte[] bytes) {
        try {
            Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
            try (OutputStream os = Files.newOutputStream(tmp)) {
                os.write(bytes);
            }
            Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException ex) {
            throw new UncheckedIOException(ex);
        }
    }

    /** A model directory with this config JSON and these tensors. */
    static Path modelDir(Path dir, String configJson, Map<String, T> tensors, DType dtype) {
        try {
            Files.createDirectories(dir);
        } catch (IOException ex) {
            throw new UncheckedIOException(ex);
        }
        writeAtomically(dir.resolve("config.json"), configJson.getBytes(StandardCharsets.UTF_8));
        write(dir.resolve("model.safetensors"), tensors, dtype);
        return dir;
    }

    static ObjectNode fixtureConfig() {
        try {
            return (ObjectNode) JSON.readTree(FixtureParityTest.DIR.resolve("config.json").toFile());
        } catch (IOException ex) {
            throw new UncheckedIOException(ex);
        }
    }

    static Map<String, T> fixtureTensors() {
        return read(FixtureParityTest.DIR.resolve("model.safetensors"));
    }
}
