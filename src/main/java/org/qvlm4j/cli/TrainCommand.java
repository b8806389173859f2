package org.qvlm4j.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import java.util.stream.Stream;
import org.qvlm4j.data.Scene;
import org.qvlm4j.data.ScienceQaDataset;
import org.qvlm4j.data.WordLevelTokenizerBuilder;
import org.qvlm4j.data.ScienceQaProblem;
import org.qvlm4j.data.SynthBenchmark;
import org.qvlm4j.io.AtomicFiles;
import org.qvlm4j.io.config.LlavaConfig;
import org.qvlm4j.io.image.ClipImageProcessor;
import org.qvlm4j.io.image.ClipPreprocessConfig;
import org.qvlm4j.io.image.PadMode;
import org.qvlm4j.io.image.PillowFilter;
import org.qvlm4j.io.text.LlavaTokenizer;
import org.qvlm4j.io.text.PromptTemplate;
import org.qvlm4j.kernels.Parallel;
import org.qvlm4j.tensor.ParallelLoop;
import org.qvlm4j.train.ExampleEncoder;
import org.qvlm4j.train.LossPlot;
import org.qvlm4j.train.ModelShape;
import org.qvlm4j.train.QcmExampleEncoder;
import org.qvlm4j.train.CopyAttention;
import org.qvlm4j.train.SlotAttention;
import org.qvlm4j.train.TrainableLlava;
import org.qvlm4j.train.Trainer;
import org.qvlm4j.train.TrainingExample;
import org.qvlm4j.train.VisionPretrainer;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code qvlm4j train}: trains a LLaVA from scratch on a ScienceQA-format directory (such as the
 * one {@code qvlm4j synth} writes) and writes an HF model directory the runtime loads:
 * config.json, model.safetensors, tokenizer.json, tokenizer_config.json, preprocessor_config.json,
 * plus training_log.csv, loss.png and train_manifest.json. Checkpoints go to {@code OUT/checkpoints};
 * {@code --resume} continues from the latest one. Progress goes to stderr. Exit code 2 for bad
 * input, including an existing non-empty output directory without {@code --resume}.
 *
 * <p>The tokenizer is copied from {@code --tokenizer}. Training examples are built by
 * {@link QcmExampleEncoder} (VICUNA_V1 template, QCM message; the answer, by
 * {@code --answer-style}, the letter or the solution then "The answer is X.", plus EOS supervised).
 */
@Command(name = "train", mixinStandardHelpOptions = true,
        description = "Train a LLaVA-architecture model from scratch on a ScienceQA-format benchmark.")
public final class TrainCommand implements Callable<Integer> {

    /** Exit code for bad input, the same as Main's. */
    static final int EXIT_BAD_INPUT = 2;
    static final String CHECKPOINTS = "checkpoints";
    static final String MANIFEST = QcmExampleEncoder.TRAIN_MANIFEST;
    static final String PLOT = "loss.png";
    private static final List<String> TOKENIZER_FILES = List.of(LlavaTokenizer.TOKENIZER_FILE, LlavaTokenizer.CONFIG_FILE,
            "special_tokens_map.json");
    /** Text positions the config allows (RoPE needs no table; this only bounds the runtime's cache). */
    static final int MAX_POSITIONS = 2048;
    /** Separates the drill draw from the shuffle and initialisation draws of the same seed. */
    private static final long DRILL_SEED_SALT = 0x6c6f6f6b7570L;
    private static final long PRETRAIN_SEED_SALT = 0x766973696f6eL;
    /** Written into OUT by the vision pretraining stage; the manifest repeats it. */
    static final String PRETRAIN_FILE = "vision_pretrain.json";
    private static final String VISION_TOWER_PREFIX = "vision_tower.";
    private static final ObjectMapper JSON = new ObjectMapper();

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Option(names = "--data", required = true, paramLabel = "DIR", description = "ScienceQA-format directory (problems.json, pid_splits.json).")
    Path data;

    @Option(names = "--out", required = true, paramLabel = "DIR", description = "Output model directory; must not exist or be empty unless --resume.")
    Path out;

    @Option(names = "--tokenizer", paramLabel = "DIR", description = "Directory with tokenizer.json and tokenizer_config.json; "
            + "its <image> token becomes image_token_index. Default: a word-level tokenizer built from the data's vocab.txt.")
    Path tokenizerDir;

    @Option(names = "--seed", required = true, description = "Seed of the initialisation and the shuffles.")
    long seed;

    @Option(names = "--split", defaultValue = "train", description = "Split to train on (default: ${DEFAULT-VALUE}).")
    String split;

    @Option(names = "--limit", defaultValue = "0", description = "Use only the first N problems of the split; 0 uses all.")
    int limit;

