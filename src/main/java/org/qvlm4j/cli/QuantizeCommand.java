package org.qvlm4j.cli;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.LinkedHashSet;
import java.util.Locale;
import java.util.Set;
import java.util.concurrent.Callable;
import org.qvlm4j.io.AtomicFiles;
import org.qvlm4j.io.config.ClipVisionConfig;
import org.qvlm4j.io.config.LlamaTextConfig;
import org.qvlm4j.io.config.LlavaConfig;
import org.qvlm4j.quant.LinearQuant;
import org.qvlm4j.quant.QuantPlan;
import org.qvlm4j.quant.QuantPreset;
import org.qvlm4j.quant.QuantSpec;
import org.qvlm4j.quant.TensorCategory;
import org.qvlm4j.quant.calib.CalibrationStats;
import org.qvlm4j.quant.export.QuantizedExport;
import org.qvlm4j.quant.methods.Awq;
import org.qvlm4j.quant.methods.Gptq;
import org.qvlm4j.quant.methods.Nf4Weights;
import org.qvlm4j.quant.methods.QuantMethod;
import org.qvlm4j.quant.methods.Rtn;
import org.qvlm4j.quant.methods.SmoothQuant;
import org.qvlm4j.quant.methods.SmoothedCheckpoint;
import org.qvlm4j.quant.methods.ZeroQuantV2;
import org.qvlm4j.quant.qvlm.QvlmMethod;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code qvlm4j quantize}: runs a post-training quantization method on a model with its calibration
 * statistics and writes a quantized checkpoint ({@link QuantizedExport}) that {@code generate},
 * {@code logits} and {@code inspect} load like any model and that computes what the method's
 * in-memory fake-quantized model computes. The plan quantizes the weights of every linear the
 * paper's presets quantize (vision tower, projector, LLM layers; not the patch embedding,
 * embeddings or lm_head) with asymmetric per-channel (or per-group with --group) W-bit ranges, and
 * below 16 activation bits their inputs with the matching preset's input specs (LLM: per-channel
 * static, vision and projector: per-token dynamic, asymmetric, so they run as fake quantization);
 * {@code --override} changes categories with the plan grammar (e.g. symmetric per-token inputs,
 * which run as integer codes times packed weights). nf4 uses NF4 blocks of 64 (or --group),
 * a whole row as one block where the row length is not a multiple of the block, and optionally
 * double quantization. {@code --method qvlm} makes the vision and projector inputs static per
 * token position, runs Q-VLM's pipeline ({@link QvlmOptions}) and writes
 * {@value QvlmMethod#REPORT_FILE} beside the checkpoint (or, with --search-only, the searched ranges
 * and the report instead of one). Exit code 2 for bad options or inputs, including what the export refuses
 * (percentile-clipped inputs, the patch embedding or a tied lm_head, weights off the packed grid
 * other than by a low-rank term).
 */
@Command(name = "quantize", mixinStandardHelpOptions = true,
        description = "Quantize a model with a PTQ method and write a packed low-bit checkpoint (weights, "
                + "smoothing scales, low-rank terms, input quantization).")
public final class QuantizeCommand implements Callable<Integer> {
    static final int EXIT_BAD_INPUT = 2;
    /** The subdirectory of --work holding the smoothed model and its statistics. */
    static final String SMOOTHED_DIR = "smoothed";

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Option(names = "--model", required = true, paramLabel = "DIR", description = "Floating-point model directory.")
    Path modelDir;

    @Option(names = "--method", required = true, paramLabel = "NAME",
            description = "rtn, smoothquant, awq, gptq, nf4, zeroquant-v2 or qvlm.")
    String method;

    @Option(names = "--wbits", required = true, paramLabel = "W", description = "Weight bits (4, 6 or 8; 4 for nf4).")
    int wbits;

    @Option(names = "--abits", defaultValue = "16", paramLabel = "A",
            description = "Input activation bits: 16 (floating point) or a preset's 8, 6, 4 (default: ${DEFAULT-VALUE}).")
    int abits;

    @Option(names = "--group", defaultValue = "0", paramLabel = "G",
            description = "Weight group size along K (0: per output channel; nf4: the block, default 64; "
                    + "default: ${DEFAULT-VALUE}).")
    int group;

    @Option(names = "--double-quant", description = "nf4: double-quantize the block absmax (QLoRA).")
    boolean doubleQuant;

    @Option(names = "--override", paramLabel = "LIST",
            description = "Plan overrides applied last, e.g. 'all=w8-asym-channel+a8-sym-token-dynamic' "
                    + "(<category|vision|llm|all>=<preset|fp|spec[+spec]>, separated by ';').")
    String override;

