package org.qvlm4j.model;

import java.util.Arrays;
import java.util.stream.IntStream;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;
import org.qvlm4j.kernels.Parallel;
import org.qvlm4j.kernels.VectorMath;

/**
 * Scaled dot-product attention over row-major per-token head vectors, as HF's eager attention:
 * softmax(q k^T / sqrt(Hd) + mask) v, with grouped-query heads (query head h reads key/value head
 * h / (H / KV)) and an optional causal mask for a query block that starts at position
 * {@code pos0} of the key sequence. Heads run in parallel when the work is large enough.
 *
 * <p>A single query (T = 1, a decode step) takes its own path, built to stream the cache once.
 * The keys and values of all heads at one position are one contiguous row, so the step walks the
 * rows in order (a head-by-head walk would stride by the row length): scores for one key per
 * vector lane ({@link #KEY_BLOCK} keys of a head at a time), each key's products summed in four
 * vector accumulators exactly as {@link VectorMath#dot} does, and the lanes of the block's sums
 * folded together by a butterfly of lane blends and swaps (log2 of the width levels) that adds the
 * same pairs in the same order as the dot's pairwise lane sum, so no key pays for a horizontal
 * reduction of its own; then each head's softmax ({@link Ops#softmax}); then the weighted sum of
 * the values, four positions per pass over a head's output, with the FMAs in the order of one axpy
 * per position. Chunks of whole key/value groups of heads go to the threads of
 * {@link Parallel#shared()}. Every score, probability and output element is thus computed by the
 * same operations in the same order as in the general path: the two give identical bits, at any
 * thread count, interpreted or compiled. Leaves out: the butterfly at widths above 16 floats (those
 * take one {@link VectorMath#dot} per key, with the same bits), a vectorised exp.
 */
final class Attention {
    /** Below this many multiply-adds a call stays on the caller's thread. */
    private static final long PARALLEL_THRESHOLD = 1L << 16;
    /** Head chunks a decode step is cut into at most (dynamic claiming evens out a busy core). */
    private static final int DECODE_CHUNKS = 4;
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final int L = F.length();
    /** Keys per score block of a decode step: one lane each after the butterfly. */
    static final int KEY_BLOCK = L;
    /** Positions per pass of the weighted value sum. */
    private static final int VALUE_BLOCK = 4;
    /** Whether the key-block butterfly applies (widths of 4 to 16 floats). */
    private static final boolean BUTTERFLY = L >= 4 && L <= 16;
    /** Lanes whose index has bit b set, and the lane swap i -> i ^ b, for b = 8, 4, 2, 1. */
    private static final VectorMask<Float> BIT8 = laneBit(8);
    private static final VectorMask<Float> BIT4 = laneBit(4);
    private static final VectorMask<Float> BIT2 = laneBit(2);
    private static final VectorMask<Float> BIT1 = laneBit(1);
    private static final VectorShuffle<Float> SWAP8 = VectorShuffle.fromOp(F, i -> (i ^ 8) % L);
    private static final VectorShuffle<Float> SWAP4 = VectorShuffle.fromOp(F, i -> (i ^ 4) % L);
    private static final VectorShuffle<Float> SWAP2 = VectorShuffle.fromOp(F, i -> (i ^ 2) % L);
    private static final VectorShuffle<Float> SWAP1 = VectorShuffle.fromOp(F, i -> (i ^ 1) % L);

    private Attention() {
    }

    private static VectorMask<Float> laneBit(int b) {
        boolean[] set = new boolean[L];
        for (int i = 0; i < L; i++) {
            set[i] = (i & b) != 0;
        }
        return VectorMask.fromArray(F, set, 0);
    }

    /**
     * out (T, H*Hd) from q (T, H*Hd) and keys/values (S, KV*Hd), where query t sits at key position
     * pos0 + t. Causal: query t sees keys 0 .. pos0 + t; otherwise all S keys. scores holds at
     * least H * S floats of scratch.
     */
    static void forward(float[] q, float[] k, float[] v, float[] out, float[] scores, int T, int S, int pos0,
            int H, int KV, int Hd, boolean causal) {
        if (T == 1) {
            singleQuery(q, k, v, out, scores, S, causal ? pos0 + 1 : S, H, KV, Hd);
        } else {
            queryBlock(q, k, v, out, scores, T, S, pos0, H, KV, Hd, causal);
        }
    }

    /** The general path, head by head; package-private so tests can hold the decode path to it. */
    static void queryBlock(float[] q, float[] k, float[] v, float[] out, float[] scores, int T, int S, int pos0,
            int H, int KV, int Hd, boolean causal) {
        long work = (long) T * S * H * Hd;
        if (work < PARALLEL_THRESHOLD || H == 1) {
            for (int h = 0; h < H; h++) {
                head(q, k, v, out, scores, T, S, pos0, H, KV, Hd, causal, h);
            }
        } else {
            IntStream.range(0, H).parallel().forEach(h -> head(q, k, v, out, scores, T, S, pos0, H, KV, Hd, causal, h));
        }
    }