    @Option(names = "--epochs", defaultValue = "10", description = "Default: ${DEFAULT-VALUE}.")
    int epochs;

    @Option(names = "--batch", defaultValue = "16", description = "Examples per step (default: ${DEFAULT-VALUE}).")
    int batch;

    @Option(names = "--lr", defaultValue = "1e-3", description = "Peak learning rate (default: ${DEFAULT-VALUE}).")
    double lr;

    @Option(names = "--min-lr-ratio", defaultValue = "0.1", description = "Final lr / peak lr (default: ${DEFAULT-VALUE}).")
    double minLrRatio;

    @Option(names = "--warmup", defaultValue = "0.05", description = "Fraction of steps in warm-up (default: ${DEFAULT-VALUE}).")
    double warmup;

    @Option(names = "--weight-decay", defaultValue = "0.01", description = "Default: ${DEFAULT-VALUE}.")
    double weightDecay;

    @Option(names = "--clip", defaultValue = "1.0", description = "Global gradient-norm limit (default: ${DEFAULT-VALUE}).")
    double clip;

    @Option(names = "--image-size", defaultValue = "64", paramLabel = "PX", description = "Model input size (default: ${DEFAULT-VALUE}).")
    int imageSize;

    @Option(names = "--patch", defaultValue = "8", paramLabel = "P", description = "Patch size (default: ${DEFAULT-VALUE}).")
    int patch;

    @Option(names = "--vision-hidden", defaultValue = "128", description = "Default: ${DEFAULT-VALUE}.")
    int visionHidden;

    @Option(names = "--vision-layers", defaultValue = "3", description = "Default: ${DEFAULT-VALUE}.")
    int visionLayers;

    @Option(names = "--text-hidden", defaultValue = "192", description = "Default: ${DEFAULT-VALUE}.")
    int textHidden;

    @Option(names = "--layers", defaultValue = "4", description = "Text decoder layers (default: ${DEFAULT-VALUE}).")
    int layers;

    @Option(names = "--head-dim", defaultValue = "32", description = "Attention head size of both towers (default: ${DEFAULT-VALUE}).")
    int headDim;

    @Option(names = "--kv-heads", defaultValue = "0", description = "Text key/value heads; 0 means as many as query heads.")
    int kvHeads;

    @Option(names = "--vision-pretrain-steps", defaultValue = "0", paramLabel = "N", description = "Before training, N steps of "
            + "perception pretraining of the vision tower and projector: a linear head names each patch's palette colour "
            + "(skipped when resuming from a checkpoint); default: ${DEFAULT-VALUE}.")
    int visionPretrainSteps;

    @Option(names = "--freeze-vision", description = "Keep the vision tower's weights as they are after initialisation, --init "
            + "or the perception stage (LLaVA keeps its CLIP frozen); the projector and language model train.")
    boolean freezeVision;

    @Option(names = "--vision-pretrain-batch", defaultValue = "64", description = "Images per pretraining step (default: ${DEFAULT-VALUE}).")
    int visionPretrainBatch;

    @Option(names = "--vision-pretrain-lr", defaultValue = "2e-3", description = "Peak pretraining learning rate (default: ${DEFAULT-VALUE}).")
    double visionPretrainLr;

    @Option(names = "--vision-pretrain-grid", defaultValue = "1", paramLabel = "G", description = "Cut each patch into G x G "
            + "cells and name the colour of every cell, so that the features also say where in the patch a colour lies; "
            + "G must divide the patch size (default: ${DEFAULT-VALUE}, the patch's colour).")
    int visionPretrainGrid;

    @Option(names = "--vision-pretrain-places", description = "In the perception stage, also name each patch's row and "
            + "column on the patch grid, so that the frozen features say where a colour is, not only which.")
    boolean visionPretrainPlaces;

    @Option(names = "--vision-pretrain-slots", description = "In the perception stage, also make the features of the "
            + "first patches one slot per palette colour, naming whether that colour is in the picture, as a square or "
            + "another shape, and the row and column of the 8 x 8 grid that holds it.")
    boolean visionPretrainSlots;

    @Option(names = "--vision-pretrain-counts", description = "With --vision-pretrain-slots, each slot also names how "
            + "many shapes of its colour the picture has (0 to 9) and the shape of the largest; --slot-attention-weight "
            + "then also teaches the head to read the slot where the answer names a colour and then a count or a shape.")
    boolean visionPretrainCounts;

    @Option(names = "--slot-attention-weight", defaultValue = "0", paramLabel = "W", description = "Also teach one "
            + "attention head to read a colour's slot: where the answer names a palette colour and then a number (a map "
            + "coordinate), that head's attention from the colour word is trained, by cross-entropy times W, onto image "
            + "token k of colour k (the slots of --vision-pretrain-slots). Default: ${DEFAULT-VALUE} (off).")
    double slotAttentionWeight;

