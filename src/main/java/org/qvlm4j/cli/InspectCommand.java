package org.qvlm4j.cli;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Callable;
import org.qvlm4j.io.config.LlamaTextConfig;
import org.qvlm4j.io.config.ClipVisionConfig;
import org.qvlm4j.io.config.LlavaConfig;
import org.qvlm4j.io.safetensors.Checkpoint;
import org.qvlm4j.io.safetensors.TensorEntry;
import org.qvlm4j.model.LlavaWeights;
import org.qvlm4j.model.QuantizedLayouts;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

/** {@code qvlm4j inspect MODEL_DIR}: config summary, parameters per component, and every tensor. */
@Command(name = "inspect", mixinStandardHelpOptions = true,
        description = "Show a model directory's config, parameter counts per component and tensors.")
final class InspectCommand implements Callable<Integer> {

    @Parameters(index = "0", paramLabel = "MODEL_DIR", description = "HF LLaVA model directory (config.json + safetensors).")
    Path modelDir;

    @Option(names = "--no-tensors", description = "Omit the per-tensor listing.")
    boolean noTensors;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        LlavaConfig cfg = LlavaConfig.load(modelDir);
        LlamaTextConfig t = cfg.textConfig();
        ClipVisionConfig v = cfg.visionConfig();
        out.printf("model      %s%n", modelDir.toAbsolutePath().normalize());
        out.printf("dtype      %s%n", cfg.dtype() == null ? "(not declared)" : cfg.dtype());
        out.printf("vision     CLIP ViT: %d layers, hidden %d, intermediate %d, %d heads, image %d, patch %d, %s%n",
                v.numHiddenLayers(), v.hiddenSize(), v.intermediateSize(), v.numAttentionHeads(), v.imageSize(),
                v.patchSize(), v.hiddenAct());
        out.printf("features   layer %d (index %d of %d hidden states), strategy %s, %d per image%n",
                cfg.visionFeatureLayer(), cfg.visionFeatureLayerIndex(), v.numHiddenLayers() + 1,
                cfg.visionFeatureSelectStrategy(), cfg.imageSeqLength());
        out.printf("projector  linear %d->%d, %s, linear %d->%d, bias %s%n", v.hiddenSize(), t.hiddenSize(),
                cfg.projectorHiddenAct(), t.hiddenSize(), t.hiddenSize(), cfg.multimodalProjectorBias());
        out.printf("language   LLaMA: %d layers, hidden %d, intermediate %d, %d heads, %d kv heads, head dim %d, %s%n",
                t.numHiddenLayers(), t.hiddenSize(), t.intermediateSize(), t.numAttentionHeads(),
                t.numKeyValueHeads(), t.headDim(), t.hiddenAct());
        out.printf("           vocab %d, rope theta %s, rms eps %s, max positions %d, image token %d, tied embeddings %s%n",
                t.vocabSize(), t.ropeTheta(), t.rmsNormEps(), t.maxPositionEmbeddings(), cfg.imageTokenIndex(),
                cfg.tieWordEmbeddings());
        Map<String, LlavaWeights.PackedLayout> packed = QuantizedLayouts.read(modelDir);
        if (!packed.isEmpty()) {
            Map<String, Integer> byFormat = new java.util.TreeMap<>();
            packed.values().forEach(l -> byFormat.merge(l.format() + (l.symmetric() ? " sym" : "") + " group "
                    + l.groupSize(), 1, Integer::sum));
            out.printf("quantized  method %s, %d packed linears: %s%n", quantMethod(modelDir), packed.size(), byFormat);
        }
        try (Checkpoint ckpt = Checkpoint.open(modelDir)) {
            Map<String, long[]> perComponent = new LinkedHashMap<>();
            for (String c : new String[] {"vision", "projector", "llm", "lm_head", "other"}) {
                perComponent.put(c, new long[2]);
            }
            for (TensorEntry e : ckpt.tensors().values()) {
                long[] acc = perComponent.get(component(e.name()));
                acc[0] += parameters(ckpt, packed, e);
                acc[1] += e.data().byteSize();
            }
            out.println();
            out.printf("%-10s %15s %14s%n", "component", "parameters", "bytes");
            long totalP = 0;
            long totalB = 0;
            for (Map.Entry<String, long[]> c : perComponent.entrySet()) {
                if (c.getValue()[0] == 0 && c.getKey().equals("other")) {
                    continue;
                }
                out.printf("%-10s %,15d %,14d%n", c.getKey(), c.getValue()[0], c.getValue()[1]);
                totalP += c.getValue()[0];
                totalB += c.getValue()[1];
            }
            out.printf("%-10s %,15d %,14d%n", "total", totalP, totalB);
            if (!noTensors) {
                out.println();
                for (TensorEntry e : ckpt.tensors().values()) {
                    out.printf("%-72s %-5s %s%s%n", e.name(), e.dtype(), Arrays.toString(e.shape()),
                            packedNote(packed, e.name()));
                }
            }
        }
        out.flush();
        return 0;
    }

    /**
     * Weights a tensor stands for: its element count, except for packed linears, whose codes stand
     * for (N, K) weights with K = groups x group size (the kernels need the group to tile K) and
     * whose scales and zero points are metadata, counted in bytes only.
     */
    private static long parameters(Checkpoint ckpt, Map<String, LlavaWeights.PackedLayout> packed, TensorEntry e) {
        String c = LlavaWeights.canonicalName(e.name());
        if (c == null || packed.isEmpty()) {
            return e.numel();
        }
        if (c.endsWith(LlavaWeights.SCALES) || c.endsWith(LlavaWeights.ZEROS)) {
            return packed.containsKey(c.substring(0, c.lastIndexOf('.'))) ? 0 : e.numel();
        }
        if (c.endsWith(LlavaWeights.QWEIGHT)) {
            LlavaWeights.PackedLayout l = packed.get(c.substring(0, c.length() - LlavaWeights.QWEIGHT.length()));
            String scales = e.name().substring(0, e.name().length() - LlavaWeights.QWEIGHT.length()) + LlavaWeights.SCALES;
            if (l != null && ckpt.contains(scales)) {
                return e.shape()[0] * ckpt.get(scales).shape()[1] * l.groupSize();
            }
        }
        return e.numel();
    }

    /** For a packed tensor, its linear's packed format, e.g. {@code  (packed INT4 group 32)}; else empty. */
    private static String packedNote(Map<String, LlavaWeights.PackedLayout> packed, String key) {
        String c = LlavaWeights.canonicalName(key);
        if (c == null) {
            return "";
        }
        for (String suffix : new String[] {LlavaWeights.QWEIGHT, LlavaWeights.SCALES, LlavaWeights.ZEROS}) {
            if (c.endsWith(suffix)) {
                LlavaWeights.PackedLayout l = packed.get(c.substring(0, c.length() - suffix.length()));
                if (l != null) {
                    return "  (packed " + l.format() + (l.symmetric() ? " sym" : "") + " group " + l.groupSize() + ")";
                }
            }
        }
        return "";
    }

    private static String quantMethod(Path modelDir) {
        try {
            return new com.fasterxml.jackson.databind.ObjectMapper().readTree(
                    modelDir.resolve(QuantizedLayouts.FILE).toFile()).path("method").asText("?");
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    private static String component(String key) {
        String c = LlavaWeights.canonicalName(key);
        if (c == null) {
            return "other";
        }
        int dot = c.indexOf('.');
        String head = dot < 0 ? c : c.substring(0, dot);
        return switch (head) {
            case "vision", "projector", "llm", "lm_head" -> head;
            default -> "other";
        };
    }
}
