package org.qvlm4j.io.safetensors;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.qvlm4j.kernels.DType;

class SafeTensorsFixtureTest {
    @Test
    void readsHfCheckpoint() {
        try (SafeTensors st = SafeTensors.open(Path.of("src/test/resources/fixtures/tiny-llava/model.safetensors"))) {
            assertEquals(64, st.names().size());
            TensorEntry pe = st.get("vision_tower.vision_model.embeddings.patch_embedding.weight");
            assertEquals(DType.F32, pe.dtype());
            assertArrayEquals(new long[] {32, 3, 2, 2}, pe.shape());
            assertEquals(32 * 3 * 2 * 2, pe.toFloatArray().length);
            assertEquals("pt", st.metadata().get("format"));
        }
    }
}
