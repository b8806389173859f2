package org.qvlm4j.io.text;

import java.util.Arrays;

/**
 * Turns generated ids, one at a time, into text deltas whose concatenation equals
 * {@link LlavaTokenizer#decode(long[])} of all ids.
 *
 * <p>Sentencepiece-style pieces cannot be decoded one by one: a piece's leading {@code ▁} becomes
 * a space only when something precedes it (the decoder strips the first one), and byte-fallback
 * pieces such as {@code <0xE2><0x82><0xAC>} form a character only together. So each step decodes
 * a short window twice, with and without the newest ids, and emits the difference once it no
 * longer ends in U+FFFD (an incomplete UTF-8 sequence). This is the prefix/read-offset scheme of
 * transformers' {@code TextStreamer} and text-generation-inference, with one addition: nothing is
 * emitted while the newest id is a byte piece or a special token. HF's ByteFallback decoder turns
 * a whole run of byte pieces into U+FFFD per byte if any part of the run is invalid, so a
 * character that looks complete (C2 B2 = "²") can still become "\uFFFD\uFFFD" when a bad byte
 * follows; specials are dropped before decoding, so they do not end a run. Holding the run until
 * it ends keeps the streamed text identical to the full decode, at the cost of one id's delay.
 *
 * <p>Not thread-safe; one instance per sequence.
 */
public final class StreamingDecoder {
    private static final char REPLACEMENT = '\uFFFD';
    private static final int INITIAL_CAPACITY = 64;

    private final LlavaTokenizer tokenizer;
    private long[] ids = new long[INITIAL_CAPACITY];
    private int size;
    /** Start of the window decoded for context; ids before it are final. */
    private int prefixOffset;
    /** End of the ids whose text has been emitted. */
    private int readOffset;

    StreamingDecoder(LlavaTokenizer tokenizer) {
        this.tokenizer = tokenizer;
    }

    /** Adds one id and returns the text it completes; empty while a character or word is incomplete. */
    public String push(long id) {
        if (size == ids.length) {
            ids = Arrays.copyOf(ids, size * 2);
        }
        ids[size++] = id;
        if (id >= 0 && id < tokenizer.vocabSize() && (tokenizer.isBytePiece((int) id) || tokenizer.isSpecial((int) id))) {
            return "";
        }
        String prefixText = tokenizer.decode(Arrays.copyOfRange(ids, prefixOffset, readOffset));
        String newText = tokenizer.decode(Arrays.copyOfRange(ids, prefixOffset, size));
        if (newText.length() > prefixText.length() && newText.charAt(newText.length() - 1) != REPLACEMENT) {
            prefixOffset = readOffset;
            readOffset = size;
            return newText.substring(prefixText.length());
        }
        return "";
    }

    /**
     * Returns whatever is still held back (e.g. an unfinished byte sequence, decoded as U+FFFD the
     * way a full decode would) and marks everything as emitted.
     */
    public String finish() {
        String prefixText = tokenizer.decode(Arrays.copyOfRange(ids, prefixOffset, readOffset));
        String newText = tokenizer.decode(Arrays.copyOfRange(ids, prefixOffset, size));
        prefixOffset = readOffset;
        readOffset = size;
        return newText.length() > prefixText.length() ? newText.substring(prefixText.length()) : "";
    }

    /** All ids pushed so far. */
    public long[] ids() {
        return Arrays.copyOf(ids, size);
    }
}
