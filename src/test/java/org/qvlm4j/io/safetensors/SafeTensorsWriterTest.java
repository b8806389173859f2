package org.qvlm4j.io.safetensors;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.qvlm4j.io.safetensors.RawFiles.concat;
import static org.qvlm4j.io.safetensors.RawFiles.le64;
import static org.qvlm4j.io.safetensors.RawFiles.leFloats;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qvlm4j.kernels.DType;

/** The writer against hand-built bytes, hand-computed bit patterns and the HF fixture. */
class SafeTensorsWriterTest {
    private static final Path FIXTURE = Path.of("src/test/resources/fixtures/tiny-llava/model.safetensors");
    private static final ValueLayout.OfShort I16_LE =
            ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    @TempDir
    Path dir;

    @Test
    void singleTensorMatchesHandBuiltBytes() throws IOException {
        Path out = dir.resolve("a.safetensors");
        new SafeTensorsWriter().addFloats("attn.0", DType.F32, new long[] {1, 2, 3}, new float[] {0, 1, 2, 3, 4, 5})
                .write(out);
        // 64 header bytes: already a multiple of 8, so no padding.
        String header = "{\"attn.0\":{\"dtype\":\"F32\",\"shape\":[1,2,3],\"data_offsets\":[0,24]}}";
        assertEquals(64, header.length());
        byte[] data = {0, 0, 0, 0, 0, 0, (byte) 0x80, 0x3F, 0, 0, 0, 0x40, 0, 0, 0x40, 0x40, 0, 0, (byte) 0x80, 0x40,
            0, 0, (byte) 0xA0, 0x40};
        byte[] expected = concat(le64(64), header.getBytes(StandardCharsets.US_ASCII), data);
        assertArrayEquals(expected, Files.readAllBytes(out));
    }

    @Test
    void headerIsPaddedWithSpacesToEightBytes() throws IOException {
        Path out = dir.resolve("a.safetensors");
        new SafeTensorsWriter().addFloats("attn0", DType.F32, new long[] {1, 1, 2, 3}, new float[] {0, 1, 2, 3, 4, 5})
                .write(out);
        String header = "{\"attn0\":{\"dtype\":\"F32\",\"shape\":[1,1,2,3],\"data_offsets\":[0,24]}}" + "       ";
        assertEquals(72, header.length());
        byte[] expected = concat(le64(72), header.getBytes(StandardCharsets.US_ASCII), leFloats(0, 1, 2, 3, 4, 5));
        assertArrayEquals(expected, Files.readAllBytes(out));
    }

    @Test
    void mixedDtypesOrderedByAlignmentThenNameWithMetadataFirst() throws IOException {
        Path out = dir.resolve("m.safetensors");
        new SafeTensorsWriter()
                .addLongs("b", DType.U8, new long[] {3}, new long[] {1, 2, 255})
                .addFloats("a", DType.F32, new long[] {1}, new float[] {1f})
                .addLongs("c", DType.I64, new long[] {1}, new long[] {-1})
                .addFloats("aa", DType.F32, new long[] {}, new float[] {2f})
                .metadata("format", "pt")
                .metadata("author", "x")
                .write(out);
        String json = "{\"__metadata__\":{\"author\":\"x\",\"format\":\"pt\"},"
                + "\"c\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]},"
                + "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]},"
                + "\"aa\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[12,16]},"
                + "\"b\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[16,19]}}";
        String header = json + " ".repeat((8 - json.length() % 8) % 8);
        byte[] data = concat(new byte[] {-1, -1, -1, -1, -1, -1, -1, -1}, leFloats(1f, 2f), new byte[] {1, 2, (byte) 255});
        byte[] expected = concat(le64(header.length()), header.getBytes(StandardCharsets.US_ASCII), data);
        assertArrayEquals(expected, Files.readAllBytes(out));
    }

