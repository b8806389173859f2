package org.qvlm4j.io.safetensors;

import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.channels.WritableByteChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.TreeMap;
import java.util.function.Supplier;
import org.qvlm4j.kernels.DType;

/**
 * Writer of safetensors files and sharded checkpoints, byte-compatible with the Rust
 * {@code safetensors} crate's {@code serialize_to_file}.
 *
 * <p>Layout: the 8-byte little-endian header length, a compact JSON header ({@code __metadata__}
 * first when present, with keys sorted; then the tensors in data order), padded with spaces to a
 * multiple of 8 bytes, then the tensor bytes back to back. Tensors are ordered as the crate orders
 * them: by dtype in descending alignment (I64, F64, F32, I32, BF16, F16, I16, I8, U8, BOOL), then
 * by name compared as UTF-8 bytes. Together with the 8-byte header padding this puts every tensor
 * at a file offset that is a multiple of its element size, and makes the output a function of the
 * set of tensors only: insertion order does not matter, the same input gives the same bytes.
 *
 * <p>Tensor data is pulled from its {@link Source} only while the file is written, in bounded
 * chunks, so a checkpoint of any size needs no more heap than the caller's sources hold (use
 * {@link #addSegment} over a mapped file, {@link #addFloats(String, DType, long[], Supplier)} or a
 * custom {@link Source} for lazy data). The file is written to a temporary file in the target
 * directory, forced to disk and atomically renamed over the target; on any failure the temporary
 * file is deleted and the target is left as it was.
 *
 * <p>Left out: sub-byte and FP8 dtypes (not in {@link DType}); deleting stale shards of an earlier,
 * differently sharded save in {@link #writeSharded}.
 */
public final class SafeTensorsWriter {

    /** Shard file names as HF's save_pretrained spells them. */
    public static final String SHARD_NAME_FORMAT = "model-%05d-of-%05d.safetensors";

    /** Size of the staging buffer that data goes through on its way to the file. */
    private static final int CHUNK_BYTES = 1 << 20;

    /**
     * The bytes of one tensor, produced on demand while the file is written. An implementation
     * must write exactly the tensor's byte size (numel x dtype size, little-endian, row-major);
     * writing more fails at once, writing less fails when it returns.
     */
    @FunctionalInterface
    public interface Source {
        void writeTo(WritableByteChannel out) throws IOException;
    }

    private record Pending(String name, DType dtype, long[] shape, long byteSize, Source source) {}

    private final Map<String, Pending> tensors = new LinkedHashMap<>();
    private final Map<String, String> metadata = new TreeMap<>();

    public SafeTensorsWriter() {}

    /** Adds one {@code __metadata__} entry (written with keys sorted). */
    public SafeTensorsWriter metadata(String key, String value) {
        metadata.put(Objects.requireNonNull(key, "metadata key"), Objects.requireNonNull(value, "metadata value"));
        return this;
    }

    /** Adds all entries of a string map to {@code __metadata__}. */
    public SafeTensorsWriter metadata(Map<String, String> entries) {
        entries.forEach(this::metadata);
        return this;
    }

    /** Adds a tensor whose bytes a source produces when the file is written. */
    public SafeTensorsWriter add(String name, DType dtype, long[] shape, Source source) {
        Objects.requireNonNull(dtype, "dtype");
        Objects.requireNonNull(source, "source");
        long bytes = byteSize(name, dtype, shape);
        if (tensors.containsKey(name)) {
            throw new IllegalArgumentException("tensor '" + name + "' was already added");
        }
        tensors.put(name, new Pending(name, dtype, shape.clone(), bytes, source));
        return this;
    }

    /**
     * Adds floats, converted on write to dtype F64, F32, F16 or BF16 (round to nearest even). The
     * array is read when the file is written, not copied now.
     */
    public SafeTensorsWriter addFloats(String name, DType dtype, long[] shape, float[] values) {
        Objects.requireNonNull(values, "values");
        checkFloatDType(name, dtype);
        checkLength(name, shape, values.length);
        return add(name, dtype, shape, out -> writeFloats(out, values, dtype));
    }

    /**
     * Adds floats computed only when the file is written (and then dropped), so that a large
     * checkpoint can be produced one tensor at a time. The supplier's array length must equal the
     * shape's element count.
     */
    public SafeTensorsWriter addFloats(String name, DType dtype, long[] shape, Supplier<float[]> values) {
        Objects.requireNonNull(values, "values");
        checkFloatDType(name, dtype);
        long numel = numel(name, shape);
        return add(name, dtype, shape, out -> {
            float[] v = values.get();
            if (v.length != numel) {
                throw new IllegalArgumentException("tensor '" + name + "' shape " + Arrays.toString(shape)
                        + " needs " + numel + " floats, the supplier gave " + v.length);
            }
            writeFloats(out, v, dtype);
        });
    }