    @Option(names = "--slot-attention-layer", defaultValue = "0", paramLabel = "L", description = "Decoder layer of the head "
            + "--slot-attention-weight teaches (default: ${DEFAULT-VALUE}, the first).")
    int slotAttentionLayer;

    @Option(names = "--slot-attention-head", defaultValue = "0", paramLabel = "H", description = "Query head of that layer "
            + "(default: ${DEFAULT-VALUE}).")
    int slotAttentionHead;

    @Option(names = "--copy-attention-weight", defaultValue = "0", paramLabel = "W", description = "Also teach one "
            + "attention head to find the number an answer copies from the prompt: where the answer writes a number "
            + "after an item whose one prompt fact states it (\"cup 4\" after \"The cup is 4 degrees.\"), that head's "
            + "attention is trained, by cross-entropy times W, onto the number in the prompt. Default: ${DEFAULT-VALUE} (off).")
    double copyAttentionWeight;

    @Option(names = "--copy-attention-layer", defaultValue = "1", paramLabel = "L", description = "Decoder layer of the head "
            + "--copy-attention-weight teaches (default: ${DEFAULT-VALUE}, the second: a key must already hold the "
            + "words before its number).")
    int copyAttentionLayer;

    @Option(names = "--copy-attention-head", defaultValue = "0", paramLabel = "H", description = "Query head of that layer "
            + "(default: ${DEFAULT-VALUE}).")
    int copyAttentionHead;

    @Option(names = "--vision-pretrain-word-head", description = "In the perception stage, name each patch's colour "
            + "through the language model's own input embeddings of the colour words (trained with it), so that a feature "
            + "of a red patch points where the word 'red' does.")
    boolean visionPretrainWordHead;

    @Option(names = "--pack", defaultValue = "1", description = "Examples per forward: each batch is run as packs of this many "
            + "examples stacked into one sequence of rows (larger products; attention stays within each example). "
            + "Results depend on it (summation order); default: ${DEFAULT-VALUE}.")
    int pack;

    @Option(names = "--workers", defaultValue = "0", description = "Threads computing examples concurrently; 0 = available processors. "
            + "Results do not depend on it.")
    int workers;

    @Option(names = "--checkpoint-every", defaultValue = "200", description = "Steps between checkpoints (default: ${DEFAULT-VALUE}).")
    int checkpointEvery;

    @Option(names = "--max-steps", defaultValue = "0", description = "Stop after this many steps in total (a checkpoint is kept; "
            + "--resume continues); 0 runs all epochs.")
    int maxSteps;

    @Option(names = "--log-every", defaultValue = "10", description = "Steps between progress lines (default: ${DEFAULT-VALUE}).")
    int logEvery;

    @Option(names = "--answer-style", defaultValue = "reasoned", paramLabel = "STYLE",
            description = "Supervised answer: 'letter' (the letter alone), 'reasoned' (the problem's solution, then "
                    + "\"The answer is X.\"), 'labelled' (the solution, \"<option text> is X.\", then \"The answer is X.\") "
                    + "or 'stepwise' (the solution, then "
                    + "each option up to the right one written out and judged, \"A. ice is not it. B. steam is it.\", then "
                    + "\"The answer is B.\"; "
                    + "default: ${DEFAULT-VALUE}).")
    String answerStyle;

    @Option(names = "--prompt-loss", negatable = true, defaultValue = "true", fallbackValue = "true",
            description = "Also supervise the prompt's text tokens (all but BOS and image placeholders), not only the answer "
                    + "(default: ${DEFAULT-VALUE}).")
    boolean promptLoss;

    @Option(names = "--lookup-drills", defaultValue = "0", paramLabel = "F",
            description = "Add, for this fraction of the problems (drawn with the seed), a drill copy whose hint starts with "
                    + "\"The answer is <choice text>.\", which trains the step from the answer's text to its letter "
                    + "(default: ${DEFAULT-VALUE}).")
    double lookupDrills;

    @Option(names = "--init", paramLabel = "DIR", description = "Start from this model's weights (a train output or one of its "
            + "checkpoints) instead of a random initialisation; its config.json sets the shape (the shape options are ignored) "
            + "and its tokenizer is used unless --tokenizer is given.")
    Path init;

    @Option(names = "--resume", description = "Continue from the latest checkpoint in OUT/checkpoints.")
    boolean resume;

    @Override
    public Integer call() {
        PrintWriter err = spec.commandLine().getErr();
        PrintWriter stdout = spec.commandLine().getOut();
        try {
            return run(stdout, err);
        } catch (IllegalArgumentException | UncheckedIOException e) {
            err.println("qvlm4j train: " + e.getMessage());
            err.flush();
            return EXIT_BAD_INPUT;
        }
    }