    @Test
    void sameTensorsInAnyInsertionOrderGiveSameBytes() throws IOException {
        Random rnd = new Random(7);
        float[] w = new float[24];
        for (int i = 0; i < w.length; i++) {
            w[i] = (float) rnd.nextGaussian();
        }
        Path p1 = dir.resolve("1.safetensors");
        Path p2 = dir.resolve("2.safetensors");
        new SafeTensorsWriter().addFloats("x.w", DType.BF16, new long[] {4, 6}, w)
                .addInts("x.q", DType.I8, new long[] {5}, new int[] {-128, -1, 0, 1, 127})
                .addFloats("a.w", DType.F16, new long[] {24}, w).metadata("k", "v").write(p1);
        new SafeTensorsWriter().metadata("k", "v").addFloats("a.w", DType.F16, new long[] {24}, w)
                .addInts("x.q", DType.I8, new long[] {5}, new int[] {-128, -1, 0, 1, 127})
                .addFloats("x.w", DType.BF16, new long[] {4, 6}, w).write(p2);
        assertEquals(-1, Files.mismatch(p1, p2));
        // Every tensor starts at a file offset (hence, in a page-aligned mapping, an address) that
        // is a multiple of its element size, although the I8 tensor has an odd length.
        try (SafeTensors st = SafeTensors.open(p1)) {
            for (TensorEntry e : st.tensors().values()) {
                assertEquals(0, e.data().address() % e.dtype().bytes, e.name());
            }
        }
    }

    @Test
    void f16ConversionMatchesHandComputedBits() {
        float[] in = {1f, -2f, 65504f, 0.1f, 1f / 3, 65520f, 1e-8f, -0f, 0x1p-24f};
        short[] bits = {0x3C00, (short) 0xC000, 0x7BFF, 0x2E66, 0x3555, 0x7C00, 0x0000, (short) 0x8000, 0x0001};
        float[] back = {1f, -2f, 65504f, 0.0999755859375f, 0.333251953125f, Float.POSITIVE_INFINITY, 0f, -0f, 0x1p-24f};
        checkFloatBits(DType.F16, in, bits, back);
    }

    @Test
    void bf16ConversionMatchesHandComputedBits() {
        // 1 + 2^-8 and 1 + 3 * 2^-8 are exact ties: round to even keeps 0x3F80 and lifts 0x3F81 to 0x3F82.
        float[] in = {1f, 0.1f, 1f / 3, 1.00390625f, 1.01171875f, -0f, Float.MAX_VALUE, Float.NaN};
        short[] bits = {0x3F80, 0x3DCD, 0x3EAB, 0x3F80, 0x3F82, (short) 0x8000, 0x7F80, 0x7FC0};
        float[] back = {1f, 0.10009765625f, 0.333984375f, 1f, 1.015625f, -0f, Float.POSITIVE_INFINITY, Float.NaN};
        checkFloatBits(DType.BF16, in, bits, back);
    }

    private void checkFloatBits(DType dtype, float[] in, short[] bits, float[] back) {
        Path out = dir.resolve(dtype + ".safetensors");
        new SafeTensorsWriter().addFloats("t", dtype, new long[] {in.length}, in).write(out);
        try (SafeTensors st = SafeTensors.open(out)) {
            TensorEntry e = st.get("t");
            assertEquals(dtype, e.dtype());
            for (int i = 0; i < in.length; i++) {
                assertEquals(bits[i], e.data().get(I16_LE, 2L * i), dtype + " bits of " + in[i]);
            }
            float[] decoded = e.toFloatArray();
            for (int i = 0; i < in.length; i++) {
                assertEquals(Float.floatToIntBits(back[i]), Float.floatToIntBits(decoded[i]), dtype + " value of " + in[i]);
            }
        }
    }

