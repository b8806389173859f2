package org.qvlm4j.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.qvlm4j.io.safetensors.SafeTensors;

/**
 * The same forward pass gives the same bits however often it runs: the first calls run in the
 * interpreter and later ones in JIT-compiled code, so any operation whose rounding depends on how
 * it is compiled (an unordered lane reduction, say) shows up here as a changed bit.
 */
class JitStabilityTest {
    private static final Path FIXTURE = Path.of("src/test/resources/fixtures/tiny-llava");
    private static final int RUNS = 300;

    @Test
    void repeatedForwardPassesAreBitIdentical() {
        try (LlavaModel model = LlavaModel.load(FIXTURE);
             SafeTensors ref = SafeTensors.open(FIXTURE.resolve("reference_forward.safetensors"))) {
            long[] ids64 = ref.get("input_ids").toLongArray();
            int[] ids = new int[ids64.length];
            for (int i = 0; i < ids.length; i++) {
                ids[i] = (int) ids64[i];
            }
            float[] pixels = ref.get("pixel_values").toFloatArray();
            float[] first = model.forward(ids, pixels);
            for (int r = 1; r < RUNS; r++) {
                assertArrayEquals(first, model.forward(ids, pixels), "run " + r);
            }
            LlavaModel.Session s = model.newSession(ids.length + 4);
            float[] decodeFirst = s.prefill(ids, pixels).clone();
            for (int r = 1; r < RUNS; r++) {
                s.reset();
                assertArrayEquals(decodeFirst, s.prefill(ids, pixels), "prefill run " + r);
            }
        }
    }
}
