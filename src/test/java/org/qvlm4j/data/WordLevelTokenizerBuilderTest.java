package org.qvlm4j.data;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qvlm4j.io.text.LlavaTokenizer;
import org.qvlm4j.io.text.PromptTemplate;
import org.qvlm4j.io.text.StreamingDecoder;

/** The word-level tokenizer loaded by DJL's HF tokenizers through {@link LlavaTokenizer}. */
class WordLevelTokenizerBuilderTest {
    private static final long SEED = 5;
    private static final int SIZE = 48;

    @TempDir
    static Path tmp;
    static Path bench;
    static Path tokDir;
    static ScienceQaDataset data;

    @BeforeAll
    static void setUp() {
        bench = tmp.resolve("bench");
        SynthBenchmark.write(bench, new SynthBenchmark.Options(SEED, 60, 0, 12, SIZE), null);
        data = ScienceQaDataset.load(bench);
        tokDir = tmp.resolve("tok");
        WordLevelTokenizerBuilder.writeForBenchmark(tokDir, bench);
    }

    @Test
    void specialIdsAndImageTokenIsOneToken() {
        try (LlavaTokenizer tok = LlavaTokenizer.load(tokDir)) {
            assertEquals(0, tok.unkId());
            assertEquals(1, tok.bosId());
            assertEquals(2, tok.eosId());
            assertEquals(3, tok.padId());
            assertEquals(WordLevelTokenizerBuilder.IMAGE_TOKEN_ID, tok.tokenToId("<image>"));
            long[] ids = tok.encode("USER: <image>\nWhich shape?");
            assertArrayEquals(new long[] {1, tok.tokenToId("USER"), tok.tokenToId(":"), 4, tok.tokenToId("Which"),
                    tok.tokenToId("shape"), tok.tokenToId("?")}, ids);
            long[] two = tok.encode("<image><image>", false);
            assertArrayEquals(new long[] {4, 4}, two);
        }
    }

    @Test
    void everyWordOfTheDatasetAndPromptIsKnown() {
        try (LlavaTokenizer tok = LlavaTokenizer.load(tokDir)) {
            List<String> texts = new ArrayList<>(WordLevelTokenizerBuilder.promptTexts());
            for (ScienceQaProblem p : data.problems().values()) {
                texts.add(p.question());
                texts.add(p.hint());
                texts.addAll(p.choices());
                texts.add(p.lecture());
                texts.add(p.solution());
            }
            for (String t : texts) {
                long[] ids = tok.encode(t, false);
                List<String> pieces = WordLevelTokenizerBuilder.pieces(t);
                assertEquals(pieces.size(), ids.length, t);
                for (int i = 0; i < ids.length; i++) {
                    assertNotEquals(tok.unkId(), (int) ids[i], "unknown piece '" + pieces.get(i) + "' in: " + t);
                    assertEquals(pieces.get(i), tok.idToToken((int) ids[i]), t);
                }
            }
        }
    }

    @Test
    void piecesAreTheBenchmarkTokensUpToCase() {
        for (ScienceQaProblem p : data.problems().values()) {
            for (String t : List.of(p.question(), p.hint(), p.solution())) {
                List<String> lower = WordLevelTokenizerBuilder.pieces(t).stream()
                        .map(s -> s.toLowerCase(Locale.ROOT)).toList();
                assertEquals(SynthBenchmark.tokenize(t), lower, t);
            }
        }
    }

    @Test
    void unknownWordsBecomeUnk() {
        try (LlavaTokenizer tok = LlavaTokenizer.load(tokDir)) {
            long[] ids = tok.encode("Which zyxwv is it?", false);
            assertArrayEquals(new long[] {tok.tokenToId("Which"), 0, tok.tokenToId("is"), tok.tokenToId("it"),
                    tok.tokenToId("?")}, ids);
            assertEquals("Which is it?", tok.decode(ids));
            assertEquals("Which <unk> is it?", tok.decode(ids, false));
        }
    }