    @Test
    void f32AndF64KeepEveryBit() {
        float[] in = {0f, -0f, Float.MIN_VALUE, Float.MAX_VALUE, Float.NEGATIVE_INFINITY, 1.1754942E-38f, -3.25f,
            Float.intBitsToFloat(0x7FC12345)};
        Path out = dir.resolve("f.safetensors");
        new SafeTensorsWriter().addFloats("f32", DType.F32, new long[] {2, 4}, in)
                .addFloats("f64", DType.F64, new long[] {8}, in).write(out);
        try (SafeTensors st = SafeTensors.open(out)) {
            TensorEntry f32 = st.get("f32");
            TensorEntry f64 = st.get("f64");
            assertArrayEquals(new long[] {2, 4}, f32.shape());
            for (int i = 0; i < in.length; i++) {
                int raw = f32.data().get(ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 4L * i);
                assertEquals(Float.floatToRawIntBits(in[i]), raw);
                assertEquals((double) in[i], f64.getDouble(i));
            }
        }
    }

    @Test
    void integerDtypesRoundTripExactly() {
        long[] i64 = {Long.MIN_VALUE, -1, 0, 1, Long.MAX_VALUE};
        long[] i32 = {Integer.MIN_VALUE, -1, 0, 1, Integer.MAX_VALUE};
        long[] i16 = {Short.MIN_VALUE, -2, 0, 1, Short.MAX_VALUE};
        long[] i8 = {-128, -1, 0, 1, 127};
        long[] u8 = {0, 1, 127, 128, 255};
        long[] bool = {0, 1, 1, 0, 1};
        Path out = dir.resolve("i.safetensors");
        new SafeTensorsWriter().addLongs("i64", DType.I64, new long[] {5}, i64)
                .addLongs("i32", DType.I32, new long[] {5}, i32)
                .addInts("i16", DType.I16, new long[] {5}, toInts(i16))
                .addLongs("i8", DType.I8, new long[] {1, 5}, i8)
                .addInts("u8", DType.U8, new long[] {5, 1}, toInts(u8))
                .addLongs("bool", DType.BOOL, new long[] {5}, bool)
                .write(out);
        try (SafeTensors st = SafeTensors.open(out)) {
            assertArrayEquals(i64, st.get("i64").toLongArray());
            assertArrayEquals(i32, st.get("i32").toLongArray());
            assertArrayEquals(i16, st.get("i16").toLongArray());
            assertArrayEquals(i8, st.get("i8").toLongArray());
            assertArrayEquals(u8, st.get("u8").toLongArray());
            assertArrayEquals(bool, st.get("bool").toLongArray());
            // -2 as I16 little-endian is FE FF; 128 as U8 is the byte 0x80.
            assertArrayEquals(new byte[] {(byte) 0xFE, (byte) 0xFF},
                    st.get("i16").data().asSlice(2, 2).toArray(ValueLayout.JAVA_BYTE));
            assertEquals((byte) 0x80, st.get("u8").data().get(ValueLayout.JAVA_BYTE, 3));
        }
    }

    @Test
    void rawBytesOfAnyDtypeAreCopiedVerbatim() {
        byte[] packed = new byte[24];
        new Random(3).nextBytes(packed);
        Path out = dir.resolve("q.safetensors");
        new SafeTensorsWriter().addBytes("qweight", DType.I32, new long[] {2, 3}, packed)
                .addBytes("zeros", DType.U8, new long[] {24}, packed)
                .addSegment("scales", DType.F16, new long[] {3, 4}, java.lang.foreign.MemorySegment.ofArray(packed))
                .write(out);
        try (SafeTensors st = SafeTensors.open(out)) {
            for (String n : List.of("qweight", "zeros", "scales")) {
                assertArrayEquals(packed, st.get(n).data().toArray(ValueLayout.JAVA_BYTE), n);
            }
            assertEquals(DType.I32, st.get("qweight").dtype());
        }
    }

