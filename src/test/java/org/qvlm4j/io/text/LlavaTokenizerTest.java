package org.qvlm4j.io.text;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * LlavaTokenizer on the hand-built llama-layout tokenizer in src/test/resources/tokenizers/tiny-llama
 * (BPE, byte fallback, &lt;unk&gt;/&lt;s&gt;/&lt;/s&gt; at 0..2, bytes at 3..258, &lt;image&gt; = 601).
 */
class LlavaTokenizerTest {
    static final Path DIR = Path.of("src/test/resources/tokenizers/tiny-llama");
    private static final long SEED = 20261127L;
    private static final int BYTE_BASE = 3;
    private static final int IMAGE_ID = 601;

    static LlavaTokenizer tok;
    static ReferenceBpe ref;

    @BeforeAll
    static void load() throws IOException {
        tok = LlavaTokenizer.load(DIR);
        ref = new ReferenceBpe(DIR.resolve(LlavaTokenizer.TOKENIZER_FILE));
    }

    @AfterAll
    static void close() {
        tok.close();
    }

    private static long id(String piece) {
        Integer id = ref.vocab.get(piece);
        assertTrue(id != null, "piece '" + piece + "' missing from the test vocabulary");
        return id;
    }

    @Test
    void specialIdsComeFromTheConfig() {
        assertEquals(1, tok.bosId());
        assertEquals(2, tok.eosId());
        assertEquals(0, tok.unkId());
        assertEquals(-1, tok.padId(), "pad_token is null in the config");
        assertEquals(IMAGE_ID, tok.tokenToId("<image>"));
        assertEquals(IMAGE_ID + 1, tok.vocabSize());
        assertTrue(tok.addsBos());
        assertFalse(tok.addsEos());
        assertTrue(tok.isSpecial(IMAGE_ID));
        assertFalse(tok.isSpecial((int) id("▁the")));
    }

    /**
     * "the cat" normalizes to "▁the▁cat". Merge ranks used (merges list of tokenizer.json):
     * 0 "▁ t", 1 "h e", 3 "▁t he", 10 "a t", 14 "▁ c", 49 "▁c at"; nothing merges "▁the" with "▁cat".
     */
    @Test
    void handWorkedMerges() {
        assertArrayEquals(new long[] {1, id("▁the"), id("▁cat")}, tok.encode("the cat"));
        assertArrayEquals(new long[] {id("▁the"), id("▁cat")}, tok.encode("the cat", false));
    }

    /** "dog" is one piece ("▁d og" at rank 41); a leading space gives its own "▁" since "▁ ▁" is no merge. */
    @Test
    void leadingSpaceKeepsItsOwnMark() {
        assertArrayEquals(new long[] {1, id("▁"), id("▁dog")}, tok.encode(" dog"));
    }

    /** "é" is outside the vocabulary: UTF-8 C3 A9 becomes byte pieces &lt;0xC3&gt; &lt;0xA9&gt; at 3 + byte. */
    @Test
    void byteFallbackForNonAscii() {
        long[] ids = tok.encode("é", false);
        assertArrayEquals(new long[] {id("▁"), BYTE_BASE + 0xC3, BYTE_BASE + 0xA9}, ids);
        assertEquals("<0xC3>", tok.idToToken(BYTE_BASE + 0xC3));
        assertEquals("é", tok.decode(ids));
        long[] euro = tok.encode("€", false); // E2 82 AC
        assertArrayEquals(new long[] {id("▁"), BYTE_BASE + 0xE2, BYTE_BASE + 0x82, BYTE_BASE + 0xAC}, euro);
        assertEquals("€", tok.decode(euro));
    }