    /** Adds integers stored as dtype I64, I32, I16, I8, U8 or BOOL; each value must fit the dtype. */
    public SafeTensorsWriter addLongs(String name, DType dtype, long[] shape, long[] values) {
        Objects.requireNonNull(values, "values");
        checkIntegerDType(name, dtype);
        checkLength(name, shape, values.length);
        for (int i = 0; i < values.length; i++) {
            checkRange(name, dtype, i, values[i]);
        }
        long[] copy = values.clone();
        return add(name, dtype, shape, out -> writeLongs(out, copy, dtype));
    }

    /** Adds integers stored as dtype I64, I32, I16, I8, U8 or BOOL; each value must fit the dtype. */
    public SafeTensorsWriter addInts(String name, DType dtype, long[] shape, int[] values) {
        Objects.requireNonNull(values, "values");
        long[] wide = new long[values.length];
        for (int i = 0; i < values.length; i++) {
            wide[i] = values[i];
        }
        return addLongs(name, dtype, shape, wide);
    }

    /** Adds raw little-endian bytes of any dtype (e.g. packed quantized weights); not copied. */
    public SafeTensorsWriter addBytes(String name, DType dtype, long[] shape, byte[] data) {
        Objects.requireNonNull(data, "data");
        return addSegment(name, dtype, shape, MemorySegment.ofArray(data));
    }

    /**
     * Adds the bytes of a memory segment of any dtype (heap, native or a file mapping of any
     * size); read only when the file is written, so the segment must stay alive until then.
     */
    public SafeTensorsWriter addSegment(String name, DType dtype, long[] shape, MemorySegment data) {
        Objects.requireNonNull(data, "data");
        long bytes = byteSize(name, dtype, shape);
        if (data.byteSize() != bytes) {
            throw new IllegalArgumentException("tensor '" + name + "' " + dtype + " shape " + Arrays.toString(shape)
                    + " needs " + bytes + " bytes, got " + data.byteSize());
        }
        return add(name, dtype, shape, out -> writeSegment(out, data));
    }

    /** Adds a tensor read from another file under its own name, copied byte for byte. */
    public SafeTensorsWriter add(TensorEntry entry) {
        return add(entry.name(), entry);
    }

    /** Adds a tensor read from another file under a new name, copied byte for byte. */
    public SafeTensorsWriter add(String name, TensorEntry entry) {
        return addSegment(name, entry.dtype(), entry.shape(), entry.data());
    }

    /** Total bytes of tensor data added so far (the index's metadata.total_size). */
    public long dataBytes() {
        long sum = 0;
        for (Pending p : tensors.values()) {
            sum += p.byteSize;
        }
        return sum;
    }

    /** Names of the tensors added so far, in insertion order. */
    public List<String> names() {
        return Collections.unmodifiableList(new ArrayList<>(tensors.keySet()));
    }

    /** Writes all tensors to one safetensors file, replacing it atomically if it exists. */
    public void write(Path file) {
        writeFile(file.toAbsolutePath().normalize(), new ArrayList<>(tensors.values()), metadata);
    }