    @Option(names = "--alpha", paramLabel = "A",
            description = "smoothquant: migration strength alpha in [0, 1] (default 0.5, the paper's).")
    Double alpha;

    @Option(names = "--smooth-all",
            description = "smoothquant: also smooth the linears no norm feeds (o_proj, down_proj, fc2), with the "
                    + "scales applied to their inputs at run time (default: only norm-fed linears, as the reference code).")
    boolean smoothAll;

    @Option(names = "--llm-inputs", defaultValue = "channel", paramLabel = "GRANULARITY",
            description = "Ranges of the LLM's quantized linear inputs: channel (the presets' static range per input "
                    + "channel) or tensor (one static range per linear input, the harder setting); applied before "
                    + "--override "
                    + "(default: ${DEFAULT-VALUE}).")
    String llmInputs;

    @Option(names = "--smooth-alpha", paramLabel = "A",
            description = "Before quantizing, fold SmoothQuant's scales at this alpha into a copy of the model (the same "
                    + "function) and repeat the calibration of --stats on it; any method but smoothquant. The copy "
                    + "goes to qvlm's --work/" + SMOOTHED_DIR + " (reused on resume), else to a scratch directory.")
    Double smoothAlpha;

    @Option(names = "--smooth-scope", defaultValue = "all", paramLabel = "WHAT",
            description = "With --smooth-alpha: llm (language model only) or all (vision tower too, CLIP fc2 excepted) "
                    + "(default: ${DEFAULT-VALUE}).")
    String smoothScope;

    @Option(names = "--stats", required = true, paramLabel = "STATS", description = "Calibration statistics of this model.")
    Path stats;

    @Option(names = "--out", required = true, paramLabel = "DIR", description = "Checkpoint directory to create (must not exist).")
    Path out;

    // Q-VLM (--method qvlm): its options and the plan and output it changes.
    @CommandLine.Mixin
    QvlmOptions qvlm;

    @Override
    public Integer call() {
        PrintWriter err = spec.commandLine().getErr();
        PrintWriter stdout = spec.commandLine().getOut();
        Path scratch = null;
        try {
            if ((alpha != null || smoothAll) && !method.equalsIgnoreCase("smoothquant")) {
                throw new IllegalArgumentException((alpha != null ? "--alpha" : "--smooth-all")
                        + ": expected --method smoothquant, got --method " + method);
            }
            if (smoothAlpha == null && spec.commandLine().getParseResult().hasMatchedOption("--smooth-scope")) {
                throw new IllegalArgumentException("--smooth-scope: expected together with --smooth-alpha");
            }
            if (smoothAlpha != null && method.equalsIgnoreCase("smoothquant")) {
                throw new IllegalArgumentException("--smooth-alpha: --method smoothquant smooths by itself; use --alpha");
            }
            Path model = modelDir;
            Path st = stats;
            if (smoothAlpha != null) {
                boolean keep = method.equalsIgnoreCase(QvlmMethod.NAME) && qvlm.work != null;
                Path dir = keep ? qvlm.work.resolve(SMOOTHED_DIR) : AtomicFiles.tempSiblingDirectory(out);
                if (!keep) {
                    scratch = dir;
                }
                try (CalibrationStats cs = CalibrationStats.load(stats)) {
                    SmoothedCheckpoint.Prepared p = SmoothedCheckpoint.prepare(modelDir, cs, smoothAlpha,
                            smoothScope(smoothScope), dir, Runtime.getRuntime().availableProcessors(), line -> {
                                err.println(line);
                                err.flush();
                            });
                    model = p.model();
                    st = p.stats();
                }
            }
            QuantMethod m = method.equalsIgnoreCase(QvlmMethod.NAME) ? qvlm.method(model, err)
                    : method.equalsIgnoreCase("smoothquant") ? smoothQuant(alpha, smoothAll)
                    : method(method, doubleQuant);
            boolean qvlmNf4 = m instanceof QvlmMethod q && q.config().weightRounding() == QvlmMethod.WeightRounding.NF4;
            if (doubleQuant && m instanceof QvlmMethod && !qvlmNf4) {
                throw new IllegalArgumentException("--double-quant: expected --method nf4 or --method qvlm "
                        + "--weight-rounding nf4, got --method qvlm --weight-rounding " + qvlm.weightRounding);
            }
            QuantPlan plan = plan(qvlmNf4 ? "nf4" : m.name(), wbits, abits, group, doubleQuant, LlavaConfig.load(model));
            if (llmInputGranularity(llmInputs) == QuantSpec.Granularity.PER_TENSOR) {
                plan = plan.withInputGranularity(TensorCategory.Family.LLM, QuantSpec.Granularity.PER_TENSOR);
            }
            if (override != null) {
                plan = plan.toBuilder().override(override).build();
            }
            QuantizedExport.Summary s;
            if (m instanceof QvlmMethod q) {
                plan = QvlmMethod.paperPlan(plan, q.config().visionPercentile());
                if (qvlm.searchOnly) {
                    QvlmMethod.Summary r = q.searchOnly(model, st, out, plan);
                    stdout.printf(Locale.ROOT, "qvlm %s: %s, %d blocks, final-layer MSE %.4g, %.1f s; wrote %s%n",
                            r.label(), r.partition().describe(), r.blocks().size(), r.finalMse(),
                            r.stages().get("total"), out);
                    stdout.flush();
                    return 0;
                }
                s = q.export(model, st, out, plan);
                QvlmMethod.Summary r = q.summary();
                stdout.printf(Locale.ROOT, "qvlm %s: %s, %d blocks, final-layer MSE %.4g, %.1f s; report %s%n", r.label(),
                        r.partition().describe(), r.blocks().size(), r.finalMse(), r.stages().get("total"),
                        QvlmMethod.REPORT_FILE);
            } else {
                s = QuantizedExport.run(new QuantizedExport.Request(model, st, out, m, plan));
            }
            stdout.printf(Locale.ROOT, "%s: %d packed linears, %d bytes (F32: %d, ratio %.3f), %d bytes of F32 extras; "
                            + "inputs: %d integer, %d fake; smoothing scales: %d folded, %d at run time; "
                            + "%d low-rank terms; wrote %s%n", m.name(), s.packedLinears(), s.packedBytes(),
                    s.f32Bytes(), (double) s.packedBytes() / s.f32Bytes(), s.extraBytes(), s.integerInputs(),
                    s.fakeInputs(), s.foldedScales(), s.runtimeScales(), s.lowRankLinears(), s.out());
            stdout.flush();
            return 0;
        } catch (IllegalArgumentException | UncheckedIOException e) {
            err.println("qvlm4j quantize: " + e.getMessage());
            err.flush();
            return EXIT_BAD_INPUT;
        } catch (IOException e) {
            err.println("qvlm4j quantize: " + out + ": cannot create a scratch directory beside it: " + e.getMessage());
            err.flush();
            return EXIT_BAD_INPUT;
        } finally {
            if (scratch != null) {
                AtomicFiles.deleteTreeQuietly(scratch);
            }
        }
    }