    @Test
    void emptyScalarAndHighRankTensorsRoundTrip() {
        float[] r4 = new float[2 * 3 * 1 * 2];
        for (int i = 0; i < r4.length; i++) {
            r4[i] = i - 5.5f;
        }
        Path out = dir.resolve("e.safetensors");
        new SafeTensorsWriter().addFloats("empty", DType.F32, new long[] {0, 4}, new float[0])
                .addFloats("scalar", DType.F32, new long[] {}, new float[] {42.5f})
                .addFloats("r4", DType.F32, new long[] {2, 3, 1, 2}, r4)
                .addLongs("empty_i8", DType.I8, new long[] {3, 0}, new long[0])
                .write(out);
        try (SafeTensors st = SafeTensors.open(out)) {
            assertEquals(0, st.get("empty").numel());
            assertEquals(0, st.get("empty").data().byteSize());
            assertArrayEquals(new long[] {0, 4}, st.get("empty").shape());
            assertArrayEquals(new long[] {3, 0}, st.get("empty_i8").shape());
            assertEquals(0, st.get("scalar").rank());
            assertEquals(1, st.get("scalar").numel());
            assertEquals(42.5, st.get("scalar").getDouble(0));
            assertArrayEquals(r4, st.get("r4").toFloatArray());
            assertArrayEquals(new float[] {-5.5f + 7, -5.5f + 8}, st.get("r4").readFloats(7, 2));
        }
    }

    @Test
    void fixtureRewrittenIsByteIdenticalAndReadsBackTheSameTensors() throws IOException {
        Path out = dir.resolve("model.safetensors");
        try (SafeTensors src = SafeTensors.open(FIXTURE)) {
            SafeTensorsWriter w = new SafeTensorsWriter().metadata(src.metadata());
            // Reverse name order: the writer's ordering, not ours, decides the layout.
            src.names().stream().sorted(java.util.Comparator.reverseOrder()).forEach(n -> w.add(src.get(n)));
            w.write(out);
            try (SafeTensors back = SafeTensors.open(out)) {
                assertEquals(src.names(), back.names());
                assertEquals(src.metadata(), back.metadata());
                for (String n : src.names()) {
                    TensorEntry a = src.get(n);
                    TensorEntry b = back.get(n);
                    assertEquals(a.dtype(), b.dtype(), n);
                    assertArrayEquals(a.shape(), b.shape(), n);
                    assertEquals(-1, a.data().mismatch(b.data()), n);
                }
            }
        }
        // The fixture came from the Rust crate; same ordering, JSON and padding give the same file.
        assertEquals(-1, Files.mismatch(FIXTURE, out));
    }

    @Test
    void failingSourceLeavesNoFileAndNoTempFile() throws IOException {
        Path out = dir.resolve("fail.safetensors");
        SafeTensorsWriter w = new SafeTensorsWriter().addFloats("a", DType.F32, new long[] {4}, new float[] {1, 2, 3, 4})
                .add("b", DType.U8, new long[] {1 << 16}, ch -> {
                    ch.write(ByteBuffer.allocate(1000));
                    throw new IOException("disk on fire");
                });
        UncheckedIOException e = assertThrows(UncheckedIOException.class, () -> w.write(out));
        assertTrue(e.getMessage().contains(out.toString()) && e.getMessage().contains("'b'")
                && e.getMessage().contains("disk on fire"), e.getMessage());
        assertEquals(List.of(), listDir());
    }

    @Test
    void failingWriteKeepsThePreviousFile() throws IOException {
        Path out = dir.resolve("keep.safetensors");
        new SafeTensorsWriter().addFloats("a", DType.F32, new long[] {1}, new float[] {7}).write(out);
        byte[] before = Files.readAllBytes(out);
        SafeTensorsWriter w = new SafeTensorsWriter().addFloats("a", DType.F32, new long[] {1}, () -> {
            throw new IllegalStateException("no values");
        });
        assertThrows(IllegalStateException.class, () -> w.write(out));
        assertArrayEquals(before, Files.readAllBytes(out));
        assertEquals(List.of(out), listDir());
    }

