package org.qvlm4j.data;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.util.DefaultIndenter;
import com.fasterxml.jackson.core.util.DefaultPrettyPrinter;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.SequencedSet;
import org.qvlm4j.io.text.PromptTemplate;

/**
 * Writes an HF fast-tokenizer ({@code tokenizer.json} + {@code tokenizer_config.json}) with a
 * word-level model for a small vocabulary such as the synthetic benchmark's {@code vocab.txt}: the
 * tokenizer a tiny LLaVA trained or evaluated on that benchmark uses.
 *
 * <p>Layout of the HF file: model {@code WordLevel} with {@code unk_token <unk>}; no normalizer
 * (case is kept, so the answer letters A-E and "USER" stay distinct from "a" and "user"); a
 * {@code Split} pre-tokenizer with the regex {@value #PIECE_REGEX}, {@code invert: true},
 * {@code behavior: Removed} (how HF's own {@code Whitespace} pre-tokenizer is built), which keeps
 * runs of letters and digits and every other non-space character alone and drops whitespace,
 * the rule of {@link SynthBenchmark#tokenize} without its lower-casing; the decoder is a
 * {@code Sequence} of {@code WordPiece} (prefix "##", cleanup on: tokens are joined with spaces
 * and " ." " ," " ?" " !" lose the space) and {@code Replace} decoders that also pull ":" and ";"
 * onto the previous word. Every decoder step works per token, so the incremental
 * {@link org.qvlm4j.io.text.StreamingDecoder} reproduces the full decode. Apostrophes decode with
 * spaces around them ("user ' s"): WordPiece's cleanup of " 's" cannot see two tokens at once.
 * Whitespace, newlines included, does not survive encoding.
 *
 * <p>Ids: {@code <unk>}=0, {@code <s>}=1, {@code </s>}=2, {@code <pad>}=3, {@code <image>}=4 (all
 * added special tokens, matched whole before pre-tokenization), then the pieces of every fixed
 * text of the ScienceQA evaluation prompt ({@link #promptTexts()}: system messages, USER,
 * ASSISTANT, "Context:", the letters A-E, the answer instruction), then each vocabulary word
 * followed by its capitalized form, skipping duplicates. The output bytes depend only on the
 * vocabulary list. The config asks for BOS and no EOS (LLaMA's defaults); a TemplateProcessing
 * post-processor adds the same BOS for HF libraries that read only tokenizer.json.
 */
public final class WordLevelTokenizerBuilder {

    /** Special tokens in id order. */
    public static final List<String> SPECIAL_TOKENS = List.of("<unk>", "<s>", "</s>", "<pad>", PromptTemplate.IMAGE_PLACEHOLDER);
    public static final String UNK = "<unk>";
    public static final String BOS = "<s>";
    public static final String EOS = "</s>";
    public static final String PAD = "<pad>";
    /** Id of {@code <image>}, to be the model's {@code image_token_index}. */
    public static final int IMAGE_TOKEN_ID = 4;
    /** The pre-tokenizer's piece pattern (Oniguruma syntax, as HF's Split reads it). */
    public static final String PIECE_REGEX = "[\\p{L}\\p{Nd}]+|[^\\s\\p{L}\\p{Nd}]";
    /** LLaVA-1.5's ScienceQA answer instruction (model_vqa_science.py, --single-pred-prompt). */
    public static final String ANSWER_INSTRUCTION = "Answer with the option's letter from the given choices directly.";
    /** Sequence length recorded in tokenizer_config.json. */
    static final int MODEL_MAX_LENGTH = 4096;

    private WordLevelTokenizerBuilder() {
    }

