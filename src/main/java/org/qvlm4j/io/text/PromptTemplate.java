package org.qvlm4j.io.text;

/**
 * The LLaVA-1.5 single-turn prompt formats, rendered to the exact strings the reference code
 * produces for one user message with images followed by the assistant's (empty) turn.
 *
 * <ul>
 *   <li>{@link #LLAVA_HF}: the llava-hf chat template ({@code chat_template.json} of
 *       llava-hf/llava-1.5-*-hf with {@code add_generation_prompt}): {@code "USER: <image>\n"
 *       + question + " ASSISTANT:"}, no system message.</li>
 *   <li>{@link #VICUNA_V1}: {@code conv_vicuna_v1} of LLaVA's {@code llava/conversation.py}
 *       (the {@code --conv-mode vicuna_v1} used by the LLaVA-1.5 evaluation scripts),
 *       {@code SeparatorStyle.TWO}, sep " ", sep2 "</s>"; its system message says "user".</li>
 *   <li>{@link #LLAVA_V1}: {@code conv_llava_v1} of the same file: identical layout, system
 *       message says "human".</li>
 * </ul>
 *
 * <p>For SeparatorStyle.TWO the rendering is {@code system + sep + "USER: " + message + sep +
 * "ASSISTANT:"}, with the message {@code "<image>\n" + question} as LLaVA's eval scripts build it.
 * Several images put one {@code "<image>\n"} each before the question, as the llava-hf template
 * does. Leaves out multi-turn history and the {@code mmtag} / {@code mm_use_im_start_end} variants.
 */
public enum PromptTemplate {
    LLAVA_HF(""),
    VICUNA_V1("A chat between a curious user and an artificial intelligence assistant. "
            + "The assistant gives helpful, detailed, and polite answers to the user's questions."),
    LLAVA_V1("A chat between a curious human and an artificial intelligence assistant. "
            + "The assistant gives helpful, detailed, and polite answers to the human's questions.");

    /** The placeholder string of one image in a rendered prompt. */
    public static final String IMAGE_PLACEHOLDER = "<image>";
    /** What the conversation.py templates put after the assistant's answer (their sep2). */
    public static final String ASSISTANT_END = "</s>";

    private static final String SEP = " ";
    private static final String USER = "USER";
    private static final String ASSISTANT = "ASSISTANT";

    private final String system;

    PromptTemplate(String system) {
        this.system = system;
    }

    /** The system message, empty for {@link #LLAVA_HF}. */
    public String system() {
        return system;
    }

    /** The prompt for one question about one image, ending with "ASSISTANT:". */
    public String render(String question) {
        return render(question, 1);
    }

    /** The prompt for one question about {@code numImages} images (0 for text only), ending with "ASSISTANT:". */
    public String render(String question, int numImages) {
        if (numImages < 0) {
            throw new IllegalArgumentException("numImages must be >= 0, found " + numImages);
        }
        StringBuilder sb = new StringBuilder();
        if (!system.isEmpty()) {
            sb.append(system).append(SEP);
        }
        sb.append(USER).append(": ");
        for (int i = 0; i < numImages; i++) {
            sb.append(IMAGE_PLACEHOLDER).append('\n');
        }
        sb.append(question).append(SEP).append(ASSISTANT).append(':');
        return sb.toString();
    }
}
