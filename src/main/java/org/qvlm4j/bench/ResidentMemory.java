package org.qvlm4j.bench;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Resident memory of this process from Linux's {@code /proc/self/status} (proc(5)): VmRSS (pages
 * in RAM), split into RssAnon (heap, JIT code, off-heap buffers) and RssFile (file-backed pages:
 * the touched pages of a memory-mapped checkpoint, but also the JVM's own libraries and module
 * image), and VmHWM (the peak VmRSS so far). Values are bytes; -1 where the kernel does not report
 * a field (not Linux, or a kernel before 4.5 for the split).
 *
 * <p>Leaves out: RssShmem, swap, and any attribution of pages to one mapping (that would need
 * {@code /proc/self/smaps}).
 */
public record ResidentMemory(long vmRss, long rssAnon, long rssFile, long vmHwm) {
    private static final Path STATUS = Path.of("/proc/self/status");
    /** Field values in /proc/self/status are in kB (KiB). */
    private static final long KIB = 1024;

    /** An all-unknown reading. */
    public static final ResidentMemory UNKNOWN = new ResidentMemory(-1, -1, -1, -1);

    /** The current reading, or {@link #UNKNOWN} where /proc/self/status is missing. */
    public static ResidentMemory now() {
        if (!Files.isReadable(STATUS)) {
            return UNKNOWN;
        }
        try {
            return parse(Files.readString(STATUS));
        } catch (IOException e) {
            return UNKNOWN;
        }
    }

    /** Parses the text of a {@code /proc/<pid>/status} file. */
    static ResidentMemory parse(String status) {
        return new ResidentMemory(field(status, "VmRSS"), field(status, "RssAnon"), field(status, "RssFile"),
                field(status, "VmHWM"));
    }

    /** {@code Name:   1234 kB} as bytes, or -1 when the line is absent. */
    private static long field(String status, String name) {
        for (String line : status.split("\n")) {
            if (line.startsWith(name + ":")) {
                String[] parts = line.substring(name.length() + 1).trim().split("\\s+");
                if (parts.length != 2 || !parts[1].equals("kB")) {
                    throw new IllegalArgumentException("/proc/self/status: key " + name + ": expected '<n> kB', got '"
                            + line + "'");
                }
                return Long.parseLong(parts[0]) * KIB;
            }
        }
        return -1;
    }

    /** Whether every field was reported. */
    public boolean known() {
        return vmRss >= 0 && rssAnon >= 0 && rssFile >= 0 && vmHwm >= 0;
    }
}
