package org.qvlm4j.experiments;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;

/**
 * The machine an experiment runs on (CPU model, cores, memory, OS, JDK), and how busy other
 * processes keep it: the CPU time all cores spent busy over a short window, less this process's own,
 * from {@code /proc/stat} and {@code /proc/self/stat}, plus the 1-minute load average. The load
 * average alone would count this run's own previous step, whose threads it still averages in.
 * Leaves out: non-Linux systems (load then unknown), frequency scaling, other JVMs' heap pressure.
 */
public final class Machine {
    /** Length of the window over which other processes' CPU use is sampled. */
    public static final long SAMPLE_MILLIS = 250;
    /** Clock ticks per second of /proc's CPU times (USER_HZ, 100 on every Linux architecture in use). */
    private static final double TICKS_PER_SECOND = 100;
    private static final Path STAT = Path.of("/proc/stat");
    private static final Path SELF_STAT = Path.of("/proc/self/stat");
    private static final Path LOADAVG = Path.of("/proc/loadavg");
    private static final Path CPUINFO = Path.of("/proc/cpuinfo");
    private static final Path MEMINFO = Path.of("/proc/meminfo");
    /** Zero-based fields of /proc/self/stat: utime, stime; the first after the command name is 2. */
    private static final int SELF_UTIME_FIELD = 13;
    private static final int SELF_STIME_FIELD = 14;
    private static final int SELF_FIRST_AFTER_COMM = 2;
    /** Columns of /proc/stat's cpu line counted as busy: user, nice, system, irq, softirq, steal (not idle, iowait, guest). */
    private static final int[] BUSY_COLUMNS = {1, 2, 3, 6, 7, 8};

    private Machine() {
    }

    /** One line: CPU model, cores, memory, OS, JDK. */
    public static String describe() {
        String cpu = firstValue(CPUINFO, "model name");
        String mem = firstValue(MEMINFO, "MemTotal");
        String memText = "?";
        if (mem != null) {
            String[] p = mem.strip().split("\\s+");
            memText = String.format(Locale.ROOT, "%.1f GiB", Long.parseLong(p[0]) / (double) (1 << 20));
        }
        return String.format(Locale.ROOT, "%s, %d cores available, %s memory, %s %s, JDK %s (%s)",
                cpu == null ? System.getProperty("os.arch") : cpu, Runtime.getRuntime().availableProcessors(), memText,
                System.getProperty("os.name"), System.getProperty("os.arch"), System.getProperty("java.version"),
                System.getProperty("java.vendor"));
    }

    /** Samples other processes' CPU use over {@value #SAMPLE_MILLIS} ms, and the load average. */
    public static Outcome.Load load() {
        int cores = Runtime.getRuntime().availableProcessors();
        try {
            long[] a = cpuTimes();
            long selfA = selfTicks();
            long t0 = System.nanoTime();
            Thread.sleep(SAMPLE_MILLIS);
            long[] b = cpuTimes();
            long selfB = selfTicks();
            double seconds = (System.nanoTime() - t0) / 1e9;
            double busy = (b[0] - a[0]) - (selfB - selfA);
            double otherCores = Math.max(0, busy / TICKS_PER_SECOND / seconds);
            return new Outcome.Load(Math.min(otherCores, cores), loadAverage(), cores);
        } catch (IOException | RuntimeException e) {
            return Outcome.Load.UNKNOWN;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return Outcome.Load.UNKNOWN;
        }
    }

    /** Busy ticks of all CPUs (everything but idle and iowait), summed. */
    private static long[] cpuTimes() throws IOException {
        String line = Files.readAllLines(STAT).getFirst();
        String[] f = line.strip().split("\\s+");
        if (!f[0].equals("cpu")) {
            throw new IOException(STAT + ": first line is not the cpu total");
        }
        long busy = 0;
        for (int i : BUSY_COLUMNS) {
            busy += Long.parseLong(f[i]);
        }
        return new long[] {busy};
    }

    /** This process's user + system ticks. */
    private static long selfTicks() throws IOException {
        String s = Files.readString(SELF_STAT);
        // the command name in parentheses may hold spaces: fields are counted after its closing parenthesis
        String[] f = s.substring(s.lastIndexOf(')') + 2).split(" ");
        return Long.parseLong(f[SELF_UTIME_FIELD - SELF_FIRST_AFTER_COMM])
                + Long.parseLong(f[SELF_STIME_FIELD - SELF_FIRST_AFTER_COMM]);
    }

    private static double loadAverage() {
        try {
            return Double.parseDouble(Files.readString(LOADAVG).strip().split("\\s+")[0]);
        } catch (IOException | RuntimeException e) {
            return Double.NaN;
        }
    }

    private static String firstValue(Path file, String key) {
        try {
            List<String> lines = Files.readAllLines(file);
            for (String l : lines) {
                int colon = l.indexOf(':');
                if (colon > 0 && l.substring(0, colon).strip().equals(key)) {
                    return l.substring(colon + 1).strip();
                }
            }
        } catch (IOException | RuntimeException e) {
            return null;
        }
        return null;
    }
}