    @Test
    void sourceWritingTooFewOrTooManyBytesFails() throws IOException {
        Path out = dir.resolve("short.safetensors");
        SafeTensorsWriter shortW = new SafeTensorsWriter().add("s", DType.F32, new long[] {4}, ch -> ch.write(ByteBuffer.allocate(12)));
        IllegalStateException e1 = assertThrows(IllegalStateException.class, () -> shortW.write(out));
        assertTrue(e1.getMessage().contains("'s'") && e1.getMessage().contains("12") && e1.getMessage().contains("16"),
                e1.getMessage());
        SafeTensorsWriter longW = new SafeTensorsWriter().add("l", DType.F32, new long[] {4}, ch -> ch.write(ByteBuffer.allocate(20)));
        IllegalStateException e2 = assertThrows(IllegalStateException.class, () -> longW.write(out));
        assertTrue(e2.getMessage().contains("'l'") && e2.getMessage().contains("16"), e2.getMessage());
        assertEquals(List.of(), listDir());
    }

    @Test
    void lazySuppliersRunOnlyWhileWritingOneAtATime() {
        AtomicInteger calls = new AtomicInteger();
        SafeTensorsWriter w = new SafeTensorsWriter();
        for (int t = 0; t < 3; t++) {
            int id = t;
            w.addFloats("t" + t, DType.BF16, new long[] {2}, () -> {
                calls.incrementAndGet();
                return new float[] {id, -id};
            });
        }
        assertEquals(0, calls.get());
        Path out = dir.resolve("lazy.safetensors");
        w.write(out);
        assertEquals(3, calls.get());
        try (SafeTensors st = SafeTensors.open(out)) {
            assertArrayEquals(new float[] {2, -2}, st.get("t2").toFloatArray());
        }
        SafeTensorsWriter bad = new SafeTensorsWriter().addFloats("x", DType.F32, new long[] {3}, () -> new float[2]);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> bad.write(dir.resolve("bad.safetensors")));
        assertTrue(e.getMessage().contains("'x'") && e.getMessage().contains("3") && e.getMessage().contains("2"));
    }

    @Test
    void badAddsAreRejectedWithTheTensorName() {
        SafeTensorsWriter w = new SafeTensorsWriter().addFloats("a", DType.F32, new long[] {1}, new float[1]);
        assertMessage(() -> w.addFloats("a", DType.F32, new long[] {1}, new float[1]), "'a'", "already");
        assertMessage(() -> w.addFloats("b", DType.F32, new long[] {2, 2}, new float[3]), "'b'", "4", "3");
        assertMessage(() -> w.addFloats("c", DType.I32, new long[] {1}, new float[1]), "'c'", "I32");
        assertMessage(() -> w.addLongs("d", DType.F32, new long[] {1}, new long[1]), "'d'", "F32");
        assertMessage(() -> w.addLongs("e", DType.I8, new long[] {2}, new long[] {0, 128}), "'e'", "128", "index 1", "I8");
        assertMessage(() -> w.addInts("f", DType.U8, new long[] {1}, new int[] {-1}), "'f'", "-1", "U8");
        assertMessage(() -> w.addLongs("g", DType.I32, new long[] {1}, new long[] {1L << 31}), "'g'", "2147483648");
        assertMessage(() -> w.addLongs("h", DType.BOOL, new long[] {1}, new long[] {2}), "'h'", "BOOL");
        assertMessage(() -> w.addBytes("i", DType.F16, new long[] {3}, new byte[5]), "'i'", "6", "5");
        assertMessage(() -> w.addBytes("j", DType.U8, new long[] {-1}, new byte[0]), "'j'", "negative");
        assertMessage(() -> w.addBytes("k", DType.I64, new long[] {1L << 62}, new byte[0]), "'k'", "overflow");
        assertMessage(() -> w.addBytes("__metadata__", DType.U8, new long[] {0}, new byte[0]), "__metadata__");
    }

    private static void assertMessage(org.junit.jupiter.api.function.Executable x, String... parts) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, x);
        for (String p : parts) {
            assertTrue(e.getMessage().contains(p), "'" + p + "' not in: " + e.getMessage());
        }
    }

    private List<Path> listDir() throws IOException {
        try (Stream<Path> s = Files.list(dir)) {
            return s.sorted().toList();
        }
    }

    private static int[] toInts(long[] v) {
        int[] out = new int[v.length];
        for (int i = 0; i < v.length; i++) {
            out[i] = Math.toIntExact(v[i]);
        }
        return out;
    }
}
