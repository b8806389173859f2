package org.qvlm4j.bench;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.management.ManagementFactory;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.SplittableRandom;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;
import org.qvlm4j.kernels.DType;
import org.qvlm4j.kernels.Gemm;
import org.qvlm4j.kernels.KernelSet;
import org.qvlm4j.kernels.KernelSets;
import org.qvlm4j.kernels.Parallel;
import org.qvlm4j.kernels.WeightMatrix;

/**
 * Kernel benchmark: GEMM throughput, memory bandwidth and GEMV efficiency, measured in one run.
 *
 * <ul>
 *   <li>fp32 GEMM (T, K) x (N, K)^T, default T = 512, K = N = 4096: GFLOP/s = 2 T K N / time.</li>
 *   <li>Memory bandwidth: a multi-threaded vector sum streaming over an off-heap buffer of at least
 *       1 GiB, so no cache level holds it.</li>
 *   <li>BF16 and F32 GEMV (N, K) = (11008, 4096), T = 1 (a LLaMA-7B MLP projection at decode):
 *       time, effective GB/s = weight bytes / time, and that as a fraction of the bandwidth.</li>
 * </ul>
 * Each measurement warms up, then reports the median of several repetitions; the bandwidth and
 * GEMV repetitions are interleaved so that their ratio is taken under the same background load.
 * Weights live off-heap
 * (like mmapped checkpoints) and are filled from a seeded generator. This class prints nothing;
 * {@link #main} does. Leaves out: statistics beyond the median, CPU pinning.
 */
public final class KernelBench {
    private static final VectorSpecies<Float> SP = FloatVector.SPECIES_PREFERRED;
    private static final long GIB = 1L << 30;
    /** Bytes per parallel chunk of the bandwidth sweep. */
    private static final int STREAM_CHUNK_BYTES = 4 << 20;
    /** GEMV repetitions per stream repetition (a GEMV is ~10x shorter). */
    private static final int GEMV_PER_ROUND = 3;

    private KernelBench() {
    }

    /**
     * What to measure.
     *
     * @param threads pool size for every measurement
     * @param warmup untimed repetitions before each measurement
     * @param reps timed repetitions (the median is reported)
     * @param seed seed of all weights and activations
     * @param streamBytes size of the bandwidth buffer (at least 1 GiB for a meaningful number)
     */
    public record Config(int threads, int warmup, int reps, long seed, long streamBytes,
                         int gemmT, int gemmK, int gemmN, int gemvN, int gemvK) {
        public Config {
            if (threads < 1 || warmup < 0 || reps < 1 || streamBytes < STREAM_CHUNK_BYTES
                    || gemmT < 1 || gemmK < 1 || gemmN < 1 || gemvN < 1 || gemvK < 1) {
                throw new IllegalArgumentException("bad kernel bench config " + this);
            }
        }

        /** The task's sizes on {@link Parallel#threadsFromProperty()} threads. */
        public static Config defaults() {
            return new Config(Parallel.threadsFromProperty(), 2, 7, 42L, GIB, 512, 4096, 4096, 11008, 4096);
        }
    }

    /**
     * Measured numbers (times in milliseconds, medians).
     *
     * @param species the vector species of the kernels
     * @param gemmGflopsPerCpuSecond GEMM flops per second of process CPU time (mean over the
     *     timed runs): a per-core rate that background load on shared cores distorts less
     * @param loadAverageBefore system load average (1 min) before the run; high means shared cores
     * @param loadAverageAfter the same after the run
     */
    public record Result(Config config, String species,
                         double gemmMillis, double gemmGflops, double gemmGflopsPerCpuSecond,
                         double streamMillis, double bandwidthGBs,
                         double bf16GemvMillis, double bf16GemvGBs, double bf16GemvFraction,
                         double f32GemvMillis, double f32GemvGBs, double f32GemvFraction,
                         double loadAverageBefore, double loadAverageAfter) {
        /** A multi-line human summary. */
        public String summary() {
            return String.format(java.util.Locale.ROOT, """
                    kernel bench: %d threads, species %s, load average %.2f -> %.2f
                      fp32 GEMM T=%d K=%d N=%d: %.1f ms, %.1f GFLOP/s (%.1f GFLOP per CPU-second)
                      stream sum %d MiB: %.1f ms, %.2f GB/s
                      BF16 GEMV N=%d K=%d: %.2f ms, %.2f GB/s = %.2f of stream
                      F32  GEMV N=%d K=%d: %.2f ms, %.2f GB/s = %.2f of stream""",
                    config.threads(), species, loadAverageBefore, loadAverageAfter,
                    config.gemmT(), config.gemmK(), config.gemmN(), gemmMillis, gemmGflops, gemmGflopsPerCpuSecond,
                    config.streamBytes() >> 20, streamMillis, bandwidthGBs,
                    config.gemvN(), config.gemvK(), bf16GemvMillis, bf16GemvGBs, bf16GemvFraction,
                    config.gemvN(), config.gemvK(), f32GemvMillis, f32GemvGBs, f32GemvFraction);
        }
    }

