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
        this(layers, capacity, kvDim, false);
    }

    private KvCache(int layers, int capacity, int kvDim, boolean shared) {
        if (capacity <= 0) {
            throw new IllegalArgumentException("KV cache capacity must be positive, got " + capacity);
        }
        this.capacity = capacity;
        keys = new float[layers][];
        values = new float[layers][];
        for (int i = 0; i < layers; i++) {
            keys[i] = shared && i > 0 ? keys[0] : new float[Math.multiplyExact(capacity, kvDim)];
            values[i] = shared && i > 0 ? values[0] : new float[Math.multiplyExact(capacity, kvDim)];
        }
    }

    /**
     * One key and one value buffer aliased by every layer: valid only for a prefill from position 0
     * that is not followed by decode steps, where each layer consumes its own keys before the next
     * layer overwrites them. Memory of one layer instead of all.
     */
    static KvCache sharedAcrossLayers(int layers, int capacity, int kvDim) {
        return new KvCache(layers, capacity, kvDim, true);
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
