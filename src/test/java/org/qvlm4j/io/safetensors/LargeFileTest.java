package org.qvlm4j.io.safetensors;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qvlm4j.kernels.DType;

/**
 * A safetensors file past 2 GiB, and one tensor spanning more than 2^31 bytes, read through the
 * mapping at long offsets. The file is sparse: only the header and a few known values occupy
 * disk blocks, the rest reads as zeros.
 */
class LargeFileTest {
    private static final long ROWS = 2;
    /** Columns chosen so the tensor is 2^31 + 2^27 bytes = 2.125 GiB of F32. */
    private static final long COLS = ((1L << 31) + (1L << 27)) / 4 / ROWS;
    private static final long BYTES = ROWS * COLS * 4;

    @TempDir
    Path dir;

    @Test
    void tensorPastTwoGibReadsAtLongOffsets() throws IOException {
        Path file = dir.resolve("big.safetensors");
        String json = "{\"__metadata__\":{\"k\":\"v\"},\"big\":{\"dtype\":\"F32\",\"shape\":[" + ROWS + "," + COLS
                + "],\"data_offsets\":[0," + BYTES + "]},\"tail\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":["
                + BYTES + "," + (BYTES + 3) + "]}}";
        String header = json + " ".repeat((8 - json.length() % 8) % 8);
        long dataStart = 8 + header.length();
        long[] idx = {0, (1L << 29) + 5, ROWS * COLS - 2, ROWS * COLS - 1}; // element indices; the last three lie past 2^31 bytes
        float[] vals = {1.5f, -7.25f, 3e30f, -0.5f};
        try (RandomAccessFile raf = new RandomAccessFile(file.toFile(), "rw")) {
            try {
                raf.setLength(dataStart + BYTES + 3);
            } catch (IOException e) {
                Assumptions.abort("filesystem cannot hold a sparse 2 GiB file: " + e.getMessage());
            }
            byte[] h = header.getBytes(StandardCharsets.US_ASCII);
            raf.write(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(h.length).array());
            raf.write(h);
            for (int i = 0; i < idx.length; i++) {
                raf.seek(dataStart + idx[i] * 4);
                raf.write(ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putFloat(vals[i]).array());
            }
            raf.seek(dataStart + BYTES);
            raf.write(new byte[] {9, 8, (byte) 200});
        }
        Assumptions.assumeTrue(Files.size(file) > (1L << 31));
        try (SafeTensors st = SafeTensors.open(file)) {
            TensorEntry big = st.get("big");
            assertEquals(DType.F32, big.dtype());
            assertArrayEquals(new long[] {ROWS, COLS}, big.shape());
            assertEquals(BYTES, big.data().byteSize());
            assertTrue(idx[1] * 4 > (1L << 31) && BYTES > (1L << 31));
            for (int i = 0; i < idx.length; i++) {
                assertEquals(vals[i], big.getDouble(idx[i]), 0.0, "element " + idx[i]);
            }
            assertEquals(0.0, big.getDouble(idx[1] + 1));
            assertArrayEquals(new float[] {0f, -7.25f, 0f}, big.readFloats(idx[1] - 1, 3));
            assertArrayEquals(new float[] {0f, 3e30f, -0.5f}, big.readFloats(ROWS * COLS - 3, 3));
            assertThrows(IndexOutOfBoundsException.class, () -> big.readFloats(ROWS * COLS - 2, 3));
            assertArrayEquals(new long[] {9, 8, 200}, st.get("tail").toLongArray());
            assertEquals("v", st.metadata().get("k"));
        }
    }

    @Test
    void u8TensorWithMoreThanTwoToThe31Elements() throws IOException {
        long n = (1L << 31) + 16;
        Path file = dir.resolve("u8.safetensors");
        String json = "{\"q\":{\"dtype\":\"U8\",\"shape\":[" + n + "],\"data_offsets\":[0," + n + "]}}";
        String header = json + " ".repeat((8 - json.length() % 8) % 8);
        long dataStart = 8 + header.length();
        try (RandomAccessFile raf = new RandomAccessFile(file.toFile(), "rw")) {
            try {
                raf.setLength(dataStart + n);
            } catch (IOException e) {
                Assumptions.abort("filesystem cannot hold a sparse 2 GiB file: " + e.getMessage());
            }
            byte[] h = header.getBytes(StandardCharsets.US_ASCII);
            raf.write(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(h.length).array());
            raf.write(h);
            raf.seek(dataStart + n - 3);
            raf.write(new byte[] {(byte) 255, 0, 17});
        }
        try (SafeTensors st = SafeTensors.open(file)) {
            TensorEntry q = st.get("q");
            assertEquals(n, q.numel());
            assertEquals(255.0, q.getDouble(n - 3));
            assertEquals(17.0, q.getDouble(n - 1));
            assertArrayEquals(new float[] {0, 255, 0, 17}, q.readFloats(n - 4, 4));
            SafeTensorsException e = assertThrows(SafeTensorsException.class, q::toFloatArray);
            assertTrue(e.getMessage().contains("'q'") && e.getMessage().contains(String.valueOf(n)), e.getMessage());
        }
    }
}
