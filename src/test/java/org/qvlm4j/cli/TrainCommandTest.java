package org.qvlm4j.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qvlm4j.data.ScienceQaDataset;
import org.qvlm4j.data.ScienceQaProblem;
import org.qvlm4j.data.SynthBenchmark;
import org.qvlm4j.io.image.ClipPreprocessConfig;
import org.qvlm4j.io.text.LlavaTokenizer;
import org.qvlm4j.io.text.PromptTemplate;
import org.qvlm4j.model.LlavaModel;
import org.qvlm4j.train.QcmExampleEncoder;
import org.qvlm4j.train.TrainableLlava;
import org.qvlm4j.train.Trainer;

/**
 * {@code qvlm4j train} end to end on a few synthetic problems with a tiny model: the output is an
 * HF directory the runtime and tokenizer load, the loss falls, the same seed gives the same bytes,
 * an interrupted run resumes to the same bytes, and bad inputs are refused with clear messages.
 */
class TrainCommandTest {
    @TempDir
    static Path shared;

    static Path data;
    static Path tokenizer;
    static Path straight;

    private static final String[] MODEL = {"--image-size", "16", "--patch", "8", "--vision-hidden", "16",
        "--vision-layers", "1", "--text-hidden", "32", "--layers", "1", "--head-dim", "16", "--kv-heads", "1",
        "--epochs", "3", "--batch", "4", "--limit", "12", "--lr", "3e-3", "--seed", "3", "--log-every", "1"};

    @BeforeAll
    static void benchmarkTokenizerAndOneRun() throws Exception {
        data = shared.resolve("sq");
        SynthBenchmark.write(data, new SynthBenchmark.Options(4, 12, 2, 2, SynthBenchmark.MIN_IMAGE_SIZE), null);
        tokenizer = shared.resolve("tok");
        writeWordLevelTokenizer(tokenizer, ScienceQaDataset.load(data).split("train"));
        straight = shared.resolve("straight");
        Result r = run(args(straight));
        assertEquals(0, r.code, r.err);
    }

    @Test
    void withoutTokenizerBuildsOneFromTheDataVocabulary() throws Exception {
        Path out = shared.resolve("default-tokenizer");
        List<String> a = new ArrayList<>(List.of("--data", data.toString(), "--out", out.toString(), "--max-steps", "1"));
        a.addAll(List.of(MODEL));
        Result r = run(a.toArray(String[]::new));
        assertEquals(0, r.code, r.err);
        try (LlavaTokenizer tok = LlavaTokenizer.load(out)) {
            assertEquals(org.qvlm4j.data.WordLevelTokenizerBuilder.IMAGE_TOKEN_ID, tok.tokenToId(PromptTemplate.IMAGE_PLACEHOLDER));
            assertEquals(tok.tokenToId(PromptTemplate.IMAGE_PLACEHOLDER),
                    org.qvlm4j.io.config.LlavaConfig.load(out).imageTokenIndex());
            for (String w : org.qvlm4j.data.WordLevelTokenizerBuilder.readVocabulary(data.resolve("vocab.txt"))) {
                assertTrue(tok.hasToken(w), "vocabulary word '" + w + "' has a token");
            }
        }
    }

    record Result(int code, String out, String err) {
    }

    static Result run(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        // Through the top-level command, as the launcher runs it.
        String[] full = new String[args.length + 1];
        full[0] = "train";
        System.arraycopy(args, 0, full, 1, args.length);
        int code = Main.run(full, new PrintWriter(out, true), new PrintWriter(err, true));
        return new Result(code, out.toString(), err.toString());
    }

    static String[] args(Path out, String... extra) {
        List<String> a = new ArrayList<>(List.of("--data", data.toString(), "--out", out.toString(),
                "--tokenizer", tokenizer.toString()));
        a.addAll(List.of(MODEL));
        a.addAll(List.of(extra));
        return a.toArray(String[]::new);
    }

