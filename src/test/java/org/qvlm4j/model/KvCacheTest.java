package org.qvlm4j.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.qvlm4j.io.safetensors.SafeTensors;

/** Incremental decoding against full re-forwards of the extended sequence. */
class KvCacheTest {
    static final double TOL = 1e-4;

    @Test
    void decodeStepsEqualFullForward() {
        try (LlavaModel model = LlavaModel.load(FixtureParityTest.DIR);
                SafeTensors ref = SafeTensors.open(FixtureParityTest.DIR.resolve("reference_forward.safetensors"))) {
            int[] ids = TestArrays.toInts(ref.get("input_ids").toLongArray());
            float[] pixels = ref.get("pixel_values").toFloatArray();
            int V = model.config().textConfig().vocabSize();
            int[] extra = {17, 42, 3, 98};
            LlavaModel.Session s = model.newSession(ids.length + extra.length);
            float[] logits = s.prefill(ids, pixels).clone();
            int[] seq = ids;
            for (int step = 0; step <= extra.length; step++) {
                float[] full = model.forward(seq, pixels);
                TestArrays.assertClose(TestArrays.row(full, seq.length - 1, V), logits, TOL, "step " + step);
                if (step == extra.length) {
                    break;
                }
                seq = Arrays.copyOf(seq, seq.length + 1);
                seq[seq.length - 1] = extra[step];
                logits = s.decode(extra[step]).clone();
            }
            assertEquals(ids.length + extra.length, s.position());
            assertThrows(IllegalArgumentException.class, () -> s.decode(5));
        }
    }

    @Test
    void textOnlyPrefillInTwoChunksEqualsOne() {
        try (LlavaModel model = LlavaModel.load(FixtureParityTest.DIR)) {
            int[] ids = {1, 5, 6, 7, 8, 9, 10};
            LlavaModel.Session one = model.newSession(ids.length);
            float[] a = one.prefill(ids, null).clone();
            LlavaModel.Session two = model.newSession(ids.length);
            two.prefill(Arrays.copyOf(ids, 3), null);
            float[] b = two.prefill(Arrays.copyOfRange(ids, 3, ids.length), null);
            TestArrays.assertClose(a, b, TOL, "chunked prefill");
        }
    }
}