    @FunctionalInterface
    private interface Body {
        void run();
    }

    /** Median wall time in milliseconds of {@code reps} runs after {@code warmup} runs. */
    static double medianMillis(int warmup, int reps, Body body) {
        for (int i = 0; i < warmup; i++) {
            body.run();
        }
        double[] ms = new double[reps];
        for (int i = 0; i < reps; i++) {
            ms[i] = timeMillis(body);
        }
        return median(ms);
    }

    static double timeMillis(Body body) {
        long t0 = System.nanoTime();
        body.run();
        return (System.nanoTime() - t0) / 1e6;
    }

    static double median(double[] values) {
        double[] v = values.clone();
        Arrays.sort(v);
        int n = v.length;
        return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
    }

    public static Result run(Config c) {
        double loadBefore = ManagementFactory.getOperatingSystemMXBean().getSystemLoadAverage();
        KernelSet kernels = KernelSets.preferred();
        try (Parallel par = new Parallel(c.threads()); Arena arena = Arena.ofShared()) {
            SplittableRandom rnd = new SplittableRandom(c.seed());

            // (a) fp32 GEMM
            WeightMatrix wg = randomMatrix(arena, DType.F32, c.gemmN(), c.gemmK(), rnd);
            float[] x = randomFloats(c.gemmT() * c.gemmK(), rnd); // (T, K)
            float[] out = new float[c.gemmT() * c.gemmN()]; // (T, N)
            Body gemm = () -> Gemm.matmul(kernels, par, x, c.gemmT(), wg, out);
            for (int i = 0; i < Math.max(1, c.warmup()); i++) {
                gemm.run();
            }
            long cpu0 = processCpuNanos();
            double gemmMs = medianMillis(0, c.reps(), gemm);
            double gemmCpuMs = (processCpuNanos() - cpu0) / 1e6 / c.reps();
            double flop = 2.0 * c.gemmT() * c.gemmK() * c.gemmN();
            double gflops = flop / (gemmMs * 1e6);
            double gflopsPerCpu = gemmCpuMs > 0 ? flop / (gemmCpuMs * 1e6) : Double.NaN;

            // (b) streaming bandwidth, interleaved with (c), (d) GEMV at decode so that all three
            // see the same background load on a shared machine
            MemorySegment buf = arena.allocate(c.streamBytes(), 64);
            buf.fill((byte) 0x3c); // touch every page before timing
            int chunks = (int) (c.streamBytes() / STREAM_CHUNK_BYTES);
            float[] partial = new float[chunks];
            Body stream = () -> par.forRange(0, chunks, 1, (lo, hi) -> {
                for (int i = lo; i < hi; i++) {
                    partial[i] = streamSum(buf, (long) i * STREAM_CHUNK_BYTES, STREAM_CHUNK_BYTES);
                }
            });
            double streamBytes = (double) chunks * STREAM_CHUNK_BYTES;
            float[] xv = randomFloats(c.gemvK(), rnd); // (K)
            float[] yv = new float[c.gemvN()]; // (N)
            WeightMatrix wBf16 = randomMatrix(arena, DType.BF16, c.gemvN(), c.gemvK(), rnd);
            WeightMatrix wF32 = randomMatrix(arena, DType.F32, c.gemvN(), c.gemvK(), rnd);
            Body bf16 = () -> Gemm.matmul(kernels, par, xv, 1, wBf16, yv);
            Body f32 = () -> Gemm.matmul(kernels, par, xv, 1, wF32, yv);
            for (int i = 0; i < c.warmup() * GEMV_PER_ROUND + 1; i++) {
                stream.run();
                bf16.run();
                f32.run();
            }
            double[] streamMs = new double[c.reps()];
            double[] bf16Ms = new double[c.reps() * GEMV_PER_ROUND];
            double[] f32Ms = new double[c.reps() * GEMV_PER_ROUND];
            for (int round = 0; round < c.reps(); round++) {
                streamMs[round] = timeMillis(stream);
                for (int j = 0; j < GEMV_PER_ROUND; j++) {
                    bf16Ms[round * GEMV_PER_ROUND + j] = timeMillis(bf16);
                }
                for (int j = 0; j < GEMV_PER_ROUND; j++) {
                    f32Ms[round * GEMV_PER_ROUND + j] = timeMillis(f32);
                }
            }
            double bandwidth = streamBytes / (median(streamMs) * 1e6);
            double bf16GBs = wBf16.byteSize() / (median(bf16Ms) * 1e6);
            double f32GBs = wF32.byteSize() / (median(f32Ms) * 1e6);
            double loadAfter = ManagementFactory.getOperatingSystemMXBean().getSystemLoadAverage();
            return new Result(c, kernels.species().toString(), gemmMs, gflops, gflopsPerCpu, median(streamMs), bandwidth,
                    median(bf16Ms), bf16GBs, bf16GBs / bandwidth, median(f32Ms), f32GBs, f32GBs / bandwidth,
                    loadBefore, loadAfter);
        }
    }

