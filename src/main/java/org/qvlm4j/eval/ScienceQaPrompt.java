package org.qvlm4j.eval;

import org.qvlm4j.data.ScienceQaProblem;
import org.qvlm4j.io.text.PromptTemplate;

/**
 * The prompt of LLaVA-1.5's ScienceQA evaluation ({@code scripts/v1_5/eval/sqa.sh}:
 * {@code llava/eval/model_vqa_science.py --single-pred-prompt --conv-mode vicuna_v1} on the
 * CQM-A question file). The question part is
 * <pre>
 * Context: {hint}\n          (only when the hint is non-empty)
 * {question}\n
 * A. {choice 0}\n
 * B. {choice 1} ...          (one line per choice, no newline after the last)
 * </pre>
 * stripped of surrounding whitespace, as model_vqa_science.py strips the question text; then
 * {@code "\nAnswer with the option's letter from the given choices directly."} is appended, an
 * image problem gets {@code "<image>\n"} in front, and the result is the user message of the
 * conversation template.
 *
 * <p>Empty context: LLaVA's older converter ({@code scripts/convert_sqa_to_llava_base_prompt.py},
 * "Context: {context}\nQuestion: ...\nOptions: (A) ...") writes "Context: N/A" for an empty hint;
 * the LLaVA-1.5 CQM-A layout used here (reproduced the same way by lmms-eval's ScienceQA task)
 * leaves the Context line out instead, which is what this class does.
 */
public final class ScienceQaPrompt {
    /** The answer instruction of model_vqa_science.py's --single-pred-prompt. */
    public static final String INSTRUCTION = "Answer with the option's letter from the given choices directly.";

    private ScienceQaPrompt() {
    }

    /** Context, question and lettered choices (the CQM part), stripped. */
    public static String question(ScienceQaProblem p) {
        if (p.choices().size() > AnswerParser.OPTIONS.size()) {
            throw new IllegalArgumentException("problem " + p.pid() + ": key choices: expected at most "
                    + AnswerParser.OPTIONS.size() + " choices (letters A-E), got " + p.choices().size());
        }
        StringBuilder sb = new StringBuilder();
        if (p.hasText()) {
            sb.append("Context: ").append(p.hint()).append('\n');
        }
        sb.append(p.question());
        for (int i = 0; i < p.choices().size(); i++) {
            sb.append('\n').append(AnswerParser.OPTIONS.get(i)).append(". ").append(p.choices().get(i));
        }
        return sb.toString().strip();
    }

    /** The user message without the image placeholder: the question part and the instruction. */
    public static String message(ScienceQaProblem p) {
        return question(p) + "\n" + INSTRUCTION;
    }

    /** The full prompt text given to the tokenizer, ending with "ASSISTANT:". */
    public static String render(ScienceQaProblem p, PromptTemplate template) {
        return template.render(message(p), p.hasImage() ? 1 : 0);
    }
}
