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
import org.qvlm4j.model.InputQuantizer;
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
        QuantizedLayouts layouts = QuantizedLayouts.read(modelDir);
        Map<String, LlavaWeights.PackedLayout> packed = layouts.packed();
        if (!layouts.isEmpty()) {
            printQuantization(out, layouts);
        }
        try (Checkpoint ckpt = Checkpoint.open(modelDir)) {
            Map<String, long[]> perComponent = new LinkedHashMap<>();
            for (String c : new String[] {"vision", "projector", "llm", "lm_head", "other"}) {
                perComponent.put(c, new long[2]);
            }
            for (TensorEntry e : ckpt.tensors().values()) {
                long[] acc = perComponent.get(component(e.name()));
                acc[0] += parameters(ckpt, layouts, e);
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
                            quantNote(layouts, e.name()));
                }
            }
        }
        out.flush();
        return 0;
    }

    /** The quantization summary: packed formats, input scales, input quantization paths, low-rank terms. */
    private static void printQuantization(PrintWriter out, QuantizedLayouts q) {
        Map<String, Integer> byFormat = new java.util.TreeMap<>();
        q.packed().values().forEach(l -> byFormat.merge(l.format() + (l.symmetric() ? " sym" : "") + " group "
                + l.groupSize(), 1, Integer::sum));
        out.printf("quantized  method %s, %d packed linears: %s%n", q.method() == null ? "?" : q.method(),
                q.packed().size(), byFormat);
        long runtime = q.linears().values().stream().filter(LlavaWeights.LinearLayout::inputScale).count();
        if (runtime > 0 || !q.foldedNorms().isEmpty()) {
            out.printf("           input scales: %d linears folded into norms, %d divide their input at run time%n",
                    q.foldedNorms().size(), runtime);
        }
        Map<String, Integer> paths = new java.util.TreeMap<>();
        q.linears().forEach((name, l) -> {
            if (l.input() != null) {
                paths.merge(q.inputSpecs().get(name) + " " + pathName(l), 1, Integer::sum);
            }
        });
        if (!paths.isEmpty()) {
            out.printf("           input quantization: %s%n", paths);
            Map<String, Integer> reasons = new java.util.TreeMap<>();
            q.fakeReasons().values().forEach(r -> reasons.merge(r, 1, Integer::sum));
            reasons.forEach((r, n) -> out.printf("           fake quantization for %d linears: %s%n", n, r));
        }
        Map<Integer, Integer> ranks = new java.util.TreeMap<>();
        q.linears().values().forEach(l -> {
            if (l.lowRank() > 0) {
                ranks.merge(l.lowRank(), 1, Integer::sum);
            }
        });
        if (!ranks.isEmpty()) {
            out.printf("           low-rank terms (LoRC, F32): rank=linears %s%n", ranks);
        }
    }

    private static String pathName(LlavaWeights.LinearLayout l) {
        return l.execution() == InputQuantizer.Execution.INTEGER ? QuantizedLayouts.PATH_INTEGER
                : QuantizedLayouts.PATH_FAKE;
    }

    /** Suffixes of a quantized linear's tensors that hold metadata rather than weights. */
    private static final String[] METADATA_SUFFIXES = {LlavaWeights.SCALES, LlavaWeights.ZEROS,
        LlavaWeights.INPUT_SCALE, LlavaWeights.ACT_RANGE};

    /**
     * Weights a tensor stands for: its element count, except for packed linears, whose codes stand
     * for (N, K) weights with K = groups x group size (the kernels need the group to tile K) and
     * whose scales, zero points, input scales and input ranges are metadata, counted in bytes only.
     */
    private static long parameters(Checkpoint ckpt, QuantizedLayouts layouts, TensorEntry e) {
        String c = LlavaWeights.canonicalName(e.name());
        if (c == null || layouts.isEmpty()) {
            return e.numel();
        }
        for (String suffix : METADATA_SUFFIXES) {
            if (c.endsWith(suffix)) {
                return layouts.linears().containsKey(c.substring(0, c.length() - suffix.length())) ? 0 : e.numel();
            }
        }
        if (c.endsWith(LlavaWeights.QWEIGHT)) {
            LlavaWeights.PackedLayout l = layouts.packed().get(c.substring(0, c.length() - LlavaWeights.QWEIGHT.length()));
            String scales = e.name().substring(0, e.name().length() - LlavaWeights.QWEIGHT.length()) + LlavaWeights.SCALES;
            if (l != null && ckpt.contains(scales)) {
                return e.shape()[0] * ckpt.get(scales).shape()[1] * l.groupSize();
            }
        }
        return e.numel();
    }

    /**
     * For a tensor of a quantized linear, what it is, e.g. {@code  (packed INT4 group 32; inputs
     * a8-sym-token-dynamic integer)}; else empty.
     */
    private static String quantNote(QuantizedLayouts layouts, String key) {
        String c = LlavaWeights.canonicalName(key);
        if (c == null || layouts.isEmpty()) {
            return "";
        }
        int dot = c.lastIndexOf('.');
        String prefix = c.substring(0, dot);
        String suffix = c.substring(dot);
        LlavaWeights.LinearLayout l = layouts.linears().get(prefix);
        if (l == null) {
            return layouts.foldedNorms().values().stream().anyMatch(n -> n.contains(c)) ? "  (smoothing scales folded in)" : "";
        }
        String inputs = l.input() == null ? "" : "inputs " + layouts.inputSpecs().get(prefix) + " " + pathName(l);
        return switch (suffix) {
            case LlavaWeights.QWEIGHT, LlavaWeights.SCALES, LlavaWeights.ZEROS -> l.packed() == null ? ""
                    : "  (packed " + l.packed().format() + (l.packed().symmetric() ? " sym" : "") + " group "
                            + l.packed().groupSize() + (suffix.equals(LlavaWeights.QWEIGHT) && !inputs.isEmpty()
                                    ? "; " + inputs : "") + ")";
            case ".weight" -> inputs.isEmpty() ? "" : "  (" + inputs + ")";
            case LlavaWeights.INPUT_SCALE -> "  (input scale, divides the input at run time)";
            case LlavaWeights.LORC_U, LlavaWeights.LORC_V -> "  (LoRC rank " + l.lowRank() + ")";
            case LlavaWeights.ACT_RANGE -> "  (static input ranges: lo, hi)";
            default -> "";
        };
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
