package org.qvlm4j.kernels;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * A row-major (rows N, cols K) weight matrix in a packed low-bit {@link QuantFormat}: codes in a
 * byte segment (row r starts at {@code r * format.rowBytes(K)}), fp32 scales per (row, group) and,
 * for asymmetric uniform formats, one unsigned 8-bit zero point per (row, group).
 *
 * <p>Groups are runs of {@code groupSize} consecutive weights of a row along K. The group size is
 * either K (per-row quantization; any K) or a multiple of {@value #GROUP_QUANTUM} that divides K
 * (32, 64, 128 in practice). As for {@link WeightMatrix}, rows are output features, so
 * {@code y = x W^T}.
 *
 * <p>{@link #quantize} computes scales itself: round-to-nearest-even over min/max (asymmetric) or
 * absmax (symmetric) per group, or absmax per block for NF4. {@link #pack} takes given scales and
 * zero points (e.g. from a clipping search). Leaves out: fp16 scales, double quantization, any
 * reordering of rows or columns (act-order).
 */
public final class PackedMatrix {
    /** Per-group quantization needs group sizes that are multiples of this (kernel granularity). */
    public static final int GROUP_QUANTUM = 32;

    private static final ValueLayout.OfByte BYTE = ValueLayout.JAVA_BYTE;

    private final QuantFormat format;
    private final int rows;
    private final int cols;
    private final int groupSize;
    private final int groups;
    private final long rowBytes;
    private final MemorySegment codes;
    private final float[] scales; // (rows, groups)
    private final byte[] zeros; // (rows, groups) unsigned, or null: symmetric / NF4
    private Int4Tiles tiles; // the decode GEMV's layout, made on first use

    /**
     * A packed matrix over existing codes, scales and zero points (zeros null for symmetric
     * uniform formats and for NF4); every size is checked.
     */
    public PackedMatrix(QuantFormat format, int rows, int cols, int groupSize,
                        MemorySegment codes, float[] scales, byte[] zeros) {
        checkShape(format, rows, cols, groupSize);
        this.format = format;
        this.rows = rows;
        this.cols = cols;
        this.groupSize = groupSize;
        this.groups = cols / groupSize;
        this.rowBytes = format.rowBytes(cols);
        long needCodes = rowBytes * rows;
        if (codes.byteSize() != needCodes) {
            throw new IllegalArgumentException("packed " + format + " (" + rows + ", " + cols + "): codes need "
                    + needCodes + " bytes, segment has " + codes.byteSize());
        }
        long nGroups = (long) rows * groups;
        if (scales.length != nGroups) {
            throw new IllegalArgumentException("packed " + format + " (" + rows + ", " + cols + ") group "
                    + groupSize + ": scales need " + nGroups + " floats, got " + scales.length);
        }
        if (format == QuantFormat.NF4 && zeros != null) {
            throw new IllegalArgumentException("packed NF4 has no zero points, got " + zeros.length);
        }
        if (zeros != null && zeros.length != nGroups) {
            throw new IllegalArgumentException("packed " + format + " (" + rows + ", " + cols + ") group "
                    + groupSize + ": zero points need " + nGroups + " bytes, got " + zeros.length);
        }
        if (zeros != null && format.bits < 8) {
            for (int i = 0; i < zeros.length; i++) {
                if ((zeros[i] & 0xFF) > format.maxCode()) {
                    throw new IllegalArgumentException("packed " + format + ": zero point " + i + " is "
                            + (zeros[i] & 0xFF) + ", expected <= " + format.maxCode());
                }
            }
        }
        this.codes = codes;
        this.scales = scales;
        this.zeros = zeros;
    }

    private static void checkShape(QuantFormat format, int rows, int cols, int groupSize) {
        if (rows <= 0 || cols <= 0) {
            throw new IllegalArgumentException("packed " + format + " shape must be positive, got ("
                    + rows + ", " + cols + ")");
        }
        if (groupSize != cols && (groupSize <= 0 || groupSize % GROUP_QUANTUM != 0 || cols % groupSize != 0)) {
            throw new IllegalArgumentException("packed " + format + " (" + rows + ", " + cols + "): group size "
                    + groupSize + " must be K = " + cols + " or a multiple of " + GROUP_QUANTUM + " dividing K");
        }
    }

    // ---- construction -------------------------------------------------------------------

    /**
     * Quantizes float weights (rows, cols) row-major with scales computed per group: min/max
     * (asymmetric) or absmax (symmetric; NF4 is always absmax), round to nearest even.
     */
    public static PackedMatrix quantize(float[] w, int rows, int cols, QuantFormat format, int groupSize,
                                        boolean symmetric) {
        checkShape(format, rows, cols, groupSize);
        checkWeights(w, rows, cols);
        int groups = cols / groupSize;
        float[] scales = new float[rows * groups];
        byte[] zeros = symmetric || format == QuantFormat.NF4 ? null : new byte[rows * groups];
        int maxCode = format.maxCode();
        int qmax = format.symmetricZero() - 1;
        for (int r = 0; r < rows; r++) {
            for (int g = 0; g < groups; g++) {
                int base = r * cols + g * groupSize;
                float lo = Float.POSITIVE_INFINITY;
                float hi = Float.NEGATIVE_INFINITY;
                float absmax = 0f;
                for (int k = 0; k < groupSize; k++) {
                    float v = w[base + k];
                    lo = Math.min(lo, v);
                    hi = Math.max(hi, v);
                    absmax = Math.max(absmax, Math.abs(v));
                }
                int gi = r * groups + g;
                if (format == QuantFormat.NF4) {
                    scales[gi] = absmax > 0 ? absmax : 1f;
                } else if (symmetric) {
                    scales[gi] = absmax > 0 ? absmax / qmax : 1f;
                } else {
                    float s = (hi - lo) / maxCode;
                    if (!(s > 0)) {
                        s = lo != 0 ? Math.abs(lo) : 1f;
                    }
                    scales[gi] = s;
                    zeros[gi] = (byte) clamp((int) Math.rint(-lo / s), 0, maxCode);
                }
            }
        }
        return pack(w, rows, cols, format, groupSize, scales, zeros);
    }

    /**
     * Packs float weights with the given scales (rows, groups) and zero points (null: symmetric or
     * NF4): each weight takes the nearest code (clamped; symmetric codes to z +- (2^(b-1) - 1)).
     */
    public static PackedMatrix pack(float[] w, int rows, int cols, QuantFormat format, int groupSize,
                                    float[] scales, byte[] zeros) {
        checkShape(format, rows, cols, groupSize);
        checkWeights(w, rows, cols);
        int groups = cols / groupSize;
        if (scales.length != rows * groups) {
            throw new IllegalArgumentException("pack " + format + ": scales need " + rows * groups
                    + " floats, got " + scales.length);
        }
        int[] q = new int[rows * cols];
        int maxCode = format.maxCode();
        int zs = format.symmetricZero();
        int lo = zeros == null ? zs - (zs - 1) : 0;
        int hi = zeros == null ? zs + (zs - 1) : maxCode;
        for (int r = 0; r < rows; r++) {
            for (int k = 0; k < cols; k++) {
                int gi = r * groups + k / groupSize;
                float s = scales[gi];
                if (!(s > 0) || !Float.isFinite(s)) {
                    throw new IllegalArgumentException("pack " + format + ": scale (" + r + ", " + k / groupSize
                            + ") must be positive and finite, got " + s);
                }
                float v = w[r * cols + k];
                if (format == QuantFormat.NF4) {
                    q[r * cols + k] = nearestNf4(v / s);
                } else {
                    int z = zeros == null ? zs : zeros[gi] & 0xFF;
                    q[r * cols + k] = clamp((int) Math.rint(v / s) + z, lo, hi);
                }
            }
        }
        return ofCodes(format, rows, cols, groupSize, q, scales.clone(), zeros == null ? null : zeros.clone());
    }

    /** Packs explicit codes (rows, cols) row-major into the format's byte layout (heap-backed). */
    public static PackedMatrix ofCodes(QuantFormat format, int rows, int cols, int groupSize,
                                       int[] q, float[] scales, byte[] zeros) {
        checkShape(format, rows, cols, groupSize);
        if (q.length != (long) rows * cols) {
            throw new IllegalArgumentException("ofCodes " + format + ": need " + (long) rows * cols
                    + " codes, got " + q.length);
        }
        long rb = format.rowBytes(cols);
        byte[] bytes = new byte[Math.toIntExact(rb * rows)];
        for (int r = 0; r < rows; r++) {
            packRow(format, q, r * cols, cols, bytes, (int) (r * rb));
        }
        return new PackedMatrix(format, rows, cols, groupSize, MemorySegment.ofArray(bytes), scales, zeros);
    }

    /** Writes n codes starting at q[qOff] into dst from dstOff in the format's row layout. */
    static void packRow(QuantFormat format, int[] q, int qOff, int n, byte[] dst, int dstOff) {
        int maxCode = format.maxCode();
        for (int k = 0; k < n; k++) {
            int c = q[qOff + k];
            if (c < 0 || c > maxCode) {
                throw new IllegalArgumentException("pack " + format + ": code " + k + " is " + c
                        + ", expected 0.." + maxCode);
            }
        }
        switch (format) {
            case INT8 -> {
                for (int k = 0; k < n; k++) {
                    dst[dstOff + k] = (byte) q[qOff + k];
                }
            }
            case INT4, NF4 -> {
                for (int k = 0; k < n; k++) {
                    dst[dstOff + k / 2] |= (byte) (q[qOff + k] << ((k & 1) * 4));
                }
            }
            case INT6 -> {
                for (int k = 0; k < n; k++) {
                    int c = q[qOff + k];
                    int base = dstOff + k / QuantFormat.INT6_BLOCK * QuantFormat.INT6_BLOCK_BYTES;
                    int i = k % QuantFormat.INT6_BLOCK;
                    if (i < 48) {
                        dst[base + i] |= (byte) c;
                    } else {
                        int j = i - 48;
                        dst[base + j] |= (byte) ((c & 3) << 6);
                        dst[base + 16 + j] |= (byte) (((c >> 2) & 3) << 6);
                        dst[base + 32 + j] |= (byte) (((c >> 4) & 3) << 6);
                    }
                }
            }
        }
    }

    /** Code k of a row whose bytes start at {@code rowOff} of seg. */
    static int codeAt(QuantFormat format, MemorySegment seg, long rowOff, int k) {
        return switch (format) {
            case INT8 -> seg.get(BYTE, rowOff + k) & 0xFF;
            case INT4, NF4 -> (seg.get(BYTE, rowOff + (k >> 1)) >> ((k & 1) * 4)) & 15;
            case INT6 -> {
                long base = rowOff + (long) (k / QuantFormat.INT6_BLOCK) * QuantFormat.INT6_BLOCK_BYTES;
                int i = k % QuantFormat.INT6_BLOCK;
                if (i < 48) {
                    yield seg.get(BYTE, base + i) & 63;
                }
                int j = i - 48;
                yield ((seg.get(BYTE, base + j) >> 6) & 3) | (((seg.get(BYTE, base + 16 + j) >> 6) & 3) << 2)
                        | (((seg.get(BYTE, base + 32 + j) >> 6) & 3) << 4);
            }
        };
    }

    private static void checkWeights(float[] w, int rows, int cols) {
        if (w.length != (long) rows * cols) {
            throw new IllegalArgumentException("quantize: weights need (" + rows + ", " + cols + ") = "
                    + (long) rows * cols + " floats, got " + w.length);
        }
    }

    static int nearestNf4(float v) {
        int best = 0;
        float bestErr = Float.POSITIVE_INFINITY;
        for (int i = 0; i < 16; i++) {
            float e = Math.abs(v - QuantFormat.NF4_LEVELS[i]);
            if (e < bestErr) {
                bestErr = e;
                best = i;
            }
        }
        return best;
    }

    private static int clamp(int v, int lo, int hi) {
        return Math.max(lo, Math.min(hi, v));
    }

    /** The same matrix with its codes copied into a segment of {@code arena} (e.g. off-heap). */
    public PackedMatrix copyCodesTo(Arena arena) {
        MemorySegment seg = arena.allocate(codes.byteSize(), 64);
        seg.copyFrom(codes);
        return new PackedMatrix(format, rows, cols, groupSize, seg, scales, zeros);
    }

    /**
     * The codes in the tiled layout of the INT4 kernels for {@code lanes} rows per tile
     * ({@link Int4Tiles}), made on the first call and kept (the latest lane count only). Codes
     * mapped from a file are then unloaded from memory, so the matrix is held once.
     */
    synchronized Int4Tiles int4Tiles(int lanes) {
        if (tiles == null || tiles.lanes != lanes) {
            tiles = Int4Tiles.build(this, lanes);
            if (codes.isMapped()) {
                codes.unload(); // the kernels read the tiles now; the pages come back from the file if read
            }
        }
        return tiles;
    }

    // ---- access -------------------------------------------------------------------------

    public QuantFormat format() {
        return format;
    }

    public int rows() {
        return rows;
    }

    public int cols() {
        return cols;
    }

    public int groupSize() {
        return groupSize;
    }

    /** Groups per row: K / groupSize. */
    public int groups() {
        return groups;
    }

    /** Bytes of one packed row. */
    public long rowBytes() {
        return rowBytes;
    }

    public MemorySegment codes() {
        return codes;
    }

    /** Scales (rows, groups), row-major; not copied: callers must not modify them. */
    float[] scalesArray() {
        return scales;
    }

    /** Zero points (rows, groups) unsigned, or null for symmetric / NF4; not copied. */
    byte[] zerosArray() {
        return zeros;
    }

    /** Whether uniform codes use the fixed zero point 2^(bits-1) (always false for NF4). */
    public boolean symmetric() {
        return format.isUniform() && zeros == null;
    }

    /** Code (r, k), 0 .. 2^bits - 1. */
    public int code(int r, int k) {
        return codeAt(format, codes, r * rowBytes, k);
    }

    public float scale(int r, int g) {
        return scales[r * groups + g];
    }

    /** Zero point of (r, g): the stored one, 2^(bits-1) when symmetric, 0 for NF4. */
    public int zeroPoint(int r, int g) {
        if (format == QuantFormat.NF4) {
            return 0;
        }
        return zeros == null ? format.symmetricZero() : zeros[r * groups + g] & 0xFF;
    }

    /** Codes of row r into dst[dstOff ..) and returns dst. */
    public int[] unpackRow(int r, int[] dst, int dstOff) {
        for (int k = 0; k < cols; k++) {
            dst[dstOff + k] = code(r, k);
        }
        return dst;
    }

    /** All codes (rows, cols) row-major. */
    public int[] unpack() {
        int[] q = new int[Math.multiplyExact(rows, cols)];
        for (int r = 0; r < rows; r++) {
            unpackRow(r, q, r * cols);
        }
        return q;
    }

    /** Dequantized weight (r, k): (q - z) * s, or NF4 level * absmax, one float rounding. */
    public float dequantize(int r, int k) {
        return dequantize(codes, r * rowBytes, r, k);
    }

    /** {@link #dequantize(int, int)} with row r's codes read from {@code seg} at {@code rowOff}. */
    float dequantize(MemorySegment seg, long rowOff, int r, int k) {
        int g = k / groupSize;
        int q = codeAt(format, seg, rowOff, k);
        float s = scale(r, g);
        return format == QuantFormat.NF4 ? QuantFormat.NF4_LEVELS[q] * s : (q - zeroPoint(r, g)) * s;
    }

    /** Row r dequantized into dst[dstOff .. dstOff + cols). */
    public void dequantizeRow(int r, float[] dst, int dstOff) {
        for (int k = 0; k < cols; k++) {
            dst[dstOff + k] = dequantize(r, k);
        }
    }

    /** The whole matrix dequantized (rows, cols). */
    public float[] dequantize() {
        float[] out = new float[Math.multiplyExact(rows, cols)];
        for (int r = 0; r < rows; r++) {
            dequantizeRow(r, out, r * cols);
        }
        return out;
    }

    /** Bytes of codes + fp32 scales + 8-bit zero points. */
    public long byteSize() {
        return codes.byteSize() + 4L * scales.length + (zeros == null ? 0 : zeros.length);
    }

    /** {@link #byteSize()} per weight. */
    public double bytesPerWeight() {
        return (double) byteSize() / ((double) rows * cols);
    }

    @Override
    public String toString() {
        return "PackedMatrix[" + format + (symmetric() ? " sym" : "") + " (" + rows + ", " + cols + ") group "
                + groupSize + "]";
    }
}
