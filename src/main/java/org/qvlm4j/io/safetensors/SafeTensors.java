package org.qvlm4j.io.safetensors;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Comparator;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.qvlm4j.kernels.DType;

/**
 * Reader of the safetensors format: an 8-byte little-endian header length, a JSON header mapping
 * each tensor name to {dtype, shape, data_offsets}, then the data block. Files are memory-mapped
 * (any size, including past 2 GiB) and tensors are slices of the mapping.
 *
 * <p>Validation follows the format's rules: the header length is capped at 100 MB and must fit the
 * file, the header is a JSON object, every dtype is known, shape x dtype size equals the byte
 * length, and the tensors' byte ranges tile the data block exactly (sorted, contiguous, no gaps,
 * no overlap, ending at the end of the file). Every failure is a {@link SafeTensorsException}
 * naming the file and the offending key.
 */
public final class SafeTensors implements AutoCloseable {

    /** The format's cap on the JSON header size. */
    public static final long MAX_HEADER_BYTES = 100L * 1024 * 1024;

    private static final ObjectMapper JSON = new ObjectMapper();

    private final Path file;
    private final Arena arena;
    private final Map<String, TensorEntry> tensors;
    private final Map<String, String> metadata;

    private SafeTensors(Path file, Arena arena, Map<String, TensorEntry> tensors, Map<String, String> metadata) {
        this.file = file;
        this.arena = arena;
        this.tensors = tensors;
        this.metadata = metadata;
    }

