package org.qvlm4j.io.text;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The newer llama tokenizer.json layout (Metaspace pre-tokenizer, prepend_scheme "first") in
 * src/test/resources/tokenizers/tiny-llama-metaspace: same model as tiny-llama, so plain text
 * gives the same ids, but text right after an added token gets no leading ▁.
 */
class MetaspaceLayoutTest {
    private static final Path DIR = Path.of("src/test/resources/tokenizers/tiny-llama-metaspace");

    static LlavaTokenizer legacy;
    static LlavaTokenizer meta;

    @BeforeAll
    static void load() {
        legacy = LlavaTokenizer.load(LlavaTokenizerTest.DIR);
        meta = LlavaTokenizer.load(DIR);
    }

    @AfterAll
    static void close() {
        legacy.close();
        meta.close();
    }

    @Test
    void plainTextMatchesThePrependLayout() {
        for (String t : new String[] {"the cat sat on the mat", "dog  days", "café €", "What is in the image?"}) {
            assertArrayEquals(legacy.encode(t), meta.encode(t), t);
            assertEquals(t, meta.decode(meta.encode(t)), t);
        }
    }

    /** Metaspace prepends ▁ only when the text does not already start with one; the legacy normalizer always does. */
    @Test
    void leadingSpaceIsNotDoubled() {
        assertArrayEquals(new long[] {1, meta.tokenToId("▁dog")}, meta.encode(" dog"));
        assertArrayEquals(new long[] {1, legacy.tokenToId("▁"), legacy.tokenToId("▁dog")}, legacy.encode(" dog"));
    }

    /** "\nWhat" after &lt;image&gt;: legacy gives ▁ &lt;0x0A&gt; ..., Metaspace "first" gives &lt;0x0A&gt; ... only. */
    @Test
    void noSpaceMarkAfterAddedToken() {
        int image = meta.tokenToId("<image>");
        long[] l = legacy.encode("USER: <image>\nWhat", false);
        long[] m = meta.encode("USER: <image>\nWhat", false);
        int li = indexOf(l, image);
        int mi = indexOf(m, image);
        assertArrayEquals(Arrays.copyOfRange(l, 0, li), Arrays.copyOfRange(m, 0, mi));
        assertEquals(legacy.tokenToId("▁"), l[li + 1]);
        assertArrayEquals(Arrays.copyOfRange(l, li + 2, l.length), Arrays.copyOfRange(m, mi + 1, m.length));
        assertEquals(3 + 0x0A, m[mi + 1]);
    }

    @Test
    void idExpansionEqualsStringExpansion() {
        int image = meta.tokenToId("<image>");
        String prompt = PromptTemplate.VICUNA_V1.render("Describe it.");
        long[] expanded = ImageTokens.expand(meta.encode(prompt), image, 1, 9);
        assertArrayEquals(meta.encode(prompt.replace("<image>", "<image>".repeat(9))), expanded);
    }

    private static int indexOf(long[] a, long v) {
        for (int i = 0; i < a.length; i++) {
            if (a[i] == v) {
                return i;
            }
        }
        return -1;
    }
}
