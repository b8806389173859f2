package org.qvlm4j.data;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.EnumSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qvlm4j.data.ScienceQaProblem.Context;
import org.qvlm4j.data.ScienceQaProblem.GradeBand;
import org.qvlm4j.data.ScienceQaProblem.SubjectGroup;

class ScienceQaDatasetTest {

    @TempDir
    Path tmp;

    /** Three problems written by hand the way lupantech/ScienceQA's problems.json spells them. */
    private static final String REAL_PROBLEMS = """
            {
              "1": {
                "question": "Which figure of speech is used in this text?\\nSing, O goddess, the anger of Achilles",
                "choices": ["chiasmus", "apostrophe"],
                "answer": 1,
                "hint": "",
                "image": null,
                "task": "closed choice",
                "grade": "grade11",
                "subject": "language science",
                "topic": "figurative-language",
                "category": "Literary devices",
                "skill": "Classify the figure of speech",
                "lecture": "Figures of speech are words or phrases that use language in a nonliteral way.",
                "solution": "The text uses apostrophe.",
                "split": "test"
              },
              "5": {
                "question": "Which state is farthest north?",
                "choices": ["West Virginia", "Louisiana", "Arizona", "Oklahoma"],
                "answer": 0,
                "hint": "",
                "image": "image.png",
                "task": "closed choice",
                "grade": "grade2",
                "subject": "social science",
                "topic": "geography",
                "category": "Geography",
                "skill": "Read a map: cardinal directions",
                "lecture": "Maps have four cardinal directions.",
                "solution": "West Virginia is farthest north.",
                "split": "train"
              },
              "7": {
                "question": "Which tense does the sentence use?",
                "choices": ["past tense", "present tense", "future tense"],
                "answer": 2,
                "hint": "Read the sentence. Mona will print her name.",
                "image": "image.png",
                "task": "closed choice",
                "grade": "grade8",
                "subject": "natural science",
                "topic": "verbs",
                "category": "Verb tense",
                "skill": "Is the sentence in the past, present or future tense?",
                "lecture": "Present tense verbs tell you about something that is happening now.",
                "solution": "The sentence is in future tense.",
                "split": "train"
              }
            }
            """;

    private static final String REAL_SPLITS = """
            {"train": ["5", "7"], "val": [], "test": ["1"], "trainval": ["5", "7"], "minival": []}
            """;

    private void writeReal(Path dir) throws IOException {
        Files.writeString(dir.resolve("problems.json"), REAL_PROBLEMS);
        Files.writeString(dir.resolve("pid_splits.json"), REAL_SPLITS);
        // The real download unzips images to images/<split>/<pid>/image.png.
        Files.createDirectories(dir.resolve("images/train/5"));
        Files.write(dir.resolve("images/train/5/image.png"), new byte[] {1});
        Files.createDirectories(dir.resolve("images/train/7"));
        Files.write(dir.resolve("images/train/7/image.png"), new byte[] {2});
    }

    @Test
    void loadsRealScienceQaShapedSample() throws IOException {
        writeReal(tmp);
        ScienceQaDataset ds = ScienceQaDataset.load(tmp);
        assertEquals(List.of("1", "5", "7"), List.copyOf(ds.problems().keySet()));
        assertEquals(List.of("train", "val", "test", "trainval", "minival"), ds.splitNames());
        assertEquals(List.of("5", "7"), ds.split("train").stream().map(ScienceQaProblem::pid).toList());
        assertTrue(ds.split("val").isEmpty());

        ScienceQaProblem p1 = ds.problem("1");
        assertNull(p1.image());
        assertNull(p1.imagePath());
        assertEquals("apostrophe", p1.answerText());
        assertEquals("closed choice", p1.task());
        assertTrue(p1.question().contains("\n"));
        assertEquals(EnumSet.of(Context.NO), p1.contexts());
        assertEquals(SubjectGroup.LAN, p1.subjectGroup());
        assertEquals(GradeBand.G7_12, p1.gradeBand());

        ScienceQaProblem p5 = ds.problem("5");
        assertEquals(tmp.resolve("images/train/5/image.png"), p5.imagePath());
        assertEquals(EnumSet.of(Context.IMG), p5.contexts());
        assertEquals(SubjectGroup.SOC, p5.subjectGroup());
        assertEquals(GradeBand.G1_6, p5.gradeBand());
        assertEquals(4, p5.choices().size());

        // A hint and an image: counted under both TXT and IMG, as evaluate_acc.py does.
        ScienceQaProblem p7 = ds.problem("7");
        assertEquals(EnumSet.of(Context.TXT, Context.IMG), p7.contexts());
        assertEquals(SubjectGroup.NAT, p7.subjectGroup());
        assertEquals(8, p7.gradeNumber());
        assertEquals(List.of("NAT", "TXT", "IMG", "G7-12"), p7.tableColumns());
        assertEquals(List.of("LAN", "NO", "G7-12"), p1.tableColumns());
        assertEquals(List.of("SOC", "IMG", "G1-6"), p5.tableColumns());
    }