    /**
     * Case-preserving pieces of a text: runs of letters and digits, and every other non-space
     * character alone; whitespace separates and is dropped. Lower-cased, these are
     * {@link SynthBenchmark#tokenize}'s tokens.
     */
    public static List<String> pieces(String text) {
        List<String> out = new ArrayList<>();
        int i = 0;
        while (i < text.length()) {
            char c = text.charAt(i);
            if (Character.isWhitespace(c)) {
                i++;
            } else if (Character.isLetterOrDigit(c)) {
                int j = i;
                while (j < text.length() && Character.isLetterOrDigit(text.charAt(j))) {
                    j++;
                }
                out.add(text.substring(i, j));
                i = j;
            } else {
                out.add(String.valueOf(c));
                i++;
            }
        }
        return out;
    }

    /** The fixed texts of the evaluation prompt whose pieces are always in the vocabulary. */
    public static List<String> promptTexts() {
        List<String> texts = new ArrayList<>();
        for (PromptTemplate t : PromptTemplate.values()) {
            texts.add(t.render("", 0));
        }
        texts.add("Context: A. B. C. D. E.");
        texts.add(ANSWER_INSTRUCTION);
        texts.add("The answer is A.");
        return texts;
    }

    /** The token strings in id order for a vocabulary (words and punctuation). */
    public static List<String> tokens(List<String> vocabulary) {
        SequencedSet<String> out = new LinkedHashSet<>(SPECIAL_TOKENS);
        for (String text : promptTexts()) {
            out.addAll(pieces(text));
        }
        for (int i = 0; i < vocabulary.size(); i++) {
            String w = vocabulary.get(i);
            List<String> p = pieces(w);
            if (p.size() != 1 || !p.getFirst().equals(w)) {
                throw new IllegalArgumentException("vocabulary entry " + (i + 1) + ": expected one word or one "
                        + "punctuation character without spaces, got '" + w + "' (pieces " + p + ")");
            }
            out.add(w);
            out.add(capitalized(w));
        }
        return List.copyOf(out);
    }

    /** The word with its first character upper-cased (unchanged for punctuation and digits). */
    static String capitalized(String w) {
        int first = w.codePointAt(0);
        int n = Character.charCount(first);
        return new String(Character.toChars(Character.toUpperCase(first))) + w.substring(n);
    }

    /** Reads a vocab.txt (one entry a line; blank lines skipped). */
    public static List<String> readVocabulary(Path vocabFile) {
        try {
            List<String> words = new ArrayList<>();
            for (String line : Files.readAllLines(vocabFile, StandardCharsets.UTF_8)) {
                if (!line.isBlank()) {
                    words.add(line.strip());
                }
            }
            return words;
        } catch (NoSuchFileException e) {
            throw new IllegalArgumentException(vocabFile + ": no such vocabulary file", e);
        } catch (IOException e) {
            throw new UncheckedIOException(vocabFile + ": " + e.getMessage(), e);
        }
    }

    /** Writes tokenizer.json and tokenizer_config.json for the vocabulary into dir (created if needed). */
    public static void write(Path dir, List<String> vocabulary) {
        List<String> tokens = tokens(vocabulary);
        try {
            Files.createDirectories(dir);
        } catch (IOException e) {
            throw new UncheckedIOException(dir + ": cannot create directory: " + e.getMessage(), e);
        }
        ScienceQaDataset.writeAtomically(dir.resolve("tokenizer.json"), toBytes(tokenizerJson(tokens)));
        ScienceQaDataset.writeAtomically(dir.resolve("tokenizer_config.json"), toBytes(tokenizerConfig()));
    }

    /** Writes the tokenizer for the vocab.txt of a synthetic benchmark directory. */
    public static void writeForBenchmark(Path dir, Path benchmarkDir) {
        write(dir, readVocabulary(benchmarkDir.resolve(SynthBenchmark.VOCAB_FILE)));
    }

