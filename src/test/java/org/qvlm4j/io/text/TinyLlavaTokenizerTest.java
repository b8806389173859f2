package org.qvlm4j.io.text;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** The bundled models/tiny-llava tokenizer against the fixture model's config.json. */
class TinyLlavaTokenizerTest {
    private static final Path MODEL = Path.of("models/tiny-llava");
    private static final Path CONFIG = Path.of("src/test/resources/fixtures/tiny-llava/config.json");
    private static final long SEED = 99L;

    static LlavaTokenizer tok;
    static JsonNode text;
    static JsonNode config;

    @BeforeAll
    static void load() throws IOException {
        tok = LlavaTokenizer.load(MODEL);
        config = new ObjectMapper().readTree(CONFIG.toFile());
        text = config.get("text_config");
    }

    @AfterAll
    static void close() {
        tok.close();
    }

    @Test
    void idsAgreeWithModelConfig() {
        assertEquals(text.get("vocab_size").asInt(), tok.vocabSize());
        assertEquals(text.get("bos_token_id").asInt(), tok.bosId());
        assertEquals(text.get("eos_token_id").asInt(), tok.eosId());
        assertEquals(text.get("pad_token_id").asInt(), tok.padId());
        assertEquals(config.get("image_token_index").asInt(), tok.tokenToId("<image>"));
        for (int id = 0; id < tok.vocabSize(); id++) {
            assertTrue(tok.idToToken(id) != null, "no piece for id " + id);
        }
    }

    @Test
    void everyAsciiPromptStaysInsideTheVocabulary() {
        Random rnd = new Random(SEED);
        int vocab = text.get("vocab_size").asInt();
        for (int trial = 0; trial < 200; trial++) {
            char[] cs = new char[rnd.nextInt(60)];
            for (int i = 0; i < cs.length; i++) {
                cs[i] = (char) rnd.nextInt(128);
            }
            String prompt = PromptTemplate.LLAVA_HF.render(new String(cs));
            long[] ids = tok.encode(prompt);
            assertEquals(1, ImageTokens.count(ids, tok.tokenToId("<image>")));
            for (long id : ids) {
                assertTrue(id >= 0 && id < vocab, "id " + id + " for prompt '" + prompt + "'");
            }
        }
    }

    /** "the cat" → ▁t+he → ▁the; a+t → at, ▁+c → ▁c, ▁c+at → ▁cat (merges 0..2, 8..10 of tokenizer.json). */
    @Test
    void handWorkedWordsAndUnknownCharacters() {
        assertArrayEquals(new long[] {1, tok.tokenToId("▁the"), tok.tokenToId("▁cat")}, tok.encode("the cat"));
        assertEquals("the cat", tok.decode(tok.encode("the cat")));
        // '#' and '@' are outside the vocabulary: fused into one <unk>, which decode drops
        assertArrayEquals(new long[] {tok.tokenToId("▁"), tok.unkId(), tok.tokenToId("x")}, tok.encode("#@x", false));
        String plain = "What is the cat on? A mat, 2 (two) feet-wide.\nYes!";
        assertEquals(plain, tok.decode(tok.encode(plain)));
    }
}
