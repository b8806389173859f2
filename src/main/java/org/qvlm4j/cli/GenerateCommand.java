package org.qvlm4j.cli;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import org.qvlm4j.io.config.LlavaConfig;
import org.qvlm4j.io.image.ClipImageProcessor;
import org.qvlm4j.io.image.PadMode;
import org.qvlm4j.io.text.ImageTokens;
import org.qvlm4j.io.text.LlavaTokenizer;
import org.qvlm4j.io.text.PromptTemplate;
import org.qvlm4j.io.text.StreamingDecoder;
import org.qvlm4j.model.GenerationConfig;
import org.qvlm4j.model.Generator;
import org.qvlm4j.model.LlavaModel;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

/**
 * {@code qvlm4j generate}: answer a prompt about an image, streaming the answer to stdout and the
 * timings (prefill and decode tokens/s) to stderr.
 */
@Command(name = "generate", mixinStandardHelpOptions = true,
        description = "Answer a prompt about an image with a LLaVA model, streaming tokens as they are made.")
final class GenerateCommand implements Callable<Integer> {

    @Option(names = "--model", required = true, paramLabel = "DIR", description = "Model directory.")
    Path modelDir;

    @Option(names = "--image", paramLabel = "IMG", description = "PNG or JPEG image. Without it the prompt is text only.")
    Path image;

    @Option(names = "--prompt", required = true, paramLabel = "TEXT", description = "The question or instruction.")
    String prompt;

    @Option(names = "--max-new-tokens", defaultValue = "64", paramLabel = "N", description = "Default: ${DEFAULT-VALUE}.")
    int maxNewTokens;

    @Option(names = "--temperature", defaultValue = "0", paramLabel = "T",
            description = "0 decodes greedily; above 0 samples (default: ${DEFAULT-VALUE}).")
    double temperature;

    @Option(names = "--top-p", defaultValue = "1.0", paramLabel = "P", description = "Nucleus sampling mass (default: ${DEFAULT-VALUE}).")
    double topP;

    @Option(names = "--seed", defaultValue = "0", paramLabel = "S", description = "Sampling seed (default: ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = "--template", defaultValue = "VICUNA_V1", paramLabel = "NAME",
            description = "Prompt template: ${COMPLETION-CANDIDATES} (default: ${DEFAULT-VALUE}).")
    PromptTemplate template;

    @Option(names = "--pad-to-square", description = "Pad the image to a square of the mean colour instead of center-cropping (LLaVA's 'pad').")
    boolean padToSquare;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() {
        if (maxNewTokens < 1) {
            throw new IllegalArgumentException("--max-new-tokens must be >= 1, got " + maxNewTokens);
        }
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        GenerationConfig gen = temperature == 0 ? GenerationConfig.greedy(maxNewTokens)
                : new GenerationConfig(maxNewTokens, temperature, topP, seed);
        try (LlavaTokenizer tok = LlavaTokenizer.load(modelDir);
             LlavaModel model = LlavaModel.load(modelDir)) {
            LlavaConfig cfg = model.config();
            float[] pixels = null; // (3, S, S)
            long[] promptIds;
            if (image != null) {
                pixels = ClipImageProcessor.forModelDir(modelDir, padToSquare ? PadMode.PAD_TO_SQUARE : PadMode.NONE)
                        .preprocess(image).data();
                int imageTokenId = imageTokenId(tok, cfg);
                promptIds = ImageTokens.expand(tok.encode(template.render(prompt, 1)), imageTokenId, 1,
                        cfg.imageSeqLength());
            } else {
                promptIds = tok.encode(template.render(prompt, 0));
            }
            int[] ids = new int[promptIds.length];
            for (int i = 0; i < ids.length; i++) {
                ids[i] = Math.toIntExact(promptIds[i]);
            }
            StreamingDecoder text = tok.streamingDecoder();
            long[] times = new long[2]; // time of the first and of the latest token
            int[] count = {0};
            long start = System.nanoTime();
            new Generator(model).generate(ids, pixels, gen, (token, index) -> {
                long now = System.nanoTime();
                if (index == 0) {
                    times[0] = now;
                }
                times[1] = now;
                count[0]++;
                if (!cfg.textConfig().isEos(token)) {
                    out.print(text.push(token));
                    out.flush();
                }
            });
            out.println(text.finish());
            out.flush();
            double prefillS = (times[0] - start) / 1e9;
            double decodeS = (times[1] - times[0]) / 1e9;
            err.printf("prefill: %d tokens in %.3f s (%.1f tokens/s, includes the vision tower and the first token)%n",
                    ids.length, prefillS, ids.length / prefillS);
            if (count[0] > 1) {
                err.printf("decode:  %d tokens in %.3f s (%.2f tokens/s)%n", count[0] - 1, decodeS, (count[0] - 1) / decodeS);
            }
            err.flush();
        }
        return 0;
    }

    /** The tokenizer's id of the image placeholder, which must be the config's image token. */
    private static int imageTokenId(LlavaTokenizer tok, LlavaConfig cfg) {
        if (!tok.hasToken(PromptTemplate.IMAGE_PLACEHOLDER)) {
            throw new IllegalArgumentException(tok.directory() + ": tokenizer has no '" + PromptTemplate.IMAGE_PLACEHOLDER
                    + "' token; expected it with id image_token_index = " + cfg.imageTokenIndex());
        }
        int id = tok.tokenToId(PromptTemplate.IMAGE_PLACEHOLDER);
        if (id != cfg.imageTokenIndex()) {
            throw new IllegalArgumentException(tok.directory() + ": tokenizer maps '" + PromptTemplate.IMAGE_PLACEHOLDER
                    + "' to id " + id + " but config.json image_token_index is " + cfg.imageTokenIndex());
        }
        return id;
    }
}
