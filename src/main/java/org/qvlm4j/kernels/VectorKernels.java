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
 * <p><b>GEMV</b> (T = 1, memory-bound): dot-product form. Each weight row is streamed once, four
 * rows at a time sharing the x loads, parallel over rows. An output is a lane-wise FMA chain over
 * K in vector steps, reduced across lanes, plus a scalar FMA tail; the result depends on the
 * vector width but not on the thread count.
 *
 * <p><b>GEMM</b> (T &gt; 1, compute-bound): outer-product form with BLIS-style blocking.
 * Activations are packed once per call into groups of NT = 2 vectors of tokens, (K, NT) each, so a
 * group's slice over one K block is a contiguous micro-panel. Tasks are (panel of {@value #NB} W
 * rows, fewer when that leaves a thread under {@value #MIN_TASKS_PER_THREAD} tasks) x (block of at
 * most {@value #TB} tokens), claimed dynamically by the threads. Per K block of
 * {@value #KB}, a task widens its (NB, KB) weight panel to float once (vector BF16/F16 widening,
 * no transpose; held in L2) and then, for each token group, keeps that group's packed x
 * micro-panel (KB, NT) (16 KiB at 256 bits) in L1 while the panel's groups of MR rows stream past
 * from L2: per k the register tile reads two vectors of x from L1 and six weight broadcasts. The
 * register tile is MR = 6 weight rows by NT tokens (12 accumulators, with the two x vectors and
 * the broadcasts all 16 AVX2 registers). Every output is a single float FMA chain over k in order,
 * starting from zero (the accumulators go through a per-task buffer between K blocks), exactly
 * {@link GemmRef#matmulFloatFma}: the same bits at every vector width and thread count.
 *
 * <p><b>F16.</b> The JDK 25 Vector API has no half-precision lane conversion ({@code S2F} converts
 * integer values), so halves are widened with integer lane arithmetic that never touches float
 * subnormals: the half subnormal range is renormalized by subtracting 2^-14. Results equal
 * {@link Float#float16ToFloat} bit for bit (up to NaN payload quieting).
 *
 * <p>Leaves out: quantized formats, bias, fused epilogues, a small-T path (T in 2..NT-1 pads the
 * token group with zeros).
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

    /** Weight rows per GEMM register tile. */
    static final int MR = 6;
    /** Tokens per GEMM register tile: two vectors. */
    static final int NT = 2 * L;
    /**
     * Most W rows per GEMM task (a multiple of MR): each L1-resident x micro-panel is reused by
     * NB / MR row groups, and the task's (NB, KB) panel plus its (NB, TB) accumulators (432 KiB)
     * stay inside a 512 KiB L2.
     */
    static final int NB = 144;
    /** Fewest GEMM tasks per thread before row panels shrink below NB. */
    static final int MIN_TASKS_PER_THREAD = 8;
    /** Tokens per GEMM task (a multiple of NT); 512 covers a typical prefill in one block. */
    static final int TB = 512;
    /** K block: an x micro-panel (KB, NT) fills half of a 32 KiB L1 at 256 bits. */
    static final int KB = 256;
    /** k per run of the activation packing: NT * PACK_RUN floats (16 KiB at 256 bits) written per run. */
    static final int PACK_RUN = 64;
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
        float acc = sumLanes(s0.add(s1).add(s2.add(s3)));
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
        out[r] = rowTail(x, w, r, bound, sumLanes(a0));
        out[r + 1] = rowTail(x, w, r + 1, bound, sumLanes(a1));
        out[r + 2] = rowTail(x, w, r + 2, bound, sumLanes(a2));
        out[r + 3] = rowTail(x, w, r + 3, bound, sumLanes(a3));
    }

    /**
     * Sum of the lanes in a fixed pairwise order (lane i + lane i + L/2, halving until one lane).
     * {@code reduceLanes(ADD)} leaves the order unspecified, and the interpreted and compiled forms
     * of it do differ, so a forward pass would change its last bits once the JIT compiles it;
     * spilling the lanes and adding them in scalar code fixes the order everywhere.
     */
    static float sumLanes(FloatVector v) {
        float[] t = new float[L];
        v.intoArray(t, 0);
        for (int half = L / 2; half >= 1; half /= 2) {
            for (int i = 0; i < half; i++) {
                t[i] += t[i + half];
            }
        }
        return t[0];
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
        return rowTail(x, w, r, bound, sumLanes(a));
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
        int K = w.cols();
        int N = w.rows();
        int groups = (T + NT - 1) / NT;
        float[] xp = packedXBuffer((long) groups * NT * K); // groups of (K, NT)
        par.forRange(0, groups, 1, (lo, hi) -> packX(x, T, K, xp, lo, hi));
        // task sizes only move task boundaries, never an output's arithmetic, so they may follow
        // the thread count: equal token blocks, and row panels small enough that every thread
        // gets several tasks (claimed dynamically, so the threads finish close together)
        int tBlocks = (T + TB - 1) / TB;
        int tb = ceilDiv(ceilDiv(T, tBlocks), NT) * NT;
        int panelsWanted = ceilDiv(MIN_TASKS_PER_THREAD * par.threads(), tBlocks);
        int nb = Math.min(NB, Math.max(MR, ceilDiv(ceilDiv(N, panelsWanted), MR) * MR));
        int nPanels = ceilDiv(N, nb);
        par.forRange(0, nPanels * tBlocks, 1, (lo, hi) -> {
            for (int task = lo; task < hi; task++) {
                int n0 = (task / tBlocks) * nb;
                int t0 = (task % tBlocks) * tb;
                gemmTask(xp, w, out, n0, Math.min(N, n0 + nb), t0, Math.min(T, t0 + tb));
            }
        });
    }

    private static int ceilDiv(int a, int b) {
        return (a + b - 1) / b;
    }

    private static final ThreadLocal<float[]> PACKED_X = new ThreadLocal<>();

    /** The calling thread's packed-x buffer, grown on demand (its contents are not kept). */
    private static float[] packedXBuffer(long size) {
        if (size > Integer.MAX_VALUE - 16) {
            throw new IllegalArgumentException("gemm: packed activations need " + size + " floats, more than an array holds");
        }
        float[] b = PACKED_X.get();
        if (b == null || b.length < size) {
            b = new float[(int) size];
            PACKED_X.set(b);
        }
        return b;
    }

    /**
     * Packs tokens of groups [g0, g1) of x (T, K) as (K, NT) blocks: the NT tokens of one k are
     * contiguous, tokens past T are zero. Written in runs of {@value #PACK_RUN} k so that the
     * lines being filled stay in L1 while the NT token rows are read.
     */
    private static void packX(float[] x, int T, int K, float[] xp, int g0, int g1) {
        for (int g = g0; g < g1; g++) {
            int base = g * K * NT;
            for (int k0 = 0; k0 < K; k0 += PACK_RUN) {
                int k1 = Math.min(K, k0 + PACK_RUN);
                for (int j = 0; j < NT; j++) {
                    int t = g * NT + j;
                    if (t < T) {
                        int row = t * K;
                        for (int k = k0; k < k1; k++) {
                            xp[base + k * NT + j] = x[row + k];
                        }
                    } else {
                        for (int k = k0; k < k1; k++) {
                            xp[base + k * NT + j] = 0f;
                        }
                    }
                }
            }
        }
    }

    /**
     * Per-thread buffers of the GEMM: the widened weight panel and the task's accumulators.
     * Sized by the caller because hidden copies share this nested class but not its constants;
     * not private because hidden copies are not its nestmates.
     */
    static final class Scratch {
        final float[] panel; // (NB, KB) weight rows widened to float
        final float[] acc; // (NB, TB) transposed output of one task

        Scratch(int nb, int kb, int tb) {
            panel = new float[nb * kb];
            acc = new float[nb * tb];
        }
    }

    private static final ThreadLocal<Scratch> SCRATCH = ThreadLocal.withInitial(() -> new Scratch(NB, KB, TB));

    /** W rows [n0, n1) times tokens [t0, t1) (t0 a multiple of NT), all K blocks, then out. */
    private static void gemmTask(float[] xp, WeightMatrix w, float[] out, int n0, int n1, int t0, int t1) {
        int K = w.cols();
        int N = w.rows();
        Scratch s = SCRATCH.get();
        float[] panel = s.panel;
        float[] acc = s.acc;
        int rows = n1 - n0;
        int rowsPadded = (rows + MR - 1) / MR * MR;
        int g0 = t0 / NT;
        int g1 = (t1 + NT - 1) / NT;
        int width = (g1 - g0) * NT; // row length of acc
        for (int k0 = 0; k0 < K; k0 += KB) {
            int kl = Math.min(KB, K - k0);
            for (int r = 0; r < rows; r++) {
                decodeRun(w.dtype(), w.data(), (long) (n0 + r) * K + k0, kl, panel, r * kl);
            }
            java.util.Arrays.fill(panel, rows * kl, rowsPadded * kl, 0f);
            boolean first = k0 == 0;
            for (int g = g0; g < g1; g++) {
                int xo = g * K * NT + k0 * NT;
                int ao = (g - g0) * NT;
                for (int r = 0; r < rowsPadded; r += MR) {
                    micro(xp, xo, panel, r * kl, kl, acc, r * width + ao, width, first);
                }
            }
        }
        // transposed back one token group at a time: the group's NT output rows stay in L1
        for (int ts = t0; ts < t1; ts += NT) {
            int te = Math.min(t1, ts + NT);
            for (int r = 0; r < rows; r++) {
                int a = r * width - t0;
                int o = n0 + r;
                for (int t = ts; t < te; t++) {
                    out[t * N + o] = acc[a + t];
                }
            }
        }
    }

    /**
     * MR weight rows by NT tokens over kl, outer-product form: for each k, the NT packed
     * activations (two vectors) times each row's weight broadcast; 12 accumulators. They start
     * from zero on the first K block and from {@code acc} after it, so every output is one FMA
     * chain in k order. Weight rows at wo + i * kl, accumulators at ao + i * as + lane.
     */
    private static void micro(float[] xp, int xo, float[] wp, int wo, int kl,
                              float[] acc, int ao, int as, boolean first) {
        int a0 = ao;
        int a1 = ao + as;
        int a2 = ao + 2 * as;
        int a3 = ao + 3 * as;
        int a4 = ao + 4 * as;
        int a5 = ao + 5 * as;
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
            c00 = FloatVector.fromArray(F, acc, a0);
            c01 = FloatVector.fromArray(F, acc, a0 + L);
            c10 = FloatVector.fromArray(F, acc, a1);
            c11 = FloatVector.fromArray(F, acc, a1 + L);
            c20 = FloatVector.fromArray(F, acc, a2);
            c21 = FloatVector.fromArray(F, acc, a2 + L);
            c30 = FloatVector.fromArray(F, acc, a3);
            c31 = FloatVector.fromArray(F, acc, a3 + L);
            c40 = FloatVector.fromArray(F, acc, a4);
            c41 = FloatVector.fromArray(F, acc, a4 + L);
            c50 = FloatVector.fromArray(F, acc, a5);
            c51 = FloatVector.fromArray(F, acc, a5 + L);
        }
        int w0 = wo;
        int w1 = wo + kl;
        int w2 = wo + 2 * kl;
        int w3 = wo + 3 * kl;
        int w4 = wo + 4 * kl;
        int w5 = wo + 5 * kl;
        for (int k = 0; k < kl; k++) {
            int xk = xo + k * NT;
            FloatVector x0 = FloatVector.fromArray(F, xp, xk);
            FloatVector x1 = FloatVector.fromArray(F, xp, xk + L);
            FloatVector b = FloatVector.broadcast(F, wp[w0 + k]);
            c00 = b.fma(x0, c00);
            c01 = b.fma(x1, c01);
            b = FloatVector.broadcast(F, wp[w1 + k]);
            c10 = b.fma(x0, c10);
            c11 = b.fma(x1, c11);
            b = FloatVector.broadcast(F, wp[w2 + k]);
            c20 = b.fma(x0, c20);
            c21 = b.fma(x1, c21);
            b = FloatVector.broadcast(F, wp[w3 + k]);
            c30 = b.fma(x0, c30);
            c31 = b.fma(x1, c31);
            b = FloatVector.broadcast(F, wp[w4 + k]);
            c40 = b.fma(x0, c40);
            c41 = b.fma(x1, c41);
            b = FloatVector.broadcast(F, wp[w5 + k]);
            c50 = b.fma(x0, c50);
            c51 = b.fma(x1, c51);
        }
        c00.intoArray(acc, a0);
        c01.intoArray(acc, a0 + L);
        c10.intoArray(acc, a1);
        c11.intoArray(acc, a1 + L);
        c20.intoArray(acc, a2);
        c21.intoArray(acc, a2 + L);
        c30.intoArray(acc, a3);
        c31.intoArray(acc, a3 + L);
        c40.intoArray(acc, a4);
        c41.intoArray(acc, a4 + L);
        c50.intoArray(acc, a5);
        c51.intoArray(acc, a5 + L);
    }
}
