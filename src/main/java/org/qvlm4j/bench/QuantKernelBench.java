package org.qvlm4j.bench;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.management.ManagementFactory;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import org.qvlm4j.kernels.DType;
import org.qvlm4j.kernels.Gemm;
import org.qvlm4j.kernels.KernelSet;
import org.qvlm4j.kernels.KernelSets;
import org.qvlm4j.kernels.PackedMatrix;
import org.qvlm4j.kernels.Parallel;
import org.qvlm4j.kernels.QuantFormat;
import org.qvlm4j.kernels.QuantGemm;
import org.qvlm4j.kernels.QuantKernelSet;
import org.qvlm4j.kernels.QuantKernelSets;
import org.qvlm4j.kernels.QuantizedActivations;
import org.qvlm4j.kernels.WeightMatrix;

/**
 * Quantized kernel benchmark: decode GEMV (T = 1) and prefill GEMM (default T = 64) on a
 * LLaMA-7B MLP projection (N, K) = (11008, 4096) for each weight format, against a streaming-read
 * bandwidth measured in the same run.
 *
 * <p>Cases: F32 and BF16 (the {@link Gemm} kernels); the weight-only packed formats of
 * {@link Config#packed} (by default INT8, INT6, INT4 asymmetric in groups of 128 and NF4 in blocks
 * of 64; {@code qvlm4j bench --model} passes the formats of a quantized checkpoint instead); and,
 * when {@link Config#integerCases}, integer INT8 x int8, INT4 x int8 and INT4 x int4 (symmetric
 * per-row weights, dynamic per-token activations, quantization included in the time). For each:
 * median GEMV and GEMM time; bytes moved (weight codes + scales + zero points, plus the fp32 input
 * and output rows) over time, and that as a fraction of the stream bandwidth (the memory-bandwidth
 * limit: a fraction near 1 means the kernel is as fast as reading its operands can be); GEMM
 * GFLOP/s; speed-ups against BF16 and F32; bytes per weight. The stream and GEMV repetitions are
 * interleaved so that they see the same background load; the system load average is reported
 * before and after. Codes are random bytes (every byte pattern is a valid code sequence in every
 * format) held off-heap like a mapped checkpoint. This class prints nothing; {@link #main} does.
 * Leaves out: statistics beyond the median, CPU pinning, cache effects of a real model's layer mix.
 */
public final class QuantKernelBench {
    /** Bytes per parallel chunk of the bandwidth sweep. */
    private static final int STREAM_CHUNK_BYTES = 4 << 20;
    private static final long GIB = 1L << 30;
    /** GEMV repetitions per stream repetition. */
    private static final int GEMV_PER_ROUND = 3;

    private QuantKernelBench() {
    }

    /**
     * A weight-only packed layout to time.
     *
     * @param groupSize weights per scale along K; 0 means one group per row (per-channel)
     * @param symmetric uniform codes around the fixed zero point 2^(bits-1), no stored zero points
     *     (ignored for NF4, which never has zero points)
     */
    public record PackedCase(QuantFormat format, int groupSize, boolean symmetric) {
        public PackedCase {
            if (format == null || groupSize < 0) {
                throw new IllegalArgumentException("packed case needs a format and a group size >= 0 (0: per row), got "
                        + format + " and " + groupSize);
            }
            if (format == QuantFormat.NF4) {
                symmetric = false;
            }
        }

        /** Group size for a matrix with K columns. */
        public int groupFor(int K) {
            return groupSize == 0 ? K : groupSize;
        }

        /** e.g. {@code INT4 g128}, {@code INT8 row sym}, {@code NF4 b64}. */
        public String name() {
            String grouping = groupSize == 0 ? "row" : (format == QuantFormat.NF4 ? "b" : "g") + groupSize;
            return format + " " + grouping + (symmetric ? " sym" : "");
        }
    }

