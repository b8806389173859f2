package org.qvlm4j.model;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** Bad inputs to the model get messages that name what was expected and what was given. */
class LlavaInputTest {
    static LlavaModel model;

    @BeforeAll
    static void load() {
        model = LlavaModel.load(FixtureParityTest.DIR);
    }

    @AfterAll
    static void close() {
        model.close();
    }

    static String message(Runnable r) {
        return assertThrows(IllegalArgumentException.class, r::run).getMessage();
    }

    @Test
    void imageTokenCountMustMatchFeatures() {
        int[] ids = VariantParityTest.prompt(0, 15);
        String m = message(() -> model.forward(ids, new float[3 * 8 * 8]));
        assertTrue(m.contains("15 image tokens") && m.contains("expected 16"), m);
    }

    @Test
    void imageTokensWithoutPixels() {
        String m = message(() -> model.forward(VariantParityTest.prompt(0, 16), null));
        assertTrue(m.contains("16 image tokens") && m.contains("no pixel values"), m);
    }

    @Test
    void pixelShapeIsChecked() {
        String m = message(() -> model.imageFeatures(new float[3 * 9 * 9]));
        assertTrue(m.contains("(3, 8, 8) = 192") && m.contains("243"), m);
    }

    @Test
    void tokenIdsOutsideTheVocabulary() {
        String m = message(() -> model.forward(new int[] {1, 99}, null));
        assertTrue(m.contains("token id 99") && m.contains("0 .. 98"), m);
    }
}