    @Test
    void roundTripOfBenchmarkQuestionsAndStreaming() {
        try (LlavaTokenizer tok = LlavaTokenizer.load(tokDir)) {
            int checked = 0;
            for (ScienceQaProblem p : data.problems().values()) {
                for (String t : List.of(p.question(), p.hint(), p.solution())) {
                    if (t.isEmpty()) {
                        continue;
                    }
                    long[] ids = tok.encode(t);
                    String decoded = tok.decode(ids);
                    // The decoder joins pieces with spaces and pulls . , ? ! : ; onto the previous word,
                    // so texts that use only those spacing rules come back unchanged.
                    assertEquals(expectedDecode(t), decoded, t);
                    StreamingDecoder s = tok.streamingDecoder();
                    StringBuilder sb = new StringBuilder();
                    for (long id : ids) {
                        sb.append(s.push(id));
                    }
                    sb.append(s.finish());
                    assertEquals(decoded, sb.toString(), t);
                    checked++;
                }
            }
            assertTrue(checked > 100, "checked " + checked);
            assertEquals("USER: The answer is A.", tok.decode(tok.encode("USER: The answer is A.")));
            assertEquals("user ' s", tok.decode(tok.encode("user's", false)));
        }
    }

    /** Independent model of the decoder: pieces joined by spaces, no space before . , ? ! : ; */
    private static String expectedDecode(String text) {
        StringBuilder sb = new StringBuilder();
        for (String p : WordLevelTokenizerBuilder.pieces(text)) {
            if (!sb.isEmpty() && !".,?!:;".contains(p)) {
                sb.append(' ');
            }
            sb.append(p);
        }
        return sb.toString();
    }

    @Test
    void promptWordsComeFirstAndOutputIsDeterministic() throws Exception {
        List<String> vocab = WordLevelTokenizerBuilder.readVocabulary(bench.resolve(SynthBenchmark.VOCAB_FILE));
        List<String> tokens = WordLevelTokenizerBuilder.tokens(vocab);
        assertEquals(WordLevelTokenizerBuilder.SPECIAL_TOKENS, tokens.subList(0, 5));
        // LLAVA_HF renders first and has no system message, so "USER" is the first ordinary token.
        assertEquals("USER", tokens.get(5));
        assertTrue(tokens.containsAll(WordLevelTokenizerBuilder.pieces(PromptTemplate.VICUNA_V1.system())));
        java.util.Set<String> promptPieces = new java.util.LinkedHashSet<>(WordLevelTokenizerBuilder.SPECIAL_TOKENS);
        WordLevelTokenizerBuilder.promptTexts().forEach(t -> promptPieces.addAll(WordLevelTokenizerBuilder.pieces(t)));
        for (String w : List.of("A", "B", "C", "D", "E", "USER", "ASSISTANT", "Context", "Answer", "option", "'")) {
            int id = tokens.indexOf(w);
            assertTrue(id > 4 && id < promptPieces.size(), w + " at " + id);
        }
        assertEquals(tokens.size(), tokens.stream().distinct().count());
        Path again = tmp.resolve("again");
        WordLevelTokenizerBuilder.write(again, vocab);
        for (String f : List.of("tokenizer.json", "tokenizer_config.json")) {
            assertArrayEquals(Files.readAllBytes(tokDir.resolve(f)), Files.readAllBytes(again.resolve(f)), f);
        }
    }

    @Test
    void rejectsEntriesThatAreNotOnePiece() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> WordLevelTokenizerBuilder.tokens(List.of("red", "two words")));
        assertTrue(e.getMessage().contains("entry 2") && e.getMessage().contains("two words"), e.getMessage());
        assertThrows(IllegalArgumentException.class,
                () -> WordLevelTokenizerBuilder.readVocabulary(tmp.resolve("missing.txt")));
    }
}