    /** SmoothQuant at --alpha (default: the paper's 0.5), smoothing every linear with --smooth-all. */
    private static SmoothQuant smoothQuant(Double alpha, boolean all) {
        double a = alpha == null ? SmoothQuant.Config.DEFAULT.alpha() : alpha;
        if (!(a >= 0 && a <= 1)) {
            throw new IllegalArgumentException("--alpha: expected a migration strength in [0, 1], got " + a);
        }
        return new SmoothQuant(new SmoothQuant.Config(a, all));
    }

    /** The scope of a {@code --smooth-scope} value. */
    static SmoothedCheckpoint.Scope smoothScope(String value) {
        return switch (value.toLowerCase(Locale.ROOT)) {
            case "llm" -> SmoothedCheckpoint.Scope.LLM;
            case "all" -> SmoothedCheckpoint.Scope.ALL;
            default -> throw new IllegalArgumentException("--smooth-scope: expected llm or all, got '" + value + "'");
        };
    }

    /** The granularity of an {@code --llm-inputs} value. */
    static QuantSpec.Granularity llmInputGranularity(String value) {
        return switch (value.toLowerCase(Locale.ROOT)) {
            case "channel" -> QuantSpec.Granularity.PER_CHANNEL;
            case "tensor" -> QuantSpec.Granularity.PER_TENSOR;
            default -> throw new IllegalArgumentException("--llm-inputs: expected channel or tensor, got '" + value + "'");
        };
    }

    /** The method of a CLI name, each with its default configuration (NF4 double quantization as asked). */
    static QuantMethod method(String name, boolean doubleQuant) {
        if (doubleQuant && !name.equalsIgnoreCase("nf4")) {
            throw new IllegalArgumentException("--double-quant: expected --method nf4, got --method " + name);
        }
        return switch (name.toLowerCase(Locale.ROOT)) {
            case "rtn" -> new Rtn();
            case "smoothquant" -> new SmoothQuant(SmoothQuant.Config.DEFAULT);
            case "awq" -> new Awq(Awq.Config.DEFAULT);
            case "gptq" -> new Gptq(Gptq.Config.DEFAULT);
            case "nf4" -> new Nf4Weights(new Nf4Weights.Config(QuantSpec.NF4_BLOCK, doubleQuant));
            case "zeroquant-v2" -> new ZeroQuantV2(ZeroQuantV2.Config.DEFAULT);
            default -> throw new IllegalArgumentException("--method: expected rtn, smoothquant, awq, gptq, nf4, "
                    + "zeroquant-v2 or qvlm, got '" + name + "'");
        };
    }