    /**
     * What to measure.
     *
     * @param gemmT tokens of the GEMM case (0 skips the GEMMs)
     * @param packed weight-only packed cases, timed after F32 and BF16
     * @param integerCases whether to add the integer-activation cases
     */
    public record Config(int threads, int warmup, int reps, long seed, long streamBytes,
                         int N, int K, int gemmT, List<PackedCase> packed, boolean integerCases) {
        public Config {
            if (threads < 1 || warmup < 0 || reps < 1 || streamBytes < STREAM_CHUNK_BYTES || N < 1 || K < 1
                    || gemmT < 0 || packed == null) {
                throw new IllegalArgumentException("bad quantized kernel bench config " + this);
            }
            packed = List.copyOf(packed);
            for (PackedCase p : packed) {
                int g = p.groupFor(K);
                if (g != K && (g % PackedMatrix.GROUP_QUANTUM != 0 || K % g != 0)) {
                    throw new IllegalArgumentException("packed case " + p.name() + ": group size " + g
                            + " must be K = " + K + " or a multiple of " + PackedMatrix.GROUP_QUANTUM + " dividing K");
                }
            }
        }

        /** Every format (asymmetric INT groups of 128, NF4 blocks of 64) and the integer cases. */
        public static Config defaults() {
            return withCases(DEFAULT_PACKED, true);
        }

        /** The default sizes, timing F32, BF16 and the given packed cases only. */
        public static Config withCases(List<PackedCase> packed, boolean integerCases) {
            return new Config(Parallel.threadsFromProperty(), 2, 7, 42L, GIB, 11008, 4096, 64, packed, integerCases);
        }
    }

    /** The weight-only cases of {@link Config#defaults()}. */
    public static final List<PackedCase> DEFAULT_PACKED = List.of(
            new PackedCase(QuantFormat.INT8, 128, false), new PackedCase(QuantFormat.INT6, 128, false),
            new PackedCase(QuantFormat.INT4, 128, false), new PackedCase(QuantFormat.NF4, 64, false));

    /**
     * One format. Bytes moved are the weight bytes plus the fp32 input (T, K) and output (T, N).
     *
     * @param gemvGBs GEMV bytes moved / GEMV time
     * @param gemvFraction gemvGBs / stream bandwidth
     * @param gemmMillis NaN (and every GEMM number NaN) when the GEMM was skipped
     * @param gemmFraction GEMM bytes moved / GEMM time / stream bandwidth (low: compute-bound)
     */
    public record Row(String name, double bytesPerWeight, long weightBytes,
                      double gemvMillis, double gemvGBs, double gemvFraction,
                      double gemvSpeedupVsBf16, double gemvSpeedupVsF32, double sizeRatioVsBf16,
                      double gemmMillis, double gemmGflops, double gemmFraction,
                      double gemmSpeedupVsBf16, double gemmSpeedupVsF32) {
    }

    public record Result(Config config, String species, double bandwidthGBs, List<Row> rows,
                         double loadAverageBefore, double loadAverageAfter) {
        public Row row(String name) {
            return rows.stream().filter(r -> r.name().equals(name)).findFirst()
                    .orElseThrow(() -> new IllegalArgumentException("no bench row " + name));
        }

        public String summary() {
            StringBuilder sb = new StringBuilder();
            sb.append(String.format(Locale.ROOT,
                    "quant kernel bench: N=%d K=%d, %d threads, species %s, load average %.2f -> %.2f%n"
                            + "  stream read bandwidth %.2f GB/s (the limit; frac = bytes moved / time / bandwidth)%n"
                            + "  %-14s %6s %8s %7s %5s %6s %6s %6s %9s %7s %5s %6s %6s%n",
                    config.N(), config.K(), config.threads(), species, loadAverageBefore, loadAverageAfter,
                    bandwidthGBs, "format", "B/w", "gemv ms", "GB/s", "frac", "xBF16", "xF32", "size/",
                    "gemm" + config.gemmT() + " ms", "GFLOP/s", "frac", "xBF16", "xF32"));
            for (Row r : rows) {
                sb.append(String.format(Locale.ROOT,
                        "  %-14s %6.3f %8.3f %7.2f %5.2f %6.2f %6.2f %6.2f %9.1f %7.1f %5.2f %6.2f %6.2f%n",
                        r.name(), r.bytesPerWeight(), r.gemvMillis(), r.gemvGBs(), r.gemvFraction(),
                        r.gemvSpeedupVsBf16(), r.gemvSpeedupVsF32(), r.sizeRatioVsBf16(), r.gemmMillis(),
                        r.gemmGflops(), r.gemmFraction(), r.gemmSpeedupVsBf16(), r.gemmSpeedupVsF32()));
            }
            return sb.toString().stripTrailing();
        }
    }

