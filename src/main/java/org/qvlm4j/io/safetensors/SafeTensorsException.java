package org.qvlm4j.io.safetensors;

/** A safetensors file or checkpoint that breaks the format's rules; the message names file and key. */
public class SafeTensorsException extends IllegalArgumentException {
    public SafeTensorsException(String message) {
        super(message);
    }

    public SafeTensorsException(String message, Throwable cause) {
        super(message, cause);
    }
}
