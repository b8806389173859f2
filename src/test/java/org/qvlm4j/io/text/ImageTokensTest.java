package org.qvlm4j.io.text;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.qvlm4j.io.safetensors.SafeTensors;

/** Image placeholder expansion: hand-built cases, the HF string-level expansion, and the tiny-llava fixture. */
class ImageTokensTest {
    private static final Path FIXTURE = Path.of("src/test/resources/fixtures/tiny-llava/reference_forward.safetensors");
    private static final int LLAVA15_FEATURES = 576;

    static LlavaTokenizer tok;

    @BeforeAll
    static void load() {
        tok = LlavaTokenizer.load(LlavaTokenizerTest.DIR);
    }

    @AfterAll
    static void close() {
        tok.close();
    }

    @Test
    void featureCounts() {
        assertEquals(LLAVA15_FEATURES, ImageTokens.featuresPerImage(336, 14, ImageTokens.STRATEGY_DEFAULT));
        assertEquals(LLAVA15_FEATURES + 1, ImageTokens.featuresPerImage(336, 14, ImageTokens.STRATEGY_FULL));
        assertEquals(16, ImageTokens.featuresPerImage(8, 2, ImageTokens.STRATEGY_DEFAULT));
        assertThrows(IllegalArgumentException.class, () -> ImageTokens.featuresPerImage(336, 15, "default"));
        assertThrows(IllegalArgumentException.class, () -> ImageTokens.featuresPerImage(336, 14, "cls_patch"));
    }

    @Test
    void handBuiltExpansion() {
        long[] prompt = {1, 5, 9, 5, 7};
        assertArrayEquals(new long[] {1, 7, 7, 7, 5, 7, 7, 7}, ImageTokens.expand(new long[] {1, 7, 5, 7}, 7, 2, 3));
        assertArrayEquals(new long[] {1, 5, 9, 9, 5, 7}, ImageTokens.expand(prompt, 9, 1, 2));
        assertArrayEquals(prompt, ImageTokens.expand(prompt, 42, 0, 576));
    }

    @Test
    void wrongPlaceholderCountIsAnError() {
        long[] prompt = {1, 5, 7, 5};
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> ImageTokens.expand(prompt, 9, 1, 576));
        assertTrue(e.getMessage().contains("0 image placeholder") && e.getMessage().contains("1 image"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> ImageTokens.expand(new long[] {9, 9}, 9, 1, 576));
        assertTrue(e.getMessage().contains("2 image placeholder"), e.getMessage());
    }

    /** LlavaProcessor repeats the "<image>" string before tokenizing; expanding ids must give the same sequence. */
    @Test
    void idExpansionEqualsStringExpansion() {
        int image = tok.tokenToId("<image>");
        int n = 24;
        String prompt = PromptTemplate.LLAVA_HF.render("What is in the image?", 2);
        long[] expanded = ImageTokens.expand(tok.encode(prompt), image, 2, n);
        long[] viaString = tok.encode(prompt.replace("<image>", "<image>".repeat(n)));
        assertArrayEquals(viaString, expanded);
        assertEquals(2 * n, ImageTokens.count(expanded, image));
    }

    /** With a Prepend-normalizer tokenizer both paths give the same ids up to the placeholder value. */
    @Test
    void originalSplittingMatchesAddedTokenPath() {
        int image = tok.tokenToId("<image>");
        for (PromptTemplate t : PromptTemplate.values()) {
            String prompt = t.render("Describe the scene.");
            long[] hf = tok.encode(prompt);
            long[] split = ImageTokens.tokenizeSplitting(tok, prompt, ImageTokens.LLAVA_IMAGE_TOKEN_INDEX);
            long[] hfRelabelled = Arrays.stream(hf).map(id -> id == image ? ImageTokens.LLAVA_IMAGE_TOKEN_INDEX : id)
                    .toArray();
            assertArrayEquals(hfRelabelled, split, t.name());
            assertEquals(1, split[0]);
        }
        long[] leading = ImageTokens.tokenizeSplitting(tok, "<image>\nHi", ImageTokens.LLAVA_IMAGE_TOKEN_INDEX);
        assertEquals(ImageTokens.LLAVA_IMAGE_TOKEN_INDEX, leading[1], "an empty first chunk adds no pieces");
    }

    /** reference_forward.safetensors holds input_ids = BOS, 16 image tokens (id 0), 4 text tokens. */
    @Test
    void fixtureInputIdsAreOnePlaceholderExpanded() {
        long[] ids;
        try (SafeTensors st = SafeTensors.open(FIXTURE)) {
            ids = st.get("input_ids").toLongArray(); // (21)
        }
        int features = ImageTokens.featuresPerImage(8, 2, ImageTokens.STRATEGY_DEFAULT);
        long[] collapsed = new long[ids.length - features + 1];
        collapsed[0] = ids[0];
        collapsed[1] = 0;
        System.arraycopy(ids, 1 + features, collapsed, 2, ids.length - 1 - features);
        assertArrayEquals(ids, ImageTokens.expand(collapsed, 0, 1, features));
    }
}