    static ObjectNode tokenizerJson(List<String> tokens) {
        JsonNodeFactory f = JsonNodeFactory.instance;
        ObjectNode root = f.objectNode();
        root.put("version", "1.0");
        root.putNull("truncation");
        root.putNull("padding");
        ArrayNode added = root.putArray("added_tokens");
        for (int id = 0; id < SPECIAL_TOKENS.size(); id++) {
            ObjectNode t = addedToken(SPECIAL_TOKENS.get(id));
            ObjectNode withId = f.objectNode();
            withId.put("id", id);
            withId.setAll(t);
            added.add(withId);
        }
        root.putNull("normalizer");
        ObjectNode pre = root.putObject("pre_tokenizer");
        pre.put("type", "Split");
        pre.putObject("pattern").put("Regex", PIECE_REGEX);
        pre.put("behavior", "Removed");
        pre.put("invert", true);
        ObjectNode post = root.putObject("post_processor");
        post.put("type", "TemplateProcessing");
        ArrayNode single = post.putArray("single");
        single.addObject().putObject("SpecialToken").put("id", BOS).put("type_id", 0);
        single.addObject().putObject("Sequence").put("id", "A").put("type_id", 0);
        ArrayNode pair = post.putArray("pair");
        pair.addObject().putObject("SpecialToken").put("id", BOS).put("type_id", 0);
        pair.addObject().putObject("Sequence").put("id", "A").put("type_id", 0);
        pair.addObject().putObject("SpecialToken").put("id", BOS).put("type_id", 1);
        pair.addObject().putObject("Sequence").put("id", "B").put("type_id", 1);
        ObjectNode bos = post.putObject("special_tokens").putObject(BOS);
        bos.put("id", BOS);
        bos.putArray("ids").add(SPECIAL_TOKENS.indexOf(BOS));
        bos.putArray("tokens").add(BOS);
        ObjectNode dec = root.putObject("decoder");
        dec.put("type", "Sequence");
        ArrayNode decoders = dec.putArray("decoders");
        decoders.addObject().put("type", "WordPiece").put("prefix", "##").put("cleanup", true);
        for (String p : List.of(":", ";")) {
            ObjectNode r = decoders.addObject();
            r.put("type", "Replace");
            r.putObject("pattern").put("String", " " + p);
            r.put("content", p);
        }
        ObjectNode model = root.putObject("model");
        model.put("type", "WordLevel");
        ObjectNode vocab = model.putObject("vocab");
        for (int id = 0; id < tokens.size(); id++) {
            vocab.put(tokens.get(id), id);
        }
        model.put("unk_token", UNK);
        return root;
    }

    static ObjectNode tokenizerConfig() {
        ObjectNode c = JsonNodeFactory.instance.objectNode();
        c.put("add_bos_token", true);
        c.put("add_eos_token", false);
        ObjectNode dec = c.putObject("added_tokens_decoder");
        for (int id = 0; id < SPECIAL_TOKENS.size(); id++) {
            dec.set(Integer.toString(id), addedToken(SPECIAL_TOKENS.get(id)));
        }
        c.put("bos_token", BOS);
        c.put("eos_token", EOS);
        c.put("pad_token", PAD);
        c.put("unk_token", UNK);
        c.put("clean_up_tokenization_spaces", false);
        c.put("model_max_length", MODEL_MAX_LENGTH);
        c.put("tokenizer_class", "PreTrainedTokenizerFast");
        return c;
    }

    private static ObjectNode addedToken(String content) {
        ObjectNode t = JsonNodeFactory.instance.objectNode();
        t.put("content", content);
        t.put("single_word", false);
        t.put("lstrip", false);
        t.put("rstrip", false);
        t.put("normalized", false);
        t.put("special", true);
        return t;
    }

    private static byte[] toBytes(ObjectNode node) {
        DefaultPrettyPrinter pp = new DefaultPrettyPrinter()
                .withObjectIndenter(new DefaultIndenter("  ", "\n"))
                .withArrayIndenter(new DefaultIndenter("  ", "\n"));
        try {
            return (new ObjectMapper().writer(pp).writeValueAsString(node) + "\n").getBytes(StandardCharsets.UTF_8);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }
}
