package org.qvlm4j.io.text;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** StreamingDecoder against full decodes of the same ids (the metamorphic relation it promises). */
class StreamingDecoderTest {
    private static final long SEED = 7L;
    private static final int BYTE_BASE = 3;

    static LlavaTokenizer tok;

    @BeforeAll
    static void load() {
        tok = LlavaTokenizer.load(LlavaTokenizerTest.DIR);
    }

    @AfterAll
    static void close() {
        tok.close();
    }

    private static List<String> stream(long[] ids) {
        StreamingDecoder d = tok.streamingDecoder();
        List<String> deltas = new ArrayList<>();
        for (long id : ids) {
            deltas.add(d.push(id));
        }
        deltas.add(d.finish());
        assertArrayEquals(ids, d.ids());
        return deltas;
    }

    @Test
    void wordsArriveWithTheirSpaces() {
        long[] ids = tok.encode("the cat sat", false);
        assertEquals(List.of("the", " cat", " sat", ""), stream(ids));
    }

    @Test
    void multiByteCharacterIsHeldUntilComplete() {
        long[] ids = {tok.tokenToId("▁the"), tok.tokenToId("▁"), BYTE_BASE + 0xE2, BYTE_BASE + 0x82, BYTE_BASE + 0xAC,
            tok.tokenToId("▁cat")};
        assertEquals(List.of("the", " ", "", "", "", "€ cat", ""), stream(ids));
        ids[ids.length - 1] = tok.eosId();
        assertEquals(List.of("the", " ", "", "", "", "", "€"), stream(ids));
    }

    /** C2 B2 alone is "²", but HF decodes the run C2 B2 80 as three U+FFFD: nothing may be emitted early. */
    @Test
    void validPrefixOfAnInvalidByteRunIsNotEmitted() {
        long[] ids = {BYTE_BASE + 0xC2, BYTE_BASE + 0xB2, tok.eosId(), BYTE_BASE + 0x80, tok.tokenToId("▁cat")};
        assertEquals("\uFFFD\uFFFD\uFFFD cat", tok.decode(ids));
        assertEquals(List.of("", "", "", "", "\uFFFD\uFFFD\uFFFD cat", ""), stream(ids));
    }

    @Test
    void unfinishedBytesAreFlushedLikeAFullDecode() {
        long[] ids = {tok.tokenToId("▁cat"), BYTE_BASE + 0xE2, BYTE_BASE + 0x82};
        List<String> deltas = stream(ids);
        assertEquals("", deltas.get(1));
        assertEquals("", deltas.get(2));
        assertEquals(tok.decode(ids), String.join("", deltas));
    }

    @Test
    void concatenationEqualsFullDecodeForRandomSequences() {
        Random rnd = new Random(SEED);
        int vocab = tok.vocabSize();
        for (int trial = 0; trial < 100; trial++) {
            long[] ids = new long[1 + rnd.nextInt(40)];
            for (int i = 0; i < ids.length; i++) {
                int kind = rnd.nextInt(4);
                ids[i] = switch (kind) {
                    case 0 -> BYTE_BASE + 0x80 + rnd.nextInt(0x80); // continuation and lead bytes, often invalid
                    case 1 -> rnd.nextInt(3); // <unk>, <s>, </s>
                    default -> BYTE_BASE + 256 + rnd.nextInt(vocab - BYTE_BASE - 256);
                };
            }
            assertEquals(tok.decode(ids), String.join("", stream(ids)), "trial " + trial);
        }
    }

    @Test
    void concatenationEqualsFullDecodeForEncodedText() {
        String text = "naïve café: 日本語 😀 and the dog\nnext line";
        long[] ids = tok.encode(text);
        assertEquals(text, String.join("", stream(ids)));
    }
}
