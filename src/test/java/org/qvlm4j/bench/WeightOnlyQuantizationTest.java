package org.qvlm4j.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qvlm4j.kernels.DType;
import org.qvlm4j.kernels.PackedMatrix;
import org.qvlm4j.kernels.QuantFormat;
import org.qvlm4j.model.Linear;
import org.qvlm4j.model.LlavaModel;
import org.qvlm4j.quant.QuantPlan;
import org.qvlm4j.quant.WeightFakeQuantizer;
import org.qvlm4j.quant.export.QuantizedExport;

/**
 * {@link WeightOnlyQuantization} on a small random BF16 checkpoint whose widths are multiples of 32:
 * every linear but the patch embedding, lm_head included, comes back packed INT4 in asymmetric
 * groups of 32; the packed model's logits equal those of the same model fake-quantized in memory
 * by the plan ({@link WeightFakeQuantizer}); a second call reuses the copy; a copy of another
 * model under the same name, input specs, unparsable specs and an already quantized model are
 * refused with the option in the message.
 */
class WeightOnlyQuantizationTest {
    private static final String SPEC = "w4-asym-g32";
    /**
     * The packed and the fake-quantized forward differ only in float summation order: every logit
     * within this fraction of the largest reference logit.
     */
    private static final double LOGITS_TOL = 1e-5;
    private static final long SEED = 3;

    @TempDir
    static Path tmp;
    static Path fp;
    static Path work;
    static Path quantized;

    /** Widths divisible by 32; 2 vision layers so that the projector's feature layer exists. */
    static RandomLlavaCheckpoint.Shape shape() {
        return new RandomLlavaCheckpoint.Shape(64, 128, 2, 2, 28, 14, 64, 96, 1, 2, 2, 96, 95);
    }

    @BeforeAll
    static void quantize() {
        fp = tmp.resolve("fp").resolve("small");
        RandomLlavaCheckpoint.write(fp, shape(), DType.BF16, SEED);
        work = tmp.resolve("work");
        List<String> progress = new ArrayList<>();
        quantized = WeightOnlyQuantization.ensure(fp, work, SPEC, progress::add);
        assertEquals(work.resolve("small-rtn-" + SPEC), quantized);
        assertEquals(2, progress.size(), progress.toString());
        assertTrue(progress.get(0).contains("lm_head included"), progress.get(0));
    }

    @Test
    void everyLinearButThePatchEmbeddingIsPackedAndTheLogitsAreTheFakeQuantizedModels() {
        ModelBench.Prompt p;
        float[] want;
        try (LlavaModel m = LlavaModel.load(fp)) {
            p = ModelBench.prompt(fp, m.config(), new ModelBench.Options(5, 1, 1, 0, SEED, ModelBench.DEFAULT_PROMPT,
                    null));
            QuantPlan plan = WeightOnlyQuantization.plan(WeightOnlyQuantization.weightSpec(SPEC), true);
            WeightFakeQuantizer.apply(m, plan);
            want = m.forward(p.ids(), p.pixels());
        }
        try (LlavaModel q = LlavaModel.load(quantized)) {
            int packed = 0;
            for (Linear l : q.linears()) {
                PackedMatrix w = l.packed();
                if (l.name().equals("vision.embeddings.patch_embedding")) {
                    assertNull(w, l.name());
                    continue;
                }
                assertNotNull(w, l.name());
                assertEquals(QuantFormat.INT4, w.format(), l.name());
                assertEquals(32, w.groupSize(), l.name());
                assertTrue(!w.symmetric(), l.name());
                packed++;
            }
            // 2 vision layers of 6, the projector's 2, 1 decoder layer of 7, lm_head
            assertEquals(2 * 6 + 2 + 7 + 1, packed);
            float[] got = q.forward(p.ids(), p.pixels());
            double scale = 0;
            for (float v : want) {
                scale = Math.max(scale, Math.abs(v));
            }
            assertEquals(want.length, got.length);
            for (int i = 0; i < want.length; i++) {
                assertEquals(want[i], got[i], LOGITS_TOL * scale, "logit " + i);
            }
        }
    }

    @Test
    void aSecondCallReusesTheCopy() throws IOException {
        Path weights = quantized.resolve(QuantizedExport.WEIGHTS_FILE);
        FileTime before = Files.getLastModifiedTime(weights);
        List<String> progress = new ArrayList<>();
        assertEquals(quantized, WeightOnlyQuantization.ensure(fp, work, SPEC, progress::add));
        assertEquals(List.of(), progress);
        assertEquals(before, Files.getLastModifiedTime(weights));
    }

    @Test
    void refusesAnotherModelsCopyInputSpecsAndQuantizedModels() {
        Path other = tmp.resolve("other").resolve("small");
        RandomLlavaCheckpoint.write(other, shape(), DType.BF16, SEED + 1);
        IllegalArgumentException stale = assertThrows(IllegalArgumentException.class,
                () -> WeightOnlyQuantization.ensure(other, work, SPEC, m -> { }));
        String msg = stale.getMessage();
        assertTrue(msg.contains("calibration.model_digest") && msg.contains(other.toString())
                && msg.startsWith(WeightOnlyQuantization.OPTION), msg);

        IllegalArgumentException input = assertThrows(IllegalArgumentException.class,
                () -> WeightOnlyQuantization.ensure(fp, work, "a8-sym-token-dynamic", m -> { }));
        assertTrue(input.getMessage().contains("--quantize 'a8-sym-token-dynamic'")
                && input.getMessage().contains("weight spec"), input.getMessage());
        IllegalArgumentException bad = assertThrows(IllegalArgumentException.class,
                () -> WeightOnlyQuantization.ensure(fp, work, "w4-wobbly-g32", m -> { }));
        assertTrue(bad.getMessage().startsWith("--quantize 'w4-wobbly-g32'"), bad.getMessage());

        IllegalArgumentException again = assertThrows(IllegalArgumentException.class,
                () -> WeightOnlyQuantization.ensure(quantized, work, SPEC, m -> { }));
        assertTrue(again.getMessage().contains(quantized.toString()) && again.getMessage().contains("already"),
                again.getMessage());
    }
}