    /** An HF WordLevel tokenizer over every piece of the problems' prompts, with LLaMA-style special ids. */
    static void writeWordLevelTokenizer(Path dir, List<ScienceQaProblem> problems) throws Exception {
        Files.createDirectories(dir);
        Pattern piece = Pattern.compile("\\w+|[^\\w\\s]+");
        Set<String> vocab = new LinkedHashSet<>(List.of("<unk>", "<s>", "</s>", "<pad>", PromptTemplate.IMAGE_PLACEHOLDER));
        List<String> texts = new ArrayList<>(List.of("A B C D E", PromptTemplate.VICUNA_V1.render("", 0)));
        for (ScienceQaProblem p : problems) {
            texts.add(org.qvlm4j.eval.ScienceQaPrompt.message(p));
        }
        for (String t : texts) {
            Matcher m = piece.matcher(t);
            while (m.find()) {
                vocab.add(m.group());
            }
        }
        ObjectMapper json = new ObjectMapper();
        ObjectNode root = json.createObjectNode();
        root.put("version", "1.0");
        var added = root.putArray("added_tokens");
        int id = 0;
        for (String s : List.of("<unk>", "<s>", "</s>", "<pad>", PromptTemplate.IMAGE_PLACEHOLDER)) {
            ObjectNode t = added.addObject();
            t.put("id", id++).put("content", s).put("single_word", false).put("lstrip", false).put("rstrip", false)
                    .put("normalized", false).put("special", true);
        }
        root.putNull("normalizer");
        root.putObject("pre_tokenizer").put("type", "Whitespace");
        ObjectNode post = root.putObject("post_processor");
        post.put("type", "TemplateProcessing");
        post.putArray("single").addObject().putObject("SpecialToken").put("id", "<s>").put("type_id", 0);
        ((com.fasterxml.jackson.databind.node.ArrayNode) post.get("single")).addObject().putObject("Sequence")
                .put("id", "A").put("type_id", 0);
        post.putArray("pair");
        ObjectNode bos = post.putObject("special_tokens").putObject("<s>");
        bos.put("id", "<s>");
        bos.putArray("ids").add(1);
        bos.putArray("tokens").add("<s>");
        root.putObject("decoder").put("type", "WordPiece").put("prefix", "##").put("cleanup", true);
        ObjectNode model = root.putObject("model");
        model.put("type", "WordLevel");
        ObjectNode v = model.putObject("vocab");
        int i = 0;
        for (String s : vocab) {
            v.put(s, i++);
        }
        model.put("unk_token", "<unk>");
        Files.writeString(dir.resolve(LlavaTokenizer.TOKENIZER_FILE), json.writeValueAsString(root));
        ObjectNode cfg = json.createObjectNode();
        cfg.put("add_bos_token", true).put("add_eos_token", false).put("bos_token", "<s>").put("eos_token", "</s>")
                .put("pad_token", "<pad>").put("unk_token", "<unk>").put("tokenizer_class", "PreTrainedTokenizerFast");
        Files.writeString(dir.resolve(LlavaTokenizer.CONFIG_FILE), json.writeValueAsString(cfg));
    }