    private static void head(float[] q, float[] k, float[] v, float[] out, float[] scores, int T, int S, int pos0,
            int H, int KV, int Hd, boolean causal, int h) {
        int kvh = h / (H / KV);
        int qStride = H * Hd;
        int kvStride = KV * Hd;
        int sOff = h * S;
        float scale = (float) (1.0 / Math.sqrt(Hd));
        for (int t = 0; t < T; t++) {
            int qOff = t * qStride + h * Hd;
            int n = causal ? pos0 + t + 1 : S;
            for (int s = 0; s < n; s++) {
                int kOff = s * kvStride + kvh * Hd;
                scores[sOff + s] = VectorMath.dot(q, qOff, k, kOff, Hd) * scale;
            }
            Ops.softmax(scores, sOff, n);
            int oOff = t * qStride + h * Hd;
            for (int d = 0; d < Hd; d++) {
                out[oOff + d] = 0;
            }
            for (int s = 0; s < n; s++) {
                float p = scores[sOff + s];
                VectorMath.axpy(p, v, s * kvStride + kvh * Hd, out, oOff, Hd);
            }
        }
    }

    /** One query against keys 0 .. n-1; head h's scores at scores[h * S ..). */
    private static void singleQuery(float[] q, float[] k, float[] v, float[] out, float[] scores, int S, int n,
            int H, int KV, int Hd) {
        if ((long) n * H * Hd < PARALLEL_THRESHOLD) {
            singleQueryHeads(q, k, v, out, scores, S, n, H, KV, Hd, 0, H);
            return;
        }
        int grain = H / KV * Math.max(1, KV / DECODE_CHUNKS);
        Parallel.shared().forRange(0, H, grain,
                (h0, h1) -> singleQueryHeads(q, k, v, out, scores, S, n, H, KV, Hd, h0, h1));
    }

    /** Query heads h0 .. h1-1 of a single query: scores, softmax, weighted values. */
    private static void singleQueryHeads(float[] q, float[] k, float[] v, float[] out, float[] scores, int S, int n,
            int H, int KV, int Hd, int h0, int h1) {
        int group = H / KV;
        int kvStride = KV * Hd;
        float scale = (float) (1.0 / Math.sqrt(Hd));
        int blocked = BUTTERFLY ? n - n % KEY_BLOCK : 0;
        float[] lanes = new float[KEY_BLOCK * L]; // (KEY_BLOCK, L) per-key accumulators in butterfly slot order
        for (int s = 0; s < blocked; s += KEY_BLOCK) {
            for (int h = h0; h < h1; h++) {
                keyBlock(q, h * Hd, k, s * kvStride + h / group * Hd, kvStride, Hd, scale, scores, h * S + s, lanes);
            }
        }
        for (int s = blocked; s < n; s++) {
            for (int h = h0; h < h1; h++) {
                scores[h * S + s] = VectorMath.dot(q, h * Hd, k, s * kvStride + h / group * Hd, Hd) * scale;
            }
        }
        for (int h = h0; h < h1; h++) {
            Ops.softmax(scores, h * S, n);
        }
        Arrays.fill(out, h0 * Hd, h1 * Hd, 0f);
        int quads = n - n % VALUE_BLOCK;
        for (int s = 0; s < quads; s += VALUE_BLOCK) {
            for (int h = h0; h < h1; h++) {
                valueBlock(scores, h * S + s, v, s * kvStride + h / group * Hd, kvStride, out, h * Hd, Hd);
            }
        }
        for (int s = quads; s < n; s++) {
            for (int h = h0; h < h1; h++) {
                VectorMath.axpy(scores[h * S + s], v, s * kvStride + h / group * Hd, out, h * Hd, Hd);
            }
        }
    }

