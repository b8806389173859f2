package org.qvlm4j.model;

import java.util.stream.IntStream;
import org.qvlm4j.kernels.VectorMath;

/**
 * Scaled dot-product attention over row-major per-token head vectors, as HF's eager attention:
 * softmax(q k^T / sqrt(Hd) + mask) v, with grouped-query heads (query head h reads key/value head
 * h / (H / KV)) and an optional causal mask for a query block that starts at position
 * {@code pos0} of the key sequence. Heads run in parallel when the work is large enough.
 */
final class Attention {
    /** Below this many multiply-adds a call stays on the caller's thread. */
    private static final long PARALLEL_THRESHOLD = 1L << 16;

    private Attention() {
    }

    /**
     * out (T, H*Hd) from q (T, H*Hd) and keys/values (S, KV*Hd), where query t sits at key position
     * pos0 + t. Causal: query t sees keys 0 .. pos0 + t; otherwise all S keys. scores holds at
     * least H * S floats of scratch.
     */
    static void forward(float[] q, float[] k, float[] v, float[] out, float[] scores, int T, int S, int pos0,
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
}