    @Test
    void writesAnHfDirectoryTheRuntimeLoadsAndTheLossFalls() throws Exception {
        for (String f : List.of("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                "preprocessor_config.json", Trainer.LOG_FILE, TrainCommand.PLOT, TrainCommand.MANIFEST)) {
            assertTrue(Files.isRegularFile(straight.resolve(f)), f);
        }
        ClipPreprocessConfig pre = ClipPreprocessConfig.load(straight.resolve(ClipPreprocessConfig.FILE_NAME));
        assertEquals(16, pre.resizeShortestEdge());
        assertEquals(16, pre.cropHeight());
        assertArrayEquals(ClipPreprocessConfig.CLIP_STD, pre.imageStd());
        try (LlavaTokenizer tok = LlavaTokenizer.load(straight);
             LlavaModel runtime = LlavaModel.load(straight)) {
            assertEquals(tok.vocabSize(), runtime.config().textConfig().vocabSize());
            assertEquals(tok.tokenToId(PromptTemplate.IMAGE_PLACEHOLDER), runtime.config().imageTokenIndex());
            assertEquals(4, runtime.config().imageSeqLength());
        }
        TrainableLlava trained = TrainableLlava.load(straight);
        assertEquals(3, trained.padTokenId());
        List<Trainer.LogRow> log = Trainer.readLog(straight.resolve(Trainer.LOG_FILE));
        assertEquals(9, log.size(), "3 epochs of 12 examples in batches of 4");
        double first = (log.get(0).loss() + log.get(1).loss() + log.get(2).loss()) / 3;
        double last = (log.get(6).loss() + log.get(7).loss() + log.get(8).loss()) / 3;
        assertTrue(last < first, "loss " + first + " -> " + last);
        assertNotNull(ImageIO.read(straight.resolve(TrainCommand.PLOT).toFile()));
        JsonNode manifest = new ObjectMapper().readTree(straight.resolve(TrainCommand.MANIFEST).toFile());
        assertEquals(3, manifest.get("seed").asLong());
        assertEquals(12, manifest.get("examples").asInt());
        assertTrue(manifest.get("finished").asBoolean());
        assertEquals("train", manifest.get("command").get(1).asText());
        assertTrue(manifest.get("command").get(2).asText().startsWith("--"), "the subcommand is named once: "
                + manifest.get("command"));
        assertTrue(manifest.get("wall_seconds_this_run").asDouble() > 0);
    }

    @Test
    void sameSeedSameBytesAndAResumedRunEndsTheSame() throws Exception {
        byte[] expected = Files.readAllBytes(straight.resolve("model.safetensors"));
        Path again = shared.resolve("again");
        assertEquals(0, run(args(again)).code);
        assertArrayEquals(expected, Files.readAllBytes(again.resolve("model.safetensors")));

        Path resumed = shared.resolve("resumed");
        Result part = run(args(resumed, "--max-steps", "4", "--checkpoint-every", "2"));
        assertEquals(0, part.code, part.err);
        assertTrue(part.out.contains("stopped after 4/9"), part.out);
        Result refused = run(args(resumed));
        assertEquals(TrainCommand.EXIT_BAD_INPUT, refused.code);
        assertTrue(refused.err.contains("--out " + resumed) && refused.err.contains("not empty")
                && refused.err.contains("--resume"), refused.err);
        Result rest = run(args(resumed, "--resume"));
        assertEquals(0, rest.code, rest.err);
        assertTrue(rest.out.contains("trained 9/9"), rest.out);
        assertArrayEquals(expected, Files.readAllBytes(resumed.resolve("model.safetensors")));
        assertEquals(9, Trainer.readLog(resumed.resolve(Trainer.LOG_FILE)).size());
    }

    @Test
    void visionPretrainingRunsFirstIsRecordedAndAResumeSkipsIt() throws Exception {
        Path whole = shared.resolve("pretrained");
        Result r = run(args(whole, "--vision-pretrain-steps", "3", "--vision-pretrain-batch", "4", "--pack", "2"));
        assertEquals(0, r.code, r.err);
        assertTrue(r.err.contains("vision pretraining, 3 steps of 4"), r.err);
        JsonNode manifest = new ObjectMapper().readTree(Files.readString(whole.resolve("train_manifest.json")));
        assertEquals(3, manifest.get("vision_pretrain").get("steps").asInt());
        assertEquals(1, manifest.get("vision_pretrain").get("grid").asInt());
        assertFalse(manifest.get("vision_pretrain").get("places").asBoolean());
        assertEquals(2, manifest.get("pack").asInt());
        assertTrue(Files.isRegularFile(whole.resolve("vision_pretrain.json")));
        assertFalse(Arrays.equals(Files.readAllBytes(straight.resolve("model.safetensors")),
                Files.readAllBytes(whole.resolve("model.safetensors"))));

        Path resumed = shared.resolve("pretrained-resumed");
        String[] flags = {"--vision-pretrain-steps", "3", "--vision-pretrain-batch", "4", "--pack", "2"};
        List<String> part = new ArrayList<>(List.of(flags));
        part.addAll(List.of("--max-steps", "4", "--checkpoint-every", "2"));
        assertEquals(0, run(args(resumed, part.toArray(String[]::new))).code);
        List<String> rest = new ArrayList<>(List.of(flags));
        rest.add("--resume");
        Result second = run(args(resumed, rest.toArray(String[]::new)));
        assertEquals(0, second.code, second.err);
        assertFalse(second.err.contains("vision pretraining"), "a resumed run starts from its checkpoint: " + second.err);
        assertArrayEquals(Files.readAllBytes(whole.resolve("model.safetensors")),
                Files.readAllBytes(resumed.resolve("model.safetensors")));
    }

    @Test
    void freezeVisionKeepsTheTowerAndAResumeMustFreezeToo() throws Exception {
        Path frozen = shared.resolve("frozen-vision");
        Result r = run(args(frozen, "--freeze-vision", "--max-steps", "4", "--checkpoint-every", "2"));
        assertEquals(0, r.code, r.err);
        org.qvlm4j.train.TrainableLlava start = org.qvlm4j.train.TrainableLlava.initialize(
                org.qvlm4j.io.config.LlavaConfig.load(frozen), org.qvlm4j.train.TrainableLlava.load(frozen).padTokenId(), 3);
        List<String> changed = org.qvlm4j.train.TrainableLlava.differingParameters(start,
                org.qvlm4j.train.TrainableLlava.load(frozen));
        assertFalse(changed.isEmpty());
        assertTrue(changed.stream().noneMatch(n -> n.startsWith("vision_tower.")), changed.toString());
        assertTrue(changed.contains("multi_modal_projector.linear_1.weight"), changed.toString());
        Result refused = run(args(frozen, "--resume"));
        assertEquals(TrainCommand.EXIT_BAD_INPUT, refused.code);
        assertTrue(refused.err.contains("frozen_parameters"), refused.err);
        Path badBatch = shared.resolve("pretrain-bad-batch");
        Result bad = run(args(badBatch, "--vision-pretrain-steps", "2", "--vision-pretrain-batch", "0"));
        assertEquals(TrainCommand.EXIT_BAD_INPUT, bad.code);
        assertTrue(bad.err.contains("vision pretraining") && bad.err.contains("batch=0"), bad.err);
        assertFalse(Files.exists(badBatch), "refused before anything is written");
        Path badGrid = shared.resolve("pretrain-bad-grid");
        Result grid = run(args(badGrid, "--vision-pretrain-steps", "2", "--vision-pretrain-grid", "3"));
        assertEquals(TrainCommand.EXIT_BAD_INPUT, grid.code);
        assertTrue(grid.err.contains("--vision-pretrain-grid 3") && grid.err.contains("patch size 8"), grid.err);
        assertFalse(Files.exists(badGrid), "refused before anything is written");
        Result noStage = run(args(badGrid, "--vision-pretrain-grid", "2"));
        assertEquals(TrainCommand.EXIT_BAD_INPUT, noStage.code);
        assertTrue(noStage.err.contains("needs --vision-pretrain-steps"), noStage.err);
        assertFalse(Files.exists(badGrid), "refused before anything is written");
        Result noPlaces = run(args(badGrid, "--vision-pretrain-places"));
        assertEquals(TrainCommand.EXIT_BAD_INPUT, noPlaces.code);
        assertTrue(noPlaces.err.contains("--vision-pretrain-places needs --vision-pretrain-steps"), noPlaces.err);
        assertFalse(Files.exists(badGrid), "refused before anything is written");
        Path placed = shared.resolve("pretrain-places");
        Result withPlaces = run(args(placed, "--vision-pretrain-steps", "2", "--vision-pretrain-batch", "4",
                "--vision-pretrain-places", "--max-steps", "1"));
        assertEquals(0, withPlaces.code, withPlaces.err);
        JsonNode placedManifest = new ObjectMapper().readTree(Files.readString(placed.resolve("train_manifest.json")));
        assertTrue(placedManifest.get("vision_pretrain").get("places").asBoolean(), placedManifest.toString());
        Result noSlotStage = run(args(badGrid, "--vision-pretrain-slots"));
        assertEquals(TrainCommand.EXIT_BAD_INPUT, noSlotStage.code);
        assertTrue(noSlotStage.err.contains("--vision-pretrain-slots needs --vision-pretrain-steps"), noSlotStage.err);
        Result fewPatches = run(args(badGrid, "--vision-pretrain-steps", "2", "--vision-pretrain-slots"));
        assertEquals(TrainCommand.EXIT_BAD_INPUT, fewPatches.code);
        assertTrue(fewPatches.err.contains("--vision-pretrain-slots: expected at least 6 patches, one per palette colour, "
                + "got 4"), fewPatches.err);
        Result countsAlone = run(args(badGrid, "--vision-pretrain-steps", "2", "--vision-pretrain-counts"));
        assertEquals(TrainCommand.EXIT_BAD_INPUT, countsAlone.code);
        assertTrue(countsAlone.err.contains("--vision-pretrain-counts needs --vision-pretrain-slots"), countsAlone.err);
        assertFalse(Files.exists(badGrid), "refused before anything is written");
        Result noWords = run(args(badGrid, "--vision-pretrain-word-head"));
        assertEquals(TrainCommand.EXIT_BAD_INPUT, noWords.code);
        assertTrue(noWords.err.contains("--vision-pretrain-word-head: expected with --vision-pretrain-steps N > 0"),
                noWords.err);
        assertFalse(Files.exists(badGrid), "refused before anything is written");
        Path worded = shared.resolve("pretrain-words");
        Result withWords = run(args(worded, "--vision-pretrain-steps", "2", "--vision-pretrain-batch", "4",
                "--vision-pretrain-word-head", "--max-steps", "1"));
        assertEquals(0, withWords.code, withWords.err);
        JsonNode wordManifest = new ObjectMapper().readTree(Files.readString(worded.resolve("train_manifest.json")));
        assertTrue(wordManifest.get("vision_pretrain").get("word_head").asBoolean(), wordManifest.toString());
        Result noSlots = run(args(badGrid, "--slot-attention-weight", "1"));
        assertEquals(TrainCommand.EXIT_BAD_INPUT, noSlots.code);
        assertTrue(noSlots.err.contains("--slot-attention-weight 1.0 needs slot features: --vision-pretrain-slots, or --init"),
                noSlots.err);
        Result negative = run(args(badGrid, "--slot-attention-weight", "-1"));
        assertEquals(TrainCommand.EXIT_BAD_INPUT, negative.code);
        assertTrue(negative.err.contains("--slot-attention-weight: expected a finite weight >= 0, got -1.0"), negative.err);
        Result noLayer = run("--data", data.toString(), "--out", badGrid.toString(), "--init", worded.toString(),
                "--slot-attention-weight", "1", "--slot-attention-layer", "9", "--seed", "3");
        assertEquals(TrainCommand.EXIT_BAD_INPUT, noLayer.code);
        assertTrue(noLayer.err.contains("--slot-attention-layer 9 / --slot-attention-head 0: expected a layer below"), noLayer.err);
        Result negativeCopy = run(args(badGrid, "--copy-attention-weight", "-1"));
        assertEquals(TrainCommand.EXIT_BAD_INPUT, negativeCopy.code);
        assertTrue(negativeCopy.err.contains("--copy-attention-weight: expected a finite weight >= 0, got -1.0"),
                negativeCopy.err);
        Result noCopyLayer = run("--data", data.toString(), "--out", badGrid.toString(), "--init", worded.toString(),
                "--copy-attention-weight", "1", "--copy-attention-layer", "9", "--seed", "3");
        assertEquals(TrainCommand.EXIT_BAD_INPUT, noCopyLayer.code);
        assertTrue(noCopyLayer.err.contains("--copy-attention-layer 9 / --copy-attention-head 0: expected a layer below"),
                noCopyLayer.err);
        Result sameHead = run("--data", data.toString(), "--out", badGrid.toString(), "--init", worded.toString(),
                "--slot-attention-weight", "1", "--copy-attention-weight", "1", "--copy-attention-layer", "0", "--seed", "3");
        assertEquals(TrainCommand.EXIT_BAD_INPUT, sameHead.code);
        assertTrue(sameHead.err.contains("expected another head than the slot attention's"), sameHead.err);
        assertFalse(Files.exists(badGrid), "refused before anything is written");
        Path attended = shared.resolve("slot-attention");
        // this test's tokenizer holds only the words of its prompts, not the numbers a slot names
        Result noNumbers = run("--data", data.toString(), "--out", attended.toString(), "--init", worded.toString(),
                "--slot-attention-weight", "0.5", "--max-steps", "1", "--seed", "3");
        assertEquals(TrainCommand.EXIT_BAD_INPUT, noNumbers.code, noNumbers.err);
        assertTrue(noNumbers.err.contains("slot attention: " + attended + " has no token '"), noNumbers.err);
        assertFalse(Files.exists(attended.resolve("model.safetensors")), "no model written");
        Result rest = run(args(frozen, "--freeze-vision", "--resume"));
        assertEquals(0, rest.code, rest.err);
        JsonNode manifest = new ObjectMapper().readTree(Files.readString(frozen.resolve("train_manifest.json")));
        assertTrue(manifest.get("freeze_vision").asBoolean());
    }

    @Test
    void probeScoresATrainedModelsFeaturesAndRefusesTooFewPictures() {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        int code = Main.run(new String[] {"probe", "--model", straight.toString(), "--data", data.toString(), "--split", "train",
            "--fit", "3", "--score", "2"}, new PrintWriter(out, true), new PrintWriter(err, true));
        assertEquals(0, code, err.toString());
        assertTrue(out.toString().contains("3 pictures fitted, 2 scored") && out.toString().contains("| raw pixels |"), out.toString());
        StringWriter rows = new StringWriter();
        code = Main.run(new String[] {"probe", "--model", straight.toString(), "--data", data.toString(), "--split", "train",
            "--fit", "3", "--score", "2", "--target", "row"}, new PrintWriter(rows, true), new PrintWriter(err, true));
        assertEquals(0, code, err.toString());
        assertTrue(rows.toString().startsWith("row probe: 3 pictures fitted"), rows.toString());
        // the slot targets read six patch features; this model has fewer, and the probe says so
        StringWriter slotErr = new StringWriter();
        code = Main.run(new String[] {"probe", "--model", straight.toString(), "--data", data.toString(), "--split", "train",
            "--fit", "3", "--score", "2", "--target", "slot_row"}, new PrintWriter(new StringWriter(), true),
            new PrintWriter(slotErr, true));
        assertEquals(2, code);
        assertTrue(slotErr.toString().contains("slot_row needs 6 patch features, the model makes 4"), slotErr.toString());
        StringWriter err3 = new StringWriter();
        code = Main.run(new String[] {"probe", "--model", straight.toString(), "--data", data.toString(), "--target", "size"},
                new PrintWriter(new StringWriter(), true), new PrintWriter(err3, true));
        assertEquals(2, code);
        assertTrue(err3.toString().contains("--target: expected 'colour', 'row', 'column', 'slot_kind', 'slot_row' or 'slot_column', got 'size'"), err3.toString());
        StringWriter err2 = new StringWriter();
        code = Main.run(new String[] {"probe", "--model", straight.toString(), "--data", data.toString(), "--split", "train",
            "--fit", "1000"}, new PrintWriter(new StringWriter(), true), new PrintWriter(err2, true));
        assertEquals(2, code);
        assertTrue(err2.toString().contains("split 'train' has") && err2.toString().contains("need 1500"), err2.toString());
    }

    @Test
    void initStartsFromAModelsWeightsWithItsShapeAndTokenizer() throws Exception {
        Path frozen = shared.resolve("init-tiny-lr");
        Result r = run("--data", data.toString(), "--out", frozen.toString(), "--init", straight.toString(), "--seed", "5",
                "--text-hidden", "64", "--epochs", "1", "--limit", "4", "--batch", "4", "--lr", "1e-30", "--weight-decay", "0");
        assertEquals(0, r.code, r.err);
        assertArrayEquals(Files.readAllBytes(straight.resolve("model.safetensors")),
                Files.readAllBytes(frozen.resolve("model.safetensors")), "a step far below float resolution keeps the initial weights");
        assertArrayEquals(Files.readAllBytes(straight.resolve("tokenizer.json")), Files.readAllBytes(frozen.resolve("tokenizer.json")));

        Path moved = shared.resolve("init-lr");
        assertEquals(0, run("--data", data.toString(), "--out", moved.toString(), "--init", straight.toString(), "--seed", "5",
                "--epochs", "1", "--limit", "4", "--batch", "4", "--lr", "1e-2").code);
        TrainableLlava a = TrainableLlava.load(straight);
        TrainableLlava b = TrainableLlava.load(moved);
        assertEquals(a.parameterCount(), b.parameterCount());
        assertTrue(!java.util.Arrays.equals(Files.readAllBytes(straight.resolve("model.safetensors")),
                Files.readAllBytes(moved.resolve("model.safetensors"))), "a step at lr 1e-2 moves the weights");

        Path drilled = shared.resolve("drills");
        Result d = run("--data", data.toString(), "--out", drilled.toString(), "--init", straight.toString(), "--seed", "5",
                "--epochs", "1", "--limit", "4", "--batch", "4", "--lookup-drills", "1");
        assertEquals(0, d.code, d.err);
        assertTrue(d.err.contains("added 4 lookup drills"), d.err);
        assertEquals(8, new ObjectMapper().readTree(drilled.resolve(TrainCommand.MANIFEST).toFile()).get("examples").asInt());
        Result badDrills = run("--data", data.toString(), "--out", shared.resolve("drills-bad").toString(), "--init",
                straight.toString(), "--seed", "5", "--lookup-drills", "1.5");
        assertEquals(TrainCommand.EXIT_BAD_INPUT, badDrills.code);
        assertTrue(badDrills.err.contains("--lookup-drills must be in [0, 1], got 1.5"), badDrills.err);

        Result bad = run("--data", data.toString(), "--out", shared.resolve("init-bad").toString(), "--init",
                data.toString(), "--seed", "5");
        assertEquals(TrainCommand.EXIT_BAD_INPUT, bad.code);
        assertTrue(bad.err.contains("--init " + data) && bad.err.contains("config.json"), bad.err);
    }

    @Test
    void badInputsAreRefusedWithClearMessages() throws Exception {
        Path missing = shared.resolve("no-such-data");
        Result r = run("--data", missing.toString(), "--out", shared.resolve("x").toString(), "--tokenizer",
                tokenizer.toString(), "--seed", "1");
        assertEquals(TrainCommand.EXIT_BAD_INPUT, r.code);
        assertTrue(r.err.contains(missing.toString()) && r.err.contains("no such directory"), r.err);
        assertFalse(Files.exists(shared.resolve("x")), "nothing written on bad input");

        r = run("--data", data.toString(), "--out", shared.resolve("y").toString(), "--tokenizer",
                shared.resolve("no-tok").toString(), "--seed", "1");
        assertEquals(TrainCommand.EXIT_BAD_INPUT, r.code);
        assertTrue(r.err.contains("--tokenizer") && r.err.contains("tokenizer.json"), r.err);

        r = run(args(shared.resolve("z"), "--split", "nope"));
        assertEquals(TrainCommand.EXIT_BAD_INPUT, r.code);
        assertTrue(r.err.contains("nope"), r.err);
    }
}
