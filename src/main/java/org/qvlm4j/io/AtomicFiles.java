package org.qvlm4j.io;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.concurrent.ThreadLocalRandom;

/**
 * Temporary siblings and atomic renames for every output qvlm4j writes: a file is written under a
 * hidden temporary name in the target's own directory and renamed over the target only when
 * complete, so an interrupted run never leaves a half-written output. Unlike
 * {@link Files#createTempFile}, the temporaries get the process's default permissions (umask), so
 * finished outputs are as readable as any other file the user creates.
 */
public final class AtomicFiles {
    private AtomicFiles() {
    }

    /** Creates and returns a new empty file {@code .NAME.<random>.tmp} beside target. */
    public static Path tempSibling(Path target) throws IOException {
        Path dir = target.toAbsolutePath().getParent();
        for (int attempt = 0; ; attempt++) {
            Path tmp = dir.resolve("." + target.getFileName() + "." + Long.toHexString(ThreadLocalRandom.current().nextLong()) + ".tmp");
            try {
                return Files.createFile(tmp);
            } catch (FileAlreadyExistsException e) {
                if (attempt > 100) {
                    throw e;
                }
            }
        }
    }

    /** Creates and returns a new empty directory {@code NAME.tmp-<random>} beside target. */
    public static Path tempSiblingDirectory(Path target) throws IOException {
        Path dir = target.toAbsolutePath().getParent();
        for (int attempt = 0; ; attempt++) {
            Path tmp = dir.resolve(target.getFileName() + ".tmp-" + Long.toHexString(ThreadLocalRandom.current().nextLong()));
            try {
                return Files.createDirectory(tmp);
            } catch (FileAlreadyExistsException e) {
                if (attempt > 100) {
                    throw e;
                }
            }
        }
    }

    /**
     * Deletes dir and everything under it, best effort (a temporary directory left behind does no
     * harm: its name marks it as one); null or a missing directory is nothing to do.
     */
    public static void deleteTreeQuietly(Path dir) {
        if (dir == null || !Files.exists(dir)) {
            return;
        }
        try (java.util.stream.Stream<Path> s = Files.walk(dir)) {
            for (Path p : s.sorted(java.util.Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        } catch (IOException ignored) {
            // best effort, as documented
        }
    }

    /** Moves tmp over target, atomically where the filesystem allows it. */
    public static void replace(Path tmp, Path target) throws IOException {
        try {
            Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (AtomicMoveNotSupportedException e) {
            Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING);
        }
    }

    /** Writes bytes to target through a temporary sibling and a rename. */
    public static void write(Path target, byte[] bytes) {
        Path tmp = null;
        try {
            tmp = tempSibling(target);
            Files.write(tmp, bytes);
            replace(tmp, target);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write " + target + ": " + e.getMessage(), e);
        } finally {
            if (tmp != null) {
                try {
                    Files.deleteIfExists(tmp);
                } catch (IOException ignored) {
                    // the temporary is hidden and named as such; nothing more can be done
                }
            }
        }
    }

    /** Encodes an image as PNG and writes it to target through a temporary sibling and a rename. */
    public static void writePng(Path target, java.awt.image.RenderedImage image) {
        java.io.ByteArrayOutputStream bytes = new java.io.ByteArrayOutputStream();
        try {
            if (!javax.imageio.ImageIO.write(image, "png", bytes)) {
                throw new IllegalStateException("no PNG writer available");
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot encode " + target + ": " + e.getMessage(), e);
        }
        write(target, bytes.toByteArray());
    }

    /** Writes UTF-8 text to target through a temporary sibling and a rename. */
    public static void writeString(Path target, String text) {
        write(target, text.getBytes(StandardCharsets.UTF_8));
    }
}
