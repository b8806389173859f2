package org.qvlm4j.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicIntegerArray;
import org.junit.jupiter.api.Test;

/** Parallel-for: coverage, fixed chunk boundaries, nesting, concurrent callers, errors. */
class ParallelTest {
    private static final Duration DEADLOCK_GUARD = Duration.ofSeconds(20);

    @Test
    void everyIndexRunsExactlyOnceInChunksIndependentOfThreadCount() {
        for (int threads : new int[] {1, 2, 3}) {
            try (Parallel par = new Parallel(threads)) {
                for (int[] c : new int[][] {{0, 1, 1}, {0, 100, 7}, {5, 1005, 64}, {3, 3, 4}, {-10, 10, 3}}) {
                    int start = c[0];
                    int end = c[1];
                    int grain = c[2];
                    AtomicIntegerArray hits = new AtomicIntegerArray(Math.max(1, end - start));
                    Set<List<Integer>> chunks = ConcurrentHashMap.newKeySet();
                    par.forRange(start, end, grain, (lo, hi) -> {
                        chunks.add(List.of(lo, hi));
                        for (int i = lo; i < hi; i++) {
                            hits.incrementAndGet(i - start);
                        }
                    });
                    for (int i = 0; i < end - start; i++) {
                        assertEquals(1, hits.get(i), "index " + (start + i) + " with " + threads + " threads");
                    }
                    Set<List<Integer>> expected = new java.util.HashSet<>();
                    for (int lo = start; lo < end; lo += grain) {
                        expected.add(List.of(lo, Math.min(end, lo + grain)));
                    }
                    assertEquals(expected, chunks);
                    assertEquals(Parallel.chunkCount(start, end, grain), chunks.size());
                }
            }
        }
    }

    @Test
    void nestedCallsRunInlineWithoutDeadlock() {
        try (Parallel par = new Parallel(2)) {
            AtomicInteger sum = new AtomicInteger();
            assertTimeoutPreemptively(DEADLOCK_GUARD, () -> par.forRange(0, 8, 1, (lo, hi) ->
                    par.forRange(0, 100, 10, (a, b) -> sum.addAndGet(b - a))));
            assertEquals(800, sum.get());
        }
    }

    @Test
    void concurrentCallersAllFinish() throws Exception {
        try (Parallel par = new Parallel(2)) {
            AtomicInteger total = new AtomicInteger();
            List<Thread> callers = new ArrayList<>();
            for (int c = 0; c < 4; c++) {
                Thread t = new Thread(() -> {
                    for (int rep = 0; rep < 50; rep++) {
                        par.forRange(0, 64, 4, (lo, hi) -> total.addAndGet(hi - lo));
                    }
                });
                callers.add(t);
                t.start();
            }
            for (Thread t : callers) {
                t.join(DEADLOCK_GUARD.toMillis());
                assertTrue(!t.isAlive(), "caller still running: deadlock");
            }
            assertEquals(4 * 50 * 64, total.get());
        }
    }

    @Test
    void firstChunkFailureIsRethrownAfterOthersFinish() {
        try (Parallel par = new Parallel(2)) {
            IllegalStateException boom = new IllegalStateException("chunk 3 failed");
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> par.forRange(0, 10, 1, (lo, hi) -> {
                if (lo == 3) {
                    throw boom;
                }
            }));
            assertSame(boom, e);
            AtomicInteger after = new AtomicInteger();
            par.forRange(0, 10, 1, (lo, hi) -> after.incrementAndGet());
            assertEquals(10, after.get(), "pool still usable after a failure");
        }
    }

    @Test
    void rejectsBadArguments() {
        assertThrows(IllegalArgumentException.class, () -> new Parallel(0));
        try (Parallel par = new Parallel(1)) {
            assertThrows(IllegalArgumentException.class, () -> par.forRange(0, 10, 0, (lo, hi) -> { }));
            assertThrows(IllegalArgumentException.class, () -> par.forRange(5, 4, 1, (lo, hi) -> { }));
        }
    }

    @Test
    void threadCountPropertyIsParsedStrictly() {
        String old = System.getProperty(Parallel.THREADS_PROPERTY);
        try {
            System.setProperty(Parallel.THREADS_PROPERTY, "3");
            assertEquals(3, Parallel.threadsFromProperty());
            System.setProperty(Parallel.THREADS_PROPERTY, "zero");
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, Parallel::threadsFromProperty);
            assertTrue(e.getMessage().contains(Parallel.THREADS_PROPERTY) && e.getMessage().contains("zero"));
            System.setProperty(Parallel.THREADS_PROPERTY, "-1");
            assertThrows(IllegalArgumentException.class, Parallel::threadsFromProperty);
            System.clearProperty(Parallel.THREADS_PROPERTY);
            assertEquals(Runtime.getRuntime().availableProcessors(), Parallel.threadsFromProperty());
        } finally {
            if (old == null) {
                System.clearProperty(Parallel.THREADS_PROPERTY);
            } else {
                System.setProperty(Parallel.THREADS_PROPERTY, old);
            }
        }
    }
}
