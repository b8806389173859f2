package org.qvlm4j.io.text;

import ai.djl.huggingface.tokenizers.Encoding;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Iterator;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Pattern;

/**
 * The text tokenizer of a LLaVA model directory: HF {@code tokenizer.json} run by the HF
 * tokenizers library (through DJL's JNI binding), with the special-token policy of
 * {@code tokenizer_config.json} applied here, as transformers' {@code LlamaTokenizerFast} does.
 *
 * <p>Policy, fixed on purpose rather than inherited from DJL's defaults:
 * <ul>
 *   <li>No truncation and no padding. DJL otherwise truncates every input to 512 tokens without
 *       telling anyone (its {@code modelMaxLength} default) and pads batches.</li>
 *   <li>DJL is told not to add special tokens; BOS/EOS are added here from {@code add_bos_token}
 *       / {@code add_eos_token} (llama defaults: BOS yes, EOS no). This ignores the
 *       post-processor in tokenizer.json, exactly as transformers rebuilds it from the config.</li>
 *   <li>{@link #decode(long[])} drops every special id (added tokens flagged special in either
 *       file, plus the BOS/EOS/UNK/PAD tokens), matching {@code skip_special_tokens=True}.</li>
 * </ul>
 *
 * <p>DJL's native library ships inside the tokenizers jar; on first use it is copied to
 * {@code <cache>/tokenizers/<tokenizers version>-<djl version>-cpu-<platform>/libtokenizers.so}
 * and loaded from there, so no network is needed. {@code <cache>} is {@code ENGINE_CACHE_DIR}
 * (environment or system property), else {@code DJL_CACHE_DIR}, else {@code ~/.djl.ai}. Loading sets {@code ai.djl.offline=true} unless
 * the user already chose (property or {@code DJL_OFFLINE}), which stops DJL's usage ping.
 *
 * <p>Leaves out: pairs, batches, chat templates in Jinja (see {@link PromptTemplate}), slow
 * sentencepiece {@code tokenizer.model} files (only tokenizer.json is read).
 */
public final class LlavaTokenizer implements AutoCloseable {
    public static final String TOKENIZER_FILE = "tokenizer.json";
    public static final String CONFIG_FILE = "tokenizer_config.json";

    private static final String OFFLINE_PROPERTY = "ai.djl.offline";
    private static final String OFFLINE_ENV = "DJL_OFFLINE";
    /** Sentencepiece byte-fallback pieces, {@code <0x00>} .. {@code <0xFF>}. */
    private static final Pattern BYTE_PIECE = Pattern.compile("<0x[0-9A-F]{2}>");

    private final Path dir;
    private final HuggingFaceTokenizer hf;
    private final Map<String, Integer> tokenToId;
    private final String[] idToToken;
    private final boolean[] special;
    private final boolean[] bytePiece;
    private final int bosId;
    private final int eosId;
    private final int padId;
    private final int unkId;
    private final boolean addBos;
    private final boolean addEos;

    private LlavaTokenizer(Path dir, HuggingFaceTokenizer hf, Map<String, Integer> tokenToId,
                           String[] idToToken, boolean[] special, int bosId, int eosId, int padId,
                           int unkId, boolean addBos, boolean addEos) {
        this.dir = dir;
        this.hf = hf;
        this.tokenToId = tokenToId;
        this.idToToken = idToToken;
        this.special = special;
        this.bytePiece = new boolean[idToToken.length];
        for (int i = 0; i < idToToken.length; i++) {
            bytePiece[i] = idToToken[i] != null && BYTE_PIECE.matcher(idToToken[i]).matches();
        }
        this.bosId = bosId;
        this.eosId = eosId;
        this.padId = padId;
        this.unkId = unkId;
        this.addBos = addBos;
        this.addEos = addEos;
    }

