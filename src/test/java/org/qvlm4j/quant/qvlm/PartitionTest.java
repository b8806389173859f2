package org.qvlm4j.quant.qvlm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** Greedy Eq. 7 against hand-worked dependency sequences; the DP against brute force over every partition. */
class PartitionTest {
    private static final double TOL = 1e-12;

    private static String blocks(Partition p) {
        return p.describe().substring(p.strategy().length()).trim();
    }

    @Test
    void greedyHandWorked() {
        // D = 5, 1, 5, 5, 1, 1 with h0 = 2 (mean 3 x 2/3):
        // [0]: D(0,1) = 5 > 2 -> [0..1]; D(0,2) = 6 > 4 -> [0..2]; depth 3 reached
        // [3]: D(3,4) = 5 > 2 -> [3..4]; D(3,5) = 6 > 4 -> [3..5]; depth 3
        // [6]: last layer
        double[] d = {5, 1, 5, 5, 1, 1};
        assertEquals("[0..2] [3..5] [6]", blocks(Partition.greedy(d, 3, 2)));
        // h0 = 3: [0..1] (5 > 3), D(0,2) = 6 > 6 fails; [2..3]: D(2,3) = 5 > 3, D(2,4) = 10 > 6 -> [2..4];
        // [5]: D(5,6) = 1 > 3 fails; [6]
        assertEquals("[0..1] [2..4] [5] [6]", blocks(Partition.greedy(d, 3, 3)));
        // max depth 2 caps every block
        assertEquals("[0..1] [2..3] [4] [5] [6]", blocks(Partition.greedy(d, 2, 3)));
        // max depth 1: layer-wise
        assertEquals("[0] [1] [2] [3] [4] [5] [6]", blocks(Partition.greedy(d, 1, 0)));
    }

    @Test
    void greedyThresholdIsStrict() {
        double[] d = {2, 2, 2};
        // equal to h0 never joins
        assertEquals("[0] [1] [2] [3]", blocks(Partition.greedy(d, 3, 2)));
        // just below joins up to the depth
        assertEquals("[0..2] [3]", blocks(Partition.greedy(d, 3, 2 - 1e-9)));
        // the mean over the span decides: (3 + 0.9) / 2 = 1.95 < 2 stops, 3 > 2 joins
        assertEquals("[0..1] [2] [3]", blocks(Partition.greedy(new double[] {3, 0.9, 0}, 3, 2)));
        // a single layer is one block
        assertEquals("[0]", blocks(Partition.greedy(new double[0], 3, 0)));
    }

    @Test
    void meanPairIsTheDefaultThreshold() {
        assertEquals(3.0, Partition.meanPair(new double[] {5, 1, 5, 5, 1, 1}), TOL);
        assertEquals(0.0, Partition.meanPair(new double[0]), TOL);
    }

    @Test
    void searchCostSharesPrefixes() {
        assertEquals(5, Partition.searchCost(1, 5), TOL);
        assertEquals(30, Partition.searchCost(2, 5), TOL);
        assertEquals(155, Partition.searchCost(3, 5), TOL);
        assertEquals(3, Partition.searchCost(3, 1), TOL);
    }

    /** Every partition of n layers into consecutive blocks of at most maxDepth. */
    private static List<Partition> all(int n, int maxDepth) {
        List<Partition> out = new ArrayList<>();
        enumerate(0, n, maxDepth, new ArrayList<>(), out);
        return out;
    }

    private static void enumerate(int from, int n, int maxDepth, List<Partition.Block> acc, List<Partition> out) {
        if (from == n) {
            out.add(new Partition("brute", acc));
            return;
        }
        for (int s = 1; s <= maxDepth && from + s <= n; s++) {
            acc.add(new Partition.Block(from, from + s - 1));
            enumerate(from + s, n, maxDepth, acc, out);
            acc.removeLast();
        }
    }

    @Test
    void dpEqualsBruteForceOptimum() {
        SplittableRandom rnd = new SplittableRandom(17);
        for (int trial = 0; trial < 200; trial++) {
            int n = 1 + rnd.nextInt(8);
            int depth = 1 + rnd.nextInt(4);
            int grid = new int[] {1, 2, 3, 5}[rnd.nextInt(4)];
            double[] d = new double[n - 1];
            for (int k = 0; k < d.length; k++) {
                d[k] = rnd.nextDouble() * 3;
            }
            double h0 = Partition.meanPair(d) * (0.2 + rnd.nextDouble());
            Partition dp = Partition.dp(d, depth, h0, grid);
            double best = Double.POSITIVE_INFINITY;
            for (Partition p : all(n, depth)) {
                best = Math.min(best, Partition.objective(p, d, h0, grid));
            }
            assertEquals(best, Partition.objective(dp, d, h0, grid), TOL, "trial " + trial);
            assertEquals(n, dp.layers());
            for (Partition.Block b : dp.blocks()) {
                assertTrue(b.size() <= depth);
            }
            // greedy is one feasible partition, so never better than the optimum
            assertTrue(Partition.objective(Partition.greedy(d, depth, h0), d, h0, grid) >= best - TOL);
        }
    }

    @Test
    void dpJoinsAPairExactlyWhenItsDependencyExceedsH0() {
        assertEquals("[0..1]", blocks(Partition.dp(new double[] {2.5}, 3, 2, 5)));
        assertEquals("[0] [1]", blocks(Partition.dp(new double[] {1.5}, 3, 2, 5)));
        // a tie goes to the cheaper partition
        assertEquals("[0] [1]", blocks(Partition.dp(new double[] {2}, 3, 2, 5)));
        // with G = 5 a triple's extra work is 140 units against 20 for a pair (mu = h0 / 20 = 0.1), so it
        // costs 14 against 2 and wins over a pair plus a single only when both its pairs exceed 12
        assertEquals("[0..1] [2]", blocks(Partition.dp(new double[] {10, 3}, 3, 2, 5)));
        assertEquals("[0..1] [2]", blocks(Partition.dp(new double[] {15, 11}, 3, 2, 5)));
        assertEquals("[0..2]", blocks(Partition.dp(new double[] {15, 13}, 3, 2, 5)));
    }

    @Test
    void badArgumentsAreRejected() {
        assertThrows(IllegalArgumentException.class, () -> Partition.greedy(new double[] {1}, 0, 1));
        assertThrows(IllegalArgumentException.class, () -> Partition.greedy(new double[] {Double.NaN}, 3, 1));
        assertThrows(IllegalArgumentException.class, () -> new Partition("x", List.of(new Partition.Block(1, 2))));
    }
}