    @FunctionalInterface
    private interface Body {
        void run();
    }

    private static double timeMillis(Body body) {
        long t0 = System.nanoTime();
        body.run();
        return (System.nanoTime() - t0) / 1e6;
    }

    private static double medianMillis(int warmup, int reps, Body body) {
        for (int i = 0; i < warmup; i++) {
            body.run();
        }
        double[] ms = new double[reps];
        for (int i = 0; i < reps; i++) {
            ms[i] = timeMillis(body);
        }
        return KernelBench.median(ms);
    }

    /** A case: how to run the GEMV and the GEMM, and its weight bytes. */
    private record Case(String name, long bytes, Body gemv, Body gemm) {
    }

    public static Result run(Config c) {
        double loadBefore = ManagementFactory.getOperatingSystemMXBean().getSystemLoadAverage();
        KernelSet fk = KernelSets.preferred();
        QuantKernelSet qk = QuantKernelSets.preferred();
        int N = c.N();
        int K = c.K();
        int T = c.gemmT();
        try (Parallel par = new Parallel(c.threads()); Arena arena = Arena.ofShared()) {
            SplittableRandom rnd = new SplittableRandom(c.seed());
            float[] x1 = randomFloats(K, rnd); // (K)
            float[] xT = randomFloats(Math.max(T, 1) * K, rnd); // (T, K)
            float[] y1 = new float[N]; // (N)
            float[] yT = new float[Math.max(T, 1) * N]; // (T, N)
            List<Case> cases = new ArrayList<>();
            for (DType d : new DType[] {DType.F32, DType.BF16}) {
                WeightMatrix w = KernelBench.randomMatrix(arena, d, N, K, rnd);
                cases.add(new Case(d.name(), w.byteSize(), () -> Gemm.matmul(fk, par, x1, 1, w, y1),
                        () -> Gemm.matmul(fk, par, xT, T, w, yT)));
            }
            for (PackedCase p : c.packed()) {
                PackedMatrix w = randomPacked(arena, p.format(), N, K, p.groupFor(K), p.symmetric(), rnd);
                cases.add(new Case(p.name(), w.byteSize(), () -> QuantGemm.matmul(qk, par, x1, 1, w, y1),
                        () -> QuantGemm.matmul(qk, par, xT, T, w, yT)));
            }
            if (c.integerCases()) {
                PackedMatrix w8 = randomPacked(arena, QuantFormat.INT8, N, K, K, true, rnd);
                PackedMatrix w4 = randomPacked(arena, QuantFormat.INT4, N, K, K, true, rnd);
                cases.add(intCase("INT8xINT8", w8, 8, qk, par, x1, xT, T, y1, yT));
                cases.add(intCase("INT4xINT8", w4, 8, qk, par, x1, xT, T, y1, yT));
                cases.add(intCase("INT4xINT4", w4, 4, qk, par, x1, xT, T, y1, yT));
            }

            MemorySegment buf = arena.allocate(c.streamBytes(), 64);
            buf.fill((byte) 0x3c);
            int chunks = (int) (c.streamBytes() / STREAM_CHUNK_BYTES);
            float[] partial = new float[chunks];
            Body stream = () -> par.forRange(0, chunks, 1, (lo, hi) -> {
                for (int i = lo; i < hi; i++) {
                    partial[i] = KernelBench.streamSum(buf, (long) i * STREAM_CHUNK_BYTES, STREAM_CHUNK_BYTES);
                }
            });
            for (int i = 0; i < c.warmup() * GEMV_PER_ROUND + 1; i++) {
                stream.run();
                for (Case cs : cases) {
                    cs.gemv().run();
                }
            }
            double[] streamMs = new double[c.reps()];
            double[][] gemvMs = new double[cases.size()][c.reps() * GEMV_PER_ROUND];
            for (int round = 0; round < c.reps(); round++) {
                streamMs[round] = timeMillis(stream);
                for (int i = 0; i < cases.size(); i++) {
                    for (int j = 0; j < GEMV_PER_ROUND; j++) {
                        gemvMs[i][round * GEMV_PER_ROUND + j] = timeMillis(cases.get(i).gemv());
                    }
                }
            }
            double bandwidth = (double) chunks * STREAM_CHUNK_BYTES / (KernelBench.median(streamMs) * 1e6);
            double[] gemmMs = new double[cases.size()];
            for (int i = 0; i < cases.size(); i++) {
                gemmMs[i] = T > 0 ? medianMillis(Math.max(1, c.warmup() / 2), Math.max(1, c.reps() / 2),
                        cases.get(i).gemm()) : Double.NaN;
            }
            double f32 = KernelBench.median(gemvMs[0]);
            double bf16 = KernelBench.median(gemvMs[1]);
            long bf16Bytes = cases.get(1).bytes();
            double gemmFlop = 2.0 * T * N * K;
            List<Row> rows = new ArrayList<>();
            for (int i = 0; i < cases.size(); i++) {
                Case cs = cases.get(i);
                double ms = KernelBench.median(gemvMs[i]);
                double gemvGBs = bytesMoved(cs.bytes(), 1, N, K) / (ms * 1e6);
                double gemmGBs = bytesMoved(cs.bytes(), T, N, K) / (gemmMs[i] * 1e6);
                rows.add(new Row(cs.name(), (double) cs.bytes() / ((double) N * K), cs.bytes(), ms, gemvGBs,
                        gemvGBs / bandwidth, bf16 / ms, f32 / ms, (double) bf16Bytes / cs.bytes(),
                        gemmMs[i], gemmFlop / (gemmMs[i] * 1e6), gemmGBs / bandwidth, gemmMs[1] / gemmMs[i],
                        gemmMs[0] / gemmMs[i]));
            }
            double loadAfter = ManagementFactory.getOperatingSystemMXBean().getSystemLoadAverage();
            return new Result(c, qk.species().toString(), bandwidth, List.copyOf(rows), loadBefore, loadAfter);
        }
    }

