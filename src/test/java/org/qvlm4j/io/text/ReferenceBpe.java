package org.qvlm4j.io.text;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;

/**
 * Scalar twin of the HF tokenizers pipeline for llama-layout tokenizer.json files, used only by
 * tests: Prepend/Replace normalization, BPE that always merges the lowest-ranked adjacent pair
 * (leftmost on ties), byte fallback or a fused unknown piece for characters outside the vocabulary.
 * Leaves out added tokens, so inputs must not contain them.
 */
final class ReferenceBpe {
    private static final String SPACE_MARK = "\u2581";

    final Map<String, Integer> vocab = new HashMap<>();
    private final Map<String, Integer> mergeRank = new HashMap<>();
    private final boolean byteFallback;
    private final int unkId;

    ReferenceBpe(Path tokenizerJson) throws IOException {
        JsonNode model = new ObjectMapper().readTree(tokenizerJson.toFile()).get("model");
        for (Iterator<Map.Entry<String, JsonNode>> it = model.get("vocab").fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            vocab.put(e.getKey(), e.getValue().asInt());
        }
        JsonNode merges = model.get("merges");
        for (int i = 0; i < merges.size(); i++) {
            mergeRank.put(merges.get(i).asText(), i);
        }
        byteFallback = model.path("byte_fallback").asBoolean(false);
        unkId = vocab.get(model.get("unk_token").asText());
    }

    /** Ids without BOS/EOS. */
    long[] encode(String text) {
        if (text.isEmpty()) {
            return new long[0];
        }
        String normalized = SPACE_MARK + text.replace(" ", SPACE_MARK);
        List<String> symbols = new ArrayList<>();
        normalized.codePoints().forEach(cp -> symbols.add(new String(Character.toChars(cp))));
        while (true) {
            int best = -1;
            int bestRank = Integer.MAX_VALUE;
            for (int i = 0; i + 1 < symbols.size(); i++) {
                Integer r = mergeRank.get(symbols.get(i) + " " + symbols.get(i + 1));
                if (r != null && r < bestRank) {
                    bestRank = r;
                    best = i;
                }
            }
            if (best < 0) {
                break;
            }
            symbols.set(best, symbols.get(best) + symbols.remove(best + 1));
        }
        List<Long> ids = new ArrayList<>();
        boolean lastUnk = false;
        for (String s : symbols) {
            Integer id = vocab.get(s);
            if (id != null) {
                ids.add((long) id);
                lastUnk = false;
            } else if (byteFallback) {
                for (byte b : s.getBytes(StandardCharsets.UTF_8)) {
                    ids.add((long) vocab.get(String.format("<0x%02X>", b & 0xFF)));
                }
                lastUnk = false;
            } else {
                if (!lastUnk) {
                    ids.add((long) unkId);
                }
                lastUnk = true;
            }
        }
        return ids.stream().mapToLong(Long::longValue).toArray();
    }
}