    @Test
    void gradeBandsSplitBetweenSixAndSeven() {
        for (int g = 1; g <= 12; g++) {
            ScienceQaProblem p = new ScienceQaProblem("1", "q", List.of("a", "b"), 0, "", null, null,
                    "natural science", "grade" + g, "c", "t", "s", "l", "so", "train", null);
            assertEquals(g <= 6 ? GradeBand.G1_6 : GradeBand.G7_12, p.gradeBand(), "grade" + g);
        }
    }

    @Test
    void writerOutputRoundTripsThroughReader() throws IOException {
        List<ScienceQaProblem> ps = List.of(
                new ScienceQaProblem("10", "How many?", List.of("1", "2", "3"), 2, "A hint.", "image.png", null,
                        "natural science", "grade3", "Counting", "counting", "Count", "Lecture.", "Solution.",
                        "train", "closed choice"),
                new ScienceQaProblem("2", "Which word?", List.of("x", "y"), 0, "", null, null, "language science",
                        "grade12", "Rhyming", "phon", "Rhyme", "L", "S", "test", null));
        Files.createDirectories(tmp.resolve("images/10"));
        Files.write(tmp.resolve("images/10/image.png"), new byte[] {7});
        Map<String, List<String>> splits = new LinkedHashMap<>();
        splits.put("train", List.of("10"));
        splits.put("test", List.of("2"));
        ScienceQaDataset.writeJson(tmp, ps, splits);

        ScienceQaDataset ds = ScienceQaDataset.load(tmp);
        assertEquals(List.of("10", "2"), List.copyOf(ds.problems().keySet()));
        for (ScienceQaProblem p : ps) {
            ScienceQaProblem q = ds.problem(p.pid());
            Path expectedPath = p.image() == null ? null : tmp.resolve("images").resolve(p.pid()).resolve(p.image());
            assertEquals(new ScienceQaProblem(p.pid(), p.question(), p.choices(), p.answer(), p.hint(), p.image(),
                    expectedPath, p.subject(), p.grade(), p.category(), p.topic(), p.skill(), p.lecture(),
                    p.solution(), p.split(), p.task()), q);
        }
        assertEquals(splits.keySet(), new java.util.LinkedHashSet<>(ds.splitNames()));
        // Writing what was read gives the same bytes.
        byte[] first = Files.readAllBytes(tmp.resolve("problems.json"));
        Path again = Files.createDirectories(tmp.resolve("again"));
        ScienceQaDataset.writeJson(again, ds.problems().values(), splits);
        assertEquals(new String(first), Files.readString(again.resolve("problems.json")));
        assertFalse(Files.exists(tmp.resolve("problems.json.tmp")));
    }

    private ScienceQaFormatException loadBroken(String problems, String splits) throws IOException {
        Files.writeString(tmp.resolve("problems.json"), problems);
        Files.writeString(tmp.resolve("pid_splits.json"), splits);
        return assertThrows(ScienceQaFormatException.class, () -> ScienceQaDataset.load(tmp));
    }

