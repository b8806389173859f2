package org.qvlm4j.kernels;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * An INT4 {@link PackedMatrix} re-laid for the decode GEMV with one output row per vector lane:
 * rows are taken in tiles of {@code lanes} rows (the last tile padded with zero codes and zero
 * scales), and within a tile the codes go by 8-code chunk along K, lane by lane: the int at byte
 * {@code 4 * ((tile * K / 8 + chunk) * lanes + lane)} holds codes {@code 8 chunk .. 8 chunk + 7}
 * of row {@code tile * lanes + lane}, code {@code 8 chunk + j} in bits {@code 4j .. 4j + 3}
 * (little-endian, as the row-major codes store them). One vector load then gives 8 codes of
 * each of {@code lanes} rows, and each code's activation is one broadcast. Scales and the folded
 * zero-point factors {@code s * z} are tiled the same way: index {@code (tile * groups + g) *
 * lanes + lane}.
 *
 * <p>Built from the row-major codes by {@link PackedMatrix#int4Tiles}, once per matrix and lane
 * count, in memory of its own; the weight-only kernels then read only the tiles (the GEMM copies a
 * panel's rows back with {@link #copyRows}), and codes mapped from a file are unloaded. Requires K
 * to be a multiple of 8; groups are then whole chunks (groups are K or multiples of
 * {@value PackedMatrix#GROUP_QUANTUM}).
 */
final class Int4Tiles {
    /** System property choosing the decode form: auto, on or off. */
    static final String PROPERTY = "qvlm4j.int4Tiles";

    private static final ValueLayout.OfInt INT = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    final int lanes;
    final int tiles;
    final MemorySegment codes;
    final float[] scales;
    final float[] zeroTerms;

    private Int4Tiles(int lanes, int tiles, MemorySegment codes, float[] scales, float[] zeroTerms) {
        this.lanes = lanes;
        this.tiles = tiles;
        this.codes = codes;
        this.scales = scales;
        this.zeroTerms = zeroTerms;
    }

    /** Whether kernels of {@code lanes} lanes use tiles, per {@link #PROPERTY}. */
    static boolean enabled(int lanes, int minLanes) {
        String v = System.getProperty(PROPERTY, "auto");
        return switch (v) {
            case "auto" -> lanes >= minLanes;
            case "on" -> true;
            case "off" -> false;
            default -> throw new IllegalArgumentException("system property " + PROPERTY + ": expected auto, on or off, got "
                    + v);
        };
    }

    /** Whether {@code w} can be tiled: INT4 with K a multiple of 8. */
    static boolean supports(PackedMatrix w) {
        return w.format() == QuantFormat.INT4 && w.cols() % 8 == 0;
    }

    static Int4Tiles build(PackedMatrix w, int lanes) {
        if (!supports(w)) {
            throw new IllegalArgumentException("INT4 tiles need INT4 codes with K a multiple of 8, got " + w);
        }
        if (lanes < 1) {
            throw new IllegalArgumentException("INT4 tiles need at least one lane, got " + lanes);
        }
        int N = w.rows();
        int chunks = w.cols() / 8;
        int groups = w.groups();
        int tiles = (N + lanes - 1) / lanes;
        MemorySegment src = w.codes();
        MemorySegment dst = Arena.ofAuto().allocate((long) tiles * chunks * lanes * 4, 64);
        float[] sc = new float[tiles * groups * lanes];
        float[] sz = new float[sc.length];
        for (int r = 0; r < N; r++) {
            int tile = r / lanes;
            int lane = r % lanes;
            long from = r * w.rowBytes();
            long to = (long) tile * chunks * lanes * 4 + 4L * lane;
            for (int c = 0; c < chunks; c++) {
                dst.set(INT, to + (long) c * lanes * 4, src.get(INT, from + 4L * c));
            }
            for (int g = 0; g < groups; g++) {
                float s = w.scale(r, g);
                int i = (tile * groups + g) * lanes + lane;
                sc[i] = s;
                sz[i] = s * w.zeroPoint(r, g);
            }
        }
        return new Int4Tiles(lanes, tiles, dst, sc, sz);
    }

    /**
     * Rows r0 .. r0 + n - 1 of {@code w} back in the row-major layout of {@link PackedMatrix}
     * (row r0 + i at {@code dst} offset {@code i * w.rowBytes()}).
     */
    void copyRows(PackedMatrix w, int r0, int n, MemorySegment dst) {
        int chunks = w.cols() / 8;
        long rowBytes = w.rowBytes();
        for (int i = 0; i < n; i++) {
            int r = r0 + i;
            long from = (long) (r / lanes) * chunks * lanes * 4 + 4L * (r % lanes);
            for (int c = 0; c < chunks; c++) {
                dst.set(INT, i * rowBytes + 4L * c, codes.get(INT, from + (long) c * lanes * 4));
            }
        }
    }
}
