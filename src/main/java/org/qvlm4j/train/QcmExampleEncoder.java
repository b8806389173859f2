package org.qvlm4j.train;

import org.qvlm4j.eval.ScienceQaPrompt;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.function.Function;
import org.qvlm4j.data.ScienceQaProblem;
import org.qvlm4j.io.config.LlavaConfig;
import org.qvlm4j.io.image.ClipImageProcessor;
import org.qvlm4j.io.text.ImageTokens;
import org.qvlm4j.io.text.LlavaTokenizer;
import org.qvlm4j.io.text.PromptTemplate;
import org.qvlm4j.tensor.Ops;

/**
 * The built-in {@link ExampleEncoder}: a question-context-multiple-choice (QCM) user message, as in
 * LLaVA's ScienceQA scripts, rendered with a {@link PromptTemplate}, and the answer letter plus the
 * end-of-sequence token as the only supervised tokens:
 * <pre>
 *   [Context: {hint}\n] {question}\n A. {c0}\nB. {c1}\n... Answer with the option's letter from the given choices directly.
 * </pre>
 * With {@link AnswerStyle#REASONED} the supervised answer is the problem's solution followed by
 * "The answer is X." (LLaVA's reasoning-first ScienceQA answer, which its evaluation script parses
 * with the same regex); {@link AnswerStyle#STEPWISE} walks the options between the two; with
 * {@link AnswerStyle#LETTER} it is the letter alone.
 *
 * <p>The template puts {@code <image>\n} before the message when the problem has an image; the image
 * placeholder is then repeated once per image feature and the image is preprocessed with the
 * given processor. Input ids are {@code encode(prompt)} (with the tokenizer's BOS) followed by
 * {@code encode(letter)} without special tokens and the EOS id; labels are -100 on the prompt.
 *
 * <p>The user message is a function, so the evaluation's final prompt builder can replace
 * {@link ScienceQaPrompt#message} without touching the rest.
 */
public final class QcmExampleEncoder implements ExampleEncoder {
    /** LLaVA-1.5's ScienceQA answer instruction (model_vqa_science.py, --single-pred-prompt). */
    public static final String ANSWER_INSTRUCTION = "Answer with the option's letter from the given choices directly.";

    private final LlavaTokenizer tokenizer;
    private final LlavaConfig config;
    private final ClipImageProcessor images;
    private final PromptTemplate template;
    private final Function<ScienceQaProblem, String> message;
    private final AnswerStyle style;
    private boolean supervisePrompt;

    /** The manifest {@code qvlm4j train} writes into a model directory; it records the answer style. */
    public static final String TRAIN_MANIFEST = "train_manifest.json";

    /** What the model is taught to answer. */
    public enum AnswerStyle {
        /** The option's letter alone ("B"). */
        LETTER,
        /** The solution, then "The answer is B." (the letter alone when the problem has no solution text). */
        REASONED,
        /**
         * The solution, then the chosen option's text with its letter ("ice is B."), then "The answer
         * is B.". Naming the option right before its letter turns the step from answer to letter into
         * a lookup of the text just written, and the final letter into a copy of the one before.
         */
        LABELLED,
        /**
         * The solution, then the options in order, each written out with its letter and judged, up to
         * the right one: "A. ice is not it. B. steam is it. The answer is B.". Every step is local: the
         * text after a letter is copied from the prompt's option line, the judgement compares it with
         * the solution just written, and the final letter repeats the most recent one. No step reads
         * the letter standing before an option's text in the prompt, which a small model trained from
         * scratch learns slowly.
         */
        STEPWISE;

        /** The style of a lower-case name (letter, reasoned, labelled, stepwise); the error names where it came from. */
        public static AnswerStyle parse(String where, String value) {
            for (AnswerStyle s : values()) {
                if (s.name().equalsIgnoreCase(value)) {
                    return s;
                }
            }
            throw new IllegalArgumentException(where + ": expected 'letter', 'reasoned', 'labelled' or 'stepwise', got '"
                    + value + "'");
        }

        /**
         * The style a model directory's {@value #TRAIN_MANIFEST} records under {@code answer_style}
         * (what {@code qvlm4j train} taught it), else {@link #LETTER}: a model made elsewhere is
         * assumed to answer as LLaVA's ScienceQA prompt asks, with the letter.
         */
        public static AnswerStyle ofModel(Path modelDir) {
            Path f = modelDir.resolve(TRAIN_MANIFEST);
            if (!Files.isRegularFile(f)) {
                return LETTER;
            }
            JsonNode style;
            try {
                style = new ObjectMapper().readTree(Files.readAllBytes(f)).path("answer_style");
            } catch (IOException e) {
                throw new UncheckedIOException(f + ": cannot read the training manifest: " + e.getMessage(), e);
            }
            return style.isTextual() ? parse(f + " key answer_style", style.asText()) : LETTER;
        }

        /** The answer text for a problem. */
        public String answer(ScienceQaProblem p) {
            String letter = answerLetter(p);
            if (this == LETTER) {
                return letter;
            }
            String solution = p.solution() == null ? "" : p.solution().strip();
            String prefix = solution.isEmpty() ? "" : solution + " ";
            if (this == LABELLED) {
                prefix += p.choices().get(p.answer()) + " is " + letter + ". ";
            } else if (this == STEPWISE) {
                StringBuilder steps = new StringBuilder();
                for (int i = 0; i <= p.answer(); i++) {
                    steps.append((char) ('A' + i)).append(". ").append(p.choices().get(i))
                            .append(i == p.answer() ? " is it. " : " is not it. ");
                }
                prefix += steps;
            }
            return prefix + "The answer is " + letter + ".";
        }
    }