    /** Maps and validates one safetensors file. */
    public static SafeTensors open(Path file) {
        Arena arena = Arena.ofShared();
        try {
            return parse(file, arena);
        } catch (RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    private static SafeTensors parse(Path file, Arena arena) {
        long fileSize;
        MemorySegment all;
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            fileSize = ch.size();
            if (fileSize < 8) {
                throw new SafeTensorsException(file + ": file has " + fileSize
                        + " bytes, a safetensors file needs at least 8 (header length)");
            }
            all = ch.map(FileChannel.MapMode.READ_ONLY, 0, fileSize, arena);
        } catch (IOException e) {
            throw new SafeTensorsException(file + ": cannot read: " + e.getMessage(), e);
        }
        long headerLen = all.get(ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 0);
        if (headerLen < 2 || headerLen > MAX_HEADER_BYTES) {
            throw new SafeTensorsException(file + ": header length " + headerLen
                    + " is outside [2, " + MAX_HEADER_BYTES + "]");
        }
        if (8 + headerLen > fileSize) {
            throw new SafeTensorsException(file + ": header length " + headerLen + " exceeds the file size "
                    + fileSize + " (truncated file?)");
        }
        byte[] headerBytes = all.asSlice(8, headerLen).toArray(ValueLayout.JAVA_BYTE);
        JsonNode header;
        try {
            header = JSON.readTree(new String(headerBytes, StandardCharsets.UTF_8));
        } catch (IOException e) {
            throw new SafeTensorsException(file + ": header is not valid JSON: " + e.getMessage(), e);
        }
        if (header == null || !header.isObject()) {
            throw new SafeTensorsException(file + ": header must be a JSON object");
        }
        long dataStart = 8 + headerLen;
        long dataSize = fileSize - dataStart;
        Map<String, String> metadata = new LinkedHashMap<>();
        List<TensorEntry> entries = new ArrayList<>();
        List<long[]> ranges = new ArrayList<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = header.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> f = it.next();
            String key = f.getKey();
            JsonNode v = f.getValue();
            if (key.equals("__metadata__")) {
                if (!v.isObject()) {
                    throw new SafeTensorsException(file + ": __metadata__ must be an object of strings");
                }
                for (Iterator<Map.Entry<String, JsonNode>> m = v.fields(); m.hasNext(); ) {
                    Map.Entry<String, JsonNode> e = m.next();
                    if (!e.getValue().isTextual()) {
                        throw new SafeTensorsException(file + ": __metadata__." + e.getKey() + " must be a string");
                    }
                    metadata.put(e.getKey(), e.getValue().asText());
                }
                continue;
            }
            if (!v.isObject()) {
                throw new SafeTensorsException(file + ": tensor '" + key + "' must be an object");
            }
            JsonNode dt = v.get("dtype");
            JsonNode sh = v.get("shape");
            JsonNode off = v.get("data_offsets");
            if (dt == null || !dt.isTextual()) {
                throw new SafeTensorsException(file + ": tensor '" + key + "' has no string 'dtype'");
            }
            DType dtype;
            try {
                dtype = DType.fromSafetensors(dt.asText());
            } catch (IllegalArgumentException e) {
                throw new SafeTensorsException(file + ": tensor '" + key + "': " + e.getMessage());
            }
            if (sh == null || !sh.isArray()) {
                throw new SafeTensorsException(file + ": tensor '" + key + "' has no array 'shape'");
            }
            long[] shape = new long[sh.size()];
            long numel = 1;
            for (int i = 0; i < shape.length; i++) {
                JsonNode d = sh.get(i);
                if (!d.canConvertToLong() || !d.isIntegralNumber() || d.asLong() < 0) {
                    throw new SafeTensorsException(file + ": tensor '" + key + "' shape " + sh
                            + " must hold non-negative integers");
                }
                shape[i] = d.asLong();
                try {
                    numel = Math.multiplyExact(numel, shape[i]);
                } catch (ArithmeticException e) {
                    throw new SafeTensorsException(file + ": tensor '" + key + "' shape " + sh + " overflows");
                }
            }
            if (off == null || !off.isArray() || off.size() != 2 || !off.get(0).isIntegralNumber()
                    || !off.get(1).isIntegralNumber()) {
                throw new SafeTensorsException(file + ": tensor '" + key
                        + "' needs 'data_offsets' as [begin, end] integers, got " + off);
            }
            long begin = off.get(0).asLong();
            long end = off.get(1).asLong();
            if (begin < 0 || end < begin || end > dataSize) {
                throw new SafeTensorsException(file + ": tensor '" + key + "' data_offsets [" + begin + ", "
                        + end + "] lie outside the data block of " + dataSize + " bytes");
            }
            long expected;
            try {
                expected = Math.multiplyExact(numel, (long) dtype.bytes);
            } catch (ArithmeticException e) {
                throw new SafeTensorsException(file + ": tensor '" + key + "' byte size overflows");
            }
            if (end - begin != expected) {
                throw new SafeTensorsException(file + ": tensor '" + key + "' " + dtype + " shape "
                        + Arrays.toString(shape) + " needs " + expected + " bytes, data_offsets give "
                        + (end - begin));
            }
            entries.add(new TensorEntry(key, dtype, shape, all.asSlice(dataStart + begin, end - begin), file));
            ranges.add(new long[] {begin, end, entries.size() - 1});
        }
        ranges.sort(Comparator.<long[]>comparingLong(r -> r[0]).thenComparingLong(r -> r[1]));
        long cursor = 0;
        for (long[] r : ranges) {
            String key = entries.get((int) r[2]).name();
            if (r[0] < cursor) {
                throw new SafeTensorsException(file + ": tensor '" + key + "' data_offsets [" + r[0] + ", " + r[1]
                        + "] overlap the previous tensor ending at " + cursor);
            }
            if (r[0] > cursor) {
                throw new SafeTensorsException(file + ": tensor '" + key + "' starts at " + r[0]
                        + " but the previous tensor ends at " + cursor + " (gap in the data block)");
            }
            cursor = r[1];
        }
        if (cursor != dataSize) {
            throw new SafeTensorsException(file + ": tensors end at byte " + cursor + " of a data block of "
                    + dataSize + " bytes (truncated or trailing data)");
        }
        Map<String, TensorEntry> byName = new LinkedHashMap<>();
        for (TensorEntry e : entries) {
            byName.put(e.name(), e);
        }
        return new SafeTensors(file, arena, Collections.unmodifiableMap(byName), Collections.unmodifiableMap(metadata));
    }

    public Path file() {
        return file;
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

    /** The tensor called name; throws naming the file and the key when absent. */
    public TensorEntry get(String name) {
        TensorEntry e = tensors.get(name);
        if (e == null) {
            throw new SafeTensorsException(file + ": no tensor '" + name + "'");
        }
        return e;
    }

    public Map<String, String> metadata() {
        return metadata;
    }

    /** Unmaps the file; tensors obtained from it must not be used afterwards. */
    @Override
    public void close() {
        arena.close();
    }
}
