package org.qvlm4j.train;

import java.nio.file.Path;
import java.util.List;
import org.qvlm4j.data.ScienceQaDataset;
import org.qvlm4j.data.ScienceQaProblem;
import org.qvlm4j.data.SynthBenchmark;
import org.qvlm4j.data.WordLevelTokenizerBuilder;
import org.qvlm4j.io.AtomicFiles;
import org.qvlm4j.io.config.LlavaConfig;
import org.qvlm4j.io.image.ClipImageProcessor;
import org.qvlm4j.io.image.ClipPreprocessConfig;
import org.qvlm4j.io.image.PadMode;
import org.qvlm4j.io.text.LlavaTokenizer;
import org.qvlm4j.io.text.PromptTemplate;

/**
 * A synthetic benchmark's train split and a model directory for it (the word-level tokenizer
 * {@code train} builds, a square CLIP preprocessor), with a tiny config of one vision layer and two
 * text layers over that tokenizer. The caller closes the tokenizer.
 */
record BenchmarkModelDir(List<ScienceQaProblem> problems, LlavaTokenizer tok, LlavaConfig cfg, ClipImageProcessor images) {

    static BenchmarkModelDir write(Path dir, SynthBenchmark.Options data, int imageSize) {
        Path sq = dir.resolve("sq");
        SynthBenchmark.write(sq, data, null);
        Path model = dir.resolve("model");
        WordLevelTokenizerBuilder.writeForBenchmark(model, sq);
        AtomicFiles.writeString(model.resolve(ClipPreprocessConfig.FILE_NAME), ClipPreprocessConfig.squareJson(imageSize));
        LlavaTokenizer tok = LlavaTokenizer.load(model);
        LlavaConfig cfg = new ModelShape(imageSize, 8, 16, 1, 1, 32, 1, 2, 2, 256)
                .toConfig(tok.vocabSize(), tok.tokenToId(PromptTemplate.IMAGE_PLACEHOLDER), tok.bosId(), tok.eosId());
        return new BenchmarkModelDir(ScienceQaDataset.load(sq).split("train"), tok, cfg,
                ClipImageProcessor.forModelDir(model, PadMode.NONE));
    }
}
