package org.qvlm4j.eval;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.qvlm4j.data.ScienceQaProblem;
import org.qvlm4j.io.text.PromptTemplate;

/** The prompt builder against hand-written strings. */
class ScienceQaPromptTest {
    private static final String VICUNA = "A chat between a curious user and an artificial intelligence assistant. "
            + "The assistant gives helpful, detailed, and polite answers to the user's questions.";
    private static final String LLAVA = "A chat between a curious human and an artificial intelligence assistant. "
            + "The assistant gives helpful, detailed, and polite answers to the human's questions.";
    private static final String INSTR = "Answer with the option's letter from the given choices directly.";

    static ScienceQaProblem problem(String question, List<String> choices, String hint, boolean image) {
        return new ScienceQaProblem("7", question, choices, 0, hint, image ? "image.png" : null,
                image ? Path.of("images/7/image.png") : null, "natural science", "grade3", "c", "t", "s", "l", "so",
                "test", null);
    }

    @Test
    void hintAndImageThreeChoices() {
        ScienceQaProblem p = problem("Which colour is the circle?", List.of("red", "blue", "green"),
                "The circle is on the left.", true);
        assertEquals(VICUNA + " USER: <image>\nContext: The circle is on the left.\nWhich colour is the circle?\n"
                + "A. red\nB. blue\nC. green\n" + INSTR + " ASSISTANT:", ScienceQaPrompt.render(p, PromptTemplate.VICUNA_V1));
    }

    @Test
    void noHintNoImageTwoChoices() {
        ScienceQaProblem p = problem("Which word rhymes with cat?", List.of("hat", "dog"), "", false);
        assertEquals(LLAVA + " USER: Which word rhymes with cat?\nA. hat\nB. dog\n" + INSTR + " ASSISTANT:",
                ScienceQaPrompt.render(p, PromptTemplate.LLAVA_V1));
    }

    @Test
    void hintWithoutImageFiveChoices() {
        ScienceQaProblem p = problem("How many?", List.of("1", "2", "3", "4", "5"), "Tom has 3 hats.", false);
        assertEquals("Context: Tom has 3 hats.\nHow many?\nA. 1\nB. 2\nC. 3\nD. 4\nE. 5", ScienceQaPrompt.question(p));
        assertEquals(VICUNA + " USER: Context: Tom has 3 hats.\nHow many?\nA. 1\nB. 2\nC. 3\nD. 4\nE. 5\n" + INSTR
                + " ASSISTANT:", ScienceQaPrompt.render(p, PromptTemplate.VICUNA_V1));
    }

    @Test
    void imageWithoutHintFourChoicesHfTemplate() {
        ScienceQaProblem p = problem("Which shape is shown?", List.of("circle", "square", "star", "heart"), "", true);
        assertEquals("USER: <image>\nWhich shape is shown?\nA. circle\nB. square\nC. star\nD. heart\n" + INSTR
                + " ASSISTANT:", ScienceQaPrompt.render(p, PromptTemplate.LLAVA_HF));
    }

    @Test
    void outerWhitespaceIsStrippedInnerKept() {
        ScienceQaProblem p = problem(" Pick one. ", List.of("x ", "y  "), "", false);
        assertEquals("Pick one. \nA. x \nB. y", ScienceQaPrompt.question(p));
        ScienceQaProblem q = problem("Q?", List.of("x", "y"), "  padded hint ", false);
        assertEquals("Context:   padded hint \nQ?\nA. x\nB. y", ScienceQaPrompt.question(q));
    }

    @Test
    void moreThanFiveChoicesIsAnError() {
        ScienceQaProblem p = problem("Q?", List.of("a", "b", "c", "d", "e", "f"), "", false);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ScienceQaPrompt.question(p));
        assertEquals("problem 7: key choices: expected at most 5 choices (letters A-E), got 6", e.getMessage());
    }
}
