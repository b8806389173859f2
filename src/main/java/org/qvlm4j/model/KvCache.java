package org.qvlm4j.model;

/**
 * Keys and values of every LLaMA decoder layer for positions 0 .. capacity-1, after RoPE, so that
 * a decode step only computes the new token's projections. Layout per layer: (capacity, KV*Hd).
 */
public final class KvCache {
    final float[][] keys;
    final float[][] values;
    private final int capacity;
    private int length;

    public KvCache(int layers, int capacity, int kvDim) {
        if (capacity <= 0) {
            throw new IllegalArgumentException("KV cache capacity must be positive, got " + capacity);
        }
        this.capacity = capacity;
        keys = new float[layers][Math.multiplyExact(capacity, kvDim)];
        values = new float[layers][Math.multiplyExact(capacity, kvDim)];
    }

    public int capacity() {
        return capacity;
    }

    /** Number of positions filled. */
    public int length() {
        return length;
    }

    void advance(int T) {
        length += T;
    }

    /** Forgets all positions (the buffers are reused). */
    public void clear() {
        length = 0;
    }

    void checkRoom(int T) {
        if (length + T > capacity) {
            throw new IllegalArgumentException("KV cache holds " + capacity + " positions; " + length
                    + " are used and " + T + " more were requested");
        }
    }
}