    /**
     * Loads {@code tokenizer.json} (required) and {@code tokenizer_config.json} (optional) from a
     * model directory.
     */
    public static LlavaTokenizer load(Path modelDir) {
        if (!Files.isDirectory(modelDir)) {
            throw new TokenizerException(modelDir + ": not a directory; expected a model directory holding "
                    + TOKENIZER_FILE);
        }
        Path file = modelDir.resolve(TOKENIZER_FILE);
        if (!Files.isRegularFile(file)) {
            throw new TokenizerException(modelDir + ": no " + TOKENIZER_FILE + " (expected " + file
                    + "; only the HF fast-tokenizer JSON is supported, not tokenizer.model)");
        }
        String json;
        try {
            json = Files.readString(file, StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new TokenizerException(file + ": cannot read: " + e.getMessage(), e);
        }
        JsonNode root = parseJson(file, json);
        Map<String, Integer> vocab = new HashMap<>();
        Set<Integer> specialIds = new TreeSet<>();
        readVocab(file, root, vocab, specialIds);

        Path configFile = modelDir.resolve(CONFIG_FILE);
        JsonNode config = null;
        if (Files.isRegularFile(configFile)) {
            try {
                config = parseJson(configFile, Files.readString(configFile, StandardCharsets.UTF_8));
            } catch (IOException e) {
                throw new TokenizerException(configFile + ": cannot read: " + e.getMessage(), e);
            }
            readAddedTokensDecoder(configFile, config, vocab, specialIds);
        }

        int size = 0;
        for (int id : vocab.values()) {
            size = Math.max(size, id + 1);
        }
        String[] idToToken = new String[size];
        for (Map.Entry<String, Integer> e : vocab.entrySet()) {
            idToToken[e.getValue()] = e.getKey();
        }

        Path source = config == null ? file : configFile;
        int bos = resolveSpecial(source, config, "bos_token", "<s>", vocab);
        int eos = resolveSpecial(source, config, "eos_token", "</s>", vocab);
        int unk = resolveSpecial(source, config, "unk_token", "<unk>", vocab);
        int pad = resolveSpecial(source, config, "pad_token", null, vocab);
        boolean addBos = readBoolean(configFile, config, "add_bos_token", true);
        boolean addEos = readBoolean(configFile, config, "add_eos_token", false);
        if (addBos && bos < 0) {
            throw new TokenizerException(source + ": add_bos_token is true but no BOS token is defined "
                    + "(bos_token missing and no '<s>' in " + file + ")");
        }
        if (addEos && eos < 0) {
            throw new TokenizerException(source + ": add_eos_token is true but no EOS token is defined "
                    + "(eos_token missing and no '</s>' in " + file + ")");
        }
        boolean[] special = new boolean[size];
        for (int id : specialIds) {
            special[id] = true;
        }
        for (int id : new int[] {bos, eos, unk, pad}) {
            if (id >= 0) {
                special[id] = true;
            }
        }

        HuggingFaceTokenizer hf = createNative(file, json);
        return new LlavaTokenizer(modelDir, hf, Map.copyOf(vocab), idToToken, special, bos, eos, pad, unk,
                addBos, addEos);
    }

    private static HuggingFaceTokenizer createNative(Path file, String json) {
        if (System.getenv(OFFLINE_ENV) == null && System.getProperty(OFFLINE_PROPERTY) == null) {
            System.setProperty(OFFLINE_PROPERTY, "true");
        }
        Map<String, String> options = Map.of(
                "addSpecialTokens", "false",
                "truncation", "false",
                "padding", "false",
                "withOverflowingTokens", "false");
        try {
            return HuggingFaceTokenizer.newInstance(
                    new ByteArrayInputStream(json.getBytes(StandardCharsets.UTF_8)), options);
        } catch (IOException | RuntimeException | UnsatisfiedLinkError e) {
            throw new TokenizerException(file + ": rejected by the HF tokenizers library: " + e.getMessage(), e);
        }
    }

    private static JsonNode parseJson(Path file, String json) {
        try {
            JsonNode root = new ObjectMapper().readTree(json);
            if (root == null || !root.isObject()) {
                throw new TokenizerException(file + ": expected a JSON object at top level, found "
                        + (root == null ? "nothing" : root.getNodeType()));
            }
            return root;
        } catch (JacksonException e) {
            throw new TokenizerException(file + ": not valid JSON: " + e.getOriginalMessage()
                    + " at line " + e.getLocation().getLineNr() + ", column " + e.getLocation().getColumnNr(), e);
        }
    }

    /** Fills token→id from model.vocab (object for BPE/WordPiece/WordLevel, array for Unigram) and added_tokens. */
    private static void readVocab(Path file, JsonNode root, Map<String, Integer> vocab, Set<Integer> specialIds) {
        JsonNode model = root.get("model");
        if (model == null || !model.isObject()) {
            throw new TokenizerException(file + ": missing object 'model'");
        }
        JsonNode v = model.get("vocab");
        if (v == null) {
            throw new TokenizerException(file + ": missing 'model.vocab'");
        }
        if (v.isObject()) {
            for (Iterator<Map.Entry<String, JsonNode>> it = v.fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                if (!e.getValue().canConvertToInt() || e.getValue().asInt() < 0) {
                    throw new TokenizerException(file + ": model.vocab['" + e.getKey()
                            + "'] must be a non-negative integer id, found " + e.getValue());
                }
                vocab.put(e.getKey(), e.getValue().asInt());
            }
        } else if (v.isArray()) {
            for (int i = 0; i < v.size(); i++) {
                JsonNode piece = v.get(i);
                if (!piece.isArray() || piece.isEmpty() || !piece.get(0).isTextual()) {
                    throw new TokenizerException(file + ": model.vocab[" + i + "] must be [piece, score], found " + piece);
                }
                vocab.put(piece.get(0).asText(), i);
            }
        } else {
            throw new TokenizerException(file + ": 'model.vocab' must be an object or array, found " + v.getNodeType());
        }
        JsonNode added = root.get("added_tokens");
        if (added != null && !added.isNull()) {
            if (!added.isArray()) {
                throw new TokenizerException(file + ": 'added_tokens' must be an array, found " + added.getNodeType());
            }
            for (int i = 0; i < added.size(); i++) {
                JsonNode t = added.get(i);
                JsonNode id = t.get("id");
                JsonNode content = t.get("content");
                if (id == null || !id.canConvertToInt() || id.asInt() < 0 || content == null || !content.isTextual()) {
                    throw new TokenizerException(file + ": added_tokens[" + i
                            + "] needs a non-negative integer 'id' and a string 'content', found " + t);
                }
                vocab.put(content.asText(), id.asInt());
                if (t.path("special").asBoolean(false)) {
                    specialIds.add(id.asInt());
                }
            }
        }
    }

    private static void readAddedTokensDecoder(Path configFile, JsonNode config, Map<String, Integer> vocab,
                                               Set<Integer> specialIds) {
        JsonNode decoder = config.get("added_tokens_decoder");
        if (decoder == null || decoder.isNull()) {
            return;
        }
        if (!decoder.isObject()) {
            throw new TokenizerException(configFile + ": 'added_tokens_decoder' must be an object, found "
                    + decoder.getNodeType());
        }
        for (Iterator<Map.Entry<String, JsonNode>> it = decoder.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            int id;
            try {
                id = Integer.parseInt(e.getKey());
            } catch (NumberFormatException ex) {
                throw new TokenizerException(configFile + ": added_tokens_decoder key '" + e.getKey()
                        + "' is not an integer id", ex);
            }
            String content = tokenContent(e.getValue());
            if (content == null) {
                throw new TokenizerException(configFile + ": added_tokens_decoder['" + id
                        + "'] needs a string 'content', found " + e.getValue());
            }
            Integer known = vocab.get(content);
            if (known != null && known != id) {
                throw new TokenizerException(configFile + ": added_tokens_decoder gives '" + content + "' id " + id
                        + " but " + TOKENIZER_FILE + " gives id " + known);
            }
            vocab.put(content, id);
            if (e.getValue().path("special").asBoolean(false)) {
                specialIds.add(id);
            }
        }
    }

    /** A special-token entry is either a plain string or an AddedToken object {"content": ...}. */
    private static String tokenContent(JsonNode node) {
        if (node == null || node.isNull()) {
            return null;
        }
        if (node.isTextual()) {
            return node.asText();
        }
        JsonNode content = node.get("content");
        return content != null && content.isTextual() ? content.asText() : null;
    }

    private static int resolveSpecial(Path source, JsonNode config, String key, String fallback,
                                      Map<String, Integer> vocab) {
        String token;
        if (config != null && config.has(key)) {
            JsonNode node = config.get(key);
            token = tokenContent(node);
            if (token == null && !node.isNull()) {
                throw new TokenizerException(source + ": '" + key
                        + "' must be a string, an AddedToken object with 'content', or null; found " + node);
            }
            if (token == null) {
                return -1;
            }
            Integer id = vocab.get(token);
            if (id == null) {
                throw new TokenizerException(source + ": " + key + " '" + token + "' is not in the vocabulary of "
                        + source.resolveSibling(TOKENIZER_FILE));
            }
            return id;
        }
        token = fallback;
        Integer id = token == null ? null : vocab.get(token);
        return id == null ? -1 : id;
    }

    private static boolean readBoolean(Path configFile, JsonNode config, String key, boolean fallback) {
        if (config == null || !config.has(key) || config.get(key).isNull()) {
            return fallback;
        }
        JsonNode node = config.get(key);
        if (!node.isBoolean()) {
            throw new TokenizerException(configFile + ": '" + key + "' must be true or false, found " + node);
        }
        return node.asBoolean();
    }

    /** Token ids of {@code text}, with BOS/EOS as the config asks; never truncated or padded. */
    public long[] encode(String text) {
        return encode(text, true);
    }

    /** Token ids of {@code text}; {@code addSpecialTokens} false gives the bare pieces. */
    public long[] encode(String text, boolean addSpecialTokens) {
        Encoding enc = hf.encode(text, false, false);
        if (enc.exceedMaxLength()) {
            throw new IllegalStateException(dir + ": tokenizer truncated an input of " + text.length()
                    + " chars although truncation is disabled");
        }
        long[] pieces = enc.getIds(); // (T)
        boolean bos = addSpecialTokens && addBos;
        boolean eos = addSpecialTokens && addEos;
        long[] ids = new long[pieces.length + (bos ? 1 : 0) + (eos ? 1 : 0)];
        System.arraycopy(pieces, 0, ids, bos ? 1 : 0, pieces.length);
        if (bos) {
            ids[0] = bosId;
        }
        if (eos) {
            ids[ids.length - 1] = eosId;
        }
        return ids;
    }

    /** The text of {@code ids}, skipping special tokens. */
    public String decode(long[] ids) {
        return decode(ids, true);
    }

    /** The text of {@code ids}; with {@code skipSpecialTokens} false, specials appear as their strings. */
    public String decode(long[] ids, boolean skipSpecialTokens) {
        long[] kept = new long[ids.length];
        int n = 0;
        for (int i = 0; i < ids.length; i++) {
            long id = ids[i];
            if (id < 0 || id >= idToToken.length) {
                throw new TokenizerException(dir + ": cannot decode id " + id + " at position " + i
                        + "; expected 0 <= id < " + idToToken.length);
            }
            if (!(skipSpecialTokens && special[(int) id])) {
                kept[n++] = id;
            }
        }
        return hf.decode(n == ids.length ? kept : Arrays.copyOf(kept, n), skipSpecialTokens);
    }

    /** The id of a vocabulary piece or added token, e.g. {@code "▁the"} or {@code "<image>"}. */
    public int tokenToId(String token) {
        Integer id = tokenToId.get(token);
        if (id == null) {
            throw new TokenizerException(dir.resolve(TOKENIZER_FILE) + ": token '" + token + "' is not in the vocabulary");
        }
        return id;
    }

    /** Whether {@code token} is a vocabulary piece or added token. */
    public boolean hasToken(String token) {
        return tokenToId.containsKey(token);
    }

    /** The piece string of an id (e.g. {@code "▁the"}, {@code "<0xE2>"}), or null for a gap in the id range. */
    public String idToToken(int id) {
        if (id < 0 || id >= idToToken.length) {
            throw new TokenizerException(dir + ": id " + id + " out of range; expected 0 <= id < " + idToToken.length);
        }
        return idToToken[id];
    }

    /** Whether {@code id} is dropped by {@link #decode(long[])}. */
    public boolean isSpecial(int id) {
        return id >= 0 && id < special.length && special[id];
    }

    /** Whether {@code id} is a byte-fallback piece such as {@code <0xE2>}. */
    public boolean isBytePiece(int id) {
        return id >= 0 && id < bytePiece.length && bytePiece[id];
    }

    /** One more than the largest id (vocabulary plus added tokens). */
    public int vocabSize() {
        return idToToken.length;
    }

    public int bosId() {
        return bosId;
    }

    public int eosId() {
        return eosId;
    }

    /** The padding id, or -1 when the config defines none. */
    public int padId() {
        return padId;
    }

    /** The unknown-piece id, or -1 when the tokenizer has none. */
    public int unkId() {
        return unkId;
    }

    public boolean addsBos() {
        return addBos;
    }

    public boolean addsEos() {
        return addEos;
    }

    public Path directory() {
        return dir;
    }

    /** A fresh incremental decoder for one generated sequence. */
    public StreamingDecoder streamingDecoder() {
        return new StreamingDecoder(this);
    }

    @Override
    public void close() {
        hf.close();
    }
}
