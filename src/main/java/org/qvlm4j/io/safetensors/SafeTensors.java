package org.qvlm4j.io.safetensors;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.StreamReadConstraints;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.core.exc.StreamReadException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
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
import org.qvlm4j.kernels.DType;

/**
 * Reader of the safetensors format (huggingface/safetensors): an 8-byte little-endian header
 * length N, N bytes of UTF-8 JSON mapping each tensor name to {dtype, shape, data_offsets} plus an
 * optional {@code __metadata__} string map, then the data block. Files are memory-mapped (any
 * size, including past 2 GiB) and tensors are slices of the mapping; nothing is copied.
 *
 * <p>Rules enforced, as the Rust crate does: N at most {@link #MAX_HEADER_BYTES} and within the
 * file; the header is strict UTF-8, starts with '{', is one JSON object with no repeated key and
 * nothing after it; every dtype is known; shape entries are non-negative integers whose product
 * (and product with the dtype size) fits 64 bits; end - begin of data_offsets equals that byte
 * size; and the byte ranges, sorted, tile the data block exactly from 0 to the end of the file
 * (no gap, no overlap, no trailing bytes). Empty tensors (a 0 in the shape, begin == end) and
 * scalars (shape []) are valid. Every failure is a {@link SafeTensorsException} naming the file
 * and the offending key and value. Dtypes outside {@link DType} (F8, U16..U64, sub-byte floats)
 * are rejected as unknown.
 */
public final class SafeTensors implements TensorSource, AutoCloseable {

    /** The format's cap on the JSON header size. */
    public static final long MAX_HEADER_BYTES = 100_000_000L;

    /**
     * Strict JSON: a repeated key is an error (Jackson would otherwise keep the last silently,
     * while the Rust crate rejects the file), trailing tokens after the object are an error, and
     * strings may be as long as the header itself.
     */
    static final ObjectMapper JSON = JsonMapper.builder(JsonFactory.builder()
                    .streamReadConstraints(StreamReadConstraints.builder()
                            .maxStringLength((int) MAX_HEADER_BYTES)
                            .build())
                    .build())
            .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION)
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
            .build();

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
        // The length is an unsigned u64: a value with the top bit set reads as negative here.
        long headerLen = all.get(ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 0);
        if (headerLen < 0 || headerLen > MAX_HEADER_BYTES) {
            throw new SafeTensorsException(file + ": header length " + Long.toUnsignedString(headerLen)
                    + " exceeds the format's cap of " + MAX_HEADER_BYTES + " bytes");
        }
        if (headerLen > fileSize - 8) {
            throw new SafeTensorsException(file + ": header length " + headerLen + " exceeds the "
                    + (fileSize - 8) + " bytes that follow it in a file of " + fileSize + " bytes (truncated file?)");
        }
        if (headerLen < 2) {
            throw new SafeTensorsException(file + ": header length " + headerLen
                    + " is too small for a JSON object (at least 2)");
        }
        byte[] headerBytes = all.asSlice(8, headerLen).toArray(ValueLayout.JAVA_BYTE);
        if (headerBytes[0] != '{') {
            throw new SafeTensorsException(file + ": header must start with '{', found byte 0x"
                    + String.format("%02x", headerBytes[0] & 0xFF));
        }
        JsonNode header = parseJson(file, "header", headerBytes);
        if (!header.isObject()) {
            throw new SafeTensorsException(file + ": header must be a JSON object, got " + header.getNodeType());
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
                if (!d.isIntegralNumber() || !d.canConvertToLong() || d.asLong() < 0) {
                    throw new SafeTensorsException(file + ": tensor '" + key + "' shape " + sh
                            + " must hold non-negative 64-bit integers, dimension " + i + " is " + d);
                }
                shape[i] = d.asLong();
                try {
                    numel = Math.multiplyExact(numel, shape[i]);
                } catch (ArithmeticException e) {
                    throw new SafeTensorsException(file + ": tensor '" + key + "' shape " + sh
                            + ": element count overflows 64 bits");
                }
            }
            if (off == null || !off.isArray() || off.size() != 2 || !off.get(0).isIntegralNumber()
                    || !off.get(1).isIntegralNumber()) {
                throw new SafeTensorsException(file + ": tensor '" + key
                        + "' needs 'data_offsets' as [begin, end] integers, got " + off);
            }
            if (!off.get(0).canConvertToLong() || !off.get(1).canConvertToLong()) {
                throw new SafeTensorsException(file + ": tensor '" + key + "' data_offsets " + off
                        + " exceed the 64-bit range");
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
                throw new SafeTensorsException(file + ": tensor '" + key + "' " + dtype + " shape " + sh
                        + ": byte size overflows 64 bits");
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

    /** Decodes strict UTF-8 and parses one JSON document; what names the document in messages. */
    static JsonNode parseJson(Path file, String what, byte[] bytes) {
        String text;
        try {
            text = StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(bytes))
                    .toString();
        } catch (CharacterCodingException e) {
            throw new SafeTensorsException(file + ": " + what + " is not valid UTF-8: " + e.getMessage(), e);
        }
        JsonNode node;
        try {
            node = JSON.readTree(text);
        } catch (StreamReadException e) {
            String msg = e.getOriginalMessage();
            if (msg != null && msg.startsWith("Duplicate field")) {
                throw new SafeTensorsException(file + ": " + what + " has a duplicate key: " + msg
                        + " at " + location(e), e);
            }
            throw new SafeTensorsException(file + ": " + what + " is not valid JSON: " + msg + " at " + location(e), e);
        } catch (IOException e) {
            throw new SafeTensorsException(file + ": " + what + " is not valid JSON: " + e.getMessage(), e);
        }
        if (node == null || node.isMissingNode()) {
            throw new SafeTensorsException(file + ": " + what + " is empty, expected a JSON object");
        }
        return node;
    }

    private static String location(StreamReadException e) {
        return e.getLocation() == null ? "unknown position"
                : "line " + e.getLocation().getLineNr() + ", column " + e.getLocation().getColumnNr();
    }

    public Path file() {
        return file;
    }

    @Override
    public Map<String, TensorEntry> tensors() {
        return tensors;
    }

    @Override
    public String describe() {
        return file.toString();
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
