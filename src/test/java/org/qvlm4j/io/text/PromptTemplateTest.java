package org.qvlm4j.io.text;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import org.junit.jupiter.api.Test;

/**
 * Rendered prompts against the strings written out by hand from llava/conversation.py
 * (conv_vicuna_v1, conv_llava_v1, SeparatorStyle.TWO) and llava-hf's chat_template.json.
 */
class PromptTemplateTest {
    private static final String Q = "What is shown in this image?";

    @Test
    void llavaHfChatForm() {
        assertEquals("USER: <image>\nWhat is shown in this image? ASSISTANT:", PromptTemplate.LLAVA_HF.render(Q));
        assertEquals("USER: <image>\n<image>\nCompare them. ASSISTANT:",
                PromptTemplate.LLAVA_HF.render("Compare them.", 2));
        assertEquals("USER: Hi ASSISTANT:", PromptTemplate.LLAVA_HF.render("Hi", 0));
    }

    @Test
    void vicunaV1() {
        assertEquals("A chat between a curious user and an artificial intelligence assistant. The assistant gives "
                + "helpful, detailed, and polite answers to the user's questions. USER: <image>\n"
                + "What is shown in this image? ASSISTANT:", PromptTemplate.VICUNA_V1.render(Q));
    }

    @Test
    void llavaV1() {
        assertEquals("A chat between a curious human and an artificial intelligence assistant. The assistant gives "
                + "helpful, detailed, and polite answers to the human's questions. USER: <image>\n"
                + "What is shown in this image? ASSISTANT:", PromptTemplate.LLAVA_V1.render(Q));
    }

    @Test
    void negativeImageCountIsRejected() {
        assertThrows(IllegalArgumentException.class, () -> PromptTemplate.VICUNA_V1.render(Q, -1));
    }
}