    /**
     * Writes a sharded checkpoint into dir: {@code model-0000i-of-0000n.safetensors} files and
     * {@code model.safetensors.index.json} ({"metadata": {"total_size"}, "weight_map"}), as HF's
     * save_pretrained does. Tensors are taken in name order and packed greedily: a new shard
     * starts when the next tensor's bytes would push the current one past maxShardBytes, and a
     * tensor larger than the limit gets a shard of its own; the limit counts tensor bytes only, as
     * HF's does. Always writes the index, even for one shard. Every file is first written in full
     * to a temporary file; only then are they renamed into place, shards first and index last, so
     * a failing source leaves the directory (and any earlier checkpoint in it) untouched. Every
     * shard carries the writer's metadata.
     *
     * @return the shard paths in order
     */
    public List<Path> writeSharded(Path dir, long maxShardBytes) {
        if (maxShardBytes <= 0) {
            throw new IllegalArgumentException("maxShardBytes must be positive, got " + maxShardBytes);
        }
        Path target = dir.toAbsolutePath().normalize();
        List<Pending> byName = new ArrayList<>(tensors.values());
        byName.sort(Comparator.comparing(Pending::name, SafeTensorsWriter::compareUtf8));
        List<List<Pending>> shards = new ArrayList<>();
        List<Pending> current = new ArrayList<>();
        long currentBytes = 0;
        for (Pending p : byName) {
            if (!current.isEmpty() && currentBytes + p.byteSize > maxShardBytes) {
                shards.add(current);
                current = new ArrayList<>();
                currentBytes = 0;
            }
            current.add(p);
            currentBytes += p.byteSize;
        }
        if (!current.isEmpty() || shards.isEmpty()) {
            shards.add(current);
        }
        int n = shards.size();
        Map<String, String> weightMap = new TreeMap<>(SafeTensorsWriter::compareUtf8);
        List<Path> temps = new ArrayList<>();
        List<Path> finals = new ArrayList<>();
        try {
            try {
                for (int i = 0; i < n; i++) {
                    String shardName = shardFileName(i + 1, n);
                    Path shardPath = target.resolve(shardName);
                    try {
                        temps.add(writeTemp(shardPath, shards.get(i), metadata));
                    } catch (IOException e) {
                        throw new IOException(shardName + ": " + e.getMessage(), e);
                    }
                    finals.add(shardPath);
                    for (Pending p : shards.get(i)) {
                        weightMap.put(p.name, shardName);
                    }
                }
                ObjectNode root = SafeTensors.JSON.createObjectNode();
                root.putObject("metadata").put("total_size", dataBytes());
                ObjectNode wm = root.putObject("weight_map");
                weightMap.forEach(wm::put);
                byte[] json = SafeTensors.JSON.writerWithDefaultPrettyPrinter().writeValueAsBytes(root);
                Path index = target.resolve(Checkpoint.INDEX_FILE);
                temps.add(writeTemp(index, ch -> writeFully(ch, ByteBuffer.wrap(json))));
                finals.add(index);
            } catch (RuntimeException | IOException e) {
                temps.forEach(SafeTensorsWriter::deleteQuietly);
                throw e;
            }
            // Every byte is on disk before any existing file is replaced; the index goes last.
            for (int i = 0; i < temps.size(); i++) {
                try {
                    rename(temps.get(i), finals.get(i));
                } catch (IOException e) {
                    temps.subList(i, temps.size()).forEach(SafeTensorsWriter::deleteQuietly);
                    throw e;
                }
            }
            return List.copyOf(finals.subList(0, n));
        } catch (IOException e) {
            throw new UncheckedIOException(target + ": cannot write sharded checkpoint: " + e.getMessage(), e);
        }
    }

    /** The file name of shard index (1-based) of count. */
    public static String shardFileName(int index, int count) {
        return String.format(SHARD_NAME_FORMAT, index, count);
    }

    // ---------------------------------------------------------------------------------------------

    private static void writeFile(Path file, List<Pending> list, Map<String, String> metadata) {
        try {
            rename(writeTemp(file, list, metadata), file);
        } catch (IOException e) {
            throw new UncheckedIOException(file + ": cannot write: " + e.getMessage(), e);
        }
    }

    /** Writes one safetensors file's bytes to a temporary file next to file. */
    private static Path writeTemp(Path file, List<Pending> list, Map<String, String> metadata) throws IOException {
        List<Pending> ordered = new ArrayList<>(list);
        ordered.sort(Comparator.comparingInt((Pending p) -> -alignmentRank(p.dtype))
                .thenComparing(Pending::name, SafeTensorsWriter::compareUtf8));
        byte[] header = header(file, ordered, metadata);
        return writeTemp(file, ch -> {
            ByteBuffer len = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(0, header.length);
            writeFully(ch, len);
            writeFully(ch, ByteBuffer.wrap(header));
            for (Pending p : ordered) {
                BoundedChannel bounded = new BoundedChannel(ch, file, p);
                try {
                    p.source.writeTo(bounded);
                } catch (IOException e) {
                    throw new IOException("tensor '" + p.name + "': " + e.getMessage(), e);
                }
                if (bounded.written != p.byteSize) {
                    throw new IllegalStateException(file + ": source of tensor '" + p.name + "' wrote "
                            + bounded.written + " bytes, expected " + p.byteSize);
                }
            }
        });
    }

    @FunctionalInterface
    private interface Body {
        void write(FileChannel ch) throws IOException;
    }

