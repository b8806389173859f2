package org.qvlm4j.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qvlm4j.kernels.QuantFormat;
import org.qvlm4j.model.LlavaModel;

/**
 * Size and weight-byte accounting against sums written out by hand for the tiny F32 model and its
 * packed INT4 export: float linears 4 N K bytes, INT4 codes N ceil(K / 2) bytes, one fp32 scale and
 * one 8-bit zero point per row; and against the safetensors files' own layout (8-byte length,
 * header, tensor data); a directory reached through a symbolic link counts as itself.
 */
class ModelFootprintTest {
    private static final int F32_BYTES = 4;
    /** One fp32 scale and one 8-bit zero point per output row (per-channel asymmetric). */
    private static final int SCALE_ZERO_BYTES_PER_ROW = 5;

    @TempDir
    static Path work;
    static Path int4;

    @BeforeAll
    static void export() {
        int4 = BenchFixtures.int4Export();
    }

    private static long floatBytes(List<int[]> shapes) {
        return shapes.stream().mapToLong(s -> (long) F32_BYTES * s[0] * s[1]).sum();
    }

    private static ModelFootprint footprint(Path dir) {
        try (LlavaModel m = LlavaModel.load(dir)) {
            return ModelFootprint.of(dir, m);
        }
    }

    private static long fileSize(Path p) throws IOException {
        return Files.size(p);
    }

    @Test
    void floatingPointFixture() throws IOException {
        ModelFootprint f = footprint(BenchFixtures.TINY);
        List<int[]> linears = new ArrayList<>(BenchFixtures.quantizedLinears());
        linears.add(BenchFixtures.PATCH_EMBED);
        linears.add(BenchFixtures.LM_HEAD);
        assertEquals(30, f.floatLinears());
        assertEquals(floatBytes(linears), f.floatLinearBytes());
        assertEquals(135_296, f.floatLinearBytes());
        assertEquals(0, f.packedLinearCount());
        assertEquals(0, f.packedCodeBytes() + f.packedScaleZeroBytes());
        assertEquals(F32_BYTES * BenchFixtures.PARAMETERS, f.tensorBytes());
        assertEquals(f.tensorBytes() - f.floatLinearBytes(), f.otherTensorBytes());
        Path st = BenchFixtures.TINY.resolve("model.safetensors");
        assertEquals(fileSize(st), f.safetensorsBytes());
        assertEquals(Long.BYTES + BenchFixtures.safetensorsHeaderBytes(st) + f.tensorBytes(), f.safetensorsBytes());
        long all = 0;
        for (String name : List.of("config.json", "model.safetensors", "preprocessor_config.json", "tokenizer.json",
                "tokenizer_config.json")) {
            all += fileSize(BenchFixtures.TINY.resolve(name));
        }
        assertEquals(all, f.directoryBytes());
        assertTrue(f.packed().isEmpty());
    }

    @Test
    void packedInt4Export() throws IOException {
        ModelFootprint f = footprint(int4);
        ModelFootprint fp = footprint(BenchFixtures.TINY);
        List<int[]> packed = BenchFixtures.quantizedLinears();
        long codes = packed.stream().mapToLong(s -> (long) s[0] * ((s[1] + 1) / 2)).sum();
        long scaleZero = packed.stream().mapToLong(s -> (long) SCALE_ZERO_BYTES_PER_ROW * s[0]).sum();
        assertEquals(28, f.packedLinearCount());
        assertEquals(codes, f.packedCodeBytes());
        assertEquals(15_200, f.packedCodeBytes());
        assertEquals(scaleZero, f.packedScaleZeroBytes());
        assertEquals(4_630, f.packedScaleZeroBytes());
        // patch embedding and lm_head stay F32
        assertEquals(2, f.floatLinears());
        assertEquals(floatBytes(List.of(BenchFixtures.PATCH_EMBED, BenchFixtures.LM_HEAD)), f.floatLinearBytes());
        // embeddings, norms and biases are copied unchanged
        assertEquals(fp.otherTensorBytes(), f.otherTensorBytes());
        assertEquals(f.floatLinearBytes() + codes + scaleZero + fp.otherTensorBytes(), f.tensorBytes());
        Path st = int4.resolve("model.safetensors");
        assertEquals(Long.BYTES + BenchFixtures.safetensorsHeaderBytes(st) + f.tensorBytes(), f.safetensorsBytes());
        assertEquals(List.of(new ModelFootprint.PackedUse(new QuantKernelBench.PackedCase(QuantFormat.INT4, 0, false),
                28)), f.packed());
        assertEquals("INT4 row", f.packedCases().get(0).name());
    }

    @Test
    void directorySizeCountsEveryFileAndSafetensorsOnlyTheWeights() throws IOException {
        Path copy = Files.createDirectories(work.resolve("copy"));
        try (Stream<Path> s = Files.list(BenchFixtures.TINY)) {
            for (Path p : s.toList()) {
                Files.copy(p, copy.resolve(p.getFileName()));
            }
        }
        int extra = 1234;
        Files.write(Files.createDirectories(copy.resolve("notes")).resolve("readme.safetensors"), new byte[extra]);
        ModelFootprint base = footprint(BenchFixtures.TINY);
        ModelFootprint f = footprint(copy);
        assertEquals(base.directoryBytes() + extra, f.directoryBytes());
        // only the checkpoint's own files (at the top level) are weights on disk
        assertEquals(base.safetensorsBytes(), f.safetensorsBytes());
    }

    @Test
    void aModelDirectoryReachedThroughASymbolicLinkIsMeasuredAsItself() throws IOException {
        Path link = Files.createSymbolicLink(work.resolve("linked-model"), BenchFixtures.TINY.toAbsolutePath());
        try {
            assertEquals(footprint(BenchFixtures.TINY), footprint(link));
            assertTrue(footprint(link).safetensorsBytes() > 0);
        } finally {
            Files.delete(link); // the temporary directory's clean-up would otherwise meet a link leading out of it
        }
    }
}