    /**
     * The preset-style plan: every category quantized by default gets the weight spec and, below 16
     * bits, the preset's input spec. cfg gives nf4 the row lengths its blocks must tile.
     */
    static QuantPlan plan(String methodName, int wbits, int abits, int group, boolean doubleQuant, LlavaConfig cfg) {
        boolean nf4 = methodName.equals("nf4");
        if (nf4 && wbits != 4) {
            throw new IllegalArgumentException("--method nf4: expected --wbits 4 (NF4 is a 4-bit format), got --wbits "
                    + wbits);
        }
        if (group < 0) {
            throw new IllegalArgumentException("--group: expected >= 0, got " + group);
        }
        QuantPreset preset = null;
        if (abits != QuantPreset.FLOAT_BITS) {
            for (QuantPreset p : QuantPreset.values()) {
                if (p.activationBits() == abits) {
                    preset = p;
                }
            }
            if (preset == null) {
                throw new IllegalArgumentException("--abits: expected 16 or a preset's activation bits (8, 6, 4), got "
                        + abits);
            }
        }
        QuantPlan.Builder b = QuantPlan.builder();
        for (TensorCategory c : TensorCategory.values()) {
            if (QuantPreset.quantizedByDefault(c)) {
                QuantSpec w;
                if (nf4) {
                    w = nf4Spec(c, group > 0 ? group : QuantSpec.NF4_BLOCK, doubleQuant, cfg);
                } else {
                    w = group > 0 ? QuantSpec.weight(wbits, false, QuantSpec.Granularity.PER_GROUP, group)
                            : QuantSpec.weight(wbits, false, QuantSpec.Granularity.PER_CHANNEL, 0);
                }
                b.set(c, new LinearQuant(w, preset == null ? null : preset.inputSpec(c)));
            }
        }
        return b.build();
    }

    /** The smallest NF4 block used when a category's row lengths force a block below the requested one. */
    static final int NF4_MIN_BLOCK = 16;

    /**
     * NF4 with the given block; when the category's rows are not whole blocks, one block per row if
     * they all have one length, else the largest common divisor of the row lengths below the block
     * (e.g. 32 for a projector with rows of 96 and 128 and a block of 64).
     */
    private static QuantSpec nf4Spec(TensorCategory c, int block, boolean doubleQuant, LlavaConfig cfg) {
        Set<Integer> ks = rowLengths(c, cfg);
        int b = block;
        if (ks.stream().anyMatch(k -> k % block != 0)) {
            if (ks.size() == 1) {
                b = ks.iterator().next();
            } else {
                int g = ks.stream().reduce(0, (x, y) -> java.math.BigInteger.valueOf(x)
                        .gcd(java.math.BigInteger.valueOf(y)).intValueExact());
                b = 0;
                for (int d = Math.min(block, g); d >= NF4_MIN_BLOCK; d--) {
                    if (g % d == 0) {
                        b = d;
                        break;
                    }
                }
                if (b == 0) {
                    throw new IllegalArgumentException("--method nf4: the linears of " + c.key() + " have rows of " + ks
                            + " weights; expected multiples of the NF4 block " + block + ", a single row length or a "
                            + "common divisor of at least " + NF4_MIN_BLOCK);
                }
            }
        }
        return new QuantSpec(QuantSpec.Format.NF4, QuantSpec.Target.WEIGHT, 4, true, QuantSpec.Granularity.BLOCK, b,
                false, QuantSpec.Clip.NONE, doubleQuant ? QuantSpec.NF4_DOUBLE_QUANT_BLOCK : 0);
    }

    /** K of the linears of a category under cfg. */
    private static Set<Integer> rowLengths(TensorCategory c, LlavaConfig cfg) {
        ClipVisionConfig v = cfg.visionConfig();
        LlamaTextConfig t = cfg.textConfig();
        Set<Integer> ks = new LinkedHashSet<>();
        switch (c) {
            case VISION_FC2 -> ks.add(v.intermediateSize());
            case VISION_Q, VISION_K, VISION_V, VISION_OUT, VISION_FC1 -> ks.add(v.hiddenSize());
            case PROJECTOR -> {
                ks.add(v.hiddenSize());
                ks.add(t.hiddenSize());
            }
            case LLM_O -> ks.add(t.numAttentionHeads() * t.headDim());
            case LLM_DOWN -> ks.add(t.intermediateSize());
            default -> ks.add(t.hiddenSize());
        }
        return ks;
    }
}
