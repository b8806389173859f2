package org.qvlm4j.train;

import java.util.Arrays;
import org.qvlm4j.tensor.Ops;

/**
 * One supervised sequence for {@link TrainableLlava}: the model input ids (image placeholders
 * already repeated once per image feature), the preprocessed image or null, and HF-style labels of
 * the same length: the token id where the model is to predict it, {@link Ops#IGNORE_INDEX} (-100)
 * elsewhere (the prompt). Arrays are held as given, not copied.
 *
 * @param pixels   (C, S, S) normalized pixel values, or null for a text-only example
 * @param inputIds (T) token ids
 * @param labels   (T) target ids or -100, not yet shifted (labels[t] is predicted from position t - 1)
 * @param attend   (T) per position the key position one supervised attention head is taught to read
 *                 from it, or {@link #NO_TARGET}; null when the example has no such targets
 *                 (see {@link SlotAttention})
 * @param copy     (T) as attend, for the head taught to read a copied number where the prompt states it
 *                 (see {@link CopyAttention}); null when none
 */
public record TrainingExample(float[] pixels, int[] inputIds, int[] labels, int[] attend, int[] copy) {
    /** An {@link #attend} entry without a target. */
    public static final int NO_TARGET = -1;

    public TrainingExample {
        if (inputIds == null || labels == null || inputIds.length != labels.length || inputIds.length == 0) {
            throw new IllegalArgumentException("training example: expected non-empty input ids and labels of equal length, got "
                    + (inputIds == null ? "null" : inputIds.length) + " and " + (labels == null ? "null" : labels.length));
        }
        checkTargets(attend, inputIds.length);
        checkTargets(copy, inputIds.length);
    }

    private static void checkTargets(int[] targets, int length) {
        if (targets == null) {
            return;
        }
        if (targets.length != length) {
            throw new IllegalArgumentException("training example: expected one attention target per input id ("
                    + length + "), got " + targets.length);
        }
        for (int t = 0; t < targets.length; t++) {
            if (targets[t] != NO_TARGET && (targets[t] < 0 || targets[t] > t)) {
                throw new IllegalArgumentException("training example: attention target of position " + t
                        + " must be a key position in [0, " + t + "] or " + NO_TARGET + ", got " + targets[t]);
            }
        }
    }

    /** An example with slot attention targets only. */
    public TrainingExample(float[] pixels, int[] inputIds, int[] labels, int[] attend) {
        this(pixels, inputIds, labels, attend, null);
    }

    /** An example without attention targets. */
    public TrainingExample(float[] pixels, int[] inputIds, int[] labels) {
        this(pixels, inputIds, labels, null, null);
    }

    /** This example with the given slot attention targets (null: none). */
    public TrainingExample withAttend(int[] targets) {
        return new TrainingExample(pixels, inputIds, labels, targets, copy);
    }

    /** This example with the given copy attention targets (null: none). */
    public TrainingExample withCopy(int[] targets) {
        return new TrainingExample(pixels, inputIds, labels, attend, targets);
    }

    /** Number of positions with a slot attention target. */
    public int attentionTargets() {
        return count(attend);
    }

    /** Number of positions with a copy attention target. */
    public int copyTargets() {
        return count(copy);
    }

    private static int count(int[] targets) {
        int n = 0;
        if (targets != null) {
            for (int a : targets) {
                n += a != NO_TARGET ? 1 : 0;
            }
        }
        return n;
    }

    /** Number of input tokens T. */
    public int length() {
        return inputIds.length;
    }

    /** Number of supervised positions (labels other than -100 after the first position). */
    public int supervisedTokens() {
        int n = 0;
        for (int t = 1; t < labels.length; t++) {
            if (labels[t] != Ops.IGNORE_INDEX) {
                n++;
            }
        }
        return n;
    }

    /** The cross-entropy targets per position: labels[t + 1], and -100 at the last position. */
    public int[] shiftedTargets() {
        int[] targets = new int[labels.length];
        System.arraycopy(labels, 1, targets, 0, labels.length - 1);
        targets[labels.length - 1] = Ops.IGNORE_INDEX;
        return targets;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof TrainingExample e && Arrays.equals(pixels, e.pixels) && Arrays.equals(inputIds, e.inputIds)
                && Arrays.equals(labels, e.labels) && Arrays.equals(attend, e.attend) && Arrays.equals(copy, e.copy);
    }

    @Override
    public int hashCode() {
        return 31 * Arrays.hashCode(inputIds) + Arrays.hashCode(labels);
    }

    @Override
    public String toString() {
        return "TrainingExample[T=" + inputIds.length + ", image=" + (pixels != null) + ", supervised=" + supervisedTokens()
                + (attend != null ? ", attention targets=" + attentionTargets() : "")
                + (copy != null ? ", copy targets=" + copyTargets() : "") + "]";
    }
}
