package org.qvlm4j.tensor;

import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.ExecutionException;
import java.util.ArrayList;
import java.util.List;

/**
 * A parallel for-loop over an index range, split into contiguous chunks, one per thread.
 *
 * <p>Used by the autograd ops for work whose outputs are disjoint per index (rows of dX, rows of
 * dW, heads of attention). Each output element is written by exactly one thread, in a fixed order,
 * so results are bit-identical for any thread count. Work smaller than {@link #MIN_WORK} runs on
 * the caller's thread. The thread count is process-wide ({@link #setThreads}); the default is the
 * kernels' ({@code -Dqvlm4j.threads}, else the number of available processors).
 */
public final class ParallelLoop {
    /** Below this many scalar multiply-adds a loop is not worth handing to other threads. */
    public static final long MIN_WORK = 1L << 15;

    /** The loop body over indices [from, to). */
    @FunctionalInterface
    public interface Chunk {
        void run(int from, int to);
    }

    private static volatile int threads = org.qvlm4j.kernels.Parallel.threadsFromProperty();
    /** Idle workers exit after a minute, so changing the thread count never strands a pool. */
    private static final ExecutorService POOL = Executors.newCachedThreadPool(r -> {
        Thread t = new Thread(r, "qvlm4j-tensor-worker");
        t.setDaemon(true);
        return t;
    });

    private ParallelLoop() {
    }

    public static int threads() {
        return threads;
    }

    /** Sets the number of threads (including the caller) that later loops use; at least 1. */
    public static void setThreads(int n) {
        if (n < 1) {
            throw new IllegalArgumentException("thread count must be >= 1, got " + n);
        }
        threads = n;
    }

    /**
     * Runs {@code body} over [0, n) in contiguous chunks. {@code workPerIndex} is a rough cost of
     * one index in multiply-adds, used only to decide whether to go parallel.
     */
    public static void forRange(int n, long workPerIndex, Chunk body) {
        int t = Math.min(threads, n);
        if (t <= 1 || (long) n * workPerIndex < MIN_WORK) {
            body.run(0, n);
            return;
        }
        List<Future<?>> futures = new ArrayList<>(t - 1);
        for (int c = 1; c < t; c++) {
            int from = (int) ((long) n * c / t);
            int to = (int) ((long) n * (c + 1) / t);
            futures.add(POOL.submit(() -> body.run(from, to)));
        }
        body.run(0, (int) ((long) n / t));
        for (Future<?> f : futures) {
            try {
                f.get();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("interrupted while waiting for a parallel loop", e);
            } catch (ExecutionException e) {
                Throwable c = e.getCause();
                if (c instanceof RuntimeException re) {
                    throw re;
                }
                if (c instanceof Error err) {
                    throw err;
                }
                throw new IllegalStateException(c);
            }
        }
    }
}