    /** Weight bytes plus the fp32 input (T, K) and output (T, N) rows: what one product has to move. */
    static double bytesMoved(long weightBytes, int T, int N, int K) {
        return weightBytes + 4.0 * T * ((double) K + N);
    }

    private static Case intCase(String name, PackedMatrix w, int actBits, QuantKernelSet qk, Parallel par,
                                float[] x1, float[] xT, int T, float[] y1, float[] yT) {
        int K = w.cols();
        return new Case(name, w.byteSize(),
                () -> QuantGemm.matmulInt(qk, par, QuantizedActivations.quantizeDynamic(x1, 1, K, actBits, K), w, y1),
                () -> QuantGemm.matmulInt(qk, par, QuantizedActivations.quantizeDynamic(xT, T, K, actBits, K), w, yT));
    }

    /** Random codes (random bytes), scales in [0.001, 0.01) and zero points in the code range. */
    static PackedMatrix randomPacked(Arena arena, QuantFormat f, int N, int K, int groupSize, boolean symmetric,
                                     SplittableRandom rnd) {
        long bytes = f.rowBytes(K) * N;
        MemorySegment codes = arena.allocate(bytes, 64);
        byte[] chunk = new byte[1 << 16];
        for (long off = 0; off < bytes; off += chunk.length) {
            rnd.nextBytes(chunk);
            int n = (int) Math.min(chunk.length, bytes - off);
            MemorySegment.copy(MemorySegment.ofArray(chunk), 0, codes, off, n);
        }
        int groups = K / groupSize;
        float[] scales = new float[N * groups];
        for (int i = 0; i < scales.length; i++) {
            scales[i] = (float) (0.001 + 0.009 * rnd.nextDouble());
        }
        byte[] zeros = null;
        if (!symmetric && f.isUniform()) {
            zeros = new byte[N * groups];
            for (int i = 0; i < zeros.length; i++) {
                zeros[i] = (byte) rnd.nextInt(f.maxCode() + 1);
            }
        }
        return new PackedMatrix(f, N, K, groupSize, codes, scales, zeros);
    }

    private static float[] randomFloats(int n, SplittableRandom rnd) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) (rnd.nextDouble() * 2 - 1);
        }
        return a;
    }

    /**
     * Runs the default configuration and prints the table. Threads come from
     * {@code -Dqvlm4j.threads}; run with {@code --add-modules jdk.incubator.vector}.
     */
    public static void main(String[] args) {
        System.out.println(run(Config.defaults()).summary());
    }
}
