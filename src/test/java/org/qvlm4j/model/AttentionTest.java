package org.qvlm4j.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * The single-query (decode) path of {@link Attention} against its general head-by-head path on the
 * same query: identical bits for cache lengths around the key and value blocks, head counts on
 * both sides of the parallel threshold, grouped-query ratios, head sizes with vector tails, causal
 * and not, and after the JIT has compiled the kernels. The general path is itself held to a
 * float64 reference in {@link OpsTest}.
 */
class AttentionTest {
    /** Calls of one case, enough for C2 to compile the decode kernels in between. */
    private static final int JIT_CALLS = 400;

    @Test
    void decodeStepMatchesGeneralPathBitForBit() {
        int[][] heads = {{1, 1}, {4, 4}, {8, 2}, {6, 3}, {32, 32}, {32, 8}};
        int[] headDims = {4, 8, 12, 16, 36, 128};
        int[] lengths = {1, 3, 7, 8, 9, 16, 17, 31, 100};
        SplittableRandom rnd = new SplittableRandom(11);
        for (int[] hk : heads) {
            for (int Hd : headDims) {
                for (int S : lengths) {
                    check(rnd, S, hk[0], hk[1], Hd, true, "H=" + hk[0] + " KV=" + hk[1] + " Hd=" + Hd + " S=" + S);
                }
            }
        }
    }

    @Test
    void longCacheOnTheParallelPath() {
        SplittableRandom rnd = new SplittableRandom(12);
        check(rnd, 617, 32, 32, 128, true, "llava-1.5-7b shape");
        check(rnd, 333, 16, 4, 64, true, "GQA 4:1");
        check(rnd, 250, 12, 12, 36, false, "not causal");
    }

    @Test
    void compiledKernelsGiveTheBitsOfTheFirstCall() {
        SplittableRandom rnd = new SplittableRandom(13);
        int S = 41;
        int H = 4;
        int Hd = 16;
        float[] q = TestCheckpoints.random(rnd, H * Hd, 1.0);
        float[] k = TestCheckpoints.random(rnd, S * H * Hd, 1.0);
        float[] v = TestCheckpoints.random(rnd, S * H * Hd, 1.0);
        float[] first = decode(q, k, v, S, S - 1, H, H, Hd, true);
        for (int i = 1; i < JIT_CALLS; i++) {
            assertArrayEquals(first, decode(q, k, v, S, S - 1, H, H, Hd, true), "call " + i);
        }
    }

    /** Causal: the query sits at the last of S positions; otherwise at position 0 seeing all S. */
    private static void check(SplittableRandom rnd, int S, int H, int KV, int Hd, boolean causal, String what) {
        float[] q = TestCheckpoints.random(rnd, H * Hd, 2.0);
        int spare = 3; // cache rows past the query's keys must not be read
        float[] k = TestCheckpoints.random(rnd, (S + spare) * KV * Hd, 2.0);
        float[] v = TestCheckpoints.random(rnd, (S + spare) * KV * Hd, 1.0);
        int pos0 = causal ? S - 1 : 0;
        float[] expected = new float[H * Hd];
        Attention.queryBlock(q, k, v, expected, new float[H * S], 1, S, pos0, H, KV, Hd, causal);
        assertArrayEquals(expected, decode(q, k, v, S, pos0, H, KV, Hd, causal), what);
    }

    private static float[] decode(float[] q, float[] k, float[] v, int S, int pos0, int H, int KV, int Hd,
            boolean causal) {
        float[] out = new float[H * Hd];
        Arrays.fill(out, Float.NaN); // every element must be written
        Attention.forward(q, k, v, out, new float[H * S + 5], 1, S, pos0, H, KV, Hd, causal);
        return out;
    }
}
