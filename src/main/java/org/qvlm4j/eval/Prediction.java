package org.qvlm4j.eval;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.ArrayList;
import java.util.List;

/**
 * One line of {@code predictions.jsonl}: the prompt given to the model, its decoded answer
 * (special tokens skipped, not stripped), the parse of the stripped answer, and the outcome.
 *
 * @param parsed      the letter read from the output, or null when the parse failed
 * @param predicted   the option index used for scoring: the parsed index, -1 on failure, or the
 *                    random fallback's index when that option is on
 * @param parseFailed true when the output named no valid option (counted even with the fallback)
 * @param categories  the table columns of the problem, e.g. [NAT, IMG, G1-6]
 * @param newTokens   tokens generated, the end-of-sequence token included
 */
public record Prediction(String pid, String prompt, String output, String parsed, int predicted, int answer,
                         boolean correct, boolean parseFailed, List<String> categories, int newTokens) {
    private static final ObjectMapper JSON = new ObjectMapper();

    public Prediction {
        categories = List.copyOf(categories);
    }

    /** The JSON line, without the newline; fields in a fixed order. */
    public String toJsonLine() {
        ObjectNode o = JSON.createObjectNode();
        o.put("pid", pid);
        o.put("prompt", prompt);
        o.put("output", output);
        if (parsed == null) {
            o.putNull("parsed");
        } else {
            o.put("parsed", parsed);
        }
        o.put("predicted", predicted);
        o.put("answer", answer);
        o.put("correct", correct);
        o.put("parse_failed", parseFailed);
        ArrayNode c = o.putArray("categories");
        categories.forEach(c::add);
        o.put("new_tokens", newTokens);
        try {
            return JSON.writeValueAsString(o);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }

    /** Reads a line written by {@link #toJsonLine()}; IllegalArgumentException naming the key on a bad line. */
    public static Prediction fromJsonLine(String line) {
        JsonNode o;
        try {
            o = JSON.readTree(line);
        } catch (JsonProcessingException e) {
            throw new IllegalArgumentException("not a JSON object: " + e.getOriginalMessage(), e);
        }
        if (o == null || !o.isObject()) {
            throw new IllegalArgumentException("expected a JSON object, got " + (o == null ? "nothing" : o.getNodeType()));
        }
        List<String> cats = new ArrayList<>();
        for (JsonNode c : require(o, "categories")) {
            cats.add(c.asText());
        }
        JsonNode parsed = require(o, "parsed");
        return new Prediction(require(o, "pid").asText(), require(o, "prompt").asText(), require(o, "output").asText(),
                parsed.isNull() ? null : parsed.asText(), require(o, "predicted").asInt(), require(o, "answer").asInt(),
                require(o, "correct").asBoolean(), require(o, "parse_failed").asBoolean(), cats,
                require(o, "new_tokens").asInt());
    }

    private static JsonNode require(JsonNode o, String key) {
        JsonNode v = o.get(key);
        if (v == null) {
            throw new IllegalArgumentException("key " + key + ": expected a value, got none");
        }
        return v;
    }
}
