package org.qvlm4j.kernels;

import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;

/**
 * A parallel-for over index ranges on a fixed set of worker threads.
 *
 * <p>A range is cut into chunks whose boundaries depend only on the range and the grain, never on
 * the thread count; chunks are claimed dynamically (a shared counter), so a core that is busy with
 * other work simply takes fewer chunks. Kernels compute each output element inside exactly one
 * chunk with a fixed summation order, so results are bit-identical for any thread count.
 *
 * <p>The calling thread works on its own job too. A {@code forRange} issued from inside a chunk
 * (nested parallelism) runs serially on the current thread, which rules out deadlock; concurrent
 * callers from unrelated threads are allowed and always finish, since each caller can complete
 * all of its own chunks by itself. Leaves out: priorities, cancellation, work stealing between jobs.
 */
public final class Parallel implements AutoCloseable {

    /** System property giving the worker count of {@link #shared()}. */
    public static final String THREADS_PROPERTY = "qvlm4j.threads";

    /** A body over the half-open index range [lo, hi). */
    @FunctionalInterface
    public interface RangeTask {
        void run(int lo, int hi);
    }

    private static final class Holder {
        static final Parallel SHARED = new Parallel(threadsFromProperty(), true);
    }

    /** Set while a thread executes chunks; nested calls then run inline. */
    private static final ThreadLocal<boolean[]> INSIDE = ThreadLocal.withInitial(() -> new boolean[1]);

    private final int threads;
    private final Thread[] workers;
    private final LinkedBlockingQueue<Job> queue = new LinkedBlockingQueue<>();
    private final boolean shared;
    private volatile boolean closed;

    /** A pool with {@code threads} threads in total (the caller counts as one). */
    public Parallel(int threads) {
        this(threads, false);
    }

    private Parallel(int threads, boolean shared) {
        if (threads < 1) {
            throw new IllegalArgumentException("thread count must be >= 1, got " + threads);
        }
        this.threads = threads;
        this.shared = shared;
        this.workers = new Thread[threads - 1];
        for (int i = 0; i < workers.length; i++) {
            Thread t = new Thread(this::workerLoop, "qvlm4j-worker-" + i);
            t.setDaemon(true);
            workers[i] = t;
            t.start();
        }
    }

    /** The process-wide pool, sized by {@value #THREADS_PROPERTY} or the available processors. */
    public static Parallel shared() {
        return Holder.SHARED;
    }

    /** The thread count {@link #shared()} uses: {@value #THREADS_PROPERTY}, else the processor count. */
    public static int threadsFromProperty() {
        String v = System.getProperty(THREADS_PROPERTY);
        if (v == null || v.isBlank()) {
            return Runtime.getRuntime().availableProcessors();
        }
        int n;
        try {
            n = Integer.parseInt(v.trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("system property " + THREADS_PROPERTY
                    + " must be a positive integer, got '" + v + "'", e);
        }
        if (n < 1) {
            throw new IllegalArgumentException("system property " + THREADS_PROPERTY
                    + " must be a positive integer, got '" + v + "'");
        }
        return n;
    }

    public int threads() {
        return threads;
    }

    /** Number of chunks {@link #forRange} cuts [start, end) into for this grain. */
    public static int chunkCount(int start, int end, int grain) {
        int n = end - start;
        return n <= 0 ? 0 : (int) ((n + (long) grain - 1) / grain);
    }

    /**
     * Runs {@code task} over [start, end) cut into chunks of {@code grain} indices (the last one
     * shorter), spread over the pool; returns when every chunk is done. The first exception thrown
     * by a chunk is rethrown here after the remaining chunks have finished.
     */
    public void forRange(int start, int end, int grain, RangeTask task) {
        if (grain < 1) {
            throw new IllegalArgumentException("grain must be >= 1, got " + grain);
        }
        if (end < start) {
            throw new IllegalArgumentException("range end " + end + " < start " + start);
        }
        int chunks = chunkCount(start, end, grain);
        if (chunks == 0) {
            return;
        }
        boolean[] inside = INSIDE.get();
        if (chunks == 1 || threads == 1 || inside[0]) {
            runInline(start, end, grain, chunks, task, inside);
            return;
        }
        if (closed) {
            throw new IllegalStateException("parallel pool is closed");
        }
        Job job = new Job(start, end, grain, chunks, task);
        int helpers = Math.min(workers.length, chunks - 1);
        for (int i = 0; i < helpers; i++) {
            queue.add(job);
        }
        inside[0] = true;
        try {
            job.work();
        } finally {
            inside[0] = false;
        }
        job.awaitDone();
        Throwable err = job.error.get();
        if (err instanceof RuntimeException re) {
            throw re;
        }
        if (err instanceof Error e) {
            throw e;
        }
        if (err != null) {
            throw new IllegalStateException(err);
        }
    }

    private static void runInline(int start, int end, int grain, int chunks, RangeTask task, boolean[] inside) {
        boolean was = inside[0];
        inside[0] = true;
        try {
            for (int c = 0; c < chunks; c++) {
                int lo = start + c * grain;
                task.run(lo, Math.min(end, lo + grain));
            }
        } finally {
            inside[0] = was;
        }
    }

    private void workerLoop() {
        INSIDE.get()[0] = true;
        while (!closed) {
            Job job;
            try {
                job = queue.take();
            } catch (InterruptedException e) {
                return;
            }
            job.work();
        }
    }

    /** Stops the workers of a private pool; the shared pool lives for the whole process. */
    @Override
    public void close() {
        if (shared || closed) {
            return;
        }
        closed = true;
        for (Thread t : workers) {
            t.interrupt();
        }
        for (Thread t : workers) {
            try {
                t.join(1000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
        }
    }

    private static final class Job {
        final int start;
        final int end;
        final int grain;
        final int chunks;
        final RangeTask task;
        final AtomicInteger next = new AtomicInteger();
        final AtomicInteger done = new AtomicInteger();
        final AtomicReference<Throwable> error = new AtomicReference<>();

        Job(int start, int end, int grain, int chunks, RangeTask task) {
            this.start = start;
            this.end = end;
            this.grain = grain;
            this.chunks = chunks;
            this.task = task;
        }

        void work() {
            int c;
            while ((c = next.getAndIncrement()) < chunks) {
                int lo = start + c * grain;
                try {
                    if (error.get() == null) {
                        task.run(lo, Math.min(end, lo + grain));
                    }
                } catch (Throwable t) {
                    error.compareAndSet(null, t);
                } finally {
                    if (done.incrementAndGet() == chunks) {
                        synchronized (this) {
                            notifyAll();
                        }
                    }
                }
            }
        }

        void awaitDone() {
            for (int spin = 0; spin < 2000 && done.get() < chunks; spin++) {
                Thread.onSpinWait();
            }
            if (done.get() < chunks) {
                synchronized (this) {
                    boolean interrupted = false;
                    while (done.get() < chunks) {
                        try {
                            wait();
                        } catch (InterruptedException e) {
                            interrupted = true;
                        }
                    }
                    if (interrupted) {
                        Thread.currentThread().interrupt();
                    }
                }
            }
        }
    }
}
