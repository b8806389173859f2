package org.qvlm4j.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qvlm4j.data.ScienceQaProblem;
import org.qvlm4j.data.SynthBenchmark;
import org.qvlm4j.eval.AnswerParser;
import org.qvlm4j.io.config.LlavaConfig;
import org.qvlm4j.io.image.ClipImageProcessor;
import org.qvlm4j.io.text.LlavaTokenizer;
import org.qvlm4j.tensor.Ops;

/**
 * The supervised part of an encoded example, read back through the tokenizer's decoder and
 * LLaVA's answer parser: a letter answer and a reasoned answer both parse to the problem's answer,
 * the reasoned one starts with the solution, and prompt supervision labels exactly the prompt's
 * text tokens after BOS.
 */
class QcmExampleEncoderTest {
    private static final int IMAGE_SIZE = 16;

    @TempDir
    static Path dir;
    static List<ScienceQaProblem> problems;
    static LlavaTokenizer tok;
    static LlavaConfig cfg;
    static ClipImageProcessor images;

    @BeforeAll
    static void benchmark() {
        BenchmarkModelDir b = BenchmarkModelDir.write(dir,
                new SynthBenchmark.Options(11, 400, 0, 0, SynthBenchmark.MIN_IMAGE_SIZE), IMAGE_SIZE);
        problems = b.problems();
        tok = b.tok();
        cfg = b.cfg();
        images = b.images();
    }

    @AfterAll
    static void close() {
        tok.close();
    }

    /** The supervised ids of an example, in order, without the final EOS (which is checked). */
    private static long[] answerIds(TrainingExample ex, int promptLength) {
        int[] ids = ex.inputIds();
        int[] labels = ex.labels();
        assertEquals(tok.eosId(), ids[ids.length - 1]);
        assertEquals(tok.eosId(), labels[labels.length - 1]);
        long[] out = new long[ids.length - 1 - promptLength];
        for (int i = promptLength; i < ids.length - 1; i++) {
            assertEquals(ids[i], labels[i], "answer position " + i + " is supervised with its own id");
            out[i - promptLength] = ids[i];
        }
        return out;
    }

    @Test
    void everyAnswerStyleParsesToTheAnswer() {
        QcmExampleEncoder letter = new QcmExampleEncoder(tok, cfg, images, QcmExampleEncoder.AnswerStyle.LETTER);
        QcmExampleEncoder reasoned = new QcmExampleEncoder(tok, cfg, images, QcmExampleEncoder.AnswerStyle.REASONED);
        QcmExampleEncoder labelled = new QcmExampleEncoder(tok, cfg, images, QcmExampleEncoder.AnswerStyle.LABELLED);
        QcmExampleEncoder stepwise = new QcmExampleEncoder(tok, cfg, images, QcmExampleEncoder.AnswerStyle.STEPWISE);
        for (ScienceQaProblem p : problems) {
            int promptLength = letter.promptIds(p).length;
            String l = tok.decode(answerIds(letter.encode(p), promptLength));
            assertEquals(String.valueOf((char) ('A' + p.answer())), l);
            assertEquals(p.answer(), AnswerParser.parse(l, p.choices().size()).index());

            String r = tok.decode(answerIds(reasoned.encode(p), promptLength));
            assertEquals(p.answer(), AnswerParser.parse(r, p.choices().size()).index(), r);
            String solution = tok.decode(tok.encode(p.solution(), false));
            assertTrue(r.startsWith(solution) && r.endsWith("The answer is " + l + "."), p.pid() + ": " + r);

            String lab = tok.decode(answerIds(labelled.encode(p), promptLength));
            assertEquals(p.answer(), AnswerParser.parse(lab, p.choices().size()).index(), lab);
            String named = tok.decode(tok.encode(p.choices().get(p.answer()) + " is " + l + ". The answer is " + l + ".", false));
            assertTrue(lab.startsWith(solution) && lab.endsWith(named), p.pid() + ": " + lab);

            String steps = tok.decode(answerIds(stepwise.encode(p), promptLength));
            assertEquals(p.answer(), AnswerParser.parse(steps, p.choices().size()).index(), steps);
            assertTrue(steps.startsWith(solution) && steps.endsWith("is it. The answer is " + l + "."), p.pid() + ": " + steps);
            // One judged line per option up to the answer, each naming the option as the prompt lists it.
            String walk = steps.substring(solution.length());
            for (int i = 0; i < p.choices().size(); i++) {
                String line = tok.decode(tok.encode((char) ('A' + i) + ". " + p.choices().get(i), false));
                assertEquals(i <= p.answer(), walk.contains(line + (i == p.answer() ? " is it." : " is not it.")),
                        p.pid() + " option " + i + ": " + steps);
            }
        }
    }

    @Test
    void lookupDrillStatesTheAnswerInTheContextAndKeepsTheTarget() {
        QcmExampleEncoder enc = new QcmExampleEncoder(tok, cfg, images, QcmExampleEncoder.AnswerStyle.REASONED);
        for (ScienceQaProblem p : problems.subList(0, 60)) {
            ScienceQaProblem drill = QcmExampleEncoder.withAnswerInHint(p);
            String told = "The answer is " + p.choices().get(p.answer()) + ".";
            assertTrue(org.qvlm4j.eval.ScienceQaPrompt.message(drill).startsWith("Context: " + told), drill.hint());
            assertEquals(p.hint().isEmpty() ? told : told + " " + p.hint(), drill.hint());
            TrainingExample a = enc.encode(p);
            TrainingExample b = enc.encode(drill);
            int pa = enc.promptIds(p).length;
            int pb = enc.promptIds(drill).length;
            assertTrue(pb > pa);
            assertEquals(tok.decode(answerIds(a, pa)), tok.decode(answerIds(b, pb)), "same supervised answer");
        }
    }

    @Test
    void promptSupervisionLabelsEveryPromptTextToken() {
        QcmExampleEncoder enc = new QcmExampleEncoder(tok, cfg, images, QcmExampleEncoder.AnswerStyle.REASONED);
        QcmExampleEncoder full = new QcmExampleEncoder(tok, cfg, images, QcmExampleEncoder.AnswerStyle.REASONED)
                .supervisePrompt(true);
        int withImage = 0;
        for (ScienceQaProblem p : problems) {
            TrainingExample a = enc.encode(p);
            TrainingExample b = full.encode(p);
            int[] prompt = enc.promptIds(p);
            assertEquals(a.inputIds().length, b.inputIds().length);
            for (int i = 0; i < a.inputIds().length; i++) {
                assertEquals(a.inputIds()[i], b.inputIds()[i]);
                int expected;
                if (i >= prompt.length) {
                    expected = a.labels()[i];
                } else if (i == 0 || prompt[i] == cfg.imageTokenIndex()) {
                    expected = Ops.IGNORE_INDEX;
                } else {
                    expected = prompt[i];
                }
                assertEquals(expected, b.labels()[i], p.pid() + " position " + i);
                assertEquals(i < prompt.length ? Ops.IGNORE_INDEX : b.labels()[i], a.labels()[i]);
            }
            withImage += p.hasImage() ? 1 : 0;
        }
        assertTrue(withImage > 0 && withImage < problems.size(), "both kinds of problem are covered");
    }
}
