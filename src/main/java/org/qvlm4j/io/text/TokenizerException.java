package org.qvlm4j.io.text;

/** A tokenizer file or tokenizer input that breaks the rules; the message names file, key and values. */
public class TokenizerException extends IllegalArgumentException {
    public TokenizerException(String message) {
        super(message);
    }

    public TokenizerException(String message, Throwable cause) {
        super(message, cause);
    }
}
