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
 */
public record TrainingExample(float[] pixels, int[] inputIds, int[] labels) {

    public TrainingExample {
        if (inputIds == null || labels == null || inputIds.length != labels.length || inputIds.length == 0) {
            throw new IllegalArgumentException("training example: expected non-empty input ids and labels of equal length, got "
                    + (inputIds == null ? "null" : inputIds.length) + " and " + (labels == null ? "null" : labels.length));
        }
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
                && Arrays.equals(labels, e.labels);
    }

    @Override
    public int hashCode() {
        return 31 * Arrays.hashCode(inputIds) + Arrays.hashCode(labels);
    }

    @Override
    public String toString() {
        return "TrainingExample[T=" + inputIds.length + ", image=" + (pixels != null) + ", supervised=" + supervisedTokens() + "]";
    }
}
