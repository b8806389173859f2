package org.qvlm4j.eval;

import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Reads the chosen option out of a model's answer exactly as LLaVA-1.5's
 * {@code llava/eval/eval_science_qa.py} does, on the stripped text {@code model_vqa_science.py}
 * writes:
 * <ol>
 *   <li>the whole text is one of "A".."E": that letter;</li>
 *   <li>else the text has at least 3 characters, starts with one of "A".."E" and then ". ": that letter;</li>
 *   <li>else the regex {@code The answer is ([A-Z]).} (Python's {@code .}: any character but a
 *       newline, so the letter must be followed by one more character) must match exactly once in
 *       the text (findall); its letter is taken, any capital A-Z;</li>
 *   <li>otherwise the parse fails ("FAILED").</li>
 * </ol>
 * The letter becomes an index with {@code get_pred_idx}: its position in A..E if it is among the
 * first {@code numChoices} letters, else -1. A letter past the choices (e.g. "E" with 3 choices, or
 * "Z" from the regex) is thus kept as parsed but gives index -1, which never equals the answer.
 * The current script returns -1 there; an older revision drew a random index instead, which
 * {@link ScienceQaEvaluator} offers as an option that is off by default.
 */
public final class AnswerParser {
    /** eval_science_qa.py's {@code --options}. */
    public static final List<String> OPTIONS = List.of("A", "B", "C", "D", "E");
    private static final Pattern THE_ANSWER_IS = Pattern.compile("The answer is ([A-Z])[^\n]");
    private static final String PERIOD_SPACE = ". ";

    private AnswerParser() {
    }

    /**
     * The parse of one answer.
     *
     * @param letter the letter found, or null when the parse failed
     * @param index  the option index (0-based), or -1 when nothing or a letter past the choices was found
     */
    public record Parsed(String letter, int index) {
        /** True when the text gave no letter or a letter that names no choice. */
        public boolean failed() {
            return index < 0;
        }
    }

    /** Parses the stripped model output for a problem with numChoices options. */
    public static Parsed parse(String text, int numChoices) {
        String letter = letter(text);
        int index = letter == null ? -1 : OPTIONS.indexOf(letter);
        if (index >= numChoices) {
            index = -1;
        }
        return new Parsed(letter, index);
    }

    /** The letter eval_science_qa.py reads from the text, or null for "FAILED". */
    public static String letter(String text) {
        if (OPTIONS.contains(text)) {
            return text;
        }
        if (text.length() >= 3 && OPTIONS.contains(text.substring(0, 1)) && text.startsWith(PERIOD_SPACE, 1)) {
            return text.substring(0, 1);
        }
        Matcher m = THE_ANSWER_IS.matcher(text);
        String found = null;
        int count = 0;
        while (m.find()) {
            found = m.group(1);
            count++;
        }
        return count == 1 ? found : null;
    }
}
