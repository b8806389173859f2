package org.qvlm4j.data;

/** A ScienceQA-layout dataset directory that breaks the format; the message names file, pid, key, expected and actual. */
public class ScienceQaFormatException extends IllegalArgumentException {
    public ScienceQaFormatException(String message) {
        super(message);
    }

    public ScienceQaFormatException(String message, Throwable cause) {
        super(message, cause);
    }
}