    /** A letter-answer encoder with the built-in {@link ScienceQaPrompt#message} and the VICUNA_V1 template. */
    public QcmExampleEncoder(LlavaTokenizer tokenizer, LlavaConfig config, ClipImageProcessor images) {
        this(tokenizer, config, images, AnswerStyle.LETTER);
    }

    /** An encoder with the built-in {@link ScienceQaPrompt#message} and the VICUNA_V1 template. */
    public QcmExampleEncoder(LlavaTokenizer tokenizer, LlavaConfig config, ClipImageProcessor images, AnswerStyle style) {
        this(tokenizer, config, images, PromptTemplate.VICUNA_V1, ScienceQaPrompt::message, style);
    }

    public QcmExampleEncoder(LlavaTokenizer tokenizer, LlavaConfig config, ClipImageProcessor images,
                             PromptTemplate template, Function<ScienceQaProblem, String> message) {
        this(tokenizer, config, images, template, message, AnswerStyle.LETTER);
    }

    public QcmExampleEncoder(LlavaTokenizer tokenizer, LlavaConfig config, ClipImageProcessor images,
                             PromptTemplate template, Function<ScienceQaProblem, String> message, AnswerStyle style) {
        this.style = style;
        this.tokenizer = tokenizer;
        this.config = config;
        this.images = images;
        this.template = template;
        this.message = message;
        if (!tokenizer.hasToken(PromptTemplate.IMAGE_PLACEHOLDER)
                || tokenizer.tokenToId(PromptTemplate.IMAGE_PLACEHOLDER) != config.imageTokenIndex()) {
            throw new IllegalArgumentException(tokenizer.directory() + ": tokenizer must map '" + PromptTemplate.IMAGE_PLACEHOLDER
                    + "' to image_token_index " + config.imageTokenIndex() + ", got "
                    + (tokenizer.hasToken(PromptTemplate.IMAGE_PLACEHOLDER) ? tokenizer.tokenToId(PromptTemplate.IMAGE_PLACEHOLDER) : "no such token"));
        }
    }

    /**
     * Also supervise the prompt's text tokens (next-token loss on everything but the BOS and the
     * image placeholders), not only the answer. A model trained from scratch has to learn to copy
     * words from the question and options into its answer; the prompt loss gives that skill many
     * more supervised positions per example than the answer alone.
     */
    public QcmExampleEncoder supervisePrompt(boolean on) {
        this.supervisePrompt = on;
        return this;
    }

    /**
     * A lookup drill made from a problem: the same problem with "The answer is {choice text}." put
     * before its hint, so the prompt states the answer and the example exercises only the step from
     * the answer's text to its option letter (which a model trained from scratch finds hardest: the
     * letter stands before the text it labels). Training data only; never used for evaluation.
     */
    public static ScienceQaProblem withAnswerInHint(ScienceQaProblem p) {
        String told = "The answer is " + p.choices().get(p.answer()) + ".";
        String hint = p.hint() == null || p.hint().isBlank() ? told : told + " " + p.hint();
        return new ScienceQaProblem(p.pid(), p.question(), p.choices(), p.answer(), hint, p.image(), p.imagePath(),
                p.subject(), p.grade(), p.category(), p.topic(), p.skill(), p.lecture(), p.solution(), p.split(), p.task());
    }

    /** The letter of the correct choice. */
    public static String answerLetter(ScienceQaProblem p) {
        return String.valueOf((char) ('A' + p.answer()));
    }

    /** The prompt ids the model sees at evaluation time (image placeholders expanded), without the answer. */
    public int[] promptIds(ScienceQaProblem p) {
        boolean image = p.hasImage();
        long[] ids = tokenizer.encode(template.render(message.apply(p), image ? 1 : 0));
        if (image) {
            ids = ImageTokens.expand(ids, config.imageTokenIndex(), 1, config.imageSeqLength());
        }
        return toInts(ids);
    }

    /** Pixel values (C, S, S) of the problem's image, or null when it has none. */
    public float[] pixels(ScienceQaProblem p) {
        return p.hasImage() ? images.preprocess(p.imagePath()).data() : null;
    }

    /** The input ids of a training example: the prompt, the answer in this encoder's style, EOS. */
    public int[] inputIds(ScienceQaProblem p) {
        return inputIds(promptIds(p), p);
    }

    private int[] inputIds(int[] prompt, ScienceQaProblem p) {
        int[] answer = toInts(tokenizer.encode(style.answer(p), false));
        int[] ids = java.util.Arrays.copyOf(prompt, prompt.length + answer.length + 1);
        System.arraycopy(answer, 0, ids, prompt.length, answer.length);
        ids[ids.length - 1] = tokenizer.eosId();
        return ids;
    }

    @Override
    public TrainingExample encode(ScienceQaProblem p) {
        int[] prompt = promptIds(p);
        int promptLength = prompt.length;
        int[] ids = inputIds(prompt, p);
        int T = ids.length;
        int[] labels = new int[T];
        java.util.Arrays.fill(labels, 0, promptLength, Ops.IGNORE_INDEX);
        if (supervisePrompt) {
            for (int i = 1; i < promptLength; i++) {
                if (ids[i] != config.imageTokenIndex()) {
                    labels[i] = ids[i];
                }
            }
        }
        System.arraycopy(ids, promptLength, labels, promptLength, T - promptLength); // the answer and EOS
        return new TrainingExample(pixels(p), ids, labels);
    }

    private static int[] toInts(long[] a) {
        int[] r = new int[a.length];
        for (int i = 0; i < a.length; i++) {
            r[i] = Math.toIntExact(a[i]);
        }
        return r;
    }
}