    private int run(PrintWriter stdout, PrintWriter err) {
        long wallStart = System.nanoTime();
        if (!Files.isDirectory(data)) {
            throw new IllegalArgumentException("--data " + data + ": no such directory (expected a ScienceQA-format directory "
                    + "with " + ScienceQaDataset.PROBLEMS_FILE + ")");
        }
        if (tokenizerDir != null && (!Files.isDirectory(tokenizerDir)
                || !Files.isRegularFile(tokenizerDir.resolve(LlavaTokenizer.TOKENIZER_FILE)))) {
            throw new IllegalArgumentException("--tokenizer " + tokenizerDir + ": expected a directory with "
                    + LlavaTokenizer.TOKENIZER_FILE);
        }
        if (init != null) {
            if (!Files.isRegularFile(init.resolve("config.json")) || !Files.isRegularFile(init.resolve("model.safetensors"))) {
                throw new IllegalArgumentException("--init " + init + ": expected a model directory with config.json and "
                        + "model.safetensors");
            }
            if (tokenizerDir == null) {
                tokenizerDir = init;
            }
            imageSize = LlavaConfig.load(init).visionConfig().imageSize();
        }
        if (!resume && isNonEmptyDirectory(out)) {
            throw new IllegalArgumentException("--out " + out + ": directory exists and is not empty; choose a new directory "
                    + "or pass --resume to continue its run");
        }
        if (Files.exists(out) && !Files.isDirectory(out)) {
            throw new IllegalArgumentException("--out " + out + ": exists and is not a directory");
        }
        if (workers == 0) {
            workers = Runtime.getRuntime().availableProcessors();
        }
        // the workers already fill the processors: an op splitting its rows over more threads only
        // adds hand-offs (results are the same bits for any split); -Dqvlm4j.threads still decides
        if (System.getProperty(Parallel.THREADS_PROPERTY) == null) {
            ParallelLoop.setThreads(Math.max(1, Runtime.getRuntime().availableProcessors() / workers));
        }
        if (!(lookupDrills >= 0 && lookupDrills <= 1)) {
            throw new IllegalArgumentException("--lookup-drills must be in [0, 1], got " + lookupDrills);
        }
        if (logEvery < 1) {
            throw new IllegalArgumentException("--log-every must be >= 1, got " + logEvery);
        }
        if (headDim < 2 || visionHidden % headDim != 0 || textHidden % headDim != 0) {
            throw new IllegalArgumentException("--head-dim " + headDim + " must divide --vision-hidden " + visionHidden
                    + " and --text-hidden " + textHidden);
        }
        QcmExampleEncoder.AnswerStyle style = QcmExampleEncoder.AnswerStyle.parse("--answer-style", answerStyle);
        Trainer.Options options = new Trainer.Options(epochs, batch, lr, minLrRatio, warmup, weightDecay, clip, seed,
                checkpointEvery, workers, maxSteps, pack);
        int patchSide = init != null ? LlavaConfig.load(init).visionConfig().patchSize() : patch;
        if (visionPretrainGrid < 1 || patchSide % visionPretrainGrid != 0) {
            throw new IllegalArgumentException("--vision-pretrain-grid " + visionPretrainGrid + " must divide the patch size "
                    + patchSide);
        }
        if (visionPretrainGrid != 1 && visionPretrainSteps == 0) {
            throw new IllegalArgumentException("--vision-pretrain-grid " + visionPretrainGrid
                    + " needs --vision-pretrain-steps N > 0 (the grid is a setting of that stage)");
        }
        if (visionPretrainWordHead && (visionPretrainSteps == 0 || visionPretrainGrid != 1)) {
            throw new IllegalArgumentException("--vision-pretrain-word-head: expected with --vision-pretrain-steps N > 0 "
                    + "and --vision-pretrain-grid 1, got steps " + visionPretrainSteps + " and grid " + visionPretrainGrid);
        }
        if (visionPretrainPlaces && visionPretrainSteps == 0) {
            throw new IllegalArgumentException("--vision-pretrain-places needs --vision-pretrain-steps N > 0 (the places are "
                    + "a setting of that stage)");
        }
        if (visionPretrainSlots && visionPretrainSteps == 0) {
            throw new IllegalArgumentException("--vision-pretrain-slots needs --vision-pretrain-steps N > 0 (the slots are "
                    + "a setting of that stage)");
        }
        if (visionPretrainCounts && !visionPretrainSlots) {
            throw new IllegalArgumentException("--vision-pretrain-counts needs --vision-pretrain-slots (counts and shapes "
                    + "are slot labels)");
        }
        if (visionPretrainSlots) {
            var v = init != null ? LlavaConfig.load(init).visionConfig() : null;
            int side = v != null ? v.imageSize() / v.patchSize() : imageSize / patch;
            if (side * side < VisionPretrainer.SLOTS) {
                throw new IllegalArgumentException("--vision-pretrain-slots: expected at least " + VisionPretrainer.SLOTS
                        + " patches, one per palette colour, got " + side * side);
            }
        }
        if (slotAttentionWeight < 0 || !Double.isFinite(slotAttentionWeight)) {
            throw new IllegalArgumentException("--slot-attention-weight: expected a finite weight >= 0, got " + slotAttentionWeight);
        }
        if (slotAttentionWeight > 0 && !visionPretrainSlots && init == null) {
            throw new IllegalArgumentException("--slot-attention-weight " + slotAttentionWeight + " needs slot features: "
                    + "--vision-pretrain-slots, or --init with a model trained with them");
        }
        SlotAttention.Settings slotAttention = slotAttentionWeight == 0 ? null
                : new SlotAttention.Settings(slotAttentionLayer, slotAttentionHead, slotAttentionWeight);
        var initText = init != null ? LlavaConfig.load(init).textConfig() : null;
        int layersOf = initText != null ? initText.numHiddenLayers() : layers;
        int headsOf = initText != null ? initText.numAttentionHeads() : textHidden / headDim;
        if (slotAttention != null && (slotAttentionLayer >= layersOf || slotAttentionHead >= headsOf)) {
            throw new IllegalArgumentException("--slot-attention-layer " + slotAttentionLayer + " / --slot-attention-head "
                    + slotAttentionHead + ": expected a layer below " + layersOf + " and a head below " + headsOf);
        }
        if (copyAttentionWeight < 0 || !Double.isFinite(copyAttentionWeight)) {
            throw new IllegalArgumentException("--copy-attention-weight: expected a finite weight >= 0, got " + copyAttentionWeight);
        }
        SlotAttention.Settings copyAttention = copyAttentionWeight == 0 ? null
                : new SlotAttention.Settings(copyAttentionLayer, copyAttentionHead, copyAttentionWeight);
        if (copyAttention != null && (copyAttentionLayer >= layersOf || copyAttentionHead >= headsOf)) {
            throw new IllegalArgumentException("--copy-attention-layer " + copyAttentionLayer + " / --copy-attention-head "
                    + copyAttentionHead + ": expected a layer below " + layersOf + " and a head below " + headsOf);
        }
        if (copyAttention != null && slotAttention != null && copyAttentionLayer == slotAttentionLayer
                && copyAttentionHead == slotAttentionHead) {
            throw new IllegalArgumentException("--copy-attention-layer " + copyAttentionLayer + " / --copy-attention-head "
                    + copyAttentionHead + ": expected another head than the slot attention's");
        }
        VisionPretrainer.Options pretrainOptions = visionPretrainSteps == 0 ? null : new VisionPretrainer.Options(
                visionPretrainSteps, visionPretrainBatch, visionPretrainLr, seed ^ PRETRAIN_SEED_SALT, visionPretrainGrid,
                visionPretrainPlaces, visionPretrainSlots, visionPretrainCounts);

        ScienceQaDataset dataset = ScienceQaDataset.load(data);
        List<ScienceQaProblem> problems = dataset.split(split);
        if (limit > 0 && limit < problems.size()) {
            problems = problems.subList(0, limit);
        }
        if (problems.isEmpty()) {
            throw new IllegalArgumentException(data.resolve(ScienceQaDataset.SPLITS_FILE) + ": split '" + split + "' is empty");
        }

        mkdirs(out);
        if (tokenizerDir == null) {
            WordLevelTokenizerBuilder.writeForBenchmark(out, data);
        }
        for (String f : tokenizerDir == null ? List.<String>of() : TOKENIZER_FILES) {
            Path src = tokenizerDir.resolve(f);
            if (Files.isRegularFile(src)) {
                try {
                    AtomicFiles.write(out.resolve(f), Files.readAllBytes(src));
                } catch (IOException e) {
                    throw new UncheckedIOException(src + ": cannot read: " + e.getMessage(), e);
                }
            }
        }
        ClipPreprocessConfig pre = preprocessConfig(imageSize);
        AtomicFiles.writeString(out.resolve(ClipPreprocessConfig.FILE_NAME), ClipPreprocessConfig.squareJson(imageSize));

        List<TrainingExample> examples;
        LlavaConfig cfg;
        int padId;
        int[] colourTokens = null;
        try (LlavaTokenizer tok = LlavaTokenizer.load(out)) {
            if (!tok.hasToken(PromptTemplate.IMAGE_PLACEHOLDER)) {
                throw new IllegalArgumentException(out.resolve(LlavaTokenizer.TOKENIZER_FILE) + ": no '"
                        + PromptTemplate.IMAGE_PLACEHOLDER + "' token (needed as image_token_index)");
            }
            ModelShape shape = new ModelShape(imageSize, patch, visionHidden, visionLayers, visionHidden / headDim,
                    textHidden, layers, textHidden / headDim, kvHeads == 0 ? textHidden / headDim : kvHeads, MAX_POSITIONS);
            cfg = init != null ? LlavaConfig.load(init)
                    : shape.toConfig(tok.vocabSize(), tok.tokenToId(PromptTemplate.IMAGE_PLACEHOLDER), tok.bosId(), tok.eosId());
            if (cfg.textConfig().vocabSize() != tok.vocabSize()) {
                throw new IllegalArgumentException(init.resolve("config.json") + ": key text_config.vocab_size: expected "
                        + tok.vocabSize() + " (the tokenizer's), got " + cfg.textConfig().vocabSize());
            }
            padId = tok.padId() >= 0 && tok.padId() < tok.vocabSize() ? tok.padId() : TrainableLlava.NO_PAD;
            if (visionPretrainWordHead) {
                colourTokens = new int[Scene.Colour.values().length];
                for (Scene.Colour c : Scene.Colour.values()) {
                    if (!tok.hasToken(c.word)) {
                        throw new IllegalArgumentException("--vision-pretrain-word-head: " + out.resolve(
                                LlavaTokenizer.TOKENIZER_FILE) + " has no token '" + c.word + "'");
                    }
                    colourTokens[c.ordinal()] = tok.tokenToId(c.word);
                }
            }
            ExampleEncoder encoder = new QcmExampleEncoder(tok, cfg, new ClipImageProcessor(pre, PadMode.NONE), style)
                    .supervisePrompt(promptLoss);
            long t0 = System.nanoTime();
            examples = new ArrayList<>(problems.size());
            for (ScienceQaProblem p : problems) {
                examples.add(encoder.encode(p));
            }
            java.util.SplittableRandom drills = new java.util.SplittableRandom(seed ^ DRILL_SEED_SALT);
            int drilled = 0;
            for (ScienceQaProblem p : problems) {
                if (drills.nextDouble() < lookupDrills) {
                    examples.add(encoder.encode(QcmExampleEncoder.withAnswerInHint(p)));
                    drilled++;
                }
            }
            if (drilled > 0) {
                err.printf(Locale.ROOT, "train: added %d lookup drills%n", drilled);
            }
            if (slotAttention != null) {
                annotate(examples, new SlotAttention(tok, cfg.imageTokenIndex(), visionPretrainCounts)::annotate,
                        TrainingExample::attentionTargets, "slot", err);
            }
            if (copyAttention != null) {
                annotate(examples, new CopyAttention(tok)::annotate, TrainingExample::copyTargets, "copy", err);
            }
            err.printf(Locale.ROOT, "train: encoded %d problems in %.1f s%n", examples.size(), (System.nanoTime() - t0) / 1e9);
        }
        long tokens = 0;
        int maxLen = 0;
        int withImage = 0;
        for (TrainingExample ex : examples) {
            tokens += ex.length();
            maxLen = Math.max(maxLen, ex.length());
            withImage += ex.pixels() != null ? 1 : 0;
        }
        TrainableLlava model = init != null ? TrainableLlava.load(init) : TrainableLlava.initialize(cfg, padId, seed);
        Path ckptDir = out.resolve(CHECKPOINTS);
        if (pretrainOptions != null && (!resume || Trainer.latestCheckpoint(ckptDir) == null)) {
            pretrainVision(model, examples, pre, pretrainOptions, colourTokens, err);
        }
        if (freezeVision) {
            model = model.freezing(name -> name.startsWith(VISION_TOWER_PREFIX));
        }
        Trainer trainer = new Trainer(model, examples, options, ckptDir).superviseAttention(slotAttention)
                .superviseCopy(copyAttention);
        err.printf(Locale.ROOT, "train: %d examples (%d with an image), %.1f tokens on average, longest %d; %,d parameters; "
                        + "%d steps (%d per epoch) of %d examples on %d workers%n", examples.size(), withImage,
                (double) tokens / examples.size(), maxLen, model.parameterCount(), trainer.totalSteps(),
                trainer.stepsPerEpoch(), batch, workers);
        err.flush();
        Trainer.Result result = trainer.train(resume, new Trainer.Listener() {
            @Override
            public void onStep(Trainer.Progress p) {
                if (p.step() % logEvery == 0 || p.step() == p.totalSteps()) {
                    err.printf(Locale.ROOT, "step %d/%d epoch %d loss %.4f lr %.2e |g| %.3f %.0f tok/s %.2f ex/s elapsed %s eta %s%n",
                            p.step(), p.totalSteps(), p.epoch(), p.loss(), p.lr(), p.gradNorm(), p.tokensPerSecond(),
                            p.examplesPerSecond(), duration(p.elapsedSeconds()), duration(p.etaSeconds()));
                    if (!Double.isNaN(p.attentionLoss())) {
                        err.printf(Locale.ROOT, "  slot attention loss %.4f%n", p.attentionLoss());
                    }
                    if (!Double.isNaN(p.copyAttentionLoss())) {
                        err.printf(Locale.ROOT, "  copy attention loss %.4f%n", p.copyAttentionLoss());
                    }
                    err.flush();
                }
            }

            @Override
            public void onCheckpoint(int step, Path dir) {
                err.printf("checkpoint: %s%n", dir);
                err.flush();
            }
        });

        model.save(out);
        Trainer.writeLog(out.resolve(Trainer.LOG_FILE), result.log());
        LossPlot.write(out.resolve(PLOT), result.log(), "qvlm4j train: " + data.getFileName() + ", seed " + seed);
        double wall = (System.nanoTime() - wallStart) / 1e9;
        writeManifest(cfg, options, examples.size(), withImage, tokens, maxLen, model, result, wall);
        List<Trainer.LogRow> log = result.log();
        stdout.printf(Locale.ROOT, "%s %d/%d steps, final loss %.4f, %.1f s this run; wrote %s%n",
                result.finished() ? "trained" : "stopped after", result.stepsDone(), result.totalSteps(),
                log.isEmpty() ? Double.NaN : log.getLast().loss(), result.secondsThisRun(), out.toAbsolutePath().normalize());
        stdout.flush();
        return 0;
    }