    private static String oneProblem(String pid, String override) {
        String base = "\"question\": \"Q?\", \"choices\": [\"a\", \"b\", \"c\"], \"answer\": 1, \"hint\": \"\","
                + " \"image\": null, \"grade\": \"grade3\", \"subject\": \"natural science\", \"topic\": \"t\","
                + " \"category\": \"c\", \"skill\": \"s\", \"lecture\": \"l\", \"solution\": \"so\", \"split\": \"train\"";
        return "{\"" + pid + "\": {" + base + (override.isEmpty() ? "" : ", " + override) + "}}";
    }

    private static void assertMentions(Exception e, String... parts) {
        for (String p : parts) {
            assertTrue(e.getMessage().contains(p), () -> "message lacks '" + p + "': " + e.getMessage());
        }
    }

    @Test
    void rejectsBadJson() throws IOException {
        Exception e = loadBroken("{\"1\": {\"question\": ", "{\"train\": [\"1\"]}");
        assertMentions(e, "problems.json", "expected valid JSON", "line");
    }

    @Test
    void rejectsAnswerOutOfRange() throws IOException {
        Exception e = loadBroken(oneProblem("42", "\"answer\": 3").replace("\"answer\": 1, ", ""),
                "{\"train\": [\"42\"]}");
        assertMentions(e, "problems.json", "pid 42", "key answer", "0..2", "got 3");
    }

    @Test
    void rejectsMissingImage() throws IOException {
        Exception e = loadBroken(oneProblem("9", "\"image\": \"image.png\"").replace("\"image\": null, ", ""),
                "{\"train\": [\"9\"]}");
        assertMentions(e, "problems.json", "pid 9", "key image", "images/9/image.png", "images/train/9/image.png",
                "got none");
    }

    @Test
    void rejectsSplitNamingUnknownPid() throws IOException {
        Exception e = loadBroken(oneProblem("1", ""), "{\"train\": [\"1\", \"77\"]}");
        assertMentions(e, "pid_splits.json", "key train", "pid 77", "expected a problem", "got none");
    }

    @Test
    void rejectsProblemWhoseSplitIsNotListed() throws IOException {
        Exception e = loadBroken(oneProblem("1", "\"split\": \"dev\"").replace("\"split\": \"train\", ", "")
                .replace(", \"split\": \"train\"", ""), "{\"train\": []}");
        assertMentions(e, "problems.json", "pid 1", "key split", "[train]", "got dev");
    }

    @Test
    void rejectsTooManyChoicesAndBadGrade() throws IOException {
        Exception e = loadBroken(oneProblem("3", "").replace("[\"a\", \"b\", \"c\"]", "[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\"]"),
                "{\"train\": [\"3\"]}");
        assertMentions(e, "pid 3", "key choices", "2..5", "got 6");
        e = loadBroken(oneProblem("3", "").replace("grade3", "grade13"), "{\"train\": [\"3\"]}");
        assertMentions(e, "pid 3", "key grade", "grade1..grade12", "got grade13");
    }

    @Test
    void rejectsMissingFieldAndDuplicateKey() throws IOException {
        Exception e = loadBroken(oneProblem("4", "").replace("\"lecture\": \"l\", ", ""), "{\"train\": [\"4\"]}");
        assertMentions(e, "pid 4", "key lecture", "expected a string", "got missing");
        e = loadBroken(oneProblem("4", "\"answer\": 0"), "{\"train\": [\"4\"]}");
        assertMentions(e, "problems.json", "expected valid JSON", "answer");
    }

    @Test
    void unknownSplitNamesTheKnownOnes() throws IOException {
        writeReal(tmp);
        ScienceQaDataset ds = ScienceQaDataset.load(tmp);
        Exception e = assertThrows(IllegalArgumentException.class, () -> ds.split("dev"));
        assertMentions(e, "pid_splits.json", "key dev", "train", "minival");
    }

    @Test
    void missingFilesAreNamed() {
        Exception e = assertThrows(ScienceQaFormatException.class, () -> ScienceQaDataset.load(tmp));
        assertMentions(e, "problems.json", "expected a file");
    }
}
