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
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

/**
 * Vector API kernels for {@link PackedMatrix} weights at one vector width (static species; hidden
 * per-width copies come from {@link QuantKernelSets}, as for {@link VectorKernels}).
 *
 * <p><b>Code widening.</b> L consecutive code bytes are loaded as a byte vector and sign-extended
 * into L int lanes ({@code B2I}); masks and shifts then extract codes: INT8 {@code & 0xFF}; INT4/NF4
 * low nibbles (even k) {@code & 15} and high nibbles (odd k) {@code >> 4 & 15}; INT6 the three
 * plane bytes give codes {@code & 63} of k, k+16, k+32 and their top bits assemble code k+48.
 * Codes become floats with one {@code I2F}. At 128 bits (4 lanes, narrower than the smallest byte
 * vector) the byte load is masked to 4 lanes.
 *
 * <p><b>Weight-only GEMV</b> (T = 1, the decode path): the sum is refactored per group g as
 * {@code s_g * (sum_k q_k x_k) - s_g * z_g * (sum_k x_k)}, so the inner loop is code -> float ->
 * FMA with x and the zero point costs one scalar FMA per group with a per-call group sum of x. For
 * the nibble formats x is permuted once per call so that each 2L-chunk holds its even elements then
 * its odd ones, matching the low/high nibble vectors. Two rows share each x load. NF4 maps codes
 * to levels with in-register table lookups (rearrange and blend).
 *
 * <p><b>Weight-only GEMM</b> (T &gt; 1, prefill): panels of {@value #PANEL} rows are dequantized
 * (vector, same chunk permutation) to float and multiplied by the permuted x with the fp32 blocked
 * GEMM of {@link VectorKernels} at the same width, inline on the panel's thread.
 *
 * <p><b>Integer GEMM</b>: a row's codes are widened once to int (same permutation for INT4, applied
 * to the activation codes too), then for each token the exact integer sum over each segment of
 * S = min(weight group, activation group) is formed with int lane multiply-adds and a lane
 * reduction, and scaled in float in segment order: bit-identical to
 * {@link QuantGemmRef#matmulInt}.
 *
 * <p>Constraints: groups are K or multiples of 32 (so a 2L chunk never straddles a group for
 * L &lt;= 16); elements past the last whole chunk or INT6 block of a row are handled by scalar
 * code, so any K works for per-row quantization.
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
    /** NF4 level table split into 16 / L vectors (unused entries zero). */
    static final FloatVector NF4_T0 = nf4Table(0);
    static final FloatVector NF4_T1 = nf4Table(1);
    static final FloatVector NF4_T2 = nf4Table(2);
    static final FloatVector NF4_T3 = nf4Table(3);

    /** W rows per GEMV chunk (even: rows go in pairs). */
    static final int GEMV_GRAIN = 32;
    /** W rows per weight-only GEMM panel. */
    static final int PANEL = 64;
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

    private static FloatVector nf4Table(int i) {
        return L * (i + 1) <= 16 ? FloatVector.fromArray(F, QuantFormat.NF4_LEVELS, L * i) : FloatVector.zero(F);
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
        return (IntVector) b.convertShape(VectorOperators.B2I, I, 0);
    }

    static FloatVector toFloat(IntVector v) {
        return (FloatVector) v.convert(VectorOperators.I2F, 0);
    }

    /** NF4 levels of codes q (0..15) by table lookup. */
    static FloatVector nf4(IntVector q) {
        if (L >= 16) {
            return NF4_T0.rearrange(q.toShuffle().cast(F));
        }
        VectorShuffle<Float> sh = q.and(L - 1).toShuffle().cast(F);
        FloatVector r = NF4_T0.rearrange(sh);
        r = r.blend(NF4_T1.rearrange(sh), q.compare(VectorOperators.GE, L).cast(F));
        if (L < 8) {
            r = r.blend(NF4_T2.rearrange(sh), q.compare(VectorOperators.GE, 2 * L).cast(F));
            r = r.blend(NF4_T3.rearrange(sh), q.compare(VectorOperators.GE, 3 * L).cast(F));
        }
        return r;
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
        float[] xp = nibbles(f) ? new float[K] : x; // (K) permuted
        if (nibbles(f)) {
            permuteFloats(x, 0, K, xp, 0);
        }
        float[] xsum = groupSums(x, 0, K, w.groupSize()); // (groups)
        par.forRange(0, w.rows(), GEMV_GRAIN, (lo, hi) -> gemvRows(xp, xsum, w, out, lo, hi));
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
        switch (w.format()) {
            case INT4 -> {
                for (int r = lo; r < hi; r += 2) {
                    gemv2Int4(xp, xsum, w, out, r, Math.min(r + 1, hi - 1));
                }
            }
            case NF4 -> {
                for (int r = lo; r < hi; r += 2) {
                    gemv2Nf4(xp, w, out, r, Math.min(r + 1, hi - 1));
                }
            }
            case INT8 -> {
                for (int r = lo; r < hi; r += 2) {
                    gemv2Int8(xp, xsum, w, out, r, Math.min(r + 1, hi - 1));
                }
            }
            case INT6 -> {
                for (int r = lo; r < hi; r++) {
                    out[r] = gemv1Int6(xp, xsum, w, r);
                }
            }
        }
    }

    /** s_g * z_g * xsum_g summed over groups: the folded zero-point term of row r. */
    private static float zeroTerm(float[] xsum, PackedMatrix w, int r) {
        float c = 0f;
        for (int g = 0; g < xsum.length; g++) {
            c = Math.fma(w.scale(r, g) * w.zeroPoint(r, g), xsum[g], c);
        }
        return c;
    }

    /** Rows r0 and r1 (r1 may equal r0 for an odd last row) of an INT4 matrix. */
    private static void gemv2Int4(float[] xp, float[] xsum, PackedMatrix w, float[] out, int r0, int r1) {
        MemorySegment seg = w.codes();
        int K = w.cols();
        int G = w.groupSize();
        int groups = w.groups();
        float[] sc = w.scalesArray();
        long o0 = r0 * w.rowBytes();
        long o1 = r1 * w.rowBytes();
        int vec = G - G % (2 * L); // vector part of each group
        FloatVector acc0 = FloatVector.zero(F);
        FloatVector acc1 = FloatVector.zero(F);
        float tail0 = 0f;
        float tail1 = 0f;
        for (int g = 0; g < groups; g++) {
            int k0 = g * G;
            FloatVector a0l = FloatVector.zero(F);
            FloatVector a0h = FloatVector.zero(F);
            FloatVector a1l = FloatVector.zero(F);
            FloatVector a1h = FloatVector.zero(F);
            for (int k = k0; k < k0 + vec; k += 2 * L) {
                FloatVector xl = FloatVector.fromArray(F, xp, k);
                FloatVector xh = FloatVector.fromArray(F, xp, k + L);
                IntVector b0 = s8(seg, o0 + (k >> 1));
                IntVector b1 = s8(seg, o1 + (k >> 1));
                a0l = toFloat(b0.and(15)).fma(xl, a0l);
                a0h = toFloat(b0.lanewise(VectorOperators.ASHR, 4).and(15)).fma(xh, a0h);
                a1l = toFloat(b1.and(15)).fma(xl, a1l);
                a1h = toFloat(b1.lanewise(VectorOperators.ASHR, 4).and(15)).fma(xh, a1h);
            }
            float s0 = sc[r0 * groups + g];
            float s1 = sc[r1 * groups + g];
            acc0 = a0l.add(a0h).fma(FloatVector.broadcast(F, s0), acc0);
            acc1 = a1l.add(a1h).fma(FloatVector.broadcast(F, s1), acc1);
            if (vec < G) {
                tail0 = s0 * scalarDot(QuantFormat.INT4, seg, o0, xp, k0 + vec, k0 + G);
                tail1 = s1 * scalarDot(QuantFormat.INT4, seg, o1, xp, k0 + vec, k0 + G);
            }
        }
        out[r1] = acc1.reduceLanes(VectorOperators.ADD) + tail1 - zeroTerm(xsum, w, r1);
        out[r0] = acc0.reduceLanes(VectorOperators.ADD) + tail0 - zeroTerm(xsum, w, r0);
    }

    /** NF4 rows r0, r1: levels times x per group, times absmax. */
    private static void gemv2Nf4(float[] xp, PackedMatrix w, float[] out, int r0, int r1) {
        MemorySegment seg = w.codes();
        int G = w.groupSize();
        int groups = w.groups();
        float[] sc = w.scalesArray();
        long o0 = r0 * w.rowBytes();
        long o1 = r1 * w.rowBytes();
        int vec = G - G % (2 * L);
        FloatVector acc0 = FloatVector.zero(F);
        FloatVector acc1 = FloatVector.zero(F);
        float tail0 = 0f;
        float tail1 = 0f;
        for (int g = 0; g < groups; g++) {
            int k0 = g * G;
            FloatVector a0l = FloatVector.zero(F);
            FloatVector a0h = FloatVector.zero(F);
            FloatVector a1l = FloatVector.zero(F);
            FloatVector a1h = FloatVector.zero(F);
            for (int k = k0; k < k0 + vec; k += 2 * L) {
                FloatVector xl = FloatVector.fromArray(F, xp, k);
                FloatVector xh = FloatVector.fromArray(F, xp, k + L);
                IntVector b0 = s8(seg, o0 + (k >> 1));
                IntVector b1 = s8(seg, o1 + (k >> 1));
                a0l = nf4(b0.and(15)).fma(xl, a0l);
                a0h = nf4(b0.lanewise(VectorOperators.ASHR, 4).and(15)).fma(xh, a0h);
                a1l = nf4(b1.and(15)).fma(xl, a1l);
                a1h = nf4(b1.lanewise(VectorOperators.ASHR, 4).and(15)).fma(xh, a1h);
            }
            float s0 = sc[r0 * groups + g];
            float s1 = sc[r1 * groups + g];
            acc0 = a0l.add(a0h).fma(FloatVector.broadcast(F, s0), acc0);
            acc1 = a1l.add(a1h).fma(FloatVector.broadcast(F, s1), acc1);
            if (vec < G) {
                tail0 = s0 * scalarDot(QuantFormat.NF4, seg, o0, xp, k0 + vec, k0 + G);
                tail1 = s1 * scalarDot(QuantFormat.NF4, seg, o1, xp, k0 + vec, k0 + G);
            }
        }
        out[r1] = acc1.reduceLanes(VectorOperators.ADD) + tail1;
        out[r0] = acc0.reduceLanes(VectorOperators.ADD) + tail0;
    }

    /** INT8 rows r0, r1. */
    private static void gemv2Int8(float[] x, float[] xsum, PackedMatrix w, float[] out, int r0, int r1) {
        MemorySegment seg = w.codes();
        int G = w.groupSize();
        int groups = w.groups();
        float[] sc = w.scalesArray();
        long o0 = r0 * w.rowBytes();
        long o1 = r1 * w.rowBytes();
        int vec = G - G % L;
        FloatVector acc0 = FloatVector.zero(F);
        FloatVector acc1 = FloatVector.zero(F);
        float tail0 = 0f;
        float tail1 = 0f;
        for (int g = 0; g < groups; g++) {
            int k0 = g * G;
            FloatVector a0 = FloatVector.zero(F);
            FloatVector a1 = FloatVector.zero(F);
            for (int k = k0; k < k0 + vec; k += L) {
                FloatVector xv = FloatVector.fromArray(F, x, k);
                a0 = toFloat(s8(seg, o0 + k).and(0xFF)).fma(xv, a0);
                a1 = toFloat(s8(seg, o1 + k).and(0xFF)).fma(xv, a1);
            }
            float s0 = sc[r0 * groups + g];
            float s1 = sc[r1 * groups + g];
            acc0 = a0.fma(FloatVector.broadcast(F, s0), acc0);
            acc1 = a1.fma(FloatVector.broadcast(F, s1), acc1);
            if (vec < G) {
                tail0 = s0 * scalarDot(QuantFormat.INT8, seg, o0, x, k0 + vec, k0 + G);
                tail1 = s1 * scalarDot(QuantFormat.INT8, seg, o1, x, k0 + vec, k0 + G);
            }
        }
        out[r1] = acc1.reduceLanes(VectorOperators.ADD) + tail1 - zeroTerm(xsum, w, r1);
        out[r0] = acc0.reduceLanes(VectorOperators.ADD) + tail0 - zeroTerm(xsum, w, r0);
    }

    /**
     * One INT6 row, block by block: four quarter accumulators (codes k, k+16, k+32, k+48 of the
     * plane bytes), scaled per block; a block spans two groups only when G = 32.
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
            if (G == 32) {
                int g = kb / 32;
                acc = q0.add(q1).fma(FloatVector.broadcast(F, sc[r * groups + g]), acc);
                acc = q2.add(q3).fma(FloatVector.broadcast(F, sc[r * groups + g + 1]), acc);
            } else {
                acc = q0.add(q1).add(q2.add(q3)).fma(FloatVector.broadcast(F, sc[r * groups + kb / G]), acc);
            }
        }
        float tail = 0f;
        for (int k = blocks * QuantFormat.INT6_BLOCK; k < K; k++) {
            tail = Math.fma(sc[r * groups + k / G] * PackedMatrix.codeAt(QuantFormat.INT6, seg, o, k), x[k], tail);
        }
        return acc.reduceLanes(VectorOperators.ADD) + tail - zeroTerm(xsum, w, r);
    }

    /** sum over k in [from, to) of value(code k) * x[k] (x in the kernel's order; tails are unpermuted). */
    private static float scalarDot(QuantFormat f, MemorySegment seg, long rowOff, float[] x, int from, int to) {
        float a = 0f;
        for (int k = from; k < to; k++) {
            int q = PackedMatrix.codeAt(f, seg, rowOff, k);
            a = Math.fma(f == QuantFormat.NF4 ? QuantFormat.NF4_LEVELS[q] : q, x[k], a);
        }
        return a;
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
        par.forRange(0, N, PANEL, (lo, hi) -> {
            int nb = hi - lo;
            float[] panel = buffer(PANEL_BUF, (long) PANEL * K, "weight-only gemm panel"); // (nb, K)
            for (int r = lo; r < hi; r++) {
                dequantizeRow(w, r, panel, (r - lo) * K);
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

    /** Row r dequantized into dst in the kernel's column order (nibble formats chunk-permuted). */
    static void dequantizeRow(PackedMatrix w, int r, float[] dst, int dstOff) {
        MemorySegment seg = w.codes();
        QuantFormat f = w.format();
        int K = w.cols();
        int G = w.groupSize();
        long o = r * w.rowBytes();
        int done = switch (f) {
            case INT4, NF4 -> {
                int k = 0;
                for (; k + 2 * L <= K; k += 2 * L) {
                    int g = k / G;
                    FloatVector s = FloatVector.broadcast(F, w.scale(r, g));
                    IntVector b = s8(seg, o + (k >> 1));
                    IntVector lo = b.and(15);
                    IntVector hi = b.lanewise(VectorOperators.ASHR, 4).and(15);
                    if (f == QuantFormat.NF4) {
                        nf4(lo).mul(s).intoArray(dst, dstOff + k);
                        nf4(hi).mul(s).intoArray(dst, dstOff + k + L);
                    } else {
                        int z = w.zeroPoint(r, g);
                        toFloat(lo.sub(z)).mul(s).intoArray(dst, dstOff + k);
                        toFloat(hi.sub(z)).mul(s).intoArray(dst, dstOff + k + L);
                    }
                }
                yield k;
            }
            case INT8 -> {
                int k = 0;
                for (; k + L <= K; k += L) {
                    int g = k / G;
                    toFloat(s8(seg, o + k).and(0xFF).sub(w.zeroPoint(r, g)))
                            .mul(w.scale(r, g)).intoArray(dst, dstOff + k);
                }
                yield k;
            }
            case INT6 -> {
                int blocks = K / QuantFormat.INT6_BLOCK;
                for (int b = 0; b < blocks; b++) {
                    int kb = b * QuantFormat.INT6_BLOCK;
                    long ob = o + (long) b * QuantFormat.INT6_BLOCK_BYTES;
                    for (int u = 0; u < 16; u += L) {
                        IntVector p0 = s8(seg, ob + u);
                        IntVector p1 = s8(seg, ob + 16 + u);
                        IntVector p2 = s8(seg, ob + 32 + u);
                        IntVector hi = p0.lanewise(VectorOperators.ASHR, 6).and(3)
                                .or(p1.lanewise(VectorOperators.ASHR, 4).and(12))
                                .or(p2.lanewise(VectorOperators.ASHR, 2).and(48));
                        store6(w, r, p0.and(63), kb + u, dst, dstOff);
                        store6(w, r, p1.and(63), kb + 16 + u, dst, dstOff);
                        store6(w, r, p2.and(63), kb + 32 + u, dst, dstOff);
                        store6(w, r, hi, kb + 48 + u, dst, dstOff);
                    }
                }
                yield blocks * QuantFormat.INT6_BLOCK;
            }
        };
        for (int k = done; k < K; k++) {
            dst[dstOff + k] = w.dequantize(r, k);
        }
    }

    private static void store6(PackedMatrix w, int r, IntVector q, int k, float[] dst, int dstOff) {
        int g = k / w.groupSize();
        toFloat(q.sub(w.zeroPoint(r, g))).mul(w.scale(r, g)).intoArray(dst, dstOff + k);
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
                int gw = k0 / wG;
                int isum = dot - w.zeroPoint(r, gw) * asum[t * segs + j];
                acc += (w.scale(r, gw) * xq.scale(t, k0 / xG)) * (float) isum;
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
            case INT4, NF4 -> {
                int k = 0;
                for (; k + 2 * L <= K; k += 2 * L) {
                    IntVector b = s8(seg, o + (k >> 1));
                    b.and(15).intoArray(q, k);
                    b.lanewise(VectorOperators.ASHR, 4).and(15).intoArray(q, k + L);
                }
                yield k;
            }
            case INT8 -> {
                int k = 0;
                for (; k + L <= K; k += L) {
                    s8(seg, o + k).and(0xFF).intoArray(q, k);
                }
                yield k;
            }
            case INT6 -> {
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
                yield blocks * QuantFormat.INT6_BLOCK;
            }
        };
        for (int k = done; k < K; k++) {
            q[k] = PackedMatrix.codeAt(f, seg, o, k);
        }
    }
}
