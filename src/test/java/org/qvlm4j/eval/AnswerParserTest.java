package org.qvlm4j.eval;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** Hand-written cases of eval_science_qa.py's parsing (letter, then get_pred_idx). */
class AnswerParserTest {

    @ParameterizedTest(name = "[{index}] ''{0}'' with {1} choices -> {2} / {3}")
    @CsvSource(delimiter = '|', nullValues = "NULL", quoteCharacter = '"', value = {
        // a bare option letter
        "A|3|A|0",
        "E|5|E|4",
        // a letter past the choices is parsed but names no option
        "E|3|E|-1",
        "C|2|C|-1",
        // lower case and padding are not letters (the evaluator strips before parsing)
        "a|3|NULL|-1",
        "\" A\"|3|NULL|-1",
        // letter, period, space at the start
        "B. blue|3|B|1",
        "\"A. \"|2|A|0",
        "D. four. The answer is A.|4|D|3",
        // a period without the space, or too short, falls through to the regex
        "B.|3|NULL|-1",
        "B.blue|3|NULL|-1",
        "(B) blue|3|NULL|-1",
        "Answer: B|3|NULL|-1",
        // 'The answer is X' needs one more character after the letter (Python's '.')
        "The answer is C.|3|C|2",
        "The answer is C|3|NULL|-1",
        "The answer is C because|3|C|2",
        "I think The answer is B, clearly|3|B|1",
        // findall must find exactly one match
        "The answer is A. The answer is B.|3|NULL|-1",
        "The answer is A. The answer is A.|3|NULL|-1",
        // the regex takes any capital, then get_pred_idx rejects it
        "The answer is Z.|3|Z|-1",
        "The answer is D.|3|D|-1",
        // case matters in the phrase
        "the answer is B.|3|NULL|-1",
        // nothing
        "\"\"|3|NULL|-1",
        "FAILED|3|NULL|-1",
    })
    void parsesLikeEvalScienceQa(String text, int choices, String letter, int index) {
        AnswerParser.Parsed p = AnswerParser.parse(text, choices);
        assertEquals(letter, p.letter());
        assertEquals(index, p.index());
        assertEquals(index < 0, p.failed());
    }

    @Test
    void regexDotStopsOnlyAtNewline() {
        // Python's '.' matches every character but \n; Java's would also stop at \r.
        assertEquals(-1, AnswerParser.parse("The answer is C\nx", 3).index());
        assertEquals(2, AnswerParser.parse("The answer is C\rx", 3).index());
        assertEquals(2, AnswerParser.parse("The answer is C\u2028x", 3).index());
    }
}