    /**
     * Writes body to a new temporary file in file's directory (so that the final rename stays on
     * one filesystem) and forces it to disk; deletes it if anything fails.
     */
    private static Path writeTemp(Path file, Body body) throws IOException {
        Path tmp = org.qvlm4j.io.AtomicFiles.tempSibling(file);
        boolean ok = false;
        try {
            try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING)) {
                body.write(ch);
                ch.force(true);
            }
            ok = true;
            return tmp;
        } finally {
            if (!ok) {
                deleteQuietly(tmp);
            }
        }
    }

    /** Replaces file by tmp, atomically where the filesystem allows it. */
    private static void rename(Path tmp, Path file) throws IOException {
        try {
            try {
                Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING);
            }
        } catch (IOException e) {
            deleteQuietly(tmp);
            throw e;
        }
    }

    private static void deleteQuietly(Path p) {
        try {
            Files.deleteIfExists(p);
        } catch (IOException ignored) {
            // The original failure is what the caller needs to see.
        }
    }

    private static byte[] header(Path file, List<Pending> ordered, Map<String, String> metadata) {
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        try (JsonGenerator g = SafeTensors.JSON.getFactory().createGenerator(buf)) {
            g.writeStartObject();
            if (!metadata.isEmpty()) {
                g.writeObjectFieldStart("__metadata__");
                for (Map.Entry<String, String> e : metadata.entrySet()) {
                    g.writeStringField(e.getKey(), e.getValue());
                }
                g.writeEndObject();
            }
            long offset = 0;
            for (Pending p : ordered) {
                g.writeObjectFieldStart(p.name);
                g.writeStringField("dtype", p.dtype.name());
                g.writeArrayFieldStart("shape");
                for (long d : p.shape) {
                    g.writeNumber(d);
                }
                g.writeEndArray();
                g.writeArrayFieldStart("data_offsets");
                g.writeNumber(offset);
                g.writeNumber(offset + p.byteSize);
                g.writeEndArray();
                g.writeEndObject();
                offset = Math.addExact(offset, p.byteSize);
            }
            g.writeEndObject();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        int pad = (8 - buf.size() % 8) % 8;
        for (int i = 0; i < pad; i++) {
            buf.write(' ');
        }
        if (buf.size() > SafeTensors.MAX_HEADER_BYTES) {
            throw new IllegalArgumentException(file + ": header of " + buf.size() + " bytes exceeds the format's cap of "
                    + SafeTensors.MAX_HEADER_BYTES);
        }
        return buf.toByteArray();
    }

    /** The Rust crate's Dtype declaration order, which it sorts by (descending) when writing. */
    private static int alignmentRank(DType t) {
        return switch (t) {
            case BOOL -> 0;
            case U8 -> 1;
            case I8 -> 2;
            case I16 -> 5;
            case F16 -> 7;
            case BF16 -> 8;
            case I32 -> 9;
            case F32 -> 11;
            case F64 -> 12;
            case I64 -> 13;
        };
    }

    private static int compareUtf8(String a, String b) {
        return Arrays.compareUnsigned(a.getBytes(StandardCharsets.UTF_8), b.getBytes(StandardCharsets.UTF_8));
    }

    private static long numel(String name, long[] shape) {
        Objects.requireNonNull(shape, "shape");
        long n = 1;
        for (long d : shape) {
            if (d < 0) {
                throw new IllegalArgumentException("tensor '" + name + "' shape " + Arrays.toString(shape)
                        + " has a negative dimension");
            }
            try {
                n = Math.multiplyExact(n, d);
            } catch (ArithmeticException e) {
                throw new IllegalArgumentException("tensor '" + name + "' shape " + Arrays.toString(shape)
                        + ": element count overflows 64 bits");
            }
        }
        return n;
    }

    private static long byteSize(String name, DType dtype, long[] shape) {
        Objects.requireNonNull(name, "name");
        if (name.equals("__metadata__")) {
            throw new IllegalArgumentException("'__metadata__' is reserved and cannot name a tensor");
        }
        long n = numel(name, shape);
        try {
            return Math.multiplyExact(n, (long) dtype.bytes);
        } catch (ArithmeticException e) {
            throw new IllegalArgumentException("tensor '" + name + "' " + dtype + " shape " + Arrays.toString(shape)
                    + ": byte size overflows 64 bits");
        }
    }

    private static void checkLength(String name, long[] shape, int length) {
        long n = numel(name, shape);
        if (n != length) {
            throw new IllegalArgumentException("tensor '" + name + "' shape " + Arrays.toString(shape) + " needs "
                    + n + " values, got " + length);
        }
    }

    private static void checkFloatDType(String name, DType dtype) {
        if (dtype == null || !dtype.isFloating()) {
            throw new IllegalArgumentException("tensor '" + name + "': floats can be stored as F64, F32, F16 or BF16, not "
                    + dtype);
        }
    }

    private static void checkIntegerDType(String name, DType dtype) {
        if (dtype == null || dtype.isFloating()) {
            throw new IllegalArgumentException("tensor '" + name
                    + "': integers can be stored as I64, I32, I16, I8, U8 or BOOL, not " + dtype);
        }
    }

    private static void checkRange(String name, DType dtype, int i, long v) {
        long lo;
        long hi;
        switch (dtype) {
            case I32 -> { lo = Integer.MIN_VALUE; hi = Integer.MAX_VALUE; }
            case I16 -> { lo = Short.MIN_VALUE; hi = Short.MAX_VALUE; }
            case I8 -> { lo = Byte.MIN_VALUE; hi = Byte.MAX_VALUE; }
            case U8 -> { lo = 0; hi = 255; }
            case BOOL -> { lo = 0; hi = 1; }
            default -> { return; }
        }
        if (v < lo || v > hi) {
            throw new IllegalArgumentException("tensor '" + name + "' value " + v + " at index " + i
                    + " does not fit " + dtype + " [" + lo + ", " + hi + "]");
        }
    }

    private static ByteBuffer chunk() {
        return ByteBuffer.allocateDirect(CHUNK_BYTES).order(ByteOrder.LITTLE_ENDIAN);
    }

    private static void writeFloats(WritableByteChannel out, float[] v, DType dtype) throws IOException {
        ByteBuffer buf = chunk();
        for (float f : v) {
            if (buf.remaining() < dtype.bytes) {
                drain(out, buf);
            }
            switch (dtype) {
                case F64 -> buf.putDouble(f);
                case F32 -> buf.putFloat(f);
                case F16 -> buf.putShort(DType.floatToF16(f));
                case BF16 -> buf.putShort(DType.floatToBf16(f));
                default -> throw new IllegalStateException("not a float dtype: " + dtype);
            }
        }
        drain(out, buf);
    }

    private static void writeLongs(WritableByteChannel out, long[] v, DType dtype) throws IOException {
        ByteBuffer buf = chunk();
        for (long x : v) {
            if (buf.remaining() < dtype.bytes) {
                drain(out, buf);
            }
            switch (dtype) {
                case I64 -> buf.putLong(x);
                case I32 -> buf.putInt((int) x);
                case I16 -> buf.putShort((short) x);
                case I8, U8, BOOL -> buf.put((byte) x);
                default -> throw new IllegalStateException("not an integer dtype: " + dtype);
            }
        }
        drain(out, buf);
    }

    private static void writeSegment(WritableByteChannel out, MemorySegment data) throws IOException {
        ByteBuffer buf = chunk();
        MemorySegment staging = MemorySegment.ofBuffer(buf);
        long size = data.byteSize();
        for (long off = 0; off < size; off += CHUNK_BYTES) {
            int n = (int) Math.min(CHUNK_BYTES, size - off);
            MemorySegment.copy(data, off, staging, 0, n);
            buf.clear().limit(n);
            writeFully(out, buf);
        }
    }

    private static void drain(WritableByteChannel out, ByteBuffer buf) throws IOException {
        buf.flip();
        writeFully(out, buf);
        buf.clear();
    }

    private static void writeFully(WritableByteChannel out, ByteBuffer buf) throws IOException {
        while (buf.hasRemaining()) {
            out.write(buf);
        }
    }

    /** Passes at most one tensor's bytes through to the file and counts them. */
    private static final class BoundedChannel implements WritableByteChannel {
        private final FileChannel ch;
        private final Path file;
        private final Pending tensor;
        long written;

        BoundedChannel(FileChannel ch, Path file, Pending tensor) {
            this.ch = ch;
            this.file = file;
            this.tensor = tensor;
        }

        @Override
        public int write(ByteBuffer src) throws IOException {
            int n = src.remaining();
            if (n > tensor.byteSize - written) {
                throw new IllegalStateException(file + ": source of tensor '" + tensor.name + "' wrote more than its "
                        + tensor.byteSize + " bytes");
            }
            writeFully(ch, src);
            written += n;
            return n;
        }

        @Override
        public boolean isOpen() {
            return ch.isOpen();
        }

        @Override
        public void close() {
            // The file channel belongs to the writer.
        }
    }

}
