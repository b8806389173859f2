package org.qvlm4j.train;

import java.util.Arrays;
import org.qvlm4j.data.Scene;
import org.qvlm4j.io.text.LlavaTokenizer;

/**
 * Attention targets that teach one head of the language model to read a colour's slot.
 *
 * <p>With {@code --vision-pretrain-slots} the image feature of patch k (raster order) says where
 * palette colour k is ({@link VisionPretrainer#slotLabels}). A map solution written with coordinates
 * names a colour and then its row or column ("red 6. blue 2: blue 2."). At each supervised position
 * that holds a palette colour word followed by a number word, the number is to be read from that
 * colour's slot: the target of that position is the key position of image token k (the first image
 * token of the sequence plus k). {@link TrainableLlava#loss(org.qvlm4j.tensor.Tape, java.util.List,
 * Settings)} adds, for one head of one layer, the cross-entropy of its attention row at each such
 * position against the target, so the head learns the lookup directly instead of through the
 * answer's loss alone. The loss shapes training only; the model written is an ordinary checkpoint.
 *
 * <p>Numbers are the words "1" to "{@value VisionPretrainer#SLOT_CELLS}" (the grid cells a slot names).
 * With object labels ({@code --vision-pretrain-counts}: a slot also names how many shapes of its
 * colour there are and the shape of the largest) they are "0" to "{@value VisionPretrainer#SLOT_MAX_COUNT}",
 * and a shape word (singular or plural) after a colour word is read from the slot too ("green 3",
 * "blue circle").
 */
public final class SlotAttention {

    /**
     * Which head learns the lookup and how much its loss weighs against the next-token loss.
     *
     * @param layer  decoder layer, 0 = the first (its query at a colour word holds that word alone)
     * @param head   query head within the layer
     * @param weight factor of the attention cross-entropy (mean over a pack's targets) in the loss
     */
    public record Settings(int layer, int head, double weight) {
        public Settings {
            if (layer < 0 || head < 0 || !(weight > 0) || !Double.isFinite(weight)) {
                throw new IllegalArgumentException("slot attention: expected layer >= 0, head >= 0 and a finite weight > 0, got layer "
                        + layer + ", head " + head + ", weight " + weight);
            }
        }
    }

    private final int imageToken;
    /** Token id -> slot (palette colour ordinal), or -1. */
    private final int[] slotOfToken;
    /** Token id -> whether a word read from a slot: a number word ("1" .. "8"; with objects "0" .. "9", shape words). */
    private final boolean[] number;

    /** Targets for the coordinate slots: {@link #SlotAttention(LlavaTokenizer, int, boolean)} without objects. */
    public SlotAttention(LlavaTokenizer tokenizer, int imageToken) {
        this(tokenizer, imageToken, false);
    }

    /**
     * Targets for a tokenizer that has the six colour words and the number words "1" to "8" (with
     * objects also "0", "9" and the shape words).
     *
     * @param objects the slots also name counts and shapes ({@link VisionPretrainer#slotObjectLabels})
     * @throws IllegalArgumentException naming the tokenizer directory and the missing word
     */
    public SlotAttention(LlavaTokenizer tokenizer, int imageToken, boolean objects) {
        int vocab = tokenizer.vocabSize();
        this.imageToken = imageToken;
        this.slotOfToken = new int[vocab];
        this.number = new boolean[vocab];
        Arrays.fill(slotOfToken, -1);
        for (Scene.Colour c : Scene.Colour.values()) {
            slotOfToken[id(tokenizer, c.word)] = c.ordinal();
        }
        int lo = objects ? 0 : 1;
        int hi = objects ? Math.max(VisionPretrainer.SLOT_CELLS, VisionPretrainer.SLOT_MAX_COUNT) : VisionPretrainer.SLOT_CELLS;
        for (int n = lo; n <= hi; n++) {
            number[id(tokenizer, Integer.toString(n))] = true;
        }
        if (objects) {
            for (Scene.Shape s : Scene.Shape.values()) {
                number[id(tokenizer, s.singular)] = true;
                number[id(tokenizer, s.plural)] = true;
            }
        }
    }

    private static int id(LlavaTokenizer tokenizer, String word) {
        if (!tokenizer.hasToken(word)) {
            throw new IllegalArgumentException("slot attention: " + tokenizer.directory() + " has no token '" + word
                    + "' (needed: the six colour words, the number words read from a slot and, with counts, the shape words)");
        }
        return tokenizer.tokenToId(word);
    }

    /**
     * The example with its attention targets: position t gets the key position of slot k when
     * input id t is colour word k, input id t + 1 is a number word that is supervised (labels[t + 1]
     * is not ignored), and the sequence has image tokens (at least k + 1 of them). Examples without
     * such a position come back unchanged (no targets).
     */
    public TrainingExample annotate(TrainingExample ex) {
        int[] ids = ex.inputIds();
        int first = -1;
        int images = 0;
        for (int t = 0; t < ids.length; t++) {
            if (ids[t] == imageToken) {
                first = first < 0 ? t : first;
                images++;
            }
        }
        if (ex.pixels() == null || first < 0) {
            return ex;
        }
        int[] attend = null;
        for (int t = 0; t + 1 < ids.length; t++) {
            int slot = ids[t] >= 0 && ids[t] < slotOfToken.length ? slotOfToken[ids[t]] : -1;
            int next = ids[t + 1];
            if (slot < 0 || slot >= images || next < 0 || next >= number.length || !number[next]
                    || ex.labels()[t + 1] == org.qvlm4j.tensor.Ops.IGNORE_INDEX) {
                continue;
            }
            if (attend == null) {
                attend = new int[ids.length];
                Arrays.fill(attend, TrainingExample.NO_TARGET);
            }
            attend[t] = first + slot;
        }
        return attend == null ? ex : ex.withAttend(attend);
    }
}
