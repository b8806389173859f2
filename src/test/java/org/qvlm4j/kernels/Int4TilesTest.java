package org.qvlm4j.kernels;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The tiled INT4 layout read back code by code, the lane padding, and the property's values. */
class Int4TilesTest {
    private static final ValueLayout.OfInt INT = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    @Test
    void everyCodeScaleAndZeroTermSitsWhereTheLayoutSays() {
        int N = 7;
        int K = 64;
        int G = 32;
        int lanes = 4;
        PackedMatrix w = PackedMatrix.quantize(KernelTestData.gaussian(N * K, 41), N, K, QuantFormat.INT4, G, false);
        Int4Tiles t = w.int4Tiles(lanes);
        assertEquals(2, t.tiles);
        assertEquals(2L * (K / 8) * lanes * 4, t.codes.byteSize());
        for (int r = 0; r < 2 * lanes; r++) {
            int tile = r / lanes;
            int lane = r % lanes;
            for (int k = 0; k < K; k++) {
                int word = t.codes.get(INT, 4L * ((tile * (K / 8) + k / 8) * lanes + lane));
                int code = word >>> (4 * (k % 8)) & 0xF;
                assertEquals(r < N ? w.code(r, k) : 0, code, "row " + r + " k " + k);
            }
            for (int g = 0; g < w.groups(); g++) {
                int i = (tile * w.groups() + g) * lanes + lane;
                float s = r < N ? w.scale(r, g) : 0f;
                assertEquals(s, t.scales[i], "scale " + r + ", " + g);
                assertEquals(r < N ? s * w.zeroPoint(r, g) : 0f, t.zeroTerms[i], "zero term " + r + ", " + g);
            }
        }
        assertSame(t, w.int4Tiles(lanes), "kept for the same lane count");
        assertEquals(8, w.int4Tiles(8).lanes);
    }

    @Test
    void rowsCopiedBackFromTilesAreTheRowMajorCodes() {
        int N = 37;
        int K = 96;
        PackedMatrix w = PackedMatrix.quantize(KernelTestData.gaussian(N * K, 43), N, K, QuantFormat.INT4, 32, true);
        Int4Tiles t = w.int4Tiles(16);
        MemorySegment rows = MemorySegment.ofArray(new byte[(int) (5 * w.rowBytes())]);
        t.copyRows(w, 30, 5, rows); // across the second and third (padded) tiles
        assertEquals(-1L, rows.mismatch(w.codes().asSlice(30 * w.rowBytes(), 5 * w.rowBytes())));
    }

    @Test
    void mappedCodesStayReadableAfterTheTilesAreMade(@TempDir Path dir) throws IOException {
        int N = 20;
        int K = 64;
        PackedMatrix heap = PackedMatrix.quantize(KernelTestData.gaussian(N * K, 47), N, K, QuantFormat.INT4, 64, false);
        Path file = dir.resolve("codes.bin");
        Files.write(file, heap.codes().toArray(ValueLayout.JAVA_BYTE));
        try (Arena arena = Arena.ofConfined(); FileChannel ch = FileChannel.open(file)) {
            MemorySegment mapped = ch.map(FileChannel.MapMode.READ_ONLY, 0, heap.codes().byteSize(), arena);
            PackedMatrix w = new PackedMatrix(QuantFormat.INT4, N, K, 64, mapped, heap.scalesArray(), heap.zerosArray());
            w.int4Tiles(16); // unloads the mapped pages
            assertArrayEquals(heap.unpack(), w.unpack());
        }
    }

    @Test
    void onlyInt4WithWholeChunksIsTiled() {
        PackedMatrix odd = PackedMatrix.quantize(KernelTestData.gaussian(2 * 12, 1), 2, 12, QuantFormat.INT4, 12, true);
        PackedMatrix int8 = PackedMatrix.quantize(KernelTestData.gaussian(2 * 16, 1), 2, 16, QuantFormat.INT8, 16, true);
        assertTrue(!Int4Tiles.supports(odd) && !Int4Tiles.supports(int8));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> odd.int4Tiles(16));
        assertTrue(e.getMessage().contains("(2, 12)"), e.getMessage());
    }

    @Test
    void propertySelectsTheForm() {
        String before = System.getProperty(Int4Tiles.PROPERTY);
        try {
            System.clearProperty(Int4Tiles.PROPERTY);
            assertTrue(Int4Tiles.enabled(16, 16) && !Int4Tiles.enabled(8, 16));
            System.setProperty(Int4Tiles.PROPERTY, "on");
            assertTrue(Int4Tiles.enabled(4, 16));
            System.setProperty(Int4Tiles.PROPERTY, "off");
            assertTrue(!Int4Tiles.enabled(16, 16));
            System.setProperty(Int4Tiles.PROPERTY, "yes");
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Int4Tiles.enabled(16, 16));
            assertTrue(e.getMessage().contains(Int4Tiles.PROPERTY) && e.getMessage().contains("yes"), e.getMessage());
        } finally {
            if (before == null) {
                System.clearProperty(Int4Tiles.PROPERTY);
            } else {
                System.setProperty(Int4Tiles.PROPERTY, before);
            }
        }
    }
}
