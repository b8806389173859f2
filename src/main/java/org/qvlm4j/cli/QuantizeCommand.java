package org.qvlm4j.cli;

import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;
import org.qvlm4j.quant.LinearQuant;
import org.qvlm4j.quant.QuantPlan;
import org.qvlm4j.quant.QuantPreset;
import org.qvlm4j.quant.QuantSpec;
import org.qvlm4j.quant.TensorCategory;
import org.qvlm4j.quant.export.QuantizedExport;
import org.qvlm4j.quant.methods.Awq;
import org.qvlm4j.quant.methods.Gptq;
import org.qvlm4j.quant.methods.Nf4Weights;
import org.qvlm4j.quant.methods.QuantMethod;
import org.qvlm4j.quant.methods.Rtn;
import org.qvlm4j.quant.methods.SmoothQuant;
import org.qvlm4j.quant.methods.ZeroQuantV2;
import org.qvlm4j.quant.qvlm.QvlmMethod;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code qvlm4j quantize}: runs a post-training quantization method on a model with its calibration
 * statistics and writes a packed low-bit checkpoint ({@link QuantizedExport}) that {@code generate},
 * {@code logits} and {@code inspect} load like any model. The plan quantizes the weights of every
 * linear the paper's presets quantize (vision tower, projector, LLM layers; not the patch embedding,
 * embeddings or lm_head) with asymmetric per-channel (or per-group with --group) W-bit ranges; nf4
 * uses NF4 blocks of 64 without double quantization. Exit code 2 for bad options or inputs,
 * including what the export refuses (activation quantization, scale-folding methods, weights off
 * the packed grid).
 */
@Command(name = "quantize", mixinStandardHelpOptions = true,
        description = "Quantize a model's weights with a PTQ method and write a packed low-bit checkpoint.")
public final class QuantizeCommand implements Callable<Integer> {
    static final int EXIT_BAD_INPUT = 2;

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
            description = "Input activation bits; only 16 (floating point) is exported so far (default: ${DEFAULT-VALUE}).")
    int abits;

    @Option(names = "--group", defaultValue = "0", paramLabel = "G",
            description = "Weight group size along K (0: per output channel; default: ${DEFAULT-VALUE}).")
    int group;

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
        try {
            QuantMethod m = method.equalsIgnoreCase(QvlmMethod.NAME) ? qvlm.method(modelDir, err) : method(method);
            QuantPlan plan = plan(m.name(), wbits, abits, group);
            if (m instanceof QvlmMethod q) {
                plan = QvlmMethod.paperPlan(plan, q.config().visionPercentile());
                if (qvlm.searchOnly) {
                    long t0 = System.nanoTime();
                    QvlmMethod.Summary s = q.searchOnly(modelDir, stats, out, plan);
                    stdout.printf(Locale.ROOT, "qvlm: %s, %d blocks, final-layer MSE %.4g, %.1f s; wrote %s%n",
                            s.partition().describe(), s.blocks().size(), s.finalMse(), (System.nanoTime() - t0) / 1e9, out);
                    stdout.flush();
                    return 0;
                }
            }
            QuantizedExport.Summary s = QuantizedExport.run(new QuantizedExport.Request(modelDir, stats, out, m, plan));
            stdout.printf(Locale.ROOT, "%s: %d packed linears, %d bytes (F32: %d, ratio %.3f); wrote %s%n", m.name(),
                    s.packedLinears(), s.packedBytes(), s.f32Bytes(), (double) s.packedBytes() / s.f32Bytes(), s.out());
            stdout.flush();
            return 0;
        } catch (IllegalArgumentException | UncheckedIOException e) {
            err.println("qvlm4j quantize: " + e.getMessage());
            err.flush();
            return EXIT_BAD_INPUT;
        }
    }

    /** The method of a CLI name, each with its default configuration (NF4 without double quantization). */
    static QuantMethod method(String name) {
        return switch (name.toLowerCase(Locale.ROOT)) {
            case "rtn" -> new Rtn();
            case "smoothquant" -> new SmoothQuant(SmoothQuant.Config.DEFAULT);
            case "awq" -> new Awq(Awq.Config.DEFAULT);
            case "gptq" -> new Gptq(Gptq.Config.DEFAULT);
            case "nf4" -> new Nf4Weights(new Nf4Weights.Config(QuantSpec.NF4_BLOCK, false));
            case "zeroquant-v2" -> new ZeroQuantV2(ZeroQuantV2.Config.DEFAULT);
            default -> throw new IllegalArgumentException("--method: expected rtn, smoothquant, awq, gptq, nf4, "
                    + "zeroquant-v2 or qvlm, got '" + name + "'");
        };
    }

    /** The preset-style plan: every category quantized by default gets the weight spec and, below 16 bits, the preset's input spec. */
    static QuantPlan plan(String methodName, int wbits, int abits, int group) {
        QuantSpec w;
        if (methodName.equals("nf4")) {
            if (wbits != 4 || group != 0) {
                throw new IllegalArgumentException("--method nf4: expected --wbits 4 and no --group, got --wbits " + wbits
                        + " --group " + group);
            }
            w = QuantSpec.nf4(false);
        } else {
            w = group > 0 ? QuantSpec.weight(wbits, false, QuantSpec.Granularity.PER_GROUP, group)
                    : QuantSpec.weight(wbits, false, QuantSpec.Granularity.PER_CHANNEL, 0);
        }
        QuantPreset preset = null;
        if (abits != QuantPreset.FLOAT_BITS) {
            for (QuantPreset p : QuantPreset.values()) {
                if (p.activationBits() == abits) {
                    preset = p;
                }
            }
            if (preset == null) {
                throw new IllegalArgumentException("--abits: expected 16 or a preset's activation bits, got " + abits);
            }
        }
        QuantPlan.Builder b = QuantPlan.builder();
        for (TensorCategory c : TensorCategory.values()) {
            if (QuantPreset.quantizedByDefault(c)) {
                b.set(c, new LinearQuant(w, preset == null ? null : preset.inputSpec(c)));
            }
        }
        return b.build();
    }
}