    /**
     * scores[sOff + j] = scale * dot(q[qOff ..], key j) for the L keys at k[kOff + j * stride ..]:
     * per key, {@link VectorMath#dot}'s four accumulators and their (s0 + s1) + (s2 + s3), then the
     * butterfly. The dot's lane sum adds lanes i and i + L/2, then i and i + L/4, ..., then i and
     * i + 1; a butterfly level with bit b adds those same pairs for two keys at once (key a in the
     * lanes with bit b clear, key b in the others), so after log2(L) levels lane j holds key
     * bitreverse(j)'s sum. Keys enter in bit-reversed order so that lane j is key j.
     */
    private static void keyBlock(float[] q, int qOff, float[] k, int kOff, int stride, int Hd, float scale,
            float[] scores, int sOff, float[] lanes) {
        int bound = Hd - Hd % (4 * L);
        int tail = Hd - Hd % L;
        int bits = Integer.numberOfTrailingZeros(L);
        for (int j = 0; j < KEY_BLOCK; j++) {
            int kj = kOff + j * stride;
            FloatVector s0 = FloatVector.zero(F);
            FloatVector s1 = FloatVector.zero(F);
            FloatVector s2 = FloatVector.zero(F);
            FloatVector s3 = FloatVector.zero(F);
            int i = 0;
            for (; i < bound; i += 4 * L) {
                s0 = FloatVector.fromArray(F, q, qOff + i).fma(FloatVector.fromArray(F, k, kj + i), s0);
                s1 = FloatVector.fromArray(F, q, qOff + i + L).fma(FloatVector.fromArray(F, k, kj + i + L), s1);
                s2 = FloatVector.fromArray(F, q, qOff + i + 2 * L).fma(FloatVector.fromArray(F, k, kj + i + 2 * L), s2);
                s3 = FloatVector.fromArray(F, q, qOff + i + 3 * L).fma(FloatVector.fromArray(F, k, kj + i + 3 * L), s3);
            }
            for (; i < tail; i += L) {
                s0 = FloatVector.fromArray(F, q, qOff + i).fma(FloatVector.fromArray(F, k, kj + i), s0);
            }
            // slot bitreverse(j): the butterfly leaves slot m's sum in lane bitreverse(m)
            s0.add(s1).add(s2.add(s3)).intoArray(lanes, (Integer.reverse(j) >>> (32 - bits)) * L);
        }
        // level b folds slots (2m, 2m + 1) into slot m, halving the slots, from b = L/2 down to 1
        if (L >= 16) {
            foldSlots(lanes, 8, BIT8, SWAP8);
        }
        if (L >= 8) {
            foldSlots(lanes, 4, BIT4, SWAP4);
        }
        foldSlots(lanes, 2, BIT2, SWAP2);
        FloatVector sums = fold(FloatVector.fromArray(F, lanes, 0), FloatVector.fromArray(F, lanes, L), BIT1, SWAP1);
        if (tail == Hd) {
            sums.mul(scale).intoArray(scores, sOff);
            return;
        }
        sums.intoArray(scores, sOff);
        for (int j = 0; j < KEY_BLOCK; j++) {
            float acc = scores[sOff + j];
            int kj = kOff + j * stride;
            for (int i = tail; i < Hd; i++) {
                acc = Math.fma(q[qOff + i], k[kj + i], acc);
            }
            scores[sOff + j] = acc * scale;
        }
    }

    /** Slots m &lt; n of lanes become fold(slot 2m, slot 2m + 1) at the level of bit. */
    private static void foldSlots(float[] lanes, int n, VectorMask<Float> bit, VectorShuffle<Float> swap) {
        for (int m = 0; m < n; m++) {
            fold(FloatVector.fromArray(F, lanes, 2 * m * L), FloatVector.fromArray(F, lanes, (2 * m + 1) * L), bit, swap)
                    .intoArray(lanes, m * L);
        }
    }

    /** Lanes with bit b clear: x[i] + x[i ^ b]; lanes with it set: y[i] + y[i ^ b]. */
    private static FloatVector fold(FloatVector x, FloatVector y, VectorMask<Float> bit, VectorShuffle<Float> swap) {
        return x.blend(y, bit).add(y.blend(x, bit).rearrange(swap));
    }

    /**
     * out[oOff ..] += p_j * value j for the four positions whose probabilities are at
     * scores[pOff ..] and values at v[vOff + j * stride ..]: the four FMAs of each element chained
     * in position order, as four axpys would do them, with one load and store of out.
     */
    private static void valueBlock(float[] scores, int pOff, float[] v, int vOff, int stride, float[] out, int oOff,
            int Hd) {
        float p0 = scores[pOff];
        float p1 = scores[pOff + 1];
        float p2 = scores[pOff + 2];
        float p3 = scores[pOff + 3];
        FloatVector w0 = FloatVector.broadcast(F, p0);
        FloatVector w1 = FloatVector.broadcast(F, p1);
        FloatVector w2 = FloatVector.broadcast(F, p2);
        FloatVector w3 = FloatVector.broadcast(F, p3);
        int bound = Hd - Hd % L;
        int i = 0;
        for (; i < bound; i += L) {
            FloatVector o = FloatVector.fromArray(F, out, oOff + i);
            o = w0.fma(FloatVector.fromArray(F, v, vOff + i), o);
            o = w1.fma(FloatVector.fromArray(F, v, vOff + stride + i), o);
            o = w2.fma(FloatVector.fromArray(F, v, vOff + 2 * stride + i), o);
            o = w3.fma(FloatVector.fromArray(F, v, vOff + 3 * stride + i), o);
            o.intoArray(out, oOff + i);
        }
        for (; i < Hd; i++) {
            float o = Math.fma(p0, v[vOff + i], out[oOff + i]);
            o = Math.fma(p1, v[vOff + stride + i], o);
            o = Math.fma(p2, v[vOff + 2 * stride + i], o);
            out[oOff + i] = Math.fma(p3, v[vOff + 3 * stride + i], o);
        }
    }
}
