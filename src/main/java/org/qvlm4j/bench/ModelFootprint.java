package org.qvlm4j.bench;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.qvlm4j.io.safetensors.Checkpoint;
import org.qvlm4j.io.safetensors.TensorEntry;
import org.qvlm4j.kernels.PackedMatrix;
import org.qvlm4j.model.Linear;
import org.qvlm4j.model.LlavaModel;

/**
 * What a model costs in storage: bytes on disk and the bytes of weights the runtime reads for it.
 *
 * <p>On disk: the apparent sizes of the {@code *.safetensors} files (all shards, headers included)
 * and of every regular file under the directory (config, tokenizer, quantization config).
 * Held by the runtime: the data of every checkpoint tensor (memory-mapped, so it becomes resident
 * as it is read), split by how the loaded {@link LlavaModel} uses it: weights of floating-point
 * linears in their stored dtype; packed linears' codes (mapped) and their fp32 scales and 8-bit
 * zero points (also copied to the heap when the model loads); and the rest (token and position
 * embeddings, norms, biases). With tied word embeddings lm_head reads the embedding table, which is
 * counted once, with the rest.
 *
 * @param packed the packed layouts in forward order, each with its number of linears
 */
public record ModelFootprint(long safetensorsBytes, long directoryBytes, long tensorBytes,
                             int floatLinears, long floatLinearBytes, int packedLinearCount,
                             long packedCodeBytes, long packedScaleZeroBytes, long otherTensorBytes,
                             List<PackedUse> packed) {

    /** A packed layout and how many linears use it. */
    public record PackedUse(QuantKernelBench.PackedCase layout, int linears) {}

    public ModelFootprint {
        packed = List.copyOf(packed);
    }

    /** Measures the directory on disk and the weights of the model loaded from it. */
    public static ModelFootprint of(Path modelDir, LlavaModel model) {
        long safetensors = 0;
        long all = 0;
        try {
            // the real path: a model directory reached through a symbolic link is walked, not skipped
            Path root = modelDir.toRealPath();
            try (Stream<Path> files = Files.walk(root)) {
                for (Path p : (Iterable<Path>) files::iterator) {
                    if (Files.isRegularFile(p)) {
                        long size = Files.size(p);
                        all += size;
                        if (p.getParent().equals(root) && p.getFileName().toString().endsWith(".safetensors")) {
                            safetensors += size;
                        }
                    }
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException(modelDir + ": cannot list the model directory", e);
        }
        long tensors = 0;
        try (Checkpoint ckpt = Checkpoint.open(modelDir)) {
            for (TensorEntry t : ckpt.tensors().values()) {
                tensors += t.data().byteSize();
            }
        }
        boolean tied = model.config().tieWordEmbeddings();
        int floatLinears = 0;
        long floatBytes = 0;
        int packedCount = 0;
        long codeBytes = 0;
        long scaleZeroBytes = 0;
        Map<QuantKernelBench.PackedCase, Integer> layouts = new LinkedHashMap<>();
        for (Linear l : model.linears()) {
            PackedMatrix p = l.packed();
            if (p != null) {
                packedCount++;
                codeBytes += p.codes().byteSize();
                scaleZeroBytes += p.byteSize() - p.codes().byteSize();
                layouts.merge(packedCase(p), 1, Integer::sum);
            } else if (!(tied && l.name().equals("lm_head"))) {
                floatLinears++;
                floatBytes += l.weight().byteSize();
            }
        }
        return new ModelFootprint(safetensors, all, tensors, floatLinears, floatBytes, packedCount, codeBytes,
                scaleZeroBytes, tensors - floatBytes - codeBytes - scaleZeroBytes,
                layouts.entrySet().stream().map(e -> new PackedUse(e.getKey(), e.getValue())).toList());
    }

    /** The kernel-benchmark case of a packed weight: its format, its grouping (per row or g) and symmetry. */
    public static QuantKernelBench.PackedCase packedCase(PackedMatrix p) {
        return new QuantKernelBench.PackedCase(p.format(), p.groupSize() == p.cols() ? 0 : p.groupSize(), p.symmetric());
    }

    /** The distinct packed layouts, in forward order. */
    public List<QuantKernelBench.PackedCase> packedCases() {
        return packed.stream().map(PackedUse::layout).toList();
    }

    /** Bytes of all linear weights as the runtime holds them (float, or codes + scales + zeros). */
    public long linearBytes() {
        return floatLinearBytes + packedCodeBytes + packedScaleZeroBytes;
    }
}
