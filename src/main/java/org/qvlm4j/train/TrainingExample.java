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
 */
public record TrainingExample(float[] pixels, int[] inputIds, int[] labels, int[] attend) {
    /** An {@link #attend} entry without a target. */
    public static final int NO_TARGET = -1;

    public TrainingExample {
        if (inputIds == null || labels == null || inputIds.length != labels.length || inputIds.length == 0) {
            throw new IllegalArgumentException("training example: expected non-empty input ids and labels of equal length, got "
                    + (inputIds == null ? "null" : inputIds.length) + " and " + (labels == null ? "null" : labels.length));
        }
        if (attend != null) {
            if (attend.length != inputIds.length) {
                throw new IllegalArgumentException("training example: expected one attention target per input id ("
                        + inputIds.length + "), got " + attend.length);
            }
            for (int t = 0; t < attend.length; t++) {
                if (attend[t] != NO_TARGET && (attend[t] < 0 || attend[t] > t)) {
                    throw new IllegalArgumentException("training example: attention target of position " + t
                            + " must be a key position in [0, " + t + "] or " + NO_TARGET + ", got " + attend[t]);
                }
            }
        }
    }

    /** An example without attention targets. */
    public TrainingExample(float[] pixels, int[] inputIds, int[] labels) {
        this(pixels, inputIds, labels, null);
    }

    /** This example with the given attention targets (null: none). */
    public TrainingExample withAttend(int[] targets) {
        return new TrainingExample(pixels, inputIds, labels, targets);
    }

    /** Number of positions with an attention target. */
    public int attentionTargets() {
        int n = 0;
        if (attend != null) {
            for (int a : attend) {
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
                && Arrays.equals(labels, e.labels) && Arrays.equals(attend, e.attend);
    }

    @Override
    public int hashCode() {
        return 31 * Arrays.hashCode(inputIds) + Arrays.hashCode(labels);
    }

    @Override
    public String toString() {
        return "TrainingExample[T=" + inputIds.length + ", image=" + (pixels != null) + ", supervised=" + supervisedTokens()
                + (attend != null ? ", attention targets=" + attentionTargets() : "") + "]";
    }
}
