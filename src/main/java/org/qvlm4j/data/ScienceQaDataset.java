package org.qvlm4j.data;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.util.DefaultIndenter;
import com.fasterxml.jackson.core.util.DefaultPrettyPrinter;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.Collections;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;

/**
 * A dataset in ScienceQA's file layout (lupantech/ScienceQA data/scienceqa, the layout LLaVA's
 * scripts/convert_sqa_to_llava.py and llava/eval/eval_science_qa.py read): {@code problems.json}
 * (object keyed by pid), {@code pid_splits.json} ({split: [pid, ...]}) and images.
 *
 * <p>An image named by a problem is looked up at {@code images/<pid>/<image>} (the synthetic
 * benchmark's layout) and then at {@code images/<split>/<pid>/<image>} (the unzipped layout of
 * the real download). Loading is strict: every problem is checked and the first violation is a
 * {@link ScienceQaFormatException} naming file, pid, key, expected and actual value. Choices must
 * number 2..5 (ScienceQA's range; the evaluation scripts only have letters A-E). Captions and the
 * LLaVA conversation files are out of scope.
 */
public final class ScienceQaDataset {

    /** Problems file name. */
    public static final String PROBLEMS_FILE = "problems.json";
    /** Splits file name. */
    public static final String SPLITS_FILE = "pid_splits.json";
    /** Image folder name. */
    public static final String IMAGES_DIR = "images";
    /** Fewest choices a problem may have. */
    public static final int MIN_CHOICES = 2;
    /** Most choices a problem may have (letters A-E). */
    public static final int MAX_CHOICES = 5;

    private static final List<String> REQUIRED_STRINGS = List.of("question", "subject", "grade", "category",
            "topic", "skill", "lecture", "solution", "split");

    private final Path dir;
    private final Map<String, ScienceQaProblem> problems;
    private final Map<String, List<String>> splits;

    private ScienceQaDataset(Path dir, Map<String, ScienceQaProblem> problems, Map<String, List<String>> splits) {
        this.dir = dir;
        this.problems = Collections.unmodifiableMap(problems);
        this.splits = Collections.unmodifiableMap(splits);
    }

    /** The dataset directory. */
    public Path dir() {
        return dir;
    }

    /** All problems keyed by pid, in problems.json order. */
    public Map<String, ScienceQaProblem> problems() {
        return problems;
    }

    /** Split names in pid_splits.json order. */
    public List<String> splitNames() {
        return List.copyOf(splits.keySet());
    }

    /** The problem with this pid; IllegalArgumentException naming the pid when absent. */
    public ScienceQaProblem problem(String pid) {
        ScienceQaProblem p = problems.get(pid);
        if (p == null) {
            throw new IllegalArgumentException(dir.resolve(PROBLEMS_FILE) + ": no problem with pid " + pid);
        }
        return p;
    }

    /** The problems of a split in pid_splits.json order; IllegalArgumentException for an unknown split. */
    public List<ScienceQaProblem> split(String name) {
        List<String> pids = splits.get(name);
        if (pids == null) {
            throw new IllegalArgumentException(dir.resolve(SPLITS_FILE) + ": key " + name
                    + ": expected one of " + splits.keySet() + ", got no such split");
        }
        List<ScienceQaProblem> out = new ArrayList<>(pids.size());
        for (String pid : pids) {
            out.add(problems.get(pid));
        }
        return out;
    }

    /** Reads and validates problems.json, pid_splits.json and the named images under dir. */
    public static ScienceQaDataset load(Path dir) {
        Path problemsFile = dir.resolve(PROBLEMS_FILE);
        Path splitsFile = dir.resolve(SPLITS_FILE);
        JsonNode root = readJson(problemsFile);
        if (!root.isObject()) {
            throw new ScienceQaFormatException(problemsFile + ": expected a JSON object keyed by pid, got "
                    + root.getNodeType());
        }
        JsonNode splitsRoot = readJson(splitsFile);
        if (!splitsRoot.isObject()) {
            throw new ScienceQaFormatException(splitsFile + ": expected a JSON object {split: [pid, ...]}, got "
                    + splitsRoot.getNodeType());
        }
        Map<String, List<String>> splits = new LinkedHashMap<>();
        for (Map.Entry<String, JsonNode> e : splitsRoot.properties()) {
            if (!e.getValue().isArray()) {
                throw new ScienceQaFormatException(splitsFile + ": key " + e.getKey()
                        + ": expected an array of pids, got " + e.getValue().getNodeType());
            }
            List<String> pids = new ArrayList<>(e.getValue().size());
            Set<String> seen = new HashSet<>();
            for (JsonNode p : e.getValue()) {
                String pid = p.isTextual() ? p.asText() : p.isIntegralNumber() ? p.asText() : null;
                if (pid == null) {
                    throw new ScienceQaFormatException(splitsFile + ": key " + e.getKey()
                            + ": expected pid strings, got " + p.getNodeType());
                }
                if (!root.has(pid)) {
                    throw new ScienceQaFormatException(splitsFile + ": key " + e.getKey() + ": pid " + pid
                            + ": expected a problem in " + problemsFile + ", got none");
                }
                if (!seen.add(pid)) {
                    throw new ScienceQaFormatException(splitsFile + ": key " + e.getKey() + ": pid " + pid
                            + ": expected once, got twice");
                }
                pids.add(pid);
            }
            splits.put(e.getKey(), List.copyOf(pids));
        }
        Map<String, ScienceQaProblem> problems = new LinkedHashMap<>();
        for (Map.Entry<String, JsonNode> e : root.properties()) {
            ScienceQaProblem p = parseProblem(dir, problemsFile, e.getKey(), e.getValue());
            if (!splits.containsKey(p.split())) {
                throw new ScienceQaFormatException(problemsFile + ": pid " + p.pid() + ": key split: expected one of "
                        + splits.keySet() + " (the keys of " + SPLITS_FILE + "), got " + p.split());
            }
            problems.put(p.pid(), p);
        }
        for (Map.Entry<String, List<String>> s : splits.entrySet()) {
            for (String pid : s.getValue()) {
                String own = problems.get(pid).split();
                if (splits.containsKey(own) && !own.equals(s.getKey()) && isPrimary(s.getKey())) {
                    throw new ScienceQaFormatException(splitsFile + ": key " + s.getKey() + ": pid " + pid
                            + ": expected a problem whose split is " + s.getKey() + ", got split " + own);
                }
            }
        }
        return new ScienceQaDataset(dir, problems, splits);
    }