    @Test
    void matchesReferenceBpeOnRandomText() {
        Random rnd = new Random(SEED);
        String[] words = {"the", "cat", "image", "dog", "assistant", "what", "is", "in", "jumping", "zebra",
            "Über", "naïve", "x", "", "?", ",", "2026", "日本", "emoji😀", "quick", "brown", "fox"};
        for (int trial = 0; trial < 200; trial++) {
            StringBuilder sb = new StringBuilder();
            int n = 1 + rnd.nextInt(8);
            for (int i = 0; i < n; i++) {
                if (i > 0) {
                    sb.append(rnd.nextInt(6) == 0 ? "  " : " ");
                }
                sb.append(words[rnd.nextInt(words.length)]);
            }
            String text = sb.toString();
            assertArrayEquals(ref.encode(text), tok.encode(text, false), "text '" + text + "'");
        }
    }

    @Test
    void roundTripsText() {
        String[] texts = {"the cat sat on the mat", "What is in the image?", "naïve café — 日本語 😀",
            "line one\nline two", "  leading and trailing  ", "a,b;c:d!"};
        for (String t : texts) {
            long[] ids = tok.encode(t);
            assertEquals(1, ids[0], "BOS first for '" + t + "'");
            assertEquals(t, tok.decode(ids), "round trip of '" + t + "'");
        }
    }

    @Test
    void decodeSkipsSpecialTokensOnlyWhenAsked() {
        long[] ids = {1, id("▁the"), IMAGE_ID, id("▁cat"), 2};
        assertEquals("the cat", tok.decode(ids));
        assertTrue(tok.decode(ids, false).contains("<image>"));
        assertTrue(tok.decode(ids, false).contains("</s>"));
    }

    @Test
    void addedImageTokenStaysWhole() {
        long[] ids = tok.encode("USER: <image>\nWhat", false);
        assertEquals(1, ImageTokens.count(ids, IMAGE_ID));
        int at = indexOf(ids, IMAGE_ID);
        assertArrayEquals(ref.encode("USER: "), Arrays.copyOfRange(ids, 0, at),
                "text before <image> is tokenized as its own segment");
        assertArrayEquals(ref.encode("\nWhat"), Arrays.copyOfRange(ids, at + 1, ids.length),
                "text after <image> is tokenized as its own segment, with its own ▁ prefix");
    }

    @Test
    void longInputIsNeverTruncated() {
        String text = "the cat sat on the mat . ".repeat(300);
        long[] ids = tok.encode(text);
        long[] expected = ref.encode(text);
        assertTrue(expected.length >= 2000, "reference gives " + expected.length + " pieces");
        assertEquals(expected.length + 1, ids.length);
        assertArrayEquals(expected, Arrays.copyOfRange(ids, 1, ids.length));
    }

    @Test
    void emptyTextIsJustBos() {
        assertArrayEquals(new long[] {1}, tok.encode(""));
        assertArrayEquals(new long[0], tok.encode("", false));
        assertEquals("", tok.decode(new long[0]));
    }