    /** CPU time of this process (all threads), or 0 where the platform does not report it. */
    private static long processCpuNanos() {
        if (ManagementFactory.getOperatingSystemMXBean() instanceof com.sun.management.OperatingSystemMXBean os) {
            return Math.max(0, os.getProcessCpuTime());
        }
        return 0;
    }

    /** Sum of the floats in [off, off + bytes) with four independent vector accumulators. */
    static float streamSum(MemorySegment seg, long off, int bytes) {
        int step = SP.vectorByteSize();
        long end = off + bytes - (long) bytes % (4L * step);
        FloatVector a0 = FloatVector.zero(SP);
        FloatVector a1 = FloatVector.zero(SP);
        FloatVector a2 = FloatVector.zero(SP);
        FloatVector a3 = FloatVector.zero(SP);
        for (long p = off; p < end; p += 4L * step) {
            a0 = a0.add(FloatVector.fromMemorySegment(SP, seg, p, ByteOrder.LITTLE_ENDIAN));
            a1 = a1.add(FloatVector.fromMemorySegment(SP, seg, p + step, ByteOrder.LITTLE_ENDIAN));
            a2 = a2.add(FloatVector.fromMemorySegment(SP, seg, p + 2L * step, ByteOrder.LITTLE_ENDIAN));
            a3 = a3.add(FloatVector.fromMemorySegment(SP, seg, p + 3L * step, ByteOrder.LITTLE_ENDIAN));
        }
        return a0.add(a1).add(a2.add(a3)).reduceLanes(VectorOperators.ADD);
    }

    private static float[] randomFloats(int n, SplittableRandom rnd) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) (rnd.nextDouble() * 2 - 1);
        }
        return a;
    }

    /** A (rows, cols) matrix of uniform [-1, 1) values in {@code dtype}, off-heap. */
    static WeightMatrix randomMatrix(Arena arena, DType dtype, int rows, int cols, SplittableRandom rnd) {
        long n = (long) rows * cols;
        MemorySegment seg = arena.allocate(n * dtype.bytes, 64);
        ValueLayout.OfFloat f32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
        ValueLayout.OfShort i16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
        for (long i = 0; i < n; i++) {
            float v = (float) (rnd.nextDouble() * 2 - 1);
            switch (dtype) {
                case F32 -> seg.set(f32, i * 4, v);
                case BF16 -> seg.set(i16, i * 2, DType.floatToBf16(v));
                case F16 -> seg.set(i16, i * 2, DType.floatToF16(v));
                default -> throw new IllegalArgumentException("bench weights cannot be " + dtype);
            }
        }
        return new WeightMatrix(seg, dtype, rows, cols);
    }

    /**
     * Runs the default configuration and prints the summary. Threads come from
     * {@code -Dqvlm4j.threads}; run with {@code --add-modules jdk.incubator.vector}.
     */
    public static void main(String[] args) {
        System.out.println(run(Config.defaults()).summary());
    }
}
