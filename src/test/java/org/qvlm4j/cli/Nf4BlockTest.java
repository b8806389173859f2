package org.qvlm4j.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qvlm4j.data.SynthBenchmark;
import org.qvlm4j.kernels.QuantFormat;
import org.qvlm4j.model.Linear;
import org.qvlm4j.model.LlavaModel;
import org.qvlm4j.quant.QuantPreset;
import org.qvlm4j.quant.TensorCategory;

/**
 * NF4's block size per tensor category on the reference model, whose row lengths (vision 96 and
 * 384, projector 96 and 128, decoder 128 and 352) are not all multiples of QLoRA's block of 64:
 * expected by hand, 64 where the rows tile, the row itself where a category has one row length,
 * and 32 (the largest common divisor of 96 and 128 below 64) for the projector.
 */
class Nf4BlockTest {
    private static final Path REF = Path.of("models/ref-llava");

    @TempDir
    Path tmp;

    private static int run(String... args) {
        StringWriter sink = new StringWriter();
        return Main.run(args, new PrintWriter(sink, true), new PrintWriter(sink, true));
    }

    private static int expectedBlock(String name, int inFeatures) {
        if (TensorCategory.of(name) == TensorCategory.PROJECTOR) {
            return 32;
        }
        return inFeatures % 64 == 0 ? 64 : inFeatures;
    }

    @Test
    void everyCategoryOfTheReferenceModelGetsAValidBlock() throws Exception {
        Path data = tmp.resolve("data");
        // Drawn with the solutions the model was trained on, as calibrate requires.
        SynthBenchmark.write(data, new SynthBenchmark.Options(3, 4, 0, 0, 64, SynthBenchmark.Solutions.ofModel(REF)), null);
        Path stats = tmp.resolve("stats");
        assertEquals(0, run("calibrate", "--model", REF.toString(), "--data", data.toString(), "--n", "2",
                "--out", stats.toString()));
        Path q = tmp.resolve("nf4");
        assertEquals(0, run("quantize", "--model", REF.toString(), "--method", "nf4", "--wbits", "4", "--stats",
                stats.toString(), "--out", q.toString()));
        int checked = 0;
        try (LlavaModel m = LlavaModel.load(q)) {
            for (Linear l : m.linears()) {
                if (QuantPreset.quantizedByDefault(TensorCategory.of(l.name()))) {
                    assertEquals(QuantFormat.NF4, l.packed().format(), l.name());
                    assertEquals(expectedBlock(l.name(), l.inFeatures()), l.packed().groupSize(), l.name());
                    checked++;
                }
            }
        }
        assertTrue(checked == 6 * 2 + 2 + 7 * 4, "vision, projector and decoder linears: " + checked);
    }
}
