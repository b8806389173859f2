package org.qvlm4j.train;

import java.util.Arrays;
import org.qvlm4j.io.text.LlavaTokenizer;
import org.qvlm4j.tensor.Ops;

/**
 * Attention targets that teach one head of the language model to find, in the prompt, the number an
 * answer copies from it.
 *
 * <p>The text comparison families state one number per item in the hint ("The cup is 4 degrees.",
 * "Belmar sells 4 apples.") and their solutions copy it after the item's name ("cup 4", "The cup is
 * 4 degrees", "Belmar 4"). Where the answer's next word is a number, the item is one of the last
 * {@value #CUES} answer words (the nearest first) that names exactly one prompt fact: a prompt
 * position followed within {@value #WINDOW} words by a number. When that fact's number is the one
 * written, the target of the answer position is that number's position in the prompt, so the head
 * learns to look where the item's number stands. A word that precedes several numbers ("is",
 * "sells") names no single fact; an answer number that is no copy (a difference, a count read from
 * the picture) finds no fact and gets no target. The prompt ends at the last "ASSISTANT" ":" of the
 * sequence; an example without it gets no targets. The loss shapes training only.
 */
public final class CopyAttention {
    /** Words after a cue within which its number stands ("cup is 4": 2). */
    public static final int WINDOW = 3;
    /** Answer words before the number that are tried as its item, the nearest first. */
    public static final int CUES = 3;

    private final boolean[] number;
    private final int assistant;
    private final int colon;

    /**
     * Targets for a tokenizer with the number words "0" to "9", "ASSISTANT" and ":".
     *
     * @throws IllegalArgumentException naming the tokenizer directory and the missing word
     */
    public CopyAttention(LlavaTokenizer tokenizer) {
        this.number = new boolean[tokenizer.vocabSize()];
        for (int n = 0; n <= 9; n++) {
            number[id(tokenizer, Integer.toString(n))] = true;
        }
        this.assistant = id(tokenizer, "ASSISTANT");
        this.colon = id(tokenizer, ":");
    }

    private static int id(LlavaTokenizer tokenizer, String word) {
        if (!tokenizer.hasToken(word)) {
            throw new IllegalArgumentException("copy attention: " + tokenizer.directory() + " has no token '" + word
                    + "' (needed: the number words 0 to 9, ASSISTANT and ':')");
        }
        return tokenizer.tokenToId(word);
    }

    private boolean isNumber(int id) {
        return id >= 0 && id < number.length && number[id];
    }

    /** The first answer position: after the last "ASSISTANT" ":", or -1 without one. */
    int answerStart(int[] ids) {
        for (int t = ids.length - 2; t >= 0; t--) {
            if (ids[t] == assistant && ids[t + 1] == colon) {
                return t + 2;
            }
        }
        return -1;
    }

    /**
     * The example with its copy targets: answer position t gets a prompt position when input id t + 1
     * is a supervised number word and one of the answer words t, t - 1, .. (at most {@value #CUES},
     * none before the answer) names a single prompt fact whose number is that word (see the class
     * comment). Examples without such a position come back unchanged.
     */
    public TrainingExample annotate(TrainingExample ex) {
        int[] ids = ex.inputIds();
        int start = answerStart(ids);
        if (start < 0) {
            return ex;
        }
        int[] copy = null;
        for (int t = start; t + 1 < ids.length; t++) {
            int next = ids[t + 1];
            if (!isNumber(next) || ex.labels()[t + 1] == Ops.IGNORE_INDEX) {
                continue;
            }
            int target = TrainingExample.NO_TARGET;
            for (int c = t; c > t - CUES && c >= start; c--) {
                if (isNumber(ids[c])) {
                    continue;
                }
                int fact = soleFact(ids, start, ids[c]);
                if (fact >= 0) {
                    // the nearest item with a fact decides: its number, or none when it states another
                    target = ids[fact] == next ? fact : TrainingExample.NO_TARGET;
                    break;
                }
            }
            if (target != TrainingExample.NO_TARGET) {
                if (copy == null) {
                    copy = new int[ids.length];
                    Arrays.fill(copy, TrainingExample.NO_TARGET);
                }
                copy[t] = target;
            }
        }
        return copy == null ? ex : ex.withCopy(copy);
    }

    /**
     * The position of the number of the single prompt fact the word names: the first number within
     * {@value #WINDOW} words after the word, when exactly one prompt occurrence of the word has one;
     * -1 otherwise.
     */
    private int soleFact(int[] ids, int promptEnd, int word) {
        int found = -1;
        for (int q = 0; q < promptEnd; q++) {
            if (ids[q] != word) {
                continue;
            }
            for (int k = q + 1; k <= q + WINDOW && k < promptEnd; k++) {
                if (isNumber(ids[k])) {
                    if (found >= 0) {
                        return -1;
                    }
                    found = k;
                    break;
                }
            }
        }
        return found;
    }
}