    @Test
    void unknownTokenAndBadIdsAreRejected() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> tok.tokenToId("▁zzzz"));
        assertTrue(e.getMessage().contains("▁zzzz"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> tok.decode(new long[] {1, IMAGE_ID + 1}));
        assertTrue(e.getMessage().contains(String.valueOf(IMAGE_ID + 1)) && e.getMessage().contains("602"),
                e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> tok.decode(new long[] {ImageTokens.LLAVA_IMAGE_TOKEN_INDEX}));
    }

    @Test
    void addEosTokenFromConfig(@TempDir Path tmp) throws IOException {
        Files.copy(DIR.resolve(LlavaTokenizer.TOKENIZER_FILE), tmp.resolve(LlavaTokenizer.TOKENIZER_FILE));
        Files.writeString(tmp.resolve(LlavaTokenizer.CONFIG_FILE),
                "{\"add_bos_token\": false, \"add_eos_token\": true, \"eos_token\": {\"content\": \"</s>\"},"
                        + " \"pad_token\": \"<unk>\"}");
        try (LlavaTokenizer t = LlavaTokenizer.load(tmp)) {
            assertArrayEquals(new long[] {id("▁the"), id("▁cat"), 2}, t.encode("the cat"));
            assertEquals(0, t.padId());
        }
    }

    @Test
    void withoutConfigLlamaDefaultsApply(@TempDir Path tmp) throws IOException {
        Files.copy(DIR.resolve(LlavaTokenizer.TOKENIZER_FILE), tmp.resolve(LlavaTokenizer.TOKENIZER_FILE));
        try (LlavaTokenizer t = LlavaTokenizer.load(tmp)) {
            assertArrayEquals(new long[] {1, id("▁the")}, t.encode("the"));
            assertEquals(2, t.eosId());
        }
    }

    @Test
    void missingTokenizerJsonNamesDirectoryAndFile(@TempDir Path tmp) {
        TokenizerException e = assertThrows(TokenizerException.class, () -> LlavaTokenizer.load(tmp));
        assertTrue(e.getMessage().contains(tmp.toString()), e.getMessage());
        assertTrue(e.getMessage().contains(tmp.resolve("tokenizer.json").toString()), e.getMessage());
        Path notDir = tmp.resolve("nope");
        e = assertThrows(TokenizerException.class, () -> LlavaTokenizer.load(notDir));
        assertTrue(e.getMessage().contains(notDir.toString()), e.getMessage());
    }

    @Test
    void truncatedJsonNamesTheFile(@TempDir Path tmp) throws IOException {
        String json = Files.readString(DIR.resolve(LlavaTokenizer.TOKENIZER_FILE), StandardCharsets.UTF_8);
        Path file = tmp.resolve(LlavaTokenizer.TOKENIZER_FILE);
        Files.writeString(file, json.substring(0, json.length() / 2), StandardCharsets.UTF_8);
        TokenizerException e = assertThrows(TokenizerException.class, () -> LlavaTokenizer.load(tmp));
        assertTrue(e.getMessage().contains(file.toString()) && e.getMessage().contains("not valid JSON"),
                e.getMessage());
    }

    @Test
    void jsonTheNativeLibraryRejectsNamesTheFile(@TempDir Path tmp) throws IOException {
        String json = Files.readString(DIR.resolve(LlavaTokenizer.TOKENIZER_FILE), StandardCharsets.UTF_8);
        Path file = tmp.resolve(LlavaTokenizer.TOKENIZER_FILE);
        Files.writeString(file, json.replace("\"type\": \"BPE\"", "\"type\": \"NoSuchModel\""), StandardCharsets.UTF_8);
        TokenizerException e = assertThrows(TokenizerException.class, () -> LlavaTokenizer.load(tmp));
        assertTrue(e.getMessage().contains(file.toString()) && e.getMessage().contains("HF tokenizers"),
                e.getMessage());
    }

    @Test
    void configNamingAnUnknownTokenIsRejected(@TempDir Path tmp) throws IOException {
        Files.copy(DIR.resolve(LlavaTokenizer.TOKENIZER_FILE), tmp.resolve(LlavaTokenizer.TOKENIZER_FILE));
        Path config = tmp.resolve(LlavaTokenizer.CONFIG_FILE);
        Files.writeString(config, "{\"bos_token\": \"<start>\"}");
        TokenizerException e = assertThrows(TokenizerException.class, () -> LlavaTokenizer.load(tmp));
        assertTrue(e.getMessage().contains(config.toString()) && e.getMessage().contains("bos_token")
                && e.getMessage().contains("<start>"), e.getMessage());
        Files.writeString(config, "{\"added_tokens_decoder\": {\"7\": {\"content\": \"<image>\", \"special\": true}}}");
        e = assertThrows(TokenizerException.class, () -> LlavaTokenizer.load(tmp));
        assertTrue(e.getMessage().contains("<image>") && e.getMessage().contains("601") && e.getMessage().contains("7"),
                e.getMessage());
        Files.writeString(config, "{\"add_bos_token\": \"yes\"}");
        e = assertThrows(TokenizerException.class, () -> LlavaTokenizer.load(tmp));
        assertTrue(e.getMessage().contains("add_bos_token") && e.getMessage().contains("yes"), e.getMessage());
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