    private void pretrainVision(TrainableLlava model, List<TrainingExample> examples, ClipPreprocessConfig pre,
                                VisionPretrainer.Options o, int[] colourTokens, PrintWriter err) {
        List<float[]> images = new ArrayList<>();
        for (TrainingExample ex : examples) {
            if (ex.pixels() != null) {
                images.add(ex.pixels());
            }
        }
        if (images.isEmpty()) {
            throw new IllegalArgumentException("--vision-pretrain-steps " + visionPretrainSteps + ": the training problems have no images");
        }
        err.printf(Locale.ROOT, "train: vision pretraining, %d steps of %d of the %d images%n", o.steps(), o.batch(), images.size());
        VisionPretrainer.Result r = VisionPretrainer.run(model, images, pre.imageMean(), pre.imageStd(), o, colourTokens,
                (step, total, loss, secs) -> {
            if (step % logEvery == 0 || step == total) {
                err.printf(Locale.ROOT, "pretrain %d/%d loss %.4f elapsed %.1f s%n", step, total, loss, secs);
                err.flush();
            }
        });
        ObjectNode m = JSON.createObjectNode();
        m.put("steps", o.steps());
        m.put("batch", o.batch());
        m.put("lr", o.lr());
        m.put("grid", o.grid());
        m.put("places", o.places());
        m.put("slots", o.slots());
        m.put("counts", o.counts());
        if (o.slots()) {
            m.put("slot_accuracy", r.slotAccuracy());
            ObjectNode perHead = m.putObject("slot_head_accuracy");
            StringBuilder heads = new StringBuilder();
            for (int h = 0; h < r.slotHeadAccuracy().length; h++) {
                String name = VisionPretrainer.SLOT_HEADS.get(h);
                perHead.put(name, r.slotHeadAccuracy()[h]);
                heads.append(h == 0 ? "" : ", ").append(String.format(Locale.ROOT, "%s %.4f", name, r.slotHeadAccuracy()[h]));
            }
            err.printf(Locale.ROOT, "pretrain: slot labels named right %.4f (%s)%n", r.slotAccuracy(), heads);
        }
        m.put("word_head", colourTokens != null);
        m.put("images", images.size());
        m.put("first_loss", r.losses().getFirst());
        m.put("final_loss", r.losses().getLast());
        m.put("seconds", r.seconds());
        try {
            AtomicFiles.writeString(out.resolve(PRETRAIN_FILE), JSON.writerWithDefaultPrettyPrinter().writeValueAsString(m));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private void writeManifest(LlavaConfig cfg, Trainer.Options options, int examples, int withImage, long tokens, int maxLen,
                               TrainableLlava model, Trainer.Result result, double wall) {
        ObjectNode m = JSON.createObjectNode();
        ArrayNode cmd = m.putArray("command");
        cmd.add("qvlm4j").add("train");
        List<String> args = spec.commandLine().getParseResult().originalArgs();
        // Reached through the top-level command, the arguments start with the subcommand's own name.
        args.subList(!args.isEmpty() && args.getFirst().equals("train") ? 1 : 0, args.size()).forEach(cmd::add);
        m.put("seed", seed);
        if (slotAttentionWeight > 0) {
            ObjectNode a = m.putObject("slot_attention");
            a.put("weight", slotAttentionWeight);
            a.put("layer", slotAttentionLayer);
            a.put("head", slotAttentionHead);
        }
        if (copyAttentionWeight > 0) {
            ObjectNode a = m.putObject("copy_attention");
            a.put("weight", copyAttentionWeight);
            a.put("layer", copyAttentionLayer);
            a.put("head", copyAttentionHead);
        }
        m.put("data", data.toAbsolutePath().normalize().toString());
        m.put("split", split);
        SynthBenchmark.Solutions solutions = SynthBenchmark.Solutions.ofData(data);
        if (solutions != null) {
            m.put(SynthBenchmark.Solutions.TRAIN_MANIFEST_KEY, solutions.name().toLowerCase(Locale.ROOT));
        }
        if (init != null) {
            m.put("init", init.toAbsolutePath().normalize().toString());
        }
        m.put("answer_style", answerStyle);
        m.put("prompt_loss", promptLoss);
        m.put("lookup_drills", lookupDrills);
        m.put("examples", examples);
        m.put("examples_with_image", withImage);
        m.put("tokens", tokens);
        m.put("longest_example", maxLen);
        m.put("parameters", model.parameterCount());
        m.set("options", JSON.valueToTree(options));
        m.put("steps_done", result.stepsDone());
        m.put("total_steps", result.totalSteps());
        m.put("finished", result.finished());
        List<Trainer.LogRow> log = result.log();
        if (!log.isEmpty()) {
            m.put("final_loss", log.getLast().loss());
            m.put("training_seconds", log.getLast().elapsedSeconds());
        }
        m.put("wall_seconds_this_run", wall);
        double secs = result.secondsThisRun();
        m.put("examples_per_second_this_run", secs > 0 ? result.examplesThisRun() / secs : 0);
        m.put("tokens_per_second_this_run", secs > 0 ? result.tokensThisRun() / secs : 0);
        m.put("finished_at", Instant.now().toString());
        m.put("workers", workers);
        m.put("pack", pack);
        m.put("freeze_vision", freezeVision);
        Path pretrain = out.resolve(PRETRAIN_FILE);
        if (Files.isRegularFile(pretrain)) {
            try {
                m.set("vision_pretrain", JSON.readTree(Files.readString(pretrain)));
            } catch (IOException e) {
                throw new UncheckedIOException(pretrain + ": cannot read: " + e.getMessage(), e);
            }
        }
        m.put("model_config", TrainableLlava.configJson(cfg, model.padTokenId()));
        try {
            AtomicFiles.writeString(out.resolve(MANIFEST), JSON.writerWithDefaultPrettyPrinter().writeValueAsString(m) + "\n");
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** CLIPImageProcessor settings for a square model input: shortest edge = crop = size, bicubic, CLIP mean/std. */
    static ClipPreprocessConfig preprocessConfig(int size) {
        return new ClipPreprocessConfig(true, size, 0, 0, PillowFilter.BICUBIC, true, size, size, true, 1.0 / 255, true,
                ClipPreprocessConfig.CLIP_MEAN, ClipPreprocessConfig.CLIP_STD, true);
    }

    private static boolean isNonEmptyDirectory(Path p) {
        if (!Files.isDirectory(p)) {
            return false;
        }
        try (Stream<Path> s = Files.list(p)) {
            return s.findAny().isPresent();
        } catch (IOException e) {
            throw new UncheckedIOException(p + ": cannot list: " + e.getMessage(), e);
        }
    }

    private static void mkdirs(Path p) {
        try {
            Files.createDirectories(p);
        } catch (IOException e) {
            throw new UncheckedIOException(p + ": cannot create directory: " + e.getMessage(), e);
        }
    }

    private static String duration(double seconds) {
        long s = Math.round(seconds);
        return String.format(Locale.ROOT, "%d:%02d:%02d", s / 3600, (s / 60) % 60, s % 60);
    }

    /** Replaces each example by its annotated version and reports the lesson's targets. */
    private static void annotate(List<TrainingExample> examples, java.util.function.UnaryOperator<TrainingExample> lesson,
                                 java.util.function.ToIntFunction<TrainingExample> targets, String what, PrintWriter err) {
        long positions = 0;
        int annotated = 0;
        for (int i = 0; i < examples.size(); i++) {
            TrainingExample ex = lesson.apply(examples.get(i));
            examples.set(i, ex);
            positions += targets.applyAsInt(ex);
            annotated += targets.applyAsInt(ex) > 0 ? 1 : 0;
        }
        err.printf(Locale.ROOT, "train: %,d %s attention targets in %,d examples%n", positions, what, annotated);
    }
}
