package org.qvlm4j.quant.qvlm;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * A partition of decoder layers 0 .. L − 1 into consecutive blocks whose rounding functions are
 * searched jointly (Q-VLM §3.2), and the two rules that produce one from the pair dependencies
 * D(k, k+1):
 *
 * <ul>
 *   <li><b>{@link #greedy}</b>, Eq. 7 as qvlm-method.md §6.6 reads it: open a block at k_r and extend
 *       it to k_s + 1 while it stays within maxDepth layers and D(k_r, k_s + 1) &gt; (k_s + 1 − k_r)·h0,
 *       i.e. while the mean pair dependency inside the block exceeds h0 (strictly); then close it.</li>
 *   <li><b>{@link #dp}</b>, a search-cost-aware optimum the paper does not describe: the partition
 *       minimising E(P) + μ·C(P) over all partitions with blocks of at most maxDepth layers, by
 *       dynamic programming over the last block. The error estimate E(P) is the dependency cut
 *       between blocks, Σ of D(k, k+1) over pairs that straddle a boundary (what a block-wise search
 *       cannot capture). The cost model C(P) is the extra search work over layer-wise search:
 *       a block of s layers searched over a grid of G values per layer with shared prefixes runs
 *       {@link #searchCost}(s) = G + G² + … + G^s single-layer forwards per calibration token, so
 *       C(P) = Σ_B (searchCost(|B|) − |B|·G). μ = h0 / (searchCost(2) − 2G) prices the work so that two
 *       layers are joined exactly when their dependency exceeds h0, as in Eq. 7; deeper blocks must
 *       earn their much larger cost. Ties go to the cheaper partition, then to the shorter last
 *       block.</li>
 * </ul>
 *
 * <p>Left out: non-contiguous blocks.
 */
public record Partition(String strategy, List<Block> blocks) {

    /** Layers first .. last (inclusive). */
    public record Block(int first, int last) {
        public Block {
            if (first < 0 || last < first) {
                throw new IllegalArgumentException("block [" + first + ", " + last + "]: expected 0 <= first <= last");
            }
        }

        public int size() {
            return last - first + 1;
        }

        @Override
        public String toString() {
            return first == last ? "[" + first + "]" : "[" + first + ".." + last + "]";
        }
    }

    public Partition {
        blocks = List.copyOf(blocks);
        int next = 0;
        for (Block b : blocks) {
            if (b.first() != next) {
                throw new IllegalArgumentException("partition " + blocks + ": block " + b + " should start at layer " + next);
            }
            next = b.last() + 1;
        }
    }

    /** Number of layers covered. */
    public int layers() {
        return blocks.isEmpty() ? 0 : blocks.getLast().last() + 1;
    }

    /** One block per layer: layer-wise search (Eq. 2), the paper's baseline. */
    public static Partition singletons(int layers) {
        List<Block> out = new ArrayList<>();
        for (int k = 0; k < layers; k++) {
            out.add(new Block(k, k));
        }
        return new Partition("layer-wise", out);
    }

    /** The mean of the pair values (0 without pairs): the default h0 before its multiplier. */
    public static double meanPair(double[] pairs) {
        double s = 0;
        for (double d : pairs) {
            s += d;
        }
        return pairs.length == 0 ? 0 : s / pairs.length;
    }

    /** Eq. 7, greedy left to right (see the class comment); pairs has L − 1 entries. */
    public static Partition greedy(double[] pairs, int maxDepth, double h0) {
        checkArgs(pairs, maxDepth, h0);
        int L = pairs.length + 1;
        List<Block> out = new ArrayList<>();
        int kr = 0;
        while (kr < L) {
            int ks = kr;
            while (ks + 1 < L && ks + 1 - kr + 1 <= maxDepth
                    && Dependency.span(pairs, kr, ks + 1) > (ks + 1 - kr) * h0) {
                ks++;
            }
            out.add(new Block(kr, ks));
            kr = ks + 1;
        }
        return new Partition("greedy", out);
    }

    /**
     * Single-layer forwards per calibration token to search a block of s layers exhaustively over
     * G values per layer, sharing the forwards of common prefixes: G + G² + … + G^s.
     */
    public static double searchCost(int s, int grid) {
        double c = 0;
        double g = 1;
        for (int j = 1; j <= s; j++) {
            g *= grid;
            c += g;
        }
        return c;
    }

    /** Extra search work of a block over searching its layers one by one. */
    static double extraCost(int s, int grid) {
        return searchCost(s, grid) - s * searchCost(1, grid);
    }

    /** The price μ of one unit of extra work in dependency units (0 when G = 1: all work is free). */
    static double price(double h0, int grid) {
        double pair = extraCost(2, grid);
        return pair > 0 ? h0 / pair : 0;
    }

    /** The DP objective to minimise: dependency cut between blocks plus μ times the extra search work. */
    public static double objective(Partition p, double[] pairs, double h0, int grid) {
        double mu = price(h0, grid);
        double total = 0;
        for (int k = 0; k < pairs.length; k++) {
            total += pairs[k];
        }
        double kept = 0;
        double work = 0;
        for (Block b : p.blocks()) {
            kept += Dependency.span(pairs, b.first(), b.last());
            work += extraCost(b.size(), grid);
        }
        return total - kept + mu * work;
    }

    /** The search-cost-aware optimum (see the class comment). */
    public static Partition dp(double[] pairs, int maxDepth, double h0, int grid) {
        checkArgs(pairs, maxDepth, h0);
        if (grid < 1) {
            throw new IllegalArgumentException("partition: grid size must be >= 1, got " + grid);
        }
        int L = pairs.length + 1;
        double mu = price(h0, grid);
        // best[j]: largest Σ_B (kept dependency − μ·extra work) over partitions of layers 0 .. j−1
        double[] best = new double[L + 1];
        double[] work = new double[L + 1];
        int[] last = new int[L + 1];
        for (int j = 1; j <= L; j++) {
            best[j] = Double.NEGATIVE_INFINITY;
            for (int s = 1; s <= Math.min(maxDepth, j); s++) {
                int first = j - s;
                double extra = extraCost(s, grid);
                double v = best[first] + Dependency.span(pairs, first, j - 1) - mu * extra;
                double w = work[first] + extra;
                if (v > best[j] || (v == best[j] && w < work[j])) {
                    best[j] = v;
                    work[j] = w;
                    last[j] = s;
                }
            }
        }
        List<Block> out = new ArrayList<>();
        for (int j = L; j > 0; j -= last[j]) {
            out.addFirst(new Block(j - last[j], j - 1));
        }
        return new Partition("dp", out);
    }

    private static void checkArgs(double[] pairs, int maxDepth, double h0) {
        if (maxDepth < 1) {
            throw new IllegalArgumentException("partition: max depth must be >= 1, got " + maxDepth);
        }
        if (!Double.isFinite(h0)) {
            throw new IllegalArgumentException("partition: h0 must be finite, got " + h0);
        }
        for (double d : pairs) {
            if (!Double.isFinite(d)) {
                throw new IllegalArgumentException("partition: pair dependencies must be finite, got " + d);
            }
        }
    }

    /** E.g. {@code greedy [0..1] [2] [3..5]}. */
    public String describe() {
        StringBuilder sb = new StringBuilder(strategy);
        for (Block b : blocks) {
            sb.append(' ').append(b);
        }
        return sb.toString();
    }

    @Override
    public String toString() {
        return String.format(Locale.ROOT, "Partition[%s]", describe());
    }
}
