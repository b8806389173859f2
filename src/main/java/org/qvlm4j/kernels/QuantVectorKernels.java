package org.qvlm4j.kernels;

import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandles;
import java.nio.ByteOrder;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * Vector API kernels for {@link PackedMatrix} weights at one vector width (static species; hidden
 * per-width copies come from {@link QuantKernelSets}, as for {@link VectorKernels}).
 *
 * <p><b>Weight-only GEMV</b> (T = 1, the decode path, memory-bound): per group g the sum is
 * refactored as {@code s_g * (sum_k q_k x_k) - s_g * z_g * (sum_k x_k)}, so the inner loop is
 * code -> float -> FMA and the zero point costs one FMA lane per group against a per-call group
 * sum of x (L groups per vector step). INT4 and INT8 use a <i>packed-lane</i> form: one int vector
 * load covers 8 L nibbles
 * (4 L bytes); field j of every lane is isolated with one AND ({@code v & (15 << 4j)}, i.e. the code
 * times 2^(4j)) and converted with one I2F, against x permuted once per call to the matching
 * stride and pre-scaled by 2^(-4j) (exact); the top field is a logical shift. Per chunk of 8 L
 * codes (4 L for INT8) the two accumulators are scaled by the lanes' group scales with one FMA.
 * When groups are whole INT4 chunks (or one per row), the INT4 loop tracks the group by a running
 * boundary instead of dividing, broadcasts one scale per chunk and calls no helper in its body
 * (decode's hot loop: about 1.4x the general form's throughput on cached rows); it also takes the
 * zero-point term off its accumulator lanes before one lane sum, done with in-register lane
 * slices in {@link #sumLanes}'s pairwise order (a helper taking a vector would box it): one
 * thread on cached 256-row slices, 13.4 against 12.5 weights/ns with a separate zero-point pass
 * and the array lane sum.
 * INT6 widens the three 16-byte planes of each 64-code block (codes k, k+16, k+32 in the low six
 * bits, code k+48 from the top bits) with byte-to-int lane conversions. NF4 widens bytes to int
 * lanes (low nibbles = even k, high = odd k, x permuted per 2 L chunk to match) and looks up levels
 * with in-register permutes of the level table's bits. At 128 bits (4 lanes, narrower than the
 * smallest byte vector) byte loads are masked to 4 lanes. Kernels keep one or two rows per call:
 * larger bodies exceed C2's inlining budget and lose the vector intrinsics.
 *
 * <p>At 512 bits ({@value #TILE_MIN_LANES} lanes and up), an INT4 GEMV with K a multiple of 8
 * instead reads the matrix's {@link Int4Tiles} (made on first use): lane l of a vector is row
 * tile L + l, one int load covers 8 codes of each of the L rows, and each field's activation is
 * one broadcast, so the loop has no activation vector loads and the tile's L outputs leave in one
 * store, with no lane sum. Per group four accumulators, then the group's scale and zero-point
 * factor as lane vectors; {@link QuantGemmRef#gemvInt4Tiled} is its bit-exact twin. Once a matrix
 * has tiles, the weight-only GEMM copies each panel's rows back out of them
 * ({@link Int4Tiles#copyRows}) before dequantizing, so the row-major codes are not read again.
 *
 * <p><b>Weight-only GEMM</b> (T &gt; 1, prefill, compute-bound): panels of {@value #PANEL} rows
 * are dequantized (vector, columns of nibble formats permuted per 2 L chunk, x permuted alike) to
 * float and multiplied with the fp32 blocked GEMM of {@link VectorKernels} at the same width,
 * inline on the panel's thread.
 *
 * <p><b>Integer GEMM</b>: a row's codes are widened once to int (same permutation for INT4, applied
 * to the activation codes too), then for each token the exact integer sum over each segment of
 * S = min(weight group, activation group) is formed with int lane multiply-adds and a lane
 * reduction, and scaled in float in segment order: bit-identical to
 * {@link QuantGemmRef#matmulInt}. The Vector API has no widening multiply-add (VNNI, pmaddwd), so
 * this runs at about fp32 speed; its gain is the bytes moved.
 *
 * <p>Constraints: groups are K or multiples of 32 dividing K (a lane's codes never straddle a group;
 * a chunk may span several groups and then gets per-lane scales); elements past the last whole
 * chunk or INT6 block of a row are handled by scalar code, so any K works for per-row quantization.
 * Every output is computed by one thread in a fixed order: results do not depend on the thread count.
 */
final class QuantVectorKernels implements QuantKernelSet {
    // Hidden copies resolve their own name only through constant-pool class entries, not inside
    // method descriptors: lambdas must not capture `this` and no signature may name this class.

    static final VectorSpecies<Float> F = speciesFromClassData();
    static final VectorSpecies<Integer> I = VectorSpecies.of(int.class, VectorShape.forBitSize(F.vectorBitSize()));
    static final int L = F.length();
    /** Bytes of at least L lanes: the smallest byte vector is 64 bits. */
    static final VectorSpecies<Byte> B = VectorSpecies.of(byte.class, VectorShape.forBitSize(Math.max(64, 8 * L)));
    static final VectorMask<Byte> B_FIRST_L = B.indexInRange(0, L);
    /** NF4 level table (as float bits) split into 16 / L vectors (unused entries zero). */
    static final IntVector NF4_T0 = nf4Table(0);
    static final IntVector NF4_T1 = nf4Table(1);
    static final IntVector NF4_T2 = nf4Table(2);
    static final IntVector NF4_T3 = nf4Table(3);
    /** Lanes L/2 .. L-1. */
    static final VectorMask<Float> UPPER_HALF = F.indexInRange(-L / 2, L);

    /**
     * Narrowest vector (in floats) at which the INT4 weight-only kernels use {@link Int4Tiles}
     * (the GEMV computes over them, the GEMM copies its panels out of them): at 512 bits
     * the tiled loop moved 1.45-1.65x the weights per ns of the row loop on 11008 x 4096 and
     * 44032 x 4096 matrices (2 threads, AVX-512 host); at 256 bits it moved 0.86-0.90x.
     */
    static final int TILE_MIN_LANES = 16;
    /**
     * Whether the INT4 weight-only kernels take the tiled path at this width: system property
     * {@value Int4Tiles#PROPERTY} = {@code auto} (default: from {@value #TILE_MIN_LANES} lanes),
     * {@code on} or {@code off}, for measuring one form against the other.
     */
    static final boolean TILES = Int4Tiles.enabled(L, TILE_MIN_LANES);
    /** W rows per GEMV chunk (even: rows go in pairs). */
    static final int GEMV_GRAIN = 32;
    /** W rows per weight-only GEMM panel. */
    static final int PANEL = 256;
    /** W rows per integer-GEMM chunk. */
    static final int INT_GRAIN = 8;

    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;

    @SuppressWarnings("unchecked")
    private static VectorSpecies<Float> speciesFromClassData() {
        try {
            VectorSpecies<Float> sp = MethodHandles.classData(MethodHandles.lookup(), "_", VectorSpecies.class);
            return sp != null ? sp : FloatVector.SPECIES_PREFERRED;
        } catch (IllegalAccessException e) {
            throw new IllegalStateException(e);
        }
    }

    private static IntVector nf4Table(int i) {
        return L * (i + 1) <= 16
                ? FloatVector.fromArray(F, QuantFormat.NF4_LEVELS, L * i).reinterpretAsInts()
                : IntVector.zero(I);
    }

    @Override
    public VectorSpecies<Float> species() {
        return F;
    }

    // ---- widening -----------------------------------------------------------------------

    /** L bytes at off, sign-extended to L int lanes. */
    static IntVector s8(MemorySegment seg, long off) {
        ByteVector b = L < 8
                ? ByteVector.fromMemorySegment(B, seg, off, LE, B_FIRST_L)
                : ByteVector.fromMemorySegment(B, seg, off, LE);
        return (IntVector) b.castShape(I, 0);
    }

    /** L bytes of a byte array at off, zero-extended to L int lanes. */
    static IntVector u8(byte[] a, int off) {
        ByteVector b = L < 8
                ? ByteVector.fromArray(B, a, off, B_FIRST_L)
                : ByteVector.fromArray(B, a, off);
        return ((IntVector) b.castShape(I, 0)).and(0xFF);
    }

    static FloatVector toFloat(IntVector v) {
        return (FloatVector) v.castShape(F, 0);
    }

    /**
     * NF4 levels of codes q (0..15): the level table's bits as int vectors of L lanes, indexed by
     * q mod L, the 16 / L candidates blended by q's high bits (int-domain selects compile to
     * lane permutes).
     */
    static FloatVector nf4(IntVector q) {
        IntVector idx = L >= 16 ? q : q.and(L - 1);
        IntVector r = idx.selectFrom(NF4_T0);
        if (L < 16) {
            r = r.blend(idx.selectFrom(NF4_T1), q.compare(VectorOperators.GE, L));
        }
        if (L < 8) {
            r = r.blend(idx.selectFrom(NF4_T2), q.compare(VectorOperators.GE, 2 * L));
            r = r.blend(idx.selectFrom(NF4_T3), q.compare(VectorOperators.GE, 3 * L));
        }
        return r.reinterpretAsFloats();
    }

    /** Whether the format stores two codes per byte (needs the even/odd chunk permutation). */
    static boolean nibbles(QuantFormat f) {
        return f == QuantFormat.INT4 || f == QuantFormat.NF4;
    }

    /**
     * Copies x[xOff .. xOff + K) to dst[dstOff ..) with each whole 2L-chunk reordered as its even
     * elements then its odd ones; the tail past the last whole chunk is copied as is.
     */
    static void permuteFloats(float[] x, int xOff, int K, float[] dst, int dstOff) {
        int c = 0;
        for (; c + 2 * L <= K; c += 2 * L) {
            for (int l = 0; l < L; l++) {
                dst[dstOff + c + l] = x[xOff + c + 2 * l];
                dst[dstOff + c + L + l] = x[xOff + c + 2 * l + 1];
            }
        }
        System.arraycopy(x, xOff + c, dst, dstOff + c, K - c);
    }

    /** {@link #permuteFloats} for int codes. */
    static void permuteInts(int[] x, int xOff, int K, int[] dst, int dstOff) {
        int c = 0;
        for (; c + 2 * L <= K; c += 2 * L) {
            for (int l = 0; l < L; l++) {
                dst[dstOff + c + l] = x[xOff + c + 2 * l];
                dst[dstOff + c + L + l] = x[xOff + c + 2 * l + 1];
            }
        }
        System.arraycopy(x, xOff + c, dst, dstOff + c, K - c);
    }

    // ---- weight-only GEMV ---------------------------------------------------------------

    @Override
    public void gemvWeightOnly(Parallel par, float[] x, PackedMatrix w, float[] out) {
        int K = w.cols();
        QuantFormat f = w.format();
        if (TILES && Int4Tiles.supports(w)) {
            float[] xp = new float[K];
            prescaleFields(x, K, xp);
            float[] xsum = groupSums(x, 0, K, w.groupSize()); // (groups)
            Int4Tiles tiles = w.int4Tiles(L);
            par.forRange(0, tiles.tiles, Math.max(1, GEMV_GRAIN / L),
                    (lo, hi) -> gemvTilesInt4(xp, xsum, tiles, w, out, lo, hi));
            return;
        }
        float[] xp = x; // (K) in the kernel's lane order
        if (f == QuantFormat.NF4) {
            xp = new float[K];
            permuteFloats(x, 0, K, xp, 0);
        } else if (f != QuantFormat.INT6) {
            xp = new float[K];
            permuteLanes(x, 0, K, 32 / f.bits, f.bits, true, xp, 0);
        }
        float[] xin = xp;
        float[] xsum = groupSums(x, 0, K, w.groupSize()); // (groups)
        par.forRange(0, w.rows(), GEMV_GRAIN, (lo, hi) -> gemvRows(xin, xsum, w, out, lo, hi));
    }

    /**
     * x in the order of the packed-lane GEMV: an int lane read from the codes holds
     * {@code nf = 32 / bits} consecutive codes, so a chunk of nf * L elements is stored field by
     * field: dst[c + j L + l] = x[c + nf l + j]. With {@code prescale}, field j &lt; nf - 1 is
     * multiplied by 2^(-bits j) (exact), so the kernel can use the masked field {@code q << bits j}
     * without shifting it down. The tail past the last whole chunk is copied unchanged.
     */
    static void permuteLanes(float[] x, int xOff, int K, int nf, int bits, boolean prescale, float[] dst, int dstOff) {
        int chunk = nf * L;
        int c = 0;
        for (; c + chunk <= K; c += chunk) {
            for (int j = 0; j < nf; j++) {
                float f = prescale && j < nf - 1 ? Math.scalb(1f, -bits * j) : 1f;
                for (int l = 0; l < L; l++) {
                    dst[dstOff + c + j * L + l] = x[xOff + c + nf * l + j] * f;
                }
            }
        }
        System.arraycopy(x, xOff + c, dst, dstOff + c, K - c);
    }

    /**
     * x for the tiled INT4 GEMV: dst[k] = x[k] * 2^(-4 (k mod 8)) for k mod 8 &lt; 7 (exact), x[k]
     * otherwise, matching the masked fields {@code q << 4j} of an int holding 8 codes. K is a
     * multiple of 8.
     */
    static void prescaleFields(float[] x, int K, float[] dst) {
        for (int k = 0; k < K; k++) {
            int j = k & 7;
            dst[k] = j < 7 ? Math.scalb(x[k], -4 * j) : x[k];
        }
    }

    /**
     * Tiles lo .. hi-1 of the tiled INT4 GEMV ({@link Int4Tiles}): lane l is row tile L + l. Per
     * group, four accumulators take fields j and j + 4 of each int (j = 0..3) times the broadcast
     * pre-scaled activation, in chunk order; then acc = fma((a0 + a1) + (a2 + a3), s, acc) and
     * acc = fma(s z, -xsum_g, acc). No lane sum: the accumulator is the tile's L outputs.
     */
    private static void gemvTilesInt4(float[] xp, float[] xsum, Int4Tiles t, PackedMatrix w, float[] out,
            int lo, int hi) {
        MemorySegment seg = t.codes;
        int K = w.cols();
        int G = w.groupSize();
        int groups = w.groups();
        int N = w.rows();
        long step = 4L * L;
        for (int b = lo; b < hi; b++) {
            long o = (long) b * (K / 8) * step;
            FloatVector acc = FloatVector.zero(F);
            int c = 0;
            for (int g = 0; g < groups; g++) {
                FloatVector a0 = FloatVector.zero(F);
                FloatVector a1 = FloatVector.zero(F);
                FloatVector a2 = FloatVector.zero(F);
                FloatVector a3 = FloatVector.zero(F);
                for (int end = c + G; c < end; c += 8) {
                    IntVector v = IntVector.fromMemorySegment(I, seg, o, LE);
                    o += step;
                    a0 = ((FloatVector) v.and(0xF).convert(VectorOperators.I2F, 0))
                            .fma(FloatVector.broadcast(F, xp[c]), a0);
                    a1 = ((FloatVector) v.and(0xF0).convert(VectorOperators.I2F, 0))
                            .fma(FloatVector.broadcast(F, xp[c + 1]), a1);
                    a2 = ((FloatVector) v.and(0xF00).convert(VectorOperators.I2F, 0))
                            .fma(FloatVector.broadcast(F, xp[c + 2]), a2);
                    a3 = ((FloatVector) v.and(0xF000).convert(VectorOperators.I2F, 0))
                            .fma(FloatVector.broadcast(F, xp[c + 3]), a3);
                    a0 = ((FloatVector) v.and(0xF0000).convert(VectorOperators.I2F, 0))
                            .fma(FloatVector.broadcast(F, xp[c + 4]), a0);
                    a1 = ((FloatVector) v.and(0xF00000).convert(VectorOperators.I2F, 0))
                            .fma(FloatVector.broadcast(F, xp[c + 5]), a1);
                    a2 = ((FloatVector) v.and(0xF000000).convert(VectorOperators.I2F, 0))
                            .fma(FloatVector.broadcast(F, xp[c + 6]), a2);
                    a3 = ((FloatVector) v.lanewise(VectorOperators.LSHR, 28).convert(VectorOperators.I2F, 0))
                            .fma(FloatVector.broadcast(F, xp[c + 7]), a3);
                }
                int si = (b * groups + g) * L;
                acc = a0.add(a1).add(a2.add(a3)).fma(FloatVector.fromArray(F, t.scales, si), acc);
                acc = FloatVector.fromArray(F, t.zeroTerms, si).fma(FloatVector.broadcast(F, -xsum[g]), acc);
            }
            int r0 = b * L;
            if (r0 + L <= N) {
                acc.intoArray(out, r0);
            } else {
                acc.intoArray(out, r0, F.indexInRange(r0, N));
            }
        }
    }

    /** Sums of x over each group, in k order. */
    static float[] groupSums(float[] x, int xOff, int K, int G) {
        float[] s = new float[K / G];
        for (int g = 0; g < s.length; g++) {
            float a = 0f;
            for (int k = g * G; k < (g + 1) * G; k++) {
                a += x[xOff + k];
            }
            s[g] = a;
        }
        return s;
    }

    private static void gemvRows(float[] xp, float[] xsum, PackedMatrix w, float[] out, int lo, int hi) {
        float[] tmp = new float[L];
        switch (w.format()) {
            case INT4 -> {
                if (chunkAligned(w, 8 * L)) {
                    for (int r = lo; r < hi; r++) {
                        out[r] = gemv1Int4(xp, xsum, w, r);
                    }
                } else {
                    for (int r = lo; r < hi; r++) {
                        gemv1Int4Mixed(xp, xsum, w, out, r, tmp);
                    }
                }
            }
            case INT8 -> {
                for (int r = lo; r < hi; r += 2) {
                    gemv2Int8(xp, xsum, w, out, r, Math.min(r + 1, hi - 1), tmp);
                }
            }
            case NF4 -> {
                for (int r = lo; r < hi; r++) {
                    out[r] = gemv1Nf4(xp, w, r);
                }
            }
            case INT6 -> {
                for (int r = lo; r < hi; r++) {
                    out[r] = gemv1Int6(xp, xsum, w, r);
                }
            }
        }
    }

    /**
     * Whether no chunk of {@code chunk} codes straddles a group boundary: one group per row, or
     * groups that are whole chunks. Such rows need one broadcast scale per chunk.
     */
    static boolean chunkAligned(PackedMatrix w, int chunk) {
        return w.groups() == 1 || w.groupSize() % chunk == 0;
    }

    /**
     * s_g * z_g * xsum_g summed over the groups of row r: the folded zero-point term, L groups per
     * vector step (zero points widened from bytes), the remaining groups in scalar order.
     */
    static float zeroTerm(float[] xsum, PackedMatrix w, int r) {
        float[] sc = w.scalesArray();
        byte[] zp = w.zerosArray();
        int groups = xsum.length;
        int base = r * groups;
        int vec = groups - groups % L;
        FloatVector acc = FloatVector.zero(F);
        if (zp == null) {
            float z = w.format().symmetricZero();
            for (int g = 0; g < vec; g += L) {
                acc = FloatVector.fromArray(F, sc, base + g).fma(FloatVector.fromArray(F, xsum, g), acc);
            }
            float c = sumLanes(acc);
            for (int g = vec; g < groups; g++) {
                c = Math.fma(sc[base + g], xsum[g], c);
            }
            return z * c;
        }
        for (int g = 0; g < vec; g += L) {
            FloatVector sz = FloatVector.fromArray(F, sc, base + g).mul(toFloat(u8(zp, base + g)));
            acc = sz.fma(FloatVector.fromArray(F, xsum, g), acc);
        }
        float c = sumLanes(acc);
        for (int g = vec; g < groups; g++) {
            c = Math.fma(sc[base + g] * (zp[base + g] & 0xFF), xsum[g], c);
        }
        return c;
    }

    /**
     * Scales of the lanes of a chunk whose lanes span several groups (lane l covers elements
     * c + nf l .. + nf - 1, always inside one group since groups are multiples of 32): two groups
     * split at the half, or any other split lane by lane.
     */
    private static FloatVector mixedScales(float[] sc, int base, int c, int chunk, int nf, int G, float[] tmp) {
        int g = c / G;
        if (2 * G == chunk) {
            return FloatVector.broadcast(F, sc[base + g]).blend(sc[base + g + 1], UPPER_HALF);
        }
        for (int l = 0; l < L; l++) {
            tmp[l] = sc[base + (c + nf * l) / G];
        }
        return FloatVector.fromArray(F, tmp, 0);
    }

    /**
     * Row r of an INT4 matrix whose chunks of 8 L codes never straddle a group
     * ({@link #chunkAligned}), packed-lane form, zero-point term included: one int vector load
     * covers 8 L codes; field j is {@code v & (15 << 4j)} times the pre-scaled x (the top field a
     * logical shift), two accumulators per chunk, then one FMA with the group's broadcast scale.
     * The group index advances by a running boundary (no division in the loop), and the method
     * stays one row with no helper calls in the loop body, which keeps it inside C2's inlining
     * budget so that every vector operation is intrinsified.
     */
    private static float gemv1Int4(float[] xp, float[] xsum, PackedMatrix w, int r) {
        MemorySegment seg = w.codes();
        int K = w.cols();
        int G = w.groupSize();
        int groups = w.groups();
        float[] sc = w.scalesArray();
        byte[] zp = w.zerosArray();
        long o = r * w.rowBytes();
        int chunk = 8 * L;
        int full = K - K % chunk;
        int base = r * groups;
        int s = base; // index of the current group's scale
        int next = G; // first k of the next group
        FloatVector acc = FloatVector.zero(F);
        for (int c = 0; c < full; c += chunk) {
            if (c >= next) {
                s++;
                next += G;
            }
            IntVector v = IntVector.fromMemorySegment(I, seg, o + (c >> 1), LE);
            FloatVector e = ((FloatVector) v.and(0xF).convert(VectorOperators.I2F, 0))
                    .mul(FloatVector.fromArray(F, xp, c));
            FloatVector d = ((FloatVector) v.and(0xF0).convert(VectorOperators.I2F, 0))
                    .mul(FloatVector.fromArray(F, xp, c + L));
            e = ((FloatVector) v.and(0xF00).convert(VectorOperators.I2F, 0))
                    .fma(FloatVector.fromArray(F, xp, c + 2 * L), e);
            d = ((FloatVector) v.and(0xF000).convert(VectorOperators.I2F, 0))
                    .fma(FloatVector.fromArray(F, xp, c + 3 * L), d);
            e = ((FloatVector) v.and(0xF0000).convert(VectorOperators.I2F, 0))
                    .fma(FloatVector.fromArray(F, xp, c + 4 * L), e);
            d = ((FloatVector) v.and(0xF00000).convert(VectorOperators.I2F, 0))
                    .fma(FloatVector.fromArray(F, xp, c + 5 * L), d);
            e = ((FloatVector) v.and(0xF000000).convert(VectorOperators.I2F, 0))
                    .fma(FloatVector.fromArray(F, xp, c + 6 * L), e);
            d = ((FloatVector) v.lanewise(VectorOperators.LSHR, 28).convert(VectorOperators.I2F, 0))
                    .fma(FloatVector.fromArray(F, xp, c + 7 * L), d);
            acc = e.add(d).fma(FloatVector.broadcast(F, sc[s]), acc);
        }
        // the zero-point term s_g z_g xsum_g, L groups per step, taken off before the one lane sum
        int vec = groups - groups % L;
        float zs = w.format().symmetricZero();
        for (int g = 0; g < vec; g += L) {
            FloatVector sz = FloatVector.fromArray(F, sc, base + g);
            if (zp == null) {
                sz = sz.mul(zs);
            } else {
                ByteVector zb = L < 8
                        ? ByteVector.fromArray(B, zp, base + g, B_FIRST_L)
                        : ByteVector.fromArray(B, zp, base + g);
                sz = sz.mul((FloatVector) ((IntVector) zb.castShape(I, 0)).and(0xFF).convert(VectorOperators.I2F, 0));
            }
            acc = sz.neg().fma(FloatVector.fromArray(F, xsum, g), acc);
        }
        // fixed pairwise lane order (lane i + lane i + L/2, halving), identical interpreted and compiled
        if (L >= 16) {
            acc = acc.add(acc.slice(8));
        }
        if (L >= 8) {
            acc = acc.add(acc.slice(4));
        }
        acc = acc.add(acc.slice(2));
        float dot = acc.add(acc.slice(1)).lane(0);
        for (int g = vec; g < groups; g++) {
            float z = zp == null ? zs : zp[base + g] & 0xFF;
            dot = Math.fma(-sc[base + g] * z, xsum[g], dot);
        }
        return full == K ? dot : dot + scalarTail(w, seg, o, r, xp, full);
    }

    /**
     * Row r0 of an INT4 matrix whose chunks may straddle groups (groups that are not whole chunks,
     * e.g. 32 or 96 at 256 bits, 64 at 512): as {@link #gemv1Int4}, with per-lane scales for a
     * straddling chunk.
     */
    private static void gemv1Int4Mixed(float[] xp, float[] xsum, PackedMatrix w, float[] out, int r0, float[] tmp) {
        MemorySegment seg = w.codes();
        int K = w.cols();
        int G = w.groupSize();
        int groups = w.groups();
        float[] sc = w.scalesArray();
        long o0 = r0 * w.rowBytes();
        int b0 = r0 * groups;
        int chunk = 8 * L;
        int full = K - K % chunk;
        FloatVector acc0 = FloatVector.zero(F);
        for (int c = 0; c < full; c += chunk) {
            long bo = c >> 1;
            IntVector v0 = IntVector.fromMemorySegment(I, seg, o0 + bo, LE);
            FloatVector x0 = FloatVector.fromArray(F, xp, c);
            FloatVector x1 = FloatVector.fromArray(F, xp, c + L);
            FloatVector e0 = toFloat(v0.and(0xF)).mul(x0);
            FloatVector d0 = toFloat(v0.and(0xF0)).mul(x1);
            x0 = FloatVector.fromArray(F, xp, c + 2 * L);
            x1 = FloatVector.fromArray(F, xp, c + 3 * L);
            e0 = toFloat(v0.and(0xF00)).fma(x0, e0);
            d0 = toFloat(v0.and(0xF000)).fma(x1, d0);
            x0 = FloatVector.fromArray(F, xp, c + 4 * L);
            x1 = FloatVector.fromArray(F, xp, c + 5 * L);
            e0 = toFloat(v0.and(0xF0000)).fma(x0, e0);
            d0 = toFloat(v0.and(0xF00000)).fma(x1, d0);
            x0 = FloatVector.fromArray(F, xp, c + 6 * L);
            x1 = FloatVector.fromArray(F, xp, c + 7 * L);
            e0 = toFloat(v0.and(0xF000000)).fma(x0, e0);
            d0 = toFloat(v0.lanewise(VectorOperators.LSHR, 28)).fma(x1, d0);
            int g = c / G;
            FloatVector s0;
            if (g == (c + chunk - 1) / G) {
                s0 = FloatVector.broadcast(F, sc[b0 + g]);
            } else {
                s0 = mixedScales(sc, b0, c, chunk, 8, G, tmp);
            }
            acc0 = e0.add(d0).fma(s0, acc0);
        }
        float tail0 = scalarTail(w, seg, o0, r0, xp, full);
        out[r0] = sumLanes(acc0) + tail0 - zeroTerm(xsum, w, r0);
    }

    /** INT8 rows r0, r1 in packed-lane form: 4 byte fields per int lane, as {@link #gemv1Int4}. */
    private static void gemv2Int8(float[] xp, float[] xsum, PackedMatrix w, float[] out, int r0, int r1,
                                  float[] tmp) {
        MemorySegment seg = w.codes();
        int K = w.cols();
        int G = w.groupSize();
        int groups = w.groups();
        float[] sc = w.scalesArray();
        long o0 = r0 * w.rowBytes();
        long o1 = r1 * w.rowBytes();
        int b0 = r0 * groups;
        int b1 = r1 * groups;
        int chunk = 4 * L;
        int full = K - K % chunk;
        FloatVector acc0 = FloatVector.zero(F);
        FloatVector acc1 = FloatVector.zero(F);
        for (int c = 0; c < full; c += chunk) {
            IntVector v0 = IntVector.fromMemorySegment(I, seg, o0 + c, LE);
            IntVector v1 = IntVector.fromMemorySegment(I, seg, o1 + c, LE);
            FloatVector x0 = FloatVector.fromArray(F, xp, c);
            FloatVector x1 = FloatVector.fromArray(F, xp, c + L);
            FloatVector e0 = toFloat(v0.and(0xFF)).mul(x0);
            FloatVector e1 = toFloat(v1.and(0xFF)).mul(x0);
            FloatVector d0 = toFloat(v0.and(0xFF00)).mul(x1);
            FloatVector d1 = toFloat(v1.and(0xFF00)).mul(x1);
            x0 = FloatVector.fromArray(F, xp, c + 2 * L);
            x1 = FloatVector.fromArray(F, xp, c + 3 * L);
            e0 = toFloat(v0.and(0xFF0000)).fma(x0, e0);
            e1 = toFloat(v1.and(0xFF0000)).fma(x0, e1);
            d0 = toFloat(v0.lanewise(VectorOperators.LSHR, 24)).fma(x1, d0);
            d1 = toFloat(v1.lanewise(VectorOperators.LSHR, 24)).fma(x1, d1);
            int g = c / G;
            FloatVector s0;
            FloatVector s1;
            if (g == (c + chunk - 1) / G) {
                s0 = FloatVector.broadcast(F, sc[b0 + g]);
                s1 = FloatVector.broadcast(F, sc[b1 + g]);
            } else {
                s0 = mixedScales(sc, b0, c, chunk, 4, G, tmp);
                s1 = mixedScales(sc, b1, c, chunk, 4, G, tmp);
            }
            acc0 = e0.add(d0).fma(s0, acc0);
            acc1 = e1.add(d1).fma(s1, acc1);
        }
        float tail0 = scalarTail(w, seg, o0, r0, xp, full);
        float tail1 = scalarTail(w, seg, o1, r1, xp, full);
        out[r1] = sumLanes(acc1) + tail1 - zeroTerm(xsum, w, r1);
        out[r0] = sumLanes(acc0) + tail0 - zeroTerm(xsum, w, r0);
    }

    /**
     * One NF4 row, byte-lane form: L code bytes widen to L int lanes, low nibbles (even k) and high
     * nibbles (odd k) look up their levels against x chunk-permuted by {@link #permuteFloats}; one
     * row per call keeps the lookups inlined.
     */
    private static float gemv1Nf4(float[] xp, PackedMatrix w, int r) {
        MemorySegment seg = w.codes();
        int G = w.groupSize();
        int groups = w.groups();
        float[] sc = w.scalesArray();
        long o = r * w.rowBytes();
        int vec = G - G % (2 * L);
        FloatVector acc = FloatVector.zero(F);
        for (int g = 0; g < groups; g++) {
            int k0 = g * G;
            FloatVector al = FloatVector.zero(F);
            FloatVector ah = FloatVector.zero(F);
            for (int k = k0; k < k0 + vec; k += 2 * L) {
                IntVector b = s8(seg, o + (k >> 1));
                al = nf4(b.and(15)).fma(FloatVector.fromArray(F, xp, k), al);
                ah = nf4(b.lanewise(VectorOperators.ASHR, 4).and(15)).fma(FloatVector.fromArray(F, xp, k + L), ah);
            }
            acc = al.add(ah).fma(FloatVector.broadcast(F, sc[r * groups + g]), acc);
        }
        int full = vec == G ? w.cols() : vec;
        return sumLanes(acc) + scalarTail(w, seg, o, r, xp, full);
    }

    /** sum over k in [from, K) of s_(k/G) * value(code k) * x[k] (the unpermuted tail). */
    private static float scalarTail(PackedMatrix w, MemorySegment seg, long rowOff, int r, float[] x, int from) {
        QuantFormat f = w.format();
        float a = 0f;
        for (int k = from; k < w.cols(); k++) {
            int q = PackedMatrix.codeAt(f, seg, rowOff, k);
            float v = f == QuantFormat.NF4 ? QuantFormat.NF4_LEVELS[q] : q;
            a = Math.fma(w.scale(r, k / w.groupSize()) * v, x[k], a);
        }
        return a;
    }

    /**
     * One INT6 row, block by block: four quarter accumulators (codes k, k+16, k+32, k+48 of the
     * plane bytes), scaled per block; a block spans two groups when a group boundary falls at its
     * middle (G = 32, or G an odd multiple of 32).
     */
    private static float gemv1Int6(float[] x, float[] xsum, PackedMatrix w, int r) {
        MemorySegment seg = w.codes();
        int K = w.cols();
        int G = w.groupSize();
        int groups = w.groups();
        float[] sc = w.scalesArray();
        long o = r * w.rowBytes();
        int blocks = K / QuantFormat.INT6_BLOCK;
        FloatVector acc = FloatVector.zero(F);
        for (int b = 0; b < blocks; b++) {
            int kb = b * QuantFormat.INT6_BLOCK;
            long ob = o + (long) b * QuantFormat.INT6_BLOCK_BYTES;
            FloatVector q0 = FloatVector.zero(F);
            FloatVector q1 = FloatVector.zero(F);
            FloatVector q2 = FloatVector.zero(F);
            FloatVector q3 = FloatVector.zero(F);
            for (int u = 0; u < 16; u += L) {
                IntVector p0 = s8(seg, ob + u);
                IntVector p1 = s8(seg, ob + 16 + u);
                IntVector p2 = s8(seg, ob + 32 + u);
                IntVector hi = p0.lanewise(VectorOperators.ASHR, 6).and(3)
                        .or(p1.lanewise(VectorOperators.ASHR, 4).and(12))
                        .or(p2.lanewise(VectorOperators.ASHR, 2).and(48));
                q0 = toFloat(p0.and(63)).fma(FloatVector.fromArray(F, x, kb + u), q0);
                q1 = toFloat(p1.and(63)).fma(FloatVector.fromArray(F, x, kb + 16 + u), q1);
                q2 = toFloat(p2.and(63)).fma(FloatVector.fromArray(F, x, kb + 32 + u), q2);
                q3 = toFloat(hi).fma(FloatVector.fromArray(F, x, kb + 48 + u), q3);
            }
            // group boundaries are multiples of 32, so inside a block only at kb + 32
            int g0 = kb / G;
            int g1 = (kb + 32) / G;
            if (g0 == g1) {
                acc = q0.add(q1).add(q2.add(q3)).fma(FloatVector.broadcast(F, sc[r * groups + g0]), acc);
            } else {
                acc = q0.add(q1).fma(FloatVector.broadcast(F, sc[r * groups + g0]), acc);
                acc = q2.add(q3).fma(FloatVector.broadcast(F, sc[r * groups + g1]), acc);
            }
        }
        float tail = 0f;
        for (int k = blocks * QuantFormat.INT6_BLOCK; k < K; k++) {
            tail = Math.fma(sc[r * groups + k / G] * PackedMatrix.codeAt(QuantFormat.INT6, seg, o, k), x[k], tail);
        }
        return sumLanes(acc) + tail - zeroTerm(xsum, w, r);
    }

    // ---- weight-only GEMM ---------------------------------------------------------------

    private static final ThreadLocal<float[]> PANEL_BUF = new ThreadLocal<>();
    private static final ThreadLocal<float[]> PANEL_OUT = new ThreadLocal<>();

    private static float[] buffer(ThreadLocal<float[]> tl, long size, String what) {
        if (size > Integer.MAX_VALUE - 16) {
            throw new IllegalArgumentException(what + " needs " + size + " floats, more than an array holds");
        }
        float[] b = tl.get();
        if (b == null || b.length < size) {
            b = new float[(int) size];
            tl.set(b);
        }
        return b;
    }

    @Override
    public void gemmWeightOnly(Parallel par, float[] x, int T, PackedMatrix w, float[] out) {
        int K = w.cols();
        int N = w.rows();
        float[] xp = x; // (T, K) in the panel's column order
        if (nibbles(w.format())) {
            xp = new float[T * K];
            for (int t = 0; t < T; t++) {
                permuteFloats(x, t * K, K, xp, t * K);
            }
        }
        float[] xin = xp;
        KernelSet fp = KernelSets.forSpecies(F);
        Int4Tiles tiles = TILES && Int4Tiles.supports(w) ? w.int4Tiles(L) : null;
        par.forRange(0, N, PANEL, (lo, hi) -> {
            int nb = hi - lo;
            float[] panel = buffer(PANEL_BUF, (long) PANEL * K, "weight-only gemm panel"); // (nb, K)
            if (tiles == null) {
                for (int r = lo; r < hi; r++) {
                    dequantizeRow(w, w.codes(), r * w.rowBytes(), r, panel, (r - lo) * K);
                }
            } else {
                byte[] rows = panelCodes(nb * w.rowBytes()); // (nb, rowBytes) row-major codes
                MemorySegment seg = MemorySegment.ofArray(rows);
                tiles.copyRows(w, lo, nb, seg);
                for (int r = lo; r < hi; r++) {
                    dequantizeRow(w, seg, (r - lo) * w.rowBytes(), r, panel, (r - lo) * K);
                }
            }
            WeightMatrix pw = new WeightMatrix(MemorySegment.ofArray(panel).asSlice(0, (long) nb * K * 4),
                    DType.F32, nb, K);
            float[] po = buffer(PANEL_OUT, (long) T * PANEL, "weight-only gemm output"); // (T, nb)
            fp.gemm(par, xin, T, pw, po); // nested: runs on this thread
            for (int t = 0; t < T; t++) {
                System.arraycopy(po, t * nb, out, t * N + lo, nb);
            }
        });
    }

    private static final ThreadLocal<byte[]> PANEL_CODES = new ThreadLocal<>();

    /** This thread's scratch for a panel's row-major codes, at least {@code size} bytes. */
    private static byte[] panelCodes(long size) {
        byte[] b = PANEL_CODES.get();
        if (b == null || b.length < size) {
            b = new byte[Math.toIntExact(size)];
            PANEL_CODES.set(b);
        }
        return b;
    }

    /**
     * Row r dequantized into dst in the kernel's column order (nibble formats chunk-permuted),
     * its codes read from {@code seg} at offset {@code o}.
     */
    static void dequantizeRow(PackedMatrix w, MemorySegment seg, long o, int r, float[] dst, int dstOff) {
        QuantFormat f = w.format();
        int K = w.cols();
        int G = w.groupSize();
        int base = r * w.groups();
        float[] sc = w.scalesArray();
        byte[] zp = w.zerosArray();
        int zs = f == QuantFormat.NF4 ? 0 : f.symmetricZero();
        // one method per format keeps each within C2's inlining budget
        int done = switch (f) {
            case INT4, NF4 -> dequantizeNibbles(seg, o, f, K, G, base, sc, zp, zs, dst, dstOff);
            case INT8 -> dequantizeInt8(seg, o, K, G, base, sc, zp, zs, dst, dstOff);
            case INT6 -> dequantizeInt6(seg, o, K, G, base, sc, zp, zs, dst, dstOff);
        };
        for (int k = done; k < K; k++) {
            dst[dstOff + k] = w.dequantize(seg, o, r, k);
        }
    }

    private static int dequantizeNibbles(MemorySegment seg, long o, QuantFormat f, int K, int G, int base,
            float[] sc, byte[] zp, int zs, float[] dst, int dstOff) {
        int k = 0;
        for (; k + 2 * L <= K; k += 2 * L) {
            int g = base + k / G;
            FloatVector s = FloatVector.broadcast(F, sc[g]);
            IntVector b = s8(seg, o + (k >> 1));
            IntVector lo = b.and(15);
            IntVector hi = b.lanewise(VectorOperators.ASHR, 4).and(15);
            if (f == QuantFormat.NF4) {
                nf4(lo).mul(s).intoArray(dst, dstOff + k);
                nf4(hi).mul(s).intoArray(dst, dstOff + k + L);
            } else {
                int z = zp == null ? zs : zp[g] & 0xFF;
                toFloat(lo.sub(z)).mul(s).intoArray(dst, dstOff + k);
                toFloat(hi.sub(z)).mul(s).intoArray(dst, dstOff + k + L);
            }
        }
        return k;
    }

    private static int dequantizeInt8(MemorySegment seg, long o, int K, int G, int base,
            float[] sc, byte[] zp, int zs, float[] dst, int dstOff) {
        int k = 0;
        for (; k + L <= K; k += L) {
            int g = base + k / G;
            int z = zp == null ? zs : zp[g] & 0xFF;
            toFloat(s8(seg, o + k).and(0xFF).sub(z)).mul(sc[g]).intoArray(dst, dstOff + k);
        }
        return k;
    }

    private static int dequantizeInt6(MemorySegment seg, long o, int K, int G, int base,
            float[] sc, byte[] zp, int zs, float[] dst, int dstOff) {
        int blocks = K / QuantFormat.INT6_BLOCK;
        for (int b = 0; b < blocks; b++) {
            int kb = b * QuantFormat.INT6_BLOCK;
            long ob = o + (long) b * QuantFormat.INT6_BLOCK_BYTES;
            // a 64-code block lies in one group, or in two (G = 32) split between k+16 and k+32
            int g0 = base + kb / G;
            int g1 = base + (kb + 32) / G;
            int z0 = zp == null ? zs : zp[g0] & 0xFF;
            int z1 = zp == null ? zs : zp[g1] & 0xFF;
            for (int u = 0; u < 16; u += L) {
                IntVector p0 = s8(seg, ob + u);
                IntVector p1 = s8(seg, ob + 16 + u);
                IntVector p2 = s8(seg, ob + 32 + u);
                IntVector hi = p0.lanewise(VectorOperators.ASHR, 6).and(3)
                        .or(p1.lanewise(VectorOperators.ASHR, 4).and(12))
                        .or(p2.lanewise(VectorOperators.ASHR, 2).and(48));
                toFloat(p0.and(63).sub(z0)).mul(sc[g0]).intoArray(dst, dstOff + kb + u);
                toFloat(p1.and(63).sub(z0)).mul(sc[g0]).intoArray(dst, dstOff + kb + 16 + u);
                toFloat(p2.and(63).sub(z1)).mul(sc[g1]).intoArray(dst, dstOff + kb + 32 + u);
                toFloat(hi.sub(z1)).mul(sc[g1]).intoArray(dst, dstOff + kb + 48 + u);
            }
        }
        return blocks * QuantFormat.INT6_BLOCK;
    }

    // ---- integer GEMM -------------------------------------------------------------------

    private static final ThreadLocal<int[]> ROW_CODES = new ThreadLocal<>();

    @Override
    public void matmulInt(Parallel par, QuantizedActivations xq, PackedMatrix w, float[] out) {
        int K = w.cols();
        int T = xq.T();
        int S = Math.min(w.groupSize(), xq.groupSize());
        int segs = K / S;
        int[] a = xq.codes(); // (T, K) in the row codes' order
        if (w.format() == QuantFormat.INT4) {
            a = new int[T * K];
            for (int t = 0; t < T; t++) {
                permuteInts(xq.codes(), t * K, K, a, t * K);
            }
        }
        int[] asum = new int[T * segs]; // (T, segs) sum of activation codes per segment
        for (int t = 0; t < T; t++) {
            for (int j = 0; j < segs; j++) {
                int s = 0;
                for (int k = j * S; k < (j + 1) * S; k++) {
                    s += xq.codes()[t * K + k];
                }
                asum[t * segs + j] = s;
            }
        }
        int[] ain = a;
        par.forRange(0, w.rows(), INT_GRAIN, (lo, hi) -> {
            int[] q = ROW_CODES.get();
            if (q == null || q.length < K) {
                q = new int[K];
                ROW_CODES.set(q);
            }
            for (int r = lo; r < hi; r++) {
                widenRow(w, r, q);
                intRow(xq, ain, asum, w, r, q, out);
            }
        });
    }

    /** All products of row r with each token, exact per segment, scaled in segment order. */
    private static void intRow(QuantizedActivations xq, int[] a, int[] asum, PackedMatrix w, int r, int[] q,
                               float[] out) {
        int K = w.cols();
        int N = w.rows();
        int wG = w.groupSize();
        int xG = xq.groupSize();
        int S = Math.min(wG, xG);
        int segs = K / S;
        int vec = S - S % L;
        int wBase = r * w.groups();
        float[] sw = w.scalesArray();
        byte[] zp = w.zerosArray();
        int zs = w.format().symmetricZero();
        float[] sx = xq.scales();
        int xGroups = K / xG;
        for (int t = 0; t < xq.T(); t++) {
            float acc = 0f;
            int ta = t * K;
            for (int j = 0; j < segs; j++) {
                int k0 = j * S;
                IntVector d = IntVector.zero(I);
                for (int k = k0; k < k0 + vec; k += L) {
                    d = IntVector.fromArray(I, q, k).mul(IntVector.fromArray(I, a, ta + k)).add(d);
                }
                int dot = d.reduceLanes(VectorOperators.ADD);
                for (int k = k0 + vec; k < k0 + S; k++) {
                    dot += q[k] * a[ta + k];
                }
                int gw = wBase + k0 / wG;
                int z = zp == null ? zs : zp[gw] & 0xFF;
                int isum = dot - z * asum[t * segs + j];
                acc += (sw[gw] * sx[t * xGroups + k0 / xG]) * (float) isum;
            }
            out[t * N + r] = acc;
        }
    }

    /** Codes of row r widened to int in the kernel's order (INT4 chunk-permuted). */
    static void widenRow(PackedMatrix w, int r, int[] q) {
        MemorySegment seg = w.codes();
        QuantFormat f = w.format();
        int K = w.cols();
        long o = r * w.rowBytes();
        int done = switch (f) {
            case INT4, NF4 -> widenNibbles(seg, o, K, q);
            case INT8 -> widenInt8(seg, o, K, q);
            case INT6 -> widenInt6(seg, o, K, q);
        };
        for (int k = done; k < K; k++) {
            q[k] = PackedMatrix.codeAt(f, seg, o, k);
        }
    }

    private static int widenNibbles(MemorySegment seg, long o, int K, int[] q) {
        int k = 0;
        for (; k + 2 * L <= K; k += 2 * L) {
            IntVector b = s8(seg, o + (k >> 1));
            b.and(15).intoArray(q, k);
            b.lanewise(VectorOperators.ASHR, 4).and(15).intoArray(q, k + L);
        }
        return k;
    }

    private static int widenInt8(MemorySegment seg, long o, int K, int[] q) {
        int k = 0;
        for (; k + L <= K; k += L) {
            s8(seg, o + k).and(0xFF).intoArray(q, k);
        }
        return k;
    }

    private static int widenInt6(MemorySegment seg, long o, int K, int[] q) {
        int blocks = K / QuantFormat.INT6_BLOCK;
        for (int b = 0; b < blocks; b++) {
            int kb = b * QuantFormat.INT6_BLOCK;
            long ob = o + (long) b * QuantFormat.INT6_BLOCK_BYTES;
            for (int u = 0; u < 16; u += L) {
                IntVector p0 = s8(seg, ob + u);
                IntVector p1 = s8(seg, ob + 16 + u);
                IntVector p2 = s8(seg, ob + 32 + u);
                p0.and(63).intoArray(q, kb + u);
                p1.and(63).intoArray(q, kb + 16 + u);
                p2.and(63).intoArray(q, kb + 32 + u);
                p0.lanewise(VectorOperators.ASHR, 6).and(3)
                        .or(p1.lanewise(VectorOperators.ASHR, 4).and(12))
                        .or(p2.lanewise(VectorOperators.ASHR, 2).and(48)).intoArray(q, kb + 48 + u);
            }
        }
        return blocks * QuantFormat.INT6_BLOCK;
    }

    /** Lane sum in a fixed pairwise order, as {@link VectorKernels#sumLanes}: the same bits interpreted or compiled. */
    private static float sumLanes(FloatVector v) {
        float[] t = new float[L];
        v.intoArray(t, 0);
        for (int half = L / 2; half >= 1; half /= 2) {
            for (int i = 0; i < half; i++) {
                t[i] += t[i + half];
            }
        }
        return t[0];
    }

}