    // The real pid_splits.json also has derived lists (trainval, minival, minitest...) that mix splits.
    private static boolean isPrimary(String split) {
        return split.equals("train") || split.equals("val") || split.equals("test");
    }

    private static JsonNode readJson(Path file) {
        try {
            return new ObjectMapper().enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION)
                    .readTree(Files.readAllBytes(file));
        } catch (NoSuchFileException e) {
            throw new ScienceQaFormatException(file + ": expected a file, got none", e);
        } catch (JsonProcessingException e) {
            throw new ScienceQaFormatException(file + ": expected valid JSON, got " + e.getOriginalMessage()
                    + " at line " + e.getLocation().getLineNr() + " column " + e.getLocation().getColumnNr(), e);
        } catch (IOException e) {
            throw new UncheckedIOException(file + ": " + e.getMessage(), e);
        }
    }

    private static ScienceQaProblem parseProblem(Path dir, Path file, String pid, JsonNode n) {
        String where = file + ": pid " + pid + ": key ";
        if (!n.isObject()) {
            throw new ScienceQaFormatException(file + ": pid " + pid + ": expected an object, got " + n.getNodeType());
        }
        Map<String, String> s = new LinkedHashMap<>();
        for (String key : REQUIRED_STRINGS) {
            JsonNode v = n.get(key);
            if (v == null || !v.isTextual()) {
                throw new ScienceQaFormatException(where + key + ": expected a string, got "
                        + (v == null ? "missing" : v.getNodeType()));
            }
            s.put(key, v.asText());
        }
        JsonNode hintNode = n.get("hint");
        if (hintNode != null && !hintNode.isNull() && !hintNode.isTextual()) {
            throw new ScienceQaFormatException(where + "hint: expected a string or null, got " + hintNode.getNodeType());
        }
        String hint = hintNode == null || hintNode.isNull() ? "" : hintNode.asText();
        JsonNode taskNode = n.get("task");
        if (taskNode != null && !taskNode.isNull() && !taskNode.isTextual()) {
            throw new ScienceQaFormatException(where + "task: expected a string, got " + taskNode.getNodeType());
        }
        String task = taskNode == null || taskNode.isNull() ? null : taskNode.asText();
        JsonNode choicesNode = n.get("choices");
        if (choicesNode == null || !choicesNode.isArray()) {
            throw new ScienceQaFormatException(where + "choices: expected an array of strings, got "
                    + (choicesNode == null ? "missing" : choicesNode.getNodeType()));
        }
        if (choicesNode.size() < MIN_CHOICES || choicesNode.size() > MAX_CHOICES) {
            throw new ScienceQaFormatException(where + "choices: expected " + MIN_CHOICES + ".." + MAX_CHOICES
                    + " choices, got " + choicesNode.size());
        }
        List<String> choices = new ArrayList<>();
        for (JsonNode c : choicesNode) {
            if (!c.isTextual()) {
                throw new ScienceQaFormatException(where + "choices: expected strings, got " + c.getNodeType());
            }
            choices.add(c.asText());
        }
        JsonNode answerNode = n.get("answer");
        if (answerNode == null || !answerNode.isIntegralNumber()) {
            throw new ScienceQaFormatException(where + "answer: expected an integer index, got "
                    + (answerNode == null ? "missing" : answerNode.getNodeType()));
        }
        int answer = answerNode.asInt();
        if (answer < 0 || answer >= choices.size()) {
            throw new ScienceQaFormatException(where + "answer: expected an index in 0.." + (choices.size() - 1)
                    + ", got " + answerNode.asText());
        }
        try {
            ScienceQaProblem.parseGrade(s.get("grade"));
        } catch (IllegalArgumentException e) {
            throw new ScienceQaFormatException(where + "grade: expected grade1..grade12, got " + s.get("grade"));
        }
        if (!List.of("natural science", "social science", "language science").contains(s.get("subject"))) {
            throw new ScienceQaFormatException(where + "subject: expected natural science, social science or "
                    + "language science, got " + s.get("subject"));
        }
        JsonNode imageNode = n.get("image");
        if (imageNode != null && !imageNode.isNull() && !imageNode.isTextual()) {
            throw new ScienceQaFormatException(where + "image: expected a file name or null, got "
                    + imageNode.getNodeType());
        }
        String image = imageNode == null || imageNode.isNull() || imageNode.asText().isEmpty() ? null : imageNode.asText();
        Path imagePath = null;
        if (image != null) {
            Path flat = dir.resolve(IMAGES_DIR).resolve(pid).resolve(image);
            Path bySplit = dir.resolve(IMAGES_DIR).resolve(s.get("split")).resolve(pid).resolve(image);
            if (Files.isRegularFile(flat)) {
                imagePath = flat;
            } else if (Files.isRegularFile(bySplit)) {
                imagePath = bySplit;
            } else {
                throw new ScienceQaFormatException(where + "image: expected a file at " + flat + " or " + bySplit
                        + ", got none");
            }
        }
        return new ScienceQaProblem(pid, s.get("question"), choices, answer, hint, image, imagePath, s.get("subject"),
                s.get("grade"), s.get("category"), s.get("topic"), s.get("skill"), s.get("lecture"),
                s.get("solution"), s.get("split"), task);
    }

    /**
     * Writes problems.json (problems in the given order, each entry's keys sorted) and pid_splits.json
     * (splits in the given order) into dir, each through a temp file and a rename. Images are the
     * caller's. The bytes depend only on the arguments: two-space indent, "\n" line ends.
     */
    public static void writeJson(Path dir, Collection<ScienceQaProblem> problems, Map<String, List<String>> splits) {
        JsonNodeFactory f = JsonNodeFactory.instance;
        ObjectNode root = f.objectNode();
        for (ScienceQaProblem p : problems) {
            ObjectNode o = root.putObject(p.pid());
            o.put("answer", p.answer());
            o.put("category", p.category());
            ArrayNode c = o.putArray("choices");
            p.choices().forEach(c::add);
            o.put("grade", p.grade());
            o.put("hint", p.hint());
            if (p.image() == null) {
                o.putNull("image");
            } else {
                o.put("image", p.image());
            }
            o.put("lecture", p.lecture());
            o.put("question", p.question());
            o.put("skill", p.skill());
            o.put("solution", p.solution());
            o.put("split", p.split());
            o.put("subject", p.subject());
            if (p.task() != null) {
                o.put("task", p.task());
            }
            o.put("topic", p.topic());
        }
        ObjectNode sp = f.objectNode();
        for (Map.Entry<String, List<String>> e : splits.entrySet()) {
            ArrayNode a = sp.putArray(e.getKey());
            e.getValue().forEach(a::add);
        }
        writeAtomically(dir.resolve(PROBLEMS_FILE), toBytes(root));
        writeAtomically(dir.resolve(SPLITS_FILE), toBytes(sp));
    }

    static byte[] toBytes(JsonNode node) {
        DefaultPrettyPrinter pp = new DefaultPrettyPrinter()
                .withObjectIndenter(new DefaultIndenter("  ", "\n"))
                .withArrayIndenter(new DefaultIndenter("  ", "\n"));
        try {
            String s = new ObjectMapper().writer(pp).writeValueAsString(node);
            return (s + "\n").getBytes(StandardCharsets.UTF_8);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }

    static void writeAtomically(Path target, byte[] bytes) {
        org.qvlm4j.io.AtomicFiles.write(target, bytes);
    }

    /**
     * A seeded sample of n problems of a split, kept in split order: the first n positions of a
     * Fisher-Yates shuffle driven by {@code SplittableRandom(seed)}, sorted. Evaluation limits and
     * calibration sets both draw with it, so one seed names one subset everywhere.
     */
    public static List<ScienceQaProblem> sample(List<ScienceQaProblem> split, int n, long seed) {
        int size = split.size();
        if (n < 0 || n > size) {
            throw new IllegalArgumentException("sample size must be in [0, " + size + "], got " + n);
        }
        int[] idx = new int[size];
        for (int i = 0; i < size; i++) {
            idx[i] = i;
        }
        SplittableRandom rnd = new SplittableRandom(seed);
        for (int i = 0; i < n; i++) {
            int j = i + rnd.nextInt(size - i);
            int t = idx[i];
            idx[i] = idx[j];
            idx[j] = t;
        }
        int[] chosen = Arrays.copyOf(idx, n);
        Arrays.sort(chosen);
        List<ScienceQaProblem> out = new ArrayList<>(n);
        for (int i : chosen) {
            out.add(split.get(i));
        }
        return out;
    }

}
