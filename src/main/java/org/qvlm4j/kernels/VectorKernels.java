package org.qvlm4j.kernels;

import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandles;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * Vector API kernels at one vector width: {@code out (T, N) = x (T, K) W^T} with W read in its
 * stored dtype (F32, BF16, F16; little-endian, possibly unaligned), plus dot and axpy.
 *
 * <p><b>Why static species.</b> C2 keeps vectors in registers only when the species is a
 * compile-time constant, so the width is a {@code static final} field. Loaded normally, this class
 * uses the machine's preferred width; {@link KernelSets} defines hidden copies of the same bytes
 * whose class data is another float species, so every width runs the same code at full speed.
 *
 * <p><b>Arithmetic.</b> Both matrix kernels use the dot-product form (x rows and W rows are both
 * contiguous along K): each output element is one lane-wise FMA chain over K in vector steps,
 * reduced across lanes, plus a scalar FMA tail. That order does not depend on how rows are grouped
 * into register tiles or chunks, so results are identical for any thread count; they do depend on
 * the vector width and, for the GEMM, on the fixed K block {@value #KB}.
 * <ul>
 *   <li>GEMV (T = 1, memory-bound): each weight row is streamed once, four rows at a time sharing
 *       the x loads; parallel over rows.</li>
 *   <li>GEMM (T &gt; 1, compute-bound): tasks are (panel of {@value #NB} W rows) x (block of
 *       {@value #TB} tokens). A task widens a (NB, KB) weight panel to float once and reuses it
 *       for all tokens of its block with a 4 x 3 register tile (4 tokens by 3 W rows, 12
 *       accumulators), so BF16/F16 widening is amortized over the tokens.</li>
 * </ul>
 *
 * <p><b>F16.</b> The JDK 25 Vector API has no half-precision lane conversion ({@code S2F} converts
 * integer values), so halves are widened with integer lane arithmetic that never touches float
 * subnormals: the half subnormal range is renormalized by subtracting 2^-14. Results equal
 * {@link Float#float16ToFloat} bit for bit. Leaves out: quantized formats, bias, fused epilogues.
 */
final class VectorKernels implements KernelSet {
    // Hidden copies resolve their own name only through constant-pool class entries, not inside
    // method descriptors: lambdas must not capture `this` and no signature may name this class.

    /** Float lanes of this copy: the class data of a hidden copy, else the preferred species. */
    static final VectorSpecies<Float> F = speciesFromClassData();
    /** Shorts with the same lane count (half the bits), for 16-bit weight loads. */
    static final VectorSpecies<Short> S = VectorSpecies.of(short.class, VectorShape.forBitSize(F.vectorBitSize() / 2));
    /** Ints with the same lane count, for widening. */
    static final VectorSpecies<Integer> I = VectorSpecies.of(int.class, VectorShape.forBitSize(F.vectorBitSize()));
    static final int L = F.length();

    /** Tokens per GEMM register tile. */
    static final int MR = 6;
    /** Weight rows per GEMM register tile: two vectors. */
    static final int NR = 2 * L;
    /** W rows per GEMM task (a multiple of NR). */
    static final int NB = Integer.getInteger("nb", 4) * NR;
    /** Tokens per GEMM task (a multiple of MR). */
    static final int TB = Integer.getInteger("tb", 192);
    /** K block: an (KB, NR) weight panel stays in L1 while MR x rows stream past it. */
    static final int KB = Integer.getInteger("kb", 256);
    /** W rows per GEMV chunk; a multiple of the 4-row tile. */
    static final int GEMV_GRAIN = 32;

    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    /** The half exponent field 0x7C00 after shifting the half bits left by 13. */
    private static final int HALF_EXP_SHIFTED = 0x7C00 << 13;
    /** 127 - 15: moves a half exponent onto the float bias. */
    private static final int REBIAS = (127 - 15) << 23;
    private static final float TWO_POW_MINUS_14 = 0x1p-14f;

    @SuppressWarnings("unchecked")
    private static VectorSpecies<Float> speciesFromClassData() {
        try {
            VectorSpecies<Float> sp = MethodHandles.classData(MethodHandles.lookup(), "_", VectorSpecies.class);
            return sp != null ? sp : FloatVector.SPECIES_PREFERRED;
        } catch (IllegalAccessException e) {
            throw new IllegalStateException(e);
        }
    }

    @Override
    public VectorSpecies<Float> species() {
        return F;
    }

    // ---- weight loads -------------------------------------------------------------------

    static FloatVector f32(MemorySegment seg, long byteOff) {
        return FloatVector.fromMemorySegment(F, seg, byteOff, LE);
    }

    static FloatVector bf16(MemorySegment seg, long byteOff) {
        ShortVector s = ShortVector.fromMemorySegment(S, seg, byteOff, LE);
        IntVector i = (IntVector) s.convertShape(VectorOperators.S2I, I, 0);
        return i.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
    }

    static FloatVector f16(MemorySegment seg, long byteOff) {
        ShortVector s = ShortVector.fromMemorySegment(S, seg, byteOff, LE);
        IntVector h = (IntVector) s.convertShape(VectorOperators.S2I, I, 0); // sign-extended
        IntVector sign = h.and(0x8000).lanewise(VectorOperators.LSHL, 16);
        IntVector o = h.and(0x7FFF).lanewise(VectorOperators.LSHL, 13);
        IntVector exp = o.and(HALF_EXP_SHIFTED);
        o = o.add(REBIAS);
        o = o.lanewise(VectorOperators.ADD, REBIAS, exp.eq(HALF_EXP_SHIFTED));
        IntVector renorm = o.add(1 << 23).reinterpretAsFloats().sub(TWO_POW_MINUS_14).reinterpretAsInts();
        o = o.blend(renorm, exp.eq(0));
        return o.or(sign).reinterpretAsFloats();
    }

    @Override
    public void decode(DType dtype, MemorySegment seg, long elem, int n, float[] dst, int dstOff) {
        decodeRun(dtype, seg, elem, n, dst, dstOff);
    }

    private static void decodeRun(DType dtype, MemorySegment seg, long elem, int n, float[] dst, int dstOff) {
        int bound = n - n % L;
        int i = 0;
        switch (dtype) {
            case F32 -> MemorySegment.copy(seg, WeightMatrix.F32_LE, elem * 4, dst, dstOff, n);
            case BF16 -> {
                for (; i < bound; i += L) {
                    bf16(seg, (elem + i) * 2).intoArray(dst, dstOff + i);
                }
                for (; i < n; i++) {
                    dst[dstOff + i] = DType.bf16ToFloat(seg.get(WeightMatrix.I16_LE, (elem + i) * 2));
                }
            }
            case F16 -> {
                for (; i < bound; i += L) {
                    f16(seg, (elem + i) * 2).intoArray(dst, dstOff + i);
                }
                for (; i < n; i++) {
                    dst[dstOff + i] = DType.f16ToFloat(seg.get(WeightMatrix.I16_LE, (elem + i) * 2));
                }
            }
            default -> throw new IllegalArgumentException("cannot decode weights of dtype " + dtype);
        }
    }

    // ---- dot / axpy ---------------------------------------------------------------------

    @Override
    public float dot(float[] a, int aOff, float[] b, int bOff, int n) {
        int bound = n - n % (4 * L);
        FloatVector s0 = FloatVector.zero(F);
        FloatVector s1 = FloatVector.zero(F);
        FloatVector s2 = FloatVector.zero(F);
        FloatVector s3 = FloatVector.zero(F);
        int i = 0;
        for (; i < bound; i += 4 * L) {
            s0 = FloatVector.fromArray(F, a, aOff + i).fma(FloatVector.fromArray(F, b, bOff + i), s0);
            s1 = FloatVector.fromArray(F, a, aOff + i + L).fma(FloatVector.fromArray(F, b, bOff + i + L), s1);
            s2 = FloatVector.fromArray(F, a, aOff + i + 2 * L).fma(FloatVector.fromArray(F, b, bOff + i + 2 * L), s2);
            s3 = FloatVector.fromArray(F, a, aOff + i + 3 * L).fma(FloatVector.fromArray(F, b, bOff + i + 3 * L), s3);
        }
        for (; i + L <= n; i += L) {
            s0 = FloatVector.fromArray(F, a, aOff + i).fma(FloatVector.fromArray(F, b, bOff + i), s0);
        }
        float acc = s0.add(s1).add(s2.add(s3)).reduceLanes(VectorOperators.ADD);
        for (; i < n; i++) {
            acc = Math.fma(a[aOff + i], b[bOff + i], acc);
        }
        return acc;
    }

    @Override
    public void axpy(float alpha, float[] x, int xOff, float[] y, int yOff, int n) {
        int bound = n - n % L;
        int i = 0;
        FloatVector av = FloatVector.broadcast(F, alpha);
        for (; i < bound; i += L) {
            av.fma(FloatVector.fromArray(F, x, xOff + i), FloatVector.fromArray(F, y, yOff + i))
                    .intoArray(y, yOff + i);
        }
        for (; i < n; i++) {
            y[yOff + i] = Math.fma(alpha, x[xOff + i], y[yOff + i]);
        }
    }

    // ---- GEMV ---------------------------------------------------------------------------

    @Override
    public void gemv(Parallel par, float[] x, WeightMatrix w, float[] out) {
        par.forRange(0, w.rows(), GEMV_GRAIN, (lo, hi) -> gemvRows(x, w, out, lo, hi));
    }

    private static void gemvRows(float[] x, WeightMatrix w, float[] out, int lo, int hi) {
        int r = lo;
        for (; r + 4 <= hi; r += 4) {
            switch (w.dtype()) {
                case F32 -> gemv4F32(x, w, out, r);
                case BF16 -> gemv4Bf16(x, w, out, r);
                case F16 -> gemv4F16(x, w, out, r);
                default -> throw new AssertionError(w.dtype());
            }
        }
        for (; r < hi; r++) {
            out[r] = gemv1(x, w, r);
        }
    }

    private static void gemv4F32(float[] x, WeightMatrix w, float[] out, int r) {
        MemorySegment seg = w.data();
        int K = w.cols();
        int bound = K - K % L;
        long rowBytes = (long) K * 4;
        long b0 = r * rowBytes;
        long b1 = b0 + rowBytes;
        long b2 = b1 + rowBytes;
        long b3 = b2 + rowBytes;
        FloatVector a0 = FloatVector.zero(F);
        FloatVector a1 = FloatVector.zero(F);
        FloatVector a2 = FloatVector.zero(F);
        FloatVector a3 = FloatVector.zero(F);
        for (int k = 0; k < bound; k += L) {
            FloatVector xv = FloatVector.fromArray(F, x, k);
            long o = (long) k * 4;
            a0 = f32(seg, b0 + o).fma(xv, a0);
            a1 = f32(seg, b1 + o).fma(xv, a1);
            a2 = f32(seg, b2 + o).fma(xv, a2);
            a3 = f32(seg, b3 + o).fma(xv, a3);
        }
        finish4(x, w, out, r, bound, a0, a1, a2, a3);
    }

    private static void gemv4Bf16(float[] x, WeightMatrix w, float[] out, int r) {
        MemorySegment seg = w.data();
        int K = w.cols();
        int bound = K - K % L;
        long rowBytes = (long) K * 2;
        long b0 = r * rowBytes;
        long b1 = b0 + rowBytes;
        long b2 = b1 + rowBytes;
        long b3 = b2 + rowBytes;
        FloatVector a0 = FloatVector.zero(F);
        FloatVector a1 = FloatVector.zero(F);
        FloatVector a2 = FloatVector.zero(F);
        FloatVector a3 = FloatVector.zero(F);
        for (int k = 0; k < bound; k += L) {
            FloatVector xv = FloatVector.fromArray(F, x, k);
            long o = (long) k * 2;
            a0 = bf16(seg, b0 + o).fma(xv, a0);
            a1 = bf16(seg, b1 + o).fma(xv, a1);
            a2 = bf16(seg, b2 + o).fma(xv, a2);
            a3 = bf16(seg, b3 + o).fma(xv, a3);
        }
        finish4(x, w, out, r, bound, a0, a1, a2, a3);
    }

    private static void gemv4F16(float[] x, WeightMatrix w, float[] out, int r) {
        MemorySegment seg = w.data();
        int K = w.cols();
        int bound = K - K % L;
        long rowBytes = (long) K * 2;
        long b0 = r * rowBytes;
        long b1 = b0 + rowBytes;
        long b2 = b1 + rowBytes;
        long b3 = b2 + rowBytes;
        FloatVector a0 = FloatVector.zero(F);
        FloatVector a1 = FloatVector.zero(F);
        FloatVector a2 = FloatVector.zero(F);
        FloatVector a3 = FloatVector.zero(F);
        for (int k = 0; k < bound; k += L) {
            FloatVector xv = FloatVector.fromArray(F, x, k);
            long o = (long) k * 2;
            a0 = f16(seg, b0 + o).fma(xv, a0);
            a1 = f16(seg, b1 + o).fma(xv, a1);
            a2 = f16(seg, b2 + o).fma(xv, a2);
            a3 = f16(seg, b3 + o).fma(xv, a3);
        }
        finish4(x, w, out, r, bound, a0, a1, a2, a3);
    }

    private static void finish4(float[] x, WeightMatrix w, float[] out, int r, int bound,
                                FloatVector a0, FloatVector a1, FloatVector a2, FloatVector a3) {
        out[r] = rowTail(x, w, r, bound, a0.reduceLanes(VectorOperators.ADD));
        out[r + 1] = rowTail(x, w, r + 1, bound, a1.reduceLanes(VectorOperators.ADD));
        out[r + 2] = rowTail(x, w, r + 2, bound, a2.reduceLanes(VectorOperators.ADD));
        out[r + 3] = rowTail(x, w, r + 3, bound, a3.reduceLanes(VectorOperators.ADD));
    }

    /** One row with the same per-element arithmetic as the 4-row tiles. */
    private static float gemv1(float[] x, WeightMatrix w, int r) {
        MemorySegment seg = w.data();
        int K = w.cols();
        int bound = K - K % L;
        int eb = w.dtype().bytes;
        long base = (long) r * K * eb;
        FloatVector a = FloatVector.zero(F);
        for (int k = 0; k < bound; k += L) {
            FloatVector xv = FloatVector.fromArray(F, x, k);
            long o = base + (long) k * eb;
            FloatVector wv = switch (w.dtype()) {
                case F32 -> f32(seg, o);
                case BF16 -> bf16(seg, o);
                case F16 -> f16(seg, o);
                default -> throw new AssertionError(w.dtype());
            };
            a = wv.fma(xv, a);
        }
        return rowTail(x, w, r, bound, a.reduceLanes(VectorOperators.ADD));
    }

    /** acc + sum over k in [from, K) of x[k] * w[r, k], in order, with scalar FMA. */
    private static float rowTail(float[] x, WeightMatrix w, int r, int from, float acc) {
        int K = w.cols();
        for (int k = from; k < K; k++) {
            acc = Math.fma(x[k], w.get(r, k), acc);
        }
        return acc;
    }

    // ---- GEMM ---------------------------------------------------------------------------

    @Override
    public void gemm(Parallel par, float[] x, int T, WeightMatrix w, float[] out) {
        int N = w.rows();
        int nPanels = (N + NB - 1) / NB;
        int tBlocks = (T + TB - 1) / TB;
        par.forRange(0, nPanels * tBlocks, 1, (lo, hi) -> {
            for (int task = lo; task < hi; task++) {
                int n0 = (task / tBlocks) * NB;
                int t0 = (task % tBlocks) * TB;
                gemmTask(x, w, out, n0, Math.min(N, n0 + NB), t0, Math.min(T, t0 + TB));
            }
        });
    }

    /**
     * Per-thread buffers of the GEMM: packed panel, one decoded W row, x tail rows, out tile.
     * Sized by the caller because hidden copies share this nested class but not its constants;
     * not private because hidden copies are not its nestmates.
     */
    static final class Scratch {
        final float[] packed; // NB / NR panels of (KB, NR)
        final float[] row; // (KB)
        final float[] xTail; // (MR, KB)
        final float[] outTile; // (MR, NR)

        Scratch(int nb, int kb, int mr, int nr) {
            packed = new float[nb * kb];
            row = new float[kb];
            xTail = new float[mr * kb];
            outTile = new float[mr * nr];
        }
    }

    private static final ThreadLocal<Scratch> SCRATCH = ThreadLocal.withInitial(() -> new Scratch(NB, KB, MR, NR));

    private static void gemmTask(float[] x, WeightMatrix w, float[] out, int n0, int n1, int t0, int t1) {
        int K = w.cols();
        int N = w.rows();
        Scratch s = SCRATCH.get();
        int tr = (t1 - t0) % MR;
        int tFull = t1 - tr;
        for (int k0 = 0; k0 < K; k0 += KB) {
            int kl = Math.min(KB, K - k0);
            boolean first = k0 == 0;
            pack(w, n0, n1, k0, kl, s);
            for (int i = 0; i < tr; i++) {
                System.arraycopy(x, (tFull + i) * K + k0, s.xTail, i * kl, kl);
            }
            for (int n = n0; n < n1; n += NR) {
                int nc = Math.min(NR, n1 - n);
                int po = (n - n0) * kl; // panel (n - n0) / NR starts at ((n - n0) / NR) * NR * kl
                for (int t = t0; t < tFull; t += MR) {
                    if (nc == NR) {
                        micro(x, t * K + k0, K, s.packed, po, kl, out, t * N + n, N, first);
                    } else {
                        microViaTile(x, t * K + k0, K, MR, nc, s, po, kl, out, t * N + n, N, first);
                    }
                }
                if (tr > 0) {
                    microViaTile(s.xTail, 0, kl, tr, nc, s, po, kl, out, tFull * N + n, N, first);
                }
            }
        }
    }

    /**
     * Packs W rows [n0, n1), columns [k0, k0 + kl) as panels of NR rows, each (kl, NR) with the
     * NR weights of one k contiguous; rows past n1 in the last panel are zero.
     */
    private static void pack(WeightMatrix w, int n0, int n1, int k0, int kl, Scratch s) {
        int K = w.cols();
        float[] p = s.packed;
        float[] row = s.row;
        int rows = n1 - n0;
        int padded = (rows + NR - 1) / NR * NR;
        for (int j = 0; j < padded; j++) {
            int base = (j / NR) * NR * kl + j % NR;
            if (j < rows) {
                decodeRun(w.dtype(), w.data(), (long) (n0 + j) * K + k0, kl, row, 0);
                for (int k = 0; k < kl; k++) {
                    p[base + k * NR] = row[k];
                }
            } else {
                for (int k = 0; k < kl; k++) {
                    p[base + k * NR] = 0f;
                }
            }
        }
    }

    /** {@link #micro} for a partial tile (rows &lt; MR or cols &lt; NR) through the out tile. */
    private static void microViaTile(float[] x, int xo, int xs, int rows, int cols, Scratch s, int po, int kl,
                                     float[] out, int oo, int os, boolean first) {
        float[] tile = s.outTile;
        if (!first) {
            for (int i = 0; i < rows; i++) {
                System.arraycopy(out, oo + i * os, tile, i * NR, cols);
            }
        }
        // tokens past `rows` read in-bounds scratch; their results are dropped
        micro(x, xo, xs, s.packed, po, kl, tile, 0, NR, first);
        for (int i = 0; i < rows; i++) {
            System.arraycopy(tile, i * NR, out, oo + i * os, cols);
        }
    }

    /**
     * MR tokens by NR weight rows over kl, outer-product form: for each k, NR packed weights
     * (two vectors) times each token's x[k] broadcast, 12 accumulators at 8 lanes. Accumulators
     * start from zero on the first K block and from {@code out} after it, so each output is one
     * FMA chain in k order. x rows at xo + i * xs, outputs at oo + i * os + c.
     */
    private static void micro(float[] x, int xo, int xs, float[] p, int po, int kl,
                              float[] out, int oo, int os, boolean first) {
        int o0 = oo;
        int o1 = oo + os;
        int o2 = oo + 2 * os;
        int o3 = oo + 3 * os;
        int o4 = oo + 4 * os;
        int o5 = oo + 5 * os;
        FloatVector c00;
        FloatVector c01;
        FloatVector c10;
        FloatVector c11;
        FloatVector c20;
        FloatVector c21;
        FloatVector c30;
        FloatVector c31;
        FloatVector c40;
        FloatVector c41;
        FloatVector c50;
        FloatVector c51;
        if (first) {
            c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = c40 = c41 = c50 = c51 = FloatVector.zero(F);
        } else {
            c00 = FloatVector.fromArray(F, out, o0);
            c01 = FloatVector.fromArray(F, out, o0 + L);
            c10 = FloatVector.fromArray(F, out, o1);
            c11 = FloatVector.fromArray(F, out, o1 + L);
            c20 = FloatVector.fromArray(F, out, o2);
            c21 = FloatVector.fromArray(F, out, o2 + L);
            c30 = FloatVector.fromArray(F, out, o3);
            c31 = FloatVector.fromArray(F, out, o3 + L);
            c40 = FloatVector.fromArray(F, out, o4);
            c41 = FloatVector.fromArray(F, out, o4 + L);
            c50 = FloatVector.fromArray(F, out, o5);
            c51 = FloatVector.fromArray(F, out, o5 + L);
        }
        int x0 = xo;
        int x1 = xo + xs;
        int x2 = xo + 2 * xs;
        int x3 = xo + 3 * xs;
        int x4 = xo + 4 * xs;
        int x5 = xo + 5 * xs;
        for (int k = 0; k < kl; k++) {
            int pk = po + k * NR;
            FloatVector w0 = FloatVector.fromArray(F, p, pk);
            FloatVector w1 = FloatVector.fromArray(F, p, pk + L);
            FloatVector b = FloatVector.broadcast(F, x[x0 + k]);
            c00 = b.fma(w0, c00);
            c01 = b.fma(w1, c01);
            b = FloatVector.broadcast(F, x[x1 + k]);
            c10 = b.fma(w0, c10);
            c11 = b.fma(w1, c11);
            b = FloatVector.broadcast(F, x[x2 + k]);
            c20 = b.fma(w0, c20);
            c21 = b.fma(w1, c21);
            b = FloatVector.broadcast(F, x[x3 + k]);
            c30 = b.fma(w0, c30);
            c31 = b.fma(w1, c31);
            b = FloatVector.broadcast(F, x[x4 + k]);
            c40 = b.fma(w0, c40);
            c41 = b.fma(w1, c41);
            b = FloatVector.broadcast(F, x[x5 + k]);
            c50 = b.fma(w0, c50);
            c51 = b.fma(w1, c51);
        }
        c00.intoArray(out, o0);
        c01.intoArray(out, o0 + L);
        c10.intoArray(out, o1);
        c11.intoArray(out, o1 + L);
        c20.intoArray(out, o2);
        c21.intoArray(out, o2 + L);
        c30.intoArray(out, o3);
        c31.intoArray(out, o3 + L);
        c40.intoArray(out, o4);
        c41.intoArray(out, o4 + L);
        c50.intoArray(out, o5);
        c51.intoArray(out, o5 + L);
    }
}
