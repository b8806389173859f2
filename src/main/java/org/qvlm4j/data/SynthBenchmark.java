package org.qvlm4j.data;

import static org.qvlm4j.data.WordLists.*;

import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeSet;
import java.util.function.Predicate;
import java.util.stream.IntStream;
import java.util.stream.Stream;
import org.qvlm4j.io.AtomicFiles;

/**
 * Procedural multiple-choice benchmark in ScienceQA's format: the stand-in for ScienceQA when the
 * real data cannot be downloaded, sized for a tiny LLaVA with a word-level tokenizer.
 *
 * <p>Each problem is drawn from one of twelve families, one per (subject, context) pair: natural
 * science counts, colours, shapes, sizes and positions in a picture, temperatures in a hint and
 * "magnets" named by the hint and counted in the picture, and classification from word lists;
 * social science map pictures, town facts in a hint, maps whose towns the hint names, and
 * directions and months; language science phrases matching a picture, words from a sentence in the
 * hint, sentences completed from hint and picture, and rhymes, opposites, plurals and alphabetical
 * order. Each family has an easy form (grades 1-6) and a hard form (grades 7-12: more objects,
 * more clutter and noise, two-step reasoning). Picture answers are computed from the {@link Scene}
 * that is drawn; objects never overlap. Choices number 2 to 5, the answer's position is uniform,
 * and choices are distinct.
 *
 * <p>Problem {@code i} depends only on (seed, i): it has its own random stream, so the output is a
 * function of the options alone. Left out: lectures beyond one sentence, captions, and any real
 * ScienceQA content.
 */
public final class SynthBenchmark {

    /** Image file name inside images/&lt;pid&gt;/. */
    public static final String IMAGE_FILE = "image.png";
    /** Word list file written next to problems.json. */
    public static final String VOCAB_FILE = "vocab.txt";
    /** Manifest with the options that produced the directory. */
    public static final String MANIFEST_FILE = "synth.json";
    /** Smallest picture the object sizes fit in. */
    public static final int MIN_IMAGE_SIZE = 48;
    public static final int MAX_IMAGE_SIZE = 1024;
    /** Scene placements tried before a problem is declared impossible (never reached with these counts). */
    static final int SCENE_ATTEMPTS = 200;
    /** Problems drawn and encoded in parallel before they are written in order. */
    static final int BATCH = 256;
    /** Minimum distance in pixels (at 64 px) between the extreme square and the runner-up on a map. */
    static final int MAP_MARGIN = 4;

    /** Subject of a problem. */
    public enum Subject {
        NATURAL("natural science"), SOCIAL("social science"), LANGUAGE("language science");

        public final String label;

        Subject(String label) {
            this.label = label;
        }
    }

    /** Which context a problem carries: a picture, a text hint, both or neither. */
    public enum Modality { IMAGE, TEXT, BOTH, NONE }

    /** Generation options. */
    public record Options(long seed, int train, int val, int test, int imageSize, Solutions solutions) {
        /** Options with the plain solutions. */
        public Options(long seed, int train, int val, int test, int imageSize) {
            this(seed, train, val, test, imageSize, Solutions.PLAIN);
        }

        public Options {
            if (solutions == null) {
                throw new IllegalArgumentException("option solutions: expected plain or steps, got nothing");
            }
            for (var e : Map.of("train", train, "val", val, "test", test).entrySet()) {
                if (e.getValue() < 0) {
                    throw new IllegalArgumentException("option " + e.getKey() + ": expected >= 0, got " + e.getValue());
                }
            }
            if ((long) train + val + test == 0) {
                throw new IllegalArgumentException("options train+val+test: expected > 0, got 0");
            }
            if (imageSize < MIN_IMAGE_SIZE || imageSize > MAX_IMAGE_SIZE) {
                throw new IllegalArgumentException("option image-size: expected " + MIN_IMAGE_SIZE + ".."
                        + MAX_IMAGE_SIZE + ", got " + imageSize);
            }
        }

        /** Split names and sizes in pid order. */
        public Map<String, Integer> splits() {
            Map<String, Integer> m = new LinkedHashMap<>();
            m.put("train", train);
            m.put("val", val);
            m.put("test", test);
            return m;
        }

        public int total() {
            return train + val + test;
        }
    }

    /**
     * One generated problem. The problem's imagePath is null (it is set by {@link ScienceQaDataset#load});
     * scene is null when the problem has no picture. template names the question family and form.
     */
    public record Sample(ScienceQaProblem problem, Scene scene, String template, Subject subject, Modality modality,
                         boolean hard) {
    }

    /** Progress callback: problems done out of total. */
    @FunctionalInterface
    public interface Progress {
        void update(int done, int total);
    }

    /**
     * How the solutions of the families that compare several items are written. The same problems,
     * images and answers either way: only the solution text differs, so no random draw changes.
     */
    public enum Solutions {
        /** One sentence naming the result ("The bowl is 7 degrees, so it is the coldest."). */
        PLAIN,
        /**
         * A chain of local steps a small model can follow one at a time: a running comparison over
         * the items in the order the text gives them, keeping the best (or best two) so far
         * ("jar 9. pan 8: pan 8. bowl 7: bowl 7. So the bowl is the coldest."); for a map with a key,
         * the square first and then its town; for relative directions, the converse of the stated
         * fact, or a walk from the first town named in the direction asked until no town lies further.
         */
        STEPS,
        /**
         * {@link #STEPS}, and the map questions solved by a running comparison of the squares'
         * positions along the asked direction, keeping the farthest (or farthest two) so far: over
         * the squares in the colour order red, blue, green, yellow, purple, orange on a map without a
         * key, in the order the key names them on a map with one ("red. blue: red. green: green. So
         * the green square is farthest north.").
         */
        POSITIONS,
        /**
         * {@link #POSITIONS}, with the solution of every problem that has a picture opening with a
         * description of it: each shape's size, colour and place in reading order ("The picture has a
         * red square at top left, a large blue circle at center and a green cross at bottom.").
         */
        DESCRIBED,
        /**
         * {@link #STEPS}, and the map questions solved by a running comparison of the squares'
         * coordinates along the asked direction: the row of an eighth of the picture, counted from 1 at
         * the top, that holds the square's centre for north and south, its column counted from 1 at
         * the left for east and west, keeping the farthest (or farthest two) so far, over the squares
         * in the order of {@link #POSITIONS} ("red 6. blue 2: blue 2. green 4: blue 2. So the blue square
         * is farthest north."). The model reads each square's place from the picture and writes it as
         * a number, then compares numbers as in the text families.
         */
        COORDINATES,
        /**
         * {@link #COORDINATES}, with a map that has a key walked through the key's own sentences: each
         * step copies one entry of the key, reads that colour's coordinate and keeps the farthest
         * towns so far ("Ardon is the yellow square: yellow 5. Eston is the orange square: orange 2:
         * Ardon 5. So Ardon is farthest east."). Every step reads forward in the hint, and the answer's
         * town is carried along instead of looked up afterwards from its colour (in the hint the town
         * stands before its colour).
         */
        KEYED,
        /**
         * {@link #COORDINATES}, and the picture families that count or name the shapes of one colour
         * write that colour and then its count or shape before the sentence that answers, as a map
         * writes a colour and then its coordinate: "yellow 3. orange 1. 3 minus 1 is 2." for how many
         * more yellow shapes than orange ones, "The magnets are the green shapes. green 5. There are
         * 5.", "blue circle. The blue shape is a circle.", "red 3. red squares. The picture shows
         * three squares." (a phrase with a number), "red 1. There are 6 shapes and 1 of them are red.
         * So 5 are not red.". A model whose slots name each colour's count and shape reads them there.
         */
        COUNTS;

        /** Key of the training manifest ({@code train_manifest.json}) naming the solutions its data had. */
        public static final String TRAIN_MANIFEST_KEY = "data_solutions";

        /**
         * The solutions of a benchmark directory from its {@value #MANIFEST_FILE}: the recorded style,
         * {@link #PLAIN} when the manifest predates the key, null when the directory has no manifest (a
         * benchmark not made by {@code synth}, e.g. a ScienceQA download).
         */
        public static Solutions ofData(Path dataDir) {
            Path f = dataDir.resolve(MANIFEST_FILE);
            if (!Files.isRegularFile(f)) {
                return null;
            }
            return read(f, "solutions");
        }

        /**
         * The solutions of the data a model was trained on, from its training manifest's
         * {@value #TRAIN_MANIFEST_KEY}; {@link #PLAIN} when the manifest lacks the key or is absent
         * (the only style before the key existed).
         */
        public static Solutions ofModel(Path modelDir) {
            Path f = modelDir.resolve("train_manifest.json");
            return Files.isRegularFile(f) ? read(f, TRAIN_MANIFEST_KEY) : PLAIN;
        }

        /**
         * Refuses a benchmark directory whose recorded solutions differ from those the model was
         * trained on (a directory without a synth manifest passes), naming the file, key, both
         * values and the remedy.
         */
        public static void requireModelsOwn(Path dataDir, Path modelDir, String remedy) {
            Solutions data = ofData(dataDir);
            Solutions model = ofModel(modelDir);
            if (data != null && data != model) {
                throw new IllegalArgumentException(dataDir.resolve(MANIFEST_FILE) + ": key solutions: expected '"
                        + model.name().toLowerCase(Locale.ROOT) + "' (the solutions " + modelDir
                        + " was trained on, train_manifest.json key " + TRAIN_MANIFEST_KEY + "), got '"
                        + data.name().toLowerCase(Locale.ROOT) + "'; " + remedy);
            }
        }

        private static Solutions read(Path f, String key) {
            com.fasterxml.jackson.databind.JsonNode v = jsonKey(f, key);
            return v.isTextual() ? parse(f + " key " + key, v.asText()) : PLAIN;
        }

        /** The style of a lower-case name; the error names where it came from. */
        public static Solutions parse(String where, String value) {
            for (Solutions v : values()) {
                if (v.name().equalsIgnoreCase(value)) {
                    return v;
                }
            }
            throw new IllegalArgumentException(where + ": expected one of " + Arrays.stream(values())
                    .map(v -> "'" + v.name().toLowerCase(Locale.ROOT) + "'").toList() + ", got '" + value + "'");
        }
    }

    private final long seed;
    private final int imageSize;
    private final Solutions solutions;

    public SynthBenchmark(long seed, int imageSize) {
        this(seed, imageSize, Solutions.PLAIN);
    }

    public SynthBenchmark(long seed, int imageSize, Solutions solutions) {
        this.seed = seed;
        this.imageSize = imageSize;
        this.solutions = solutions;
    }

    private boolean steps() {
        return solutions != Solutions.PLAIN;
    }

    /** Whether the maps are solved by coordinates ({@link Solutions#COORDINATES}, {@link Solutions#KEYED}, {@link Solutions#COUNTS}). */
    private boolean coordinates() {
        return solutions == Solutions.COORDINATES || solutions == Solutions.KEYED || solutions == Solutions.COUNTS;
    }

    /** Whether the colour-keyed picture facts are written first ({@link Solutions#COUNTS}). */
    private boolean counts() {
        return solutions == Solutions.COUNTS;
    }

    private boolean positions() {
        return solutions == Solutions.POSITIONS || solutions == Solutions.DESCRIBED;
    }

    /**
     * The place of a point in a picture of the given size on a 3 x 3 grid: "top left", "top",
     * "top right", "left", "center", "right", "bottom left", "bottom", "bottom right".
     */
    static String place(int size, int x, int y) {
        String v = 3 * y < size ? "top" : 3 * y >= 2 * size ? "bottom" : null;
        String h = 3 * x < size ? "left" : 3 * x >= 2 * size ? "right" : null;
        return v == null ? (h == null ? "center" : h) : (h == null ? v : v + " " + h);
    }

    /**
     * "The picture has a red square at top left, a large blue circle at center and a green cross at
     * bottom.": every shape of the scene in reading order (rows of a third of the picture from the
     * top, left to right within a row).
     */
    static String describe(Scene scene) {
        int size = scene.size();
        List<Scene.SceneObject> objects = scene.objects().stream()
                .sorted(Comparator.comparingInt((Scene.SceneObject o) -> Math.min(2, 3 * o.cy() / size))
                        .thenComparingInt(Scene.SceneObject::cx))
                .toList();
        List<String> parts = new ArrayList<>();
        for (Scene.SceneObject o : objects) {
            String words = (o.large() ? "large " : "") + o.colour().word + " " + o.shape().singular;
            parts.add(("aeiou".indexOf(words.charAt(0)) >= 0 ? "an " : "a ") + words + " at "
                    + place(size, o.cx(), o.cy()));
        }
        String list = parts.size() == 1 ? parts.getFirst()
                : String.join(", ", parts.subList(0, parts.size() - 1)) + " and " + parts.getLast();
        return "The picture has " + list + ".";
    }

    /**
     * A running comparison over names in the given order by a hidden key (larger is farther),
     * keeping the keep farthest so far, farthest first: "red. blue: red. green: green, red.".
     */
    static String runningOrder(List<String> names, List<Integer> along, int keep) {
        List<Integer> best = new ArrayList<>();
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < names.size(); i++) {
            best.add(i);
            best.sort(Comparator.comparing((Integer j) -> -along.get(j)));
            if (best.size() > keep) {
                best.removeLast();
            }
            if (i > 0) {
                sb.append(' ').append(names.get(i)).append(':');
            }
            for (int k = 0; k < best.size(); k++) {
                sb.append(k == 0 ? (i > 0 ? " " : "") : ", ").append(names.get(best.get(k)));
            }
            sb.append('.');
        }
        return sb.toString();
    }

    /** Rows and columns of the grid the coordinate solutions name a square's place on. */
    static final int COORDINATE_CELLS = 8;

    /**
     * The coordinate of a square along a direction on the {@value #COORDINATE_CELLS}-cell grid: the row
     * of its centre (1 at the top) for north and south, the column (1 at the left) for east and west.
     */
    static int coordinate(int size, String direction, Scene.SceneObject o) {
        int c = direction.equals("north") || direction.equals("south") ? o.cy() : o.cx();
        return Math.min(COORDINATE_CELLS - 1, c * COORDINATE_CELLS / size) + 1;
    }

    /**
     * {@link #runningComparison} over the colours of the given squares, in their order, by their
     * {@link #coordinate}s, keeping the farthest along the direction (ties keep the truly farther first).
     */
    private String runningCoordinates(List<Scene.SceneObject> squares, String direction, int keep) {
        List<Scene.SceneObject> far = squares.stream()
                .sorted(Comparator.comparingInt((Scene.SceneObject o) -> towards(direction, o)).reversed()).toList();
        // rank by the hidden position; the numbers shown are the grid coordinates
        List<String> names = new ArrayList<>();
        List<Integer> values = new ArrayList<>();
        List<Integer> rank = new ArrayList<>();
        for (Scene.SceneObject o : squares) {
            names.add(o.colour().word);
            values.add(coordinate(imageSize, direction, o));
            rank.add(far.indexOf(o));
        }
        return runningComparison(names, values, rank, keep);
    }

    /**
     * The running comparison of a map with a key, over its entries in the key's order: entry i is
     * written as the key states it, then its colour and coordinate, then (after the first) the
     * towns kept so far with their coordinates, farthest first ("Ardon is the yellow square: yellow 5.
     * Eston is the orange square: orange 2: Ardon 5.").
     */
    private String runningKeyed(List<Scene.SceneObject> squares, List<String> towns, String direction, int keep) {
        List<Scene.SceneObject> far = squares.stream()
                .sorted(Comparator.comparingInt((Scene.SceneObject o) -> towards(direction, o)).reversed()).toList();
        List<Integer> best = new ArrayList<>();
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < squares.size(); i++) {
            Scene.SceneObject o = squares.get(i);
            best.add(i);
            best.sort(Comparator.comparing((Integer j) -> far.indexOf(squares.get(j))));
            if (best.size() > keep) {
                best.removeLast();
            }
            String colour = o.colour().word;
            sb.append(i > 0 ? " " : "").append(towns.get(i)).append(" is the ").append(colour).append(" square: ")
                    .append(colour).append(' ').append(coordinate(imageSize, direction, o));
            if (i > 0) {
                sb.append(':');
                for (int k = 0; k < best.size(); k++) {
                    Scene.SceneObject b = squares.get(best.get(k));
                    sb.append(k == 0 ? " " : ", ").append(towns.get(best.get(k))).append(' ')
                            .append(coordinate(imageSize, direction, b));
                }
            }
            sb.append('.');
        }
        return sb.toString();
    }

    /** {@link #runningOrder} over the colours of the given squares, in their order, by position along the direction. */
    private static String runningOrder(List<Scene.SceneObject> squares, String direction, int keep) {
        List<String> names = new ArrayList<>();
        List<Integer> along = new ArrayList<>();
        for (Scene.SceneObject o : squares) {
            names.add(o.colour().word);
            along.add(towards(direction, o));
        }
        return runningOrder(names, along, keep);
    }

    /**
     * A running comparison over (name, value) pairs in the given order, keeping the best keep
     * entries (largest value first when largest, else smallest first): "a 9. b 8: b 8, a 9. ...".
     */
    static String runningComparison(List<String> names, List<Integer> values, boolean largest, int keep) {
        List<Integer> rank = values.stream().map(v -> largest ? -v : v).toList();
        return runningComparison(names, values, rank, keep);
    }

    /**
     * A running comparison over (name, value) pairs in the given order, keeping the keep entries of
     * lowest rank, lowest first, and writing each with its value.
     */
    static String runningComparison(List<String> names, List<Integer> values, List<Integer> rank, int keep) {
        List<Integer> best = new ArrayList<>();
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < names.size(); i++) {
            best.add(i);
            best.sort(Comparator.comparing(rank::get));
            if (best.size() > keep) {
                best.removeLast();
            }
            if (i > 0) {
                sb.append(' ').append(names.get(i)).append(' ').append(values.get(i)).append(':');
            }
            for (int k = 0; k < best.size(); k++) {
                sb.append(k == 0 ? (i > 0 ? " " : "") : ", ").append(names.get(best.get(k))).append(' ')
                        .append(values.get(best.get(k)));
            }
            sb.append('.');
        }
        return sb.toString();
    }

    // ---------------------------------------------------------------------------------------------
    // Writing a dataset directory

    /** The value of a key of a JSON file (a missing node when the key is absent); unreadable JSON names the file. */
    private static com.fasterxml.jackson.databind.JsonNode jsonKey(Path f, String key) {
        try {
            return new com.fasterxml.jackson.databind.ObjectMapper().readTree(Files.readAllBytes(f)).path(key);
        } catch (IOException e) {
            throw new UncheckedIOException(f + ": " + e.getMessage(), e);
        }
    }

    /**
     * Refuses a benchmark directory whose {@value #MANIFEST_FILE} records another number of test
     * problems than {@code expected} (a directory without the manifest passes), naming the file,
     * key, both values and the remedy.
     */
    public static void requireTestCount(Path dataDir, int expected, String remedy) {
        Path f = dataDir.resolve(MANIFEST_FILE);
        if (!Files.isRegularFile(f)) {
            return;
        }
        com.fasterxml.jackson.databind.JsonNode v = jsonKey(f, "test");
        if (!v.isInt() || v.asInt() != expected) {
            throw new IllegalArgumentException(f + ": key test: expected " + expected + ", got "
                    + (v.isMissingNode() ? "no such key" : v.toString()) + "; " + remedy);
        }
    }

    /**
     * Generates the benchmark into {@code out}: problems.json, pid_splits.json, images/&lt;pid&gt;/image.png,
     * vocab.txt and synth.json. Everything is written into a sibling temp directory that is renamed to
     * {@code out} at the end. An existing non-empty {@code out} is refused with IllegalArgumentException.
     */
    public static void write(Path out, Options o, Progress progress) {
        Path abs = out.toAbsolutePath().normalize();
        try {
            if (Files.exists(abs)) {
                if (!Files.isDirectory(abs)) {
                    throw new IllegalArgumentException(abs + ": expected a new or empty directory, got a file");
                }
                try (Stream<Path> s = Files.list(abs)) {
                    if (s.findAny().isPresent()) {
                        throw new IllegalArgumentException(abs + ": expected a new or empty directory, got a non-empty one");
                    }
                }
            }
            Path parent = abs.getParent();
            Files.createDirectories(parent);
            Path tmp = AtomicFiles.tempSiblingDirectory(abs);
            try {
                writeInto(tmp, o, progress);
                if (Files.exists(abs)) {
                    Files.delete(abs);
                }
                Files.move(tmp, abs, StandardCopyOption.ATOMIC_MOVE);
            } catch (RuntimeException | IOException e) {
                AtomicFiles.deleteTreeQuietly(tmp);
                throw e;
            }
        } catch (IOException e) {
            throw new UncheckedIOException(abs + ": " + e.getMessage(), e);
        }
    }

    private static void writeInto(Path dir, Options o, Progress progress) throws IOException {
        SynthBenchmark gen = new SynthBenchmark(o.seed(), o.imageSize(), o.solutions());
        List<ScienceQaProblem> problems = new ArrayList<>(o.total());
        Map<String, List<String>> splits = new LinkedHashMap<>();
        int index = 0;
        for (Map.Entry<String, Integer> split : o.splits().entrySet()) {
            List<String> pids = new ArrayList<>(split.getValue());
            for (int start = 0; start < split.getValue(); start += BATCH) {
                // Problems are independent functions of their index, so a batch is drawn and encoded in
                // parallel and written in order: the bytes do not depend on the thread count.
                int first = index + start;
                List<Rendered> batch = IntStream.range(first, first + Math.min(BATCH, split.getValue() - start))
                        .parallel()
                        .mapToObj(i -> gen.rendered(split.getKey(), i))
                        .toList();
                for (Rendered r : batch) {
                    String pid = r.sample().problem().pid();
                    if (r.png() != null) {
                        Path imgDir = Files.createDirectories(dir.resolve(ScienceQaDataset.IMAGES_DIR).resolve(pid));
                        Files.write(imgDir.resolve(IMAGE_FILE), r.png());
                    }
                    problems.add(r.sample().problem());
                    pids.add(pid);
                    if (progress != null) {
                        progress.update(problems.size(), o.total());
                    }
                }
            }
            index += split.getValue();
            splits.put(split.getKey(), pids);
        }
        ScienceQaDataset.writeJson(dir, problems, splits);
        Files.writeString(dir.resolve(VOCAB_FILE), String.join("\n", vocabulary(problems)) + "\n",
                StandardCharsets.UTF_8);
        ObjectNode m = JsonNodeFactory.instance.objectNode();
        m.put("generator", "qvlm4j synth");
        m.put("image_size", o.imageSize());
        m.put("seed", o.seed());
        m.put("solutions", o.solutions().name().toLowerCase(Locale.ROOT));
        m.put("test", o.test());
        m.put("train", o.train());
        m.put("val", o.val());
        Files.write(dir.resolve(MANIFEST_FILE), ScienceQaDataset.toBytes(m));
    }

    private record Rendered(Sample sample, byte[] png) {
    }

    private Rendered rendered(String split, int index) {
        Sample s = sample(split, index, Integer.toString(index + 1));
        return new Rendered(s, s.scene() == null ? null : SceneRenderer.png(SceneRenderer.render(s.scene(), false)));
    }

    // ---------------------------------------------------------------------------------------------
    // Vocabulary

    /** Lower-cased tokens of a text: runs of letters and digits, and every other non-space character alone. */
    public static List<String> tokenize(String text) {
        List<String> out = new ArrayList<>();
        String t = text.toLowerCase(Locale.ROOT);
        int i = 0;
        while (i < t.length()) {
            char c = t.charAt(i);
            if (Character.isWhitespace(c)) {
                i++;
            } else if (Character.isLetterOrDigit(c)) {
                int j = i;
                while (j < t.length() && Character.isLetterOrDigit(t.charAt(j))) {
                    j++;
                }
                out.add(t.substring(i, j));
                i = j;
            } else {
                out.add(String.valueOf(c));
                i++;
            }
        }
        return out;
    }

    /** Sorted distinct tokens of the questions, choices, hints, lectures and solutions. */
    public static List<String> vocabulary(Iterable<ScienceQaProblem> problems) {
        TreeSet<String> words = new TreeSet<>();
        for (ScienceQaProblem p : problems) {
            words.addAll(tokenize(p.question()));
            p.choices().forEach(c -> words.addAll(tokenize(c)));
            words.addAll(tokenize(p.hint()));
            words.addAll(tokenize(p.lecture()));
            words.addAll(tokenize(p.solution()));
        }
        return new ArrayList<>(words);
    }

    // ---------------------------------------------------------------------------------------------
    // Sampling

    /** Problem number {@code index} (0-based over all splits) with a random subject, modality and difficulty. */
    public Sample sample(String split, long index, String pid) {
        SplittableRandom rnd = rng(index);
        Subject subject = Subject.values()[rnd.nextInt(Subject.values().length)];
        Modality modality = Modality.values()[rnd.nextInt(Modality.values().length)];
        boolean hard = rnd.nextBoolean();
        return build(rnd, split, pid, subject, modality, hard);
    }

    /** Problem number {@code index} forced into one (subject, modality, difficulty) cell. */
    public Sample sample(String split, long index, String pid, Subject subject, Modality modality, boolean hard) {
        SplittableRandom rnd = rng(index);
        rnd.nextInt(Subject.values().length);
        rnd.nextInt(Modality.values().length);
        rnd.nextBoolean();
        return build(rnd, split, pid, subject, modality, hard);
    }

    private SplittableRandom rng(long index) {
        // Golden-ratio stride then SplittableRandom's own mixing: streams of nearby indices are unrelated.
        return new SplittableRandom(new SplittableRandom(seed).nextLong() + index * 0x9E3779B97F4A7C15L);
    }

    private Sample build(SplittableRandom rnd, String split, String pid, Subject subject, Modality modality,
                         boolean hard) {
        Draft d = switch (subject) {
            case NATURAL -> switch (modality) {
                case IMAGE -> natImage(rnd, hard);
                case TEXT -> natText(rnd, hard);
                case BOTH -> natBoth(rnd, hard);
                case NONE -> natNone(rnd, hard);
            };
            case SOCIAL -> switch (modality) {
                case IMAGE -> socImage(rnd, hard);
                case TEXT -> socText(rnd, hard);
                case BOTH -> socBoth(rnd, hard);
                case NONE -> socNone(rnd, hard);
            };
            case LANGUAGE -> switch (modality) {
                case IMAGE -> lanImage(rnd, hard);
                case TEXT -> lanText(rnd, hard);
                case BOTH -> lanBoth(rnd, hard);
                case NONE -> lanNone(rnd, hard);
            };
        };
        List<String> pool = new ArrayList<>();
        for (List<String> group : List.of(shuffled(rnd, d.preferred), shuffled(rnd, d.extra))) {
            for (String c : group) {
                if (!c.equals(d.answer) && !pool.contains(c)) {
                    pool.add(c);
                }
            }
        }
        int maxK = Math.min(ScienceQaDataset.MAX_CHOICES, pool.size() + 1);
        if (maxK < ScienceQaDataset.MIN_CHOICES) {
            throw new IllegalStateException(d.template + ": no distractor for answer " + d.answer);
        }
        int k = rnd.nextInt(ScienceQaDataset.MIN_CHOICES, maxK + 1);
        int answerAt = rnd.nextInt(k);
        List<String> choices = new ArrayList<>(pool.subList(0, k - 1));
        choices.add(answerAt, d.answer);
        boolean img = modality == Modality.IMAGE || modality == Modality.BOTH;
        int grade = hard ? rnd.nextInt(7, 13) : rnd.nextInt(1, 7);
        String solution = img && solutions == Solutions.DESCRIBED && !d.scene.objects().isEmpty()
                ? describe(d.scene) + " " + d.solution : d.solution;
        ScienceQaProblem p = new ScienceQaProblem(pid, d.question, choices, answerAt, d.hint == null ? "" : d.hint,
                img ? IMAGE_FILE : null, null, subject.label, "grade" + grade, d.category, d.topic, d.skill,
                d.lecture, solution, split, "closed choice");
        return new Sample(p, img ? d.scene : null, d.template + (hard ? ".hard" : ".easy"), subject, modality, hard);
    }

    /** A problem before its choices are drawn: the answer and distractor pools (preferred ones first). */
    private static final class Draft {
        String template;
        String question;
        String answer;
        List<String> preferred = new ArrayList<>();
        List<String> extra = new ArrayList<>();
        String hint;
        Scene scene;
        String topic;
        String category;
        String skill;
        String lecture;
        String solution;

        Draft(String template, String topic, String category, String skill, String lecture) {
            this.template = template;
            this.topic = topic;
            this.category = category;
            this.skill = skill;
            this.lecture = lecture;
        }
    }

    // ---------------------------------------------------------------------------------------------
    // Scene helpers

    private interface Layout {
        boolean place(SceneBuilder b);
    }

    private Scene scene(SplittableRandom rnd, boolean hard, Layout layout) {
        for (int attempt = 0; attempt < SCENE_ATTEMPTS; attempt++) {
            SceneBuilder b = new SceneBuilder(rnd, imageSize, hard);
            if (layout.place(b)) {
                return b.build();
            }
        }
        throw new IllegalStateException("no non-overlapping layout found in " + SCENE_ATTEMPTS + " attempts");
    }

    private static <T> T pick(SplittableRandom rnd, List<T> xs) {
        return xs.get(rnd.nextInt(xs.size()));
    }

    private static <T> List<T> shuffled(SplittableRandom rnd, List<T> xs) {
        List<T> c = new ArrayList<>(xs);
        for (int i = c.size() - 1; i > 0; i--) {
            int j = rnd.nextInt(i + 1);
            T t = c.get(i);
            c.set(i, c.get(j));
            c.set(j, t);
        }
        return c;
    }

    /** n distinct elements in random order. */
    private static <T> List<T> distinct(SplittableRandom rnd, List<T> xs, int n) {
        return new ArrayList<>(shuffled(rnd, xs).subList(0, n));
    }

    private static List<Scene.Colour> colours() {
        return List.of(Scene.Colour.values());
    }

    private static List<Scene.Shape> shapes() {
        return List.of(Scene.Shape.values());
    }

    private static List<String> numbers(int answer, int lo, int hi) {
        List<String> out = new ArrayList<>();
        for (int d = 1; d <= 3; d++) {
            for (int v : new int[] {answer - d, answer + d}) {
                if (v >= lo && v <= hi) {
                    out.add(Integer.toString(v));
                }
            }
        }
        return out;
    }

    private static String form(Scene.Shape s, int n) {
        return n == 1 ? s.singular : s.plural;
    }

    private static String article(String noun) {
        return "aeiou".indexOf(noun.charAt(0)) >= 0 ? "an " + noun : "a " + noun;
    }

    /** Places {@code n} small objects of the colour with random shapes (or the given shape when non-null). */
    private static boolean placeMany(SplittableRandom rnd, SceneBuilder b, int n, Scene.Colour c, Scene.Shape s,
                                     boolean mayBeLarge) {
        for (int i = 0; i < n; i++) {
            Scene.Shape shape = s != null ? s : pick(rnd, shapes());
            if (!b.place(shape, c, mayBeLarge && rnd.nextInt(4) == 0)) {
                return false;
            }
        }
        return true;
    }

    /** Places n objects whose (colour, shape) passes {@code allowed}; none is large when {@code small}. */
    private static boolean placeOthers(SplittableRandom rnd, SceneBuilder b, int n,
                                       Predicate<Scene.SceneObject> allowed, boolean small) {
        for (int i = 0; i < n; i++) {
            Scene.Colour c;
            Scene.Shape s;
            do {
                c = pick(rnd, colours());
                s = pick(rnd, shapes());
            } while (!allowed.test(new Scene.SceneObject(s, c, 0, 0, 0, false)));
            if (!b.place(s, c, !small && rnd.nextInt(4) == 0)) {
                return false;
            }
        }
        return true;
    }

    // ---------------------------------------------------------------------------------------------
    // Natural science

    private Draft natImage(SplittableRandom rnd, boolean hard) {
        int kind = rnd.nextInt(hard ? 4 : 5);
        if (hard) {
            return switch (kind) {
                case 0 -> natCount(rnd, true);
                case 1 -> natCountDifference(rnd);
                case 2 -> natCountNot(rnd);
                default -> natCountLarge(rnd);
            };
        }
        return switch (kind) {
            case 0 -> natCount(rnd, false);
            case 1 -> natColourOf(rnd);
            case 2 -> natShapeOf(rnd);
            case 3 -> natLargest(rnd);
            default -> natPosition(rnd);
        };
    }

    private Draft natCount(SplittableRandom rnd, boolean hard) {
        Draft d = new Draft("nat.image.count", "counting", "Counting shapes", "Count shapes of one color and shape",
                "To count shapes, find each shape that matches both the color and the shape in the question.");
        Scene.Colour c = pick(rnd, colours());
        Scene.Shape s = pick(rnd, shapes());
        int n = hard ? rnd.nextInt(1, 7) : rnd.nextInt(1, 5);
        int others = hard ? rnd.nextInt(2, Math.max(3, 10 - n)) : rnd.nextInt(1, 4);
        d.scene = scene(rnd, hard, b -> placeMany(rnd, b, n, c, s, !hard)
                // Hard pictures favour near misses: same colour or same shape as the target.
                && placeOthers(rnd, b, others, o -> !(o.colour() == c && o.shape() == s)
                        && (!hard || o.colour() == c || o.shape() == s), hard));
        d.question = "How many " + c.word + " " + s.plural + " are in the picture?";
        d.answer = Integer.toString(n);
        d.preferred.addAll(numbers(n, 0, 9));
        d.solution = "Count the " + c.word + " " + s.plural + ". There " + (n == 1 ? "is " : "are ") + n + ".";
        return d;
    }

    private Draft natCountDifference(SplittableRandom rnd) {
        Draft d = new Draft("nat.image.more", "counting", "Comparing counts", "Compare the numbers of two colors",
                "To find how many more, count each group and subtract the smaller number from the larger.");
        List<Scene.Colour> cs = distinct(rnd, colours(), 2);
        int n1 = rnd.nextInt(2, 6);
        int n2 = rnd.nextInt(1, n1);
        int others = rnd.nextInt(0, Math.min(3, 10 - n1 - n2));
        d.scene = scene(rnd, true, b -> placeMany(rnd, b, n1, cs.get(0), null, false)
                && placeMany(rnd, b, n2, cs.get(1), null, false)
                && placeOthers(rnd, b, others, o -> o.colour() != cs.get(0) && o.colour() != cs.get(1), true));
        d.question = "How many more " + cs.get(0).word + " shapes than " + cs.get(1).word
                + " shapes are in the picture?";
        d.answer = Integer.toString(n1 - n2);
        d.preferred.addAll(numbers(n1 - n2, 0, 9));
        d.preferred.add(Integer.toString(n1));
        d.solution = counts()
                ? cs.get(0).word + " " + n1 + ". " + cs.get(1).word + " " + n2 + ". " + n1 + " minus " + n2 + " is " + (n1 - n2) + "."
                : "There are " + n1 + " " + cs.get(0).word + " shapes and " + n2 + " " + cs.get(1).word
                        + " shapes. " + n1 + " minus " + n2 + " is " + (n1 - n2) + ".";
        return d;
    }

    private Draft natCountNot(SplittableRandom rnd) {
        Draft d = new Draft("nat.image.not", "counting", "Counting shapes", "Count shapes that are not one color",
                "To count the shapes that are not a color, count all shapes and take away the shapes of that color.");
        Scene.Colour c = pick(rnd, colours());
        int total = rnd.nextInt(4, 10);
        int m = rnd.nextInt(1, total);
        d.scene = scene(rnd, true, b -> placeMany(rnd, b, m, c, null, false)
                && placeOthers(rnd, b, total - m, o -> o.colour() != c, true));
        d.question = "How many shapes in the picture are not " + c.word + "?";
        d.answer = Integer.toString(total - m);
        d.preferred.addAll(numbers(total - m, 0, 9));
        d.preferred.add(Integer.toString(m));
        d.preferred.add(Integer.toString(total));
        d.solution = (counts() ? c.word + " " + m + ". " : "") + "There are " + total + " shapes and " + m + " of them are "
                + c.word + ". So " + (total - m) + " are not " + c.word + ".";
        return d;
    }

    private Draft natCountLarge(SplittableRandom rnd) {
        Draft d = new Draft("nat.image.large", "counting", "Comparing sizes", "Count large shapes of one color",
                "Large shapes are about twice as wide as small shapes.");
        Scene.Colour c = pick(rnd, colours());
        int large = rnd.nextInt(0, 3);
        int small = rnd.nextInt(1, 4);
        int others = rnd.nextInt(1, 4);
        d.scene = scene(rnd, true, b -> {
            for (int i = 0; i < large; i++) {
                if (!b.place(pick(rnd, shapes()), c, true)) {
                    return false;
                }
            }
            // One large object of another colour makes "large" alone insufficient.
            return b.place(pick(rnd, shapes()), pick(rnd, colours().stream().filter(x -> x != c).toList()), true)
                    && placeMany(rnd, b, small, c, null, false)
                    && placeOthers(rnd, b, others, o -> o.colour() != c, true);
        });
        d.question = "How many large " + c.word + " shapes are in the picture?";
        d.answer = Integer.toString(large);
        d.preferred.addAll(numbers(large, 0, 9));
        d.preferred.add(Integer.toString(large + small));
        d.solution = "There " + (large == 1 ? "is " : "are ") + large + " large " + c.word + " "
                + (large == 1 ? "shape" : "shapes") + " and " + small + " small ones.";
        return d;
    }

    private Draft natColourOf(SplittableRandom rnd) {
        Draft d = new Draft("nat.image.color", "colors", "Identifying colors", "Name the color of a shape",
                "Each shape in the picture has one color.");
        Scene.Shape s = pick(rnd, shapes());
        Scene.Colour c = pick(rnd, colours());
        int others = rnd.nextInt(1, 4);
        d.scene = scene(rnd, false, b -> b.place(s, c, rnd.nextBoolean())
                && placeOthers(rnd, b, others, o -> o.shape() != s, false));
        d.question = "What color is the " + s.singular + "?";
        d.answer = c.word;
        d.scene.objects().stream().map(o -> o.colour().word).forEach(d.preferred::add);
        colours().forEach(x -> d.extra.add(x.word));
        d.solution = "The " + s.singular + " is " + c.word + ".";
        return d;
    }

    private Draft natShapeOf(SplittableRandom rnd) {
        Draft d = new Draft("nat.image.shape", "shapes", "Identifying shapes", "Name the shape of one color",
                "Shapes have names like circle, square, triangle, diamond and cross.");
        Scene.Shape s = pick(rnd, shapes());
        Scene.Colour c = pick(rnd, colours());
        int others = rnd.nextInt(1, 4);
        d.scene = scene(rnd, false, b -> b.place(s, c, rnd.nextBoolean())
                && placeOthers(rnd, b, others, o -> o.colour() != c, false));
        d.question = "Which shape is " + c.word + "?";
        d.answer = s.singular;
        d.scene.objects().stream().map(o -> o.shape().singular).forEach(d.preferred::add);
        shapes().forEach(x -> d.extra.add(x.singular));
        d.solution = (counts() ? c.word + " " + s.singular + ". " : "") + "The " + c.word + " shape is a " + s.singular + ".";
        return d;
    }

    private Draft natLargest(SplittableRandom rnd) {
        Draft d = new Draft("nat.image.largest", "sizes", "Comparing sizes", "Find the largest shape",
                "Compare how wide the shapes are to find the largest one.");
        Scene.Shape s = pick(rnd, shapes());
        Scene.Colour c = pick(rnd, colours());
        int others = rnd.nextInt(2, 5);
        boolean askColour = rnd.nextBoolean();
        d.scene = scene(rnd, false, b -> b.place(s, c, true)
                && placeOthers(rnd, b, others, o -> askColour ? o.colour() != c : o.shape() != s, true));
        if (askColour) {
            d.question = "What color is the largest shape?";
            d.answer = c.word;
            d.scene.objects().stream().map(o -> o.colour().word).forEach(d.preferred::add);
            colours().forEach(x -> d.extra.add(x.word));
        } else {
            d.question = "Which shape is the largest?";
            d.answer = s.singular;
            d.scene.objects().stream().map(o -> o.shape().singular).forEach(d.preferred::add);
            shapes().forEach(x -> d.extra.add(x.singular));
        }
        d.solution = "The largest shape is the " + c.word + " " + s.singular + ".";
        return d;
    }

    /** The picture region of a point, or null when it is near a border between regions. */
    static String region(int size, int x, int y) {
        double dx = (x - (size - 1) / 2.0) / size;
        double dy = (y - (size - 1) / 2.0) / size;
        if (Math.abs(dx) < 0.1 && Math.abs(dy) < 0.1) {
            return "center";
        }
        if (Math.abs(dx) > 0.22 && Math.abs(dy) < 0.15) {
            return dx < 0 ? "left" : "right";
        }
        if (Math.abs(dy) > 0.22 && Math.abs(dx) < 0.15) {
            return dy < 0 ? "top" : "bottom";
        }
        return null;
    }

    private Draft natPosition(SplittableRandom rnd) {
        Draft d = new Draft("nat.image.position", "positions", "Describing positions", "Tell where a shape is",
                "A shape can be on the left, on the right, at the top, at the bottom or in the center of a picture.");
        Scene.Shape s = pick(rnd, shapes());
        Scene.Colour c = pick(rnd, colours());
        String where = pick(rnd, REGIONS);
        int others = rnd.nextInt(1, 4);
        d.scene = scene(rnd, false, b -> b.place(s, c, false, (x, y) -> where.equals(region(imageSize, x, y)) ? 1 : 0)
                && placeOthers(rnd, b, others, o -> !(o.colour() == c && o.shape() == s), true));
        d.question = "Where is the " + c.word + " " + s.singular + " in the picture?";
        d.answer = where;
        d.preferred.addAll(REGIONS);
        d.solution = "The " + c.word + " " + s.singular + " is " + (where.equals("center") ? "in the center."
                : where.equals("left") || where.equals("right") ? "on the " + where + "." : "at the " + where + ".");
        return d;
    }

    private Draft natText(SplittableRandom rnd, boolean hard) {
        Draft d = new Draft("nat.text.temperature", "heat", "Temperature", "Compare temperatures from a text",
                "Temperature tells how hot or cold something is. A higher number of degrees is warmer.");
        int m = hard ? rnd.nextInt(3, 6) : rnd.nextInt(2, 4);
        List<String> items = distinct(rnd, CONTAINERS, m);
        List<Integer> temps = distinct(rnd, List.of(2, 3, 4, 5, 6, 7, 8, 9), m);
        List<String> sentences = new ArrayList<>();
        for (int i = 0; i < m; i++) {
            sentences.add("The " + items.get(i) + " is " + temps.get(i) + " degrees.");
        }
        d.hint = String.join(" ", sentences);
        List<Integer> order = sortedIndices(temps, true);
        if (hard && rnd.nextBoolean()) {
            int a = order.get(rnd.nextInt(m - 1));
            int b = order.get(rnd.nextInt(order.indexOf(a) + 1, m));
            int diff = temps.get(a) - temps.get(b);
            d.template = "nat.text.warmer";
            d.question = "How many degrees warmer is the " + items.get(a) + " than the " + items.get(b) + "?";
            d.answer = Integer.toString(diff);
            d.preferred.addAll(numbers(diff, 1, 9));
            d.preferred.add(Integer.toString(temps.get(a)));
            d.solution = "The " + items.get(a) + " is " + temps.get(a) + " degrees and the " + items.get(b) + " is "
                    + temps.get(b) + " degrees. " + temps.get(a) + " minus " + temps.get(b) + " is " + diff + ".";
            return d;
        }
        boolean warmest = rnd.nextBoolean();
        int rank = hard ? 1 : 0;
        int at = warmest ? order.get(rank) : order.get(m - 1 - rank);
        String what = (rank == 1 ? "second " : "") + (warmest ? "warmest" : "coldest");
        d.question = "Which one is the " + what + "?";
        d.answer = items.get(at);
        d.preferred.addAll(items);
        d.extra.addAll(CONTAINERS);
        d.solution = steps()
                ? runningComparison(items, temps, warmest, rank + 1) + " So the " + items.get(at) + " is the " + what + "."
                : "The " + items.get(at) + " is " + temps.get(at) + " degrees, so it is the " + what + ".";
        return d;
    }

    /** Indices sorted by value, largest first when {@code descending}. */
    private static List<Integer> sortedIndices(List<Integer> values, boolean descending) {
        List<Integer> idx = new ArrayList<>();
        for (int i = 0; i < values.size(); i++) {
            idx.add(i);
        }
        idx.sort(Comparator.comparing(values::get));
        if (descending) {
            idx = idx.reversed();
        }
        return new ArrayList<>(idx);
    }

    private Draft natBoth(SplittableRandom rnd, boolean hard) {
        Draft d = new Draft("nat.both.magnets", "magnets", "Magnets", "Count the objects the text describes",
                "A text can tell what the shapes in a picture stand for.");
        List<Scene.Colour> cs = distinct(rnd, colours(), 2);
        if (!hard) {
            int n = rnd.nextInt(1, 6);
            int others = rnd.nextInt(1, 4);
            d.scene = scene(rnd, false, b -> placeMany(rnd, b, n, cs.get(0), null, true)
                    && placeOthers(rnd, b, others, o -> o.colour() != cs.get(0), false));
            d.hint = "In this picture, the " + cs.get(0).word + " shapes are magnets.";
            d.question = "How many magnets are in the picture?";
            d.answer = Integer.toString(n);
            d.preferred.addAll(numbers(n, 0, 9));
            d.preferred.add(Integer.toString(d.scene.objects().size()));
            d.solution = "The magnets are the " + cs.get(0).word + " shapes. " + (counts() ? cs.get(0).word + " " + n + ". " : "")
                    + "There " + (n == 1 ? "is " : "are ") + n + ".";
            return d;
        }
        int n1 = rnd.nextInt(2, 6);
        int n2 = rnd.nextInt(1, n1);
        int others = rnd.nextInt(0, Math.min(3, 10 - n1 - n2));
        d.scene = scene(rnd, true, b -> placeMany(rnd, b, n1, cs.get(0), null, false)
                && placeMany(rnd, b, n2, cs.get(1), null, false)
                && placeOthers(rnd, b, others, o -> o.colour() != cs.get(0) && o.colour() != cs.get(1), true));
        d.hint = "In this picture, the " + cs.get(0).word + " shapes are magnets and the " + cs.get(1).word
                + " shapes are rocks.";
        d.question = "How many more magnets than rocks are in the picture?";
        d.answer = Integer.toString(n1 - n2);
        d.preferred.addAll(numbers(n1 - n2, 0, 9));
        d.preferred.add(Integer.toString(n1));
        d.preferred.add(Integer.toString(n2));
        d.solution = counts()
                ? "The magnets are the " + cs.get(0).word + " shapes: " + cs.get(0).word + " " + n1 + ". The rocks are the "
                        + cs.get(1).word + " shapes: " + cs.get(1).word + " " + n2 + ". " + n1 + " minus " + n2 + " is "
                        + (n1 - n2) + "."
                : "There are " + n1 + " magnets and " + n2 + " rocks. " + n1 + " minus " + n2 + " is " + (n1 - n2) + ".";
        return d;
    }

    private Draft natNone(SplittableRandom rnd, boolean hard) {
        boolean animals = rnd.nextBoolean();
        Map<String, List<String>> family = animals ? ANIMALS : MATTER;
        Draft d = new Draft("nat.none.classify", animals ? "classification" : "matter",
                animals ? "Classifying animals" : "States of matter",
                animals ? "Identify mammals, birds, fish and insects" : "Identify solids, liquids and gases",
                animals ? "Mammals have fur, birds have feathers, fish live in water and insects have six legs."
                        : "A solid keeps its shape, a liquid takes the shape of its container and a gas fills it.");
        List<String> classes = new ArrayList<>(family.keySet());
        String cls = pick(rnd, classes);
        List<String> outside = new ArrayList<>();
        for (String other : classes) {
            if (!other.equals(cls)) {
                outside.addAll(family.get(other));
            }
        }
        if (!hard) {
            d.question = "Which of these is " + article(cls) + "?";
            d.answer = pick(rnd, family.get(cls));
            d.preferred.addAll(outside);
            d.solution = "The " + d.answer + " is " + article(cls) + ".";
        } else {
            d.template = "nat.none.not";
            d.question = "Which of these is not " + article(cls) + "?";
            d.answer = pick(rnd, outside);
            d.preferred.addAll(family.get(cls));
            d.solution = "The " + d.answer + " is not " + article(cls) + ". The others are.";
        }
        return d;
    }

    // ---------------------------------------------------------------------------------------------
    // Social science

    /** Sort key so that larger means farther in the direction. */
    static int towards(String direction, Scene.SceneObject o) {
        return switch (direction) {
            case "north" -> -o.cy();
            case "south" -> o.cy();
            case "east" -> o.cx();
            case "west" -> -o.cx();
            default -> throw new IllegalArgumentException(direction);
        };
    }

    /**
     * A map of n coloured squares (hard maps add non-square shapes of other colours) whose squares are
     * ordered along the direction with a clear margin up to rank+1. Returns the squares, farthest first.
     */
    private List<Scene.SceneObject> mapScene(SplittableRandom rnd, boolean hard, int n, String direction, int rank,
                                             Draft d) {
        List<Scene.Colour> cs = distinct(rnd, colours(), Math.min(colours().size(), n + (hard ? 2 : 0)));
        int extras = hard ? rnd.nextInt(0, 3) : 0;
        int margin = (int) Math.round(MAP_MARGIN * imageSize / 64.0);
        d.scene = scene(rnd, hard, b -> {
            for (int i = 0; i < n; i++) {
                if (!b.place(Scene.Shape.SQUARE, cs.get(i), false)) {
                    return false;
                }
            }
            for (int i = 0; i < extras && n + i < cs.size(); i++) {
                Scene.Shape s = pick(rnd, shapes().stream().filter(x -> x != Scene.Shape.SQUARE).toList());
                if (!b.place(s, cs.get(n + i), false)) {
                    return false;
                }
            }
            List<Scene.SceneObject> sq = b.objects().subList(0, n).stream()
                    .sorted(Comparator.comparingInt((Scene.SceneObject o) -> towards(direction, o)).reversed())
                    .toList();
            for (int i = 0; i <= rank && i + 1 < n; i++) {
                if (towards(direction, sq.get(i)) - towards(direction, sq.get(i + 1)) < margin) {
                    return false;
                }
            }
            return true;
        });
        return d.scene.objects().subList(0, n).stream()
                .sorted(Comparator.comparingInt((Scene.SceneObject o) -> towards(direction, o)).reversed()).toList();
    }

    private Draft socImage(SplittableRandom rnd, boolean hard) {
        Draft d = new Draft("soc.image.map", "geography", "Geography", "Read a map: cardinal directions",
                "Maps have four cardinal directions: north, south, east and west. North is at the top of a map.");
        int n = hard ? rnd.nextInt(4, 6) : rnd.nextInt(2, 5);
        String dir = pick(rnd, DIRECTIONS);
        int rank = hard && rnd.nextBoolean() ? 1 : 0;
        List<Scene.SceneObject> sq = mapScene(rnd, hard, n, dir, rank, d);
        String far = (rank == 1 ? "second farthest " : "farthest ") + dir;
        d.question = "North is at the top of the map. Which color square is " + far + "?";
        d.answer = sq.get(rank).colour().word;
        d.scene.objects().forEach(o -> d.preferred.add(o.colour().word));
        colours().forEach(c -> d.extra.add(c.word));
        d.solution = "The " + d.answer + " square is " + far + ".";
        if (positions() || coordinates()) {
            List<Scene.SceneObject> byColour = d.scene.objects().subList(0, n).stream()
                    .sorted(Comparator.comparingInt((Scene.SceneObject o) -> o.colour().ordinal())).toList();
            String steps = positions() ? runningOrder(byColour, dir, rank + 1)
                    : runningCoordinates(byColour, dir, rank + 1);
            d.solution = steps + " So the " + d.answer + " square is " + far + ".";
        }
        return d;
    }

    private Draft socBoth(SplittableRandom rnd, boolean hard) {
        Draft d = new Draft("soc.both.map", "geography", "Geography", "Read a map with a key: cardinal directions",
                "Maps have four cardinal directions: north, south, east and west. North is at the top of a map.");
        int n = hard ? rnd.nextInt(3, 6) : rnd.nextInt(2, 4);
        String dir = pick(rnd, DIRECTIONS);
        int rank = hard && rnd.nextBoolean() ? 1 : 0;
        List<Scene.SceneObject> sq = mapScene(rnd, hard, n, dir, rank, d);
        List<String> towns = distinct(rnd, TOWNS, n);
        List<String> key = new ArrayList<>();
        Map<Scene.Colour, String> townOf = new LinkedHashMap<>();
        for (int i = 0; i < n; i++) {
            Scene.SceneObject o = d.scene.objects().get(i);
            townOf.put(o.colour(), towns.get(i));
            key.add(towns.get(i) + " is the " + o.colour().word + " square");
        }
        d.hint = "On the map, " + String.join(", ", key.subList(0, n - 1)) + " and " + key.get(n - 1) + ".";
        String far = (rank == 1 ? "second farthest " : "farthest ") + dir;
        d.question = "North is at the top of the map. Which town is " + far + "?";
        d.answer = townOf.get(sq.get(rank).colour());
        d.preferred.addAll(towns);
        d.extra.addAll(TOWNS);
        d.solution = steps()
                ? "The " + sq.get(rank).colour().word + " square is " + far + ". " + d.answer + " is the "
                        + sq.get(rank).colour().word + " square."
                : d.answer + " is the " + sq.get(rank).colour().word + " square, which is " + far + ".";
        if (positions()) {
            // the key names the first n objects in placement order
            String c = sq.get(rank).colour().word;
            d.solution = runningOrder(d.scene.objects().subList(0, n), dir, rank + 1) + " So the " + c + " square is "
                    + far + ". " + d.answer + " is the " + c + " square.";
        }
        if (solutions == Solutions.KEYED) {
            List<Scene.SceneObject> keyed = d.scene.objects().subList(0, n);
            List<String> named = keyed.stream().map(o -> townOf.get(o.colour())).toList();
            d.solution = runningKeyed(keyed, named, dir, rank + 1) + " So " + d.answer + " is " + far + ".";
        } else if (solutions == Solutions.COORDINATES || solutions == Solutions.COUNTS) {
            String c = sq.get(rank).colour().word;
            d.solution = runningCoordinates(d.scene.objects().subList(0, n), dir, rank + 1) + " So the " + c
                    + " square is " + far + ". " + d.answer + " is the " + c + " square.";
        }
        return d;
    }

    private Draft socText(SplittableRandom rnd, boolean hard) {
        return rnd.nextBoolean() ? socSales(rnd, hard) : socDirections(rnd, hard);
    }

    private Draft socSales(SplittableRandom rnd, boolean hard) {
        Draft d = new Draft("soc.text.sales", "economics", "Reading tables", "Compare amounts from a text",
                "To compare amounts, read the number for each town.");
        int m = hard ? rnd.nextInt(3, 6) : rnd.nextInt(2, 4);
        List<String> towns = distinct(rnd, TOWNS, m);
        List<Integer> amounts = distinct(rnd, List.of(1, 2, 3, 4, 5, 6, 7, 8, 9), m);
        String goods = pick(rnd, GOODS);
        List<String> lines = new ArrayList<>();
        for (int i = 0; i < m; i++) {
            lines.add(towns.get(i) + " sells " + amounts.get(i) + " " + goods + ".");
        }
        d.hint = String.join(" ", lines);
        List<Integer> order = sortedIndices(amounts, true);
        if (hard && rnd.nextBoolean()) {
            int a = order.get(rnd.nextInt(m - 1));
            int b = order.get(rnd.nextInt(order.indexOf(a) + 1, m));
            int diff = amounts.get(a) - amounts.get(b);
            d.template = "soc.text.more";
            d.question = "How many more " + goods + " does " + towns.get(a) + " sell than " + towns.get(b) + "?";
            d.answer = Integer.toString(diff);
            d.preferred.addAll(numbers(diff, 1, 9));
            d.preferred.add(Integer.toString(amounts.get(a)));
            d.solution = towns.get(a) + " sells " + amounts.get(a) + " and " + towns.get(b) + " sells "
                    + amounts.get(b) + ". " + amounts.get(a) + " minus " + amounts.get(b) + " is " + diff + ".";
            return d;
        }
        boolean most = rnd.nextBoolean();
        int rank = hard ? 1 : 0;
        int at = most ? order.get(rank) : order.get(m - 1 - rank);
        String what = (rank == 1 ? "second " : "") + (most ? "most" : "fewest");
        d.question = "Which town sells the " + what + " " + goods + "?";
        d.answer = towns.get(at);
        d.preferred.addAll(towns);
        d.extra.addAll(TOWNS);
        d.solution = steps()
                ? runningComparison(towns, amounts, most, rank + 1) + " So " + towns.get(at) + " sells the " + what + " "
                        + goods + "."
                : towns.get(at) + " sells " + amounts.get(at) + " " + goods + ", the " + what + ".";
        return d;
    }

    private static String opposite(String direction) {
        return DIRECTIONS.get((DIRECTIONS.indexOf(direction) + 2) % 4);
    }

    private Draft socDirections(SplittableRandom rnd, boolean hard) {
        Draft d = new Draft("soc.text.relative", "geography", "Geography", "Use relative directions from a text",
                "If one place is north of another, the second place is south of the first.");
        String dir = pick(rnd, DIRECTIONS);
        if (!hard) {
            List<String> t = distinct(rnd, TOWNS, 2);
            d.hint = t.get(0) + " is " + dir + " of " + t.get(1) + ".";
            boolean askFirst = rnd.nextBoolean();
            if (askFirst) {
                d.question = "Which town is " + dir + " of " + t.get(1) + "?";
                d.answer = t.get(0);
                d.preferred.add(t.get(1));
            } else {
                d.question = "Which town is " + opposite(dir) + " of " + t.get(0) + "?";
                d.answer = t.get(1);
                d.preferred.add(t.get(0));
            }
            d.extra.addAll(TOWNS);
            d.solution = "The text says " + d.hint.substring(0, d.hint.length() - 1)
                    + (steps() ? ", so " + t.get(1) + " is " + opposite(dir) + " of " + t.get(0) : "")
                    + ". So the answer is " + d.answer + ".";
            return d;
        }
        d.template = "soc.text.chain";
        int m = rnd.nextInt(3, 5);
        List<String> chain = distinct(rnd, TOWNS, m);
        List<String> facts = new ArrayList<>();
        for (int i = 0; i + 1 < m; i++) {
            facts.add(rnd.nextBoolean() ? chain.get(i) + " is " + dir + " of " + chain.get(i + 1) + "."
                    : chain.get(i + 1) + " is " + opposite(dir) + " of " + chain.get(i) + ".");
        }
        d.hint = String.join(" ", shuffled(rnd, facts));
        boolean first = rnd.nextBoolean();
        String ask = first ? dir : opposite(dir);
        d.question = "Which town is farthest " + ask + "?";
        d.answer = first ? chain.get(0) : chain.get(m - 1);
        d.preferred.addAll(chain);
        d.extra.addAll(TOWNS);
        if (steps()) {
            // walk from the first town the text names, one town further in the asked direction at a time
            List<String> towards = first ? chain : chain.reversed(); // farthest in the asked direction first
            String start = firstNamed(d.hint, chain);
            StringBuilder walk = new StringBuilder("From " + start + ":");
            for (int i = towards.indexOf(start); i > 0; i--) {
                walk.append(' ').append(towards.get(i - 1)).append(" is ").append(ask).append(" of ")
                        .append(towards.get(i)).append('.');
            }
            d.solution = walk + " Nothing is " + ask + " of " + d.answer + ". So " + d.answer + " is farthest " + ask
                    + ".";
        } else {
            d.solution = "From " + ask + " to " + opposite(ask) + " the towns are "
                    + String.join(", ", first ? chain : chain.reversed()) + ". So " + d.answer + " is farthest " + ask
                    + ".";
        }
        return d;
    }

    /** The town of the list that the text names first. */
    private static String firstNamed(String text, List<String> towns) {
        String best = null;
        int at = Integer.MAX_VALUE;
        for (String t : towns) {
            int i = text.indexOf(t);
            if (i >= 0 && i < at) {
                at = i;
                best = t;
            }
        }
        return best;
    }

    private Draft socNone(SplittableRandom rnd, boolean hard) {
        boolean months = rnd.nextBoolean();
        if (months) {
            Draft d = new Draft("soc.none.months", "calendar", "Calendar", "Order the months of the year",
                    "The months of the year come in order from January to December.");
            int m = rnd.nextInt(12);
            int step = hard ? (rnd.nextBoolean() ? 2 : -1) : 1;
            d.question = switch (step) {
                case 2 -> "Which month comes two months after " + MONTHS.get(m) + "?";
                case -1 -> "Which month comes right before " + MONTHS.get(m) + "?";
                default -> "Which month comes right after " + MONTHS.get(m) + "?";
            };
            d.answer = MONTHS.get(Math.floorMod(m + step, 12));
            for (int s : new int[] {1, -1, 2, -2, 3}) {
                d.preferred.add(MONTHS.get(Math.floorMod(m + s, 12)));
            }
            d.extra.addAll(MONTHS);
            d.solution = switch (step) {
                case 2 -> "Two months after " + MONTHS.get(m) + " comes " + d.answer + ".";
                case -1 -> d.answer + " comes right before " + MONTHS.get(m) + ".";
                default -> d.answer + " comes right after " + MONTHS.get(m) + ".";
            };
            return d;
        }
        Draft d = new Draft("soc.none.compass", "geography", "Geography", "Use cardinal directions",
                "The four cardinal directions are north, east, south and west, in order around a compass.");
        String dir = pick(rnd, DIRECTIONS);
        if (!hard) {
            d.question = "Which direction is opposite to " + dir + "?";
            d.answer = opposite(dir);
            d.solution = "The opposite of " + dir + " is " + d.answer + ".";
        } else {
            d.template = "soc.none.turn";
            int turn = rnd.nextInt(3);
            String how = List.of("right", "left", "around").get(turn);
            int delta = List.of(1, -1, 2).get(turn);
            d.question = "You face " + dir + " and turn " + how + ". Which way do you face now?";
            d.answer = DIRECTIONS.get(Math.floorMod(DIRECTIONS.indexOf(dir) + delta, 4));
            d.solution = "Facing " + dir + " and turning " + how + ", you face " + d.answer + ".";
        }
        d.preferred.addAll(DIRECTIONS);
        return d;
    }

    // ---------------------------------------------------------------------------------------------
    // Language science

    private Draft lanImage(SplittableRandom rnd, boolean hard) {
        Draft d = new Draft("lan.image.phrase", "grammar", "Singular and plural nouns",
                "Match a phrase with a number to a picture",
                "Use a singular noun for one thing and a plural noun for more than one.");
        List<Scene.Shape> ss = distinct(rnd, shapes(), 2);
        List<Scene.Colour> cs = distinct(rnd, colours(), 2);
        int n1 = rnd.nextInt(1, 5);
        int n2 = hard ? rnd.nextInt(1, 5) : 0;
        d.scene = scene(rnd, hard, b -> placeMany(rnd, b, n1, cs.get(0), ss.get(0), false)
                && placeMany(rnd, b, n2, cs.get(1), ss.get(1), false));
        d.question = hard ? "Which phrase describes the " + cs.get(0).word + " shapes in the picture?"
                : "Which phrase describes the picture?";
        d.answer = NUMBER_WORDS.get(n1) + " " + form(ss.get(0), n1);
        String wrongForm = n1 == 1 ? ss.get(0).plural : ss.get(0).singular;
        d.preferred.add(NUMBER_WORDS.get(n1) + " " + wrongForm);
        if (hard) {
            d.preferred.add(NUMBER_WORDS.get(n2) + " " + form(ss.get(1), n2));
            d.preferred.add(NUMBER_WORDS.get(n2) + " " + form(ss.get(0), n2));
        }
        d.preferred.add(NUMBER_WORDS.get(n1) + " " + form(ss.get(1), n1));
        int other = n1 == 4 ? 3 : n1 + 1;
        d.preferred.add(NUMBER_WORDS.get(other) + " " + form(ss.get(0), other));
        for (Scene.Shape s : shapes()) {
            d.extra.add(NUMBER_WORDS.get(n1) + " " + form(s, n1));
        }
        d.solution = (counts() ? cs.get(0).word + " " + n1 + ". " + cs.get(0).word + " " + form(ss.get(0), n1) + ". " : "")
                + "The picture shows " + d.answer + ".";
        return d;
    }

    private Draft lanBoth(SplittableRandom rnd, boolean hard) {
        Draft d = new Draft("lan.both.complete", "grammar", "Singular and plural nouns",
                "Complete a sentence to match a picture",
                "Use a singular noun for one thing and a plural noun for more than one.");
        List<Scene.Shape> ss = distinct(rnd, shapes(), 2);
        List<Scene.Colour> cs = distinct(rnd, colours(), 2);
        int n1 = rnd.nextInt(1, 5);
        int n2 = hard ? rnd.nextInt(1, 5) : 0;
        d.scene = scene(rnd, hard, b -> placeMany(rnd, b, n1, cs.get(0), ss.get(0), false)
                && placeMany(rnd, b, n2, cs.get(1), ss.get(1), false));
        d.hint = "Complete the sentence: I see " + NUMBER_WORDS.get(n1) + (hard ? " " + cs.get(0).word : "")
                + " ___.";
        d.question = "Which word completes the sentence to match the picture?";
        d.answer = form(ss.get(0), n1);
        d.preferred.add(n1 == 1 ? ss.get(0).plural : ss.get(0).singular);
        d.preferred.add(form(ss.get(1), n1));
        for (Scene.Shape s : shapes()) {
            d.extra.add(form(s, n1));
            d.extra.add(form(s, n1 == 1 ? 2 : 1));
        }
        d.solution = "The picture shows " + NUMBER_WORDS.get(n1) + " " + cs.get(0).word + " " + d.answer
                + ", so the sentence is: I see " + NUMBER_WORDS.get(n1) + (hard ? " " + cs.get(0).word : "") + " "
                + d.answer + ".";
        return d;
    }

    private static int family(String word) {
        for (int i = 0; i < RHYMES.size(); i++) {
            if (RHYMES.get(i).contains(word)) {
                return i;
            }
        }
        return -1;
    }

    private Draft lanText(SplittableRandom rnd, boolean hard) {
        Draft d = new Draft("lan.text.rhyme", "phonological-awareness", "Rhyming", "Find the word that rhymes",
                "Words rhyme when they end with the same sound, like cat and hat.");
        List<String> fams = distinct(rnd, List.of(0, 1, 2, 3, 4, 5, 6, 7), 2).stream()
                .map(i -> "f" + i).toList();
        List<String> fam1 = RHYMES.get(Integer.parseInt(fams.get(0).substring(1)));
        List<String> fam2 = RHYMES.get(Integer.parseInt(fams.get(1).substring(1)));
        List<String> two = distinct(rnd, fam1, 2);
        String noun1 = two.get(0);
        String noun3 = pick(rnd, fam2);
        String adj = pick(rnd, pick(rnd, OPPOSITES));
        List<String> plural = pick(rnd, rnd.nextBoolean() ? REGULAR_PLURALS : IRREGULAR_PLURALS);
        int n = rnd.nextInt(2, 7);
        d.hint = "The " + adj + " " + noun1 + " saw " + NUMBER_WORDS.get(n) + " " + plural.get(1) + " by the " + noun3
                + ".";
        List<String> content = List.of(adj, noun1, plural.get(1), noun3);
        if (!hard) {
            d.question = "Which word from the text rhymes with " + two.get(1) + "?";
            d.answer = noun1;
            d.preferred.addAll(List.of(adj, plural.get(1), noun3, "saw"));
            d.solution = noun1 + " and " + two.get(1) + " end with the same sound.";
            return d;
        }
        if (rnd.nextBoolean()) {
            d.template = "lan.text.plural";
            d.topic = "grammar";
            d.category = "Singular and plural nouns";
            d.skill = "Find the plural noun in a text";
            d.lecture = "A plural noun names more than one person, animal or thing.";
            d.question = "Which word from the text is a plural noun?";
            d.answer = plural.get(1);
            d.preferred.addAll(List.of(adj, noun1, noun3, plural.get(0)));
            d.solution = plural.get(1) + " is the plural of " + plural.get(0) + ".";
        } else {
            d.template = "lan.text.alphabet";
            d.topic = "reference-skills";
            d.category = "Alphabetical order";
            d.skill = "Find the first word in alphabetical order";
            d.lecture = "To put words in alphabetical order, compare the first letters, then the next letters.";
            d.question = "Which word from the text comes first in alphabetical order?";
            List<String> sorted = content.stream().sorted().toList();
            d.answer = sorted.get(0);
            d.preferred.addAll(sorted.subList(1, sorted.size()));
            d.solution = "In alphabetical order the words are " + String.join(", ", sorted) + ".";
        }
        return d;
    }

    private Draft lanNone(SplittableRandom rnd, boolean hard) {
        int kind = rnd.nextInt(4);
        if (kind == 0) {
            Draft d = new Draft("lan.none.rhyme", "phonological-awareness", "Rhyming", "Find the word that rhymes",
                    "Words rhyme when they end with the same sound, like cat and hat.");
            int f = rnd.nextInt(RHYMES.size());
            List<String> two = distinct(rnd, RHYMES.get(f), 2);
            d.question = "Which word rhymes with " + two.get(0) + "?";
            d.answer = two.get(1);
            for (int g = 0; g < RHYMES.size(); g++) {
                if (g != f) {
                    // Hard distractors share the first letter with the target so spelling alone does not help.
                    String w = pick(rnd, RHYMES.get(g));
                    (hard && w.charAt(0) != two.get(0).charAt(0) ? d.extra : d.preferred).add(w);
                }
            }
            d.solution = two.get(0) + " and " + two.get(1) + " end with the same sound.";
            return d;
        }
        if (kind == 1) {
            Draft d = new Draft("lan.none.opposite", "vocabulary", "Opposites", "Find the opposite of a word",
                    "Opposites are words with meanings that are as different as possible, like hot and cold.");
            List<String> pair = shuffled(rnd, pick(rnd, OPPOSITES));
            d.question = "Which word is the opposite of " + pair.get(0) + "?";
            d.answer = pair.get(1);
            OPPOSITES.forEach(p -> p.stream().filter(w -> !w.equals(pair.get(0))).forEach(d.preferred::add));
            d.solution = "The opposite of " + pair.get(0) + " is " + pair.get(1) + ".";
            return d;
        }
        if (kind == 2) {
            Draft d = new Draft("lan.none.plural", "grammar", "Singular and plural nouns", "Form plural nouns",
                    "Most nouns add s or es to make the plural. Some nouns change their spelling.");
            List<String> p = pick(rnd, hard ? IRREGULAR_PLURALS : REGULAR_PLURALS);
            d.question = "What is the plural of " + p.get(0) + "?";
            d.answer = p.get(1);
            d.preferred.addAll(WordLists.wrongPlurals(p.get(0), p.get(1)));
            d.preferred.add(p.get(0));
            d.solution = "The plural of " + p.get(0) + " is " + p.get(1) + ".";
            return d;
        }
        List<String> dict = WordLists.dictionary();
        if (!hard) {
            Draft d = new Draft("lan.none.alphabet", "reference-skills", "Alphabetical order",
                    "Find the first word in alphabetical order",
                    "To put words in alphabetical order, compare the first letters, then the next letters.");
            int k = rnd.nextInt(2, 6);
            List<String> words = distinct(rnd, dict, k);
            boolean last = rnd.nextBoolean();
            List<String> sorted = words.stream().sorted().toList();
            d.question = "Which word comes " + (last ? "last" : "first") + " in alphabetical order?";
            d.answer = last ? sorted.get(k - 1) : sorted.get(0);
            d.preferred.addAll(words);
            d.solution = "In alphabetical order the words are " + String.join(", ", sorted) + ".";
            return d;
        }
        Draft d = new Draft("lan.none.guide", "reference-skills", "Reference skills", "Use guide words",
                "Guide words are the first and last words on a dictionary page. Every word on the page comes between"
                        + " them in alphabetical order.");
        int lo = rnd.nextInt(0, dict.size() - 8);
        int hi = rnd.nextInt(lo + 2, Math.min(dict.size(), lo + 12));
        int at = rnd.nextInt(lo + 1, hi);
        d.question = "Which word would you find on a dictionary page with the guide words " + dict.get(lo) + " and "
                + dict.get(hi) + "?";
        d.answer = dict.get(at);
        for (int i = Math.max(0, lo - 6); i < Math.min(dict.size(), hi + 7); i++) {
            if (i < lo || i > hi) {
                d.preferred.add(dict.get(i));
            }
        }
        d.solution = d.answer + " comes between " + dict.get(lo) + " and " + dict.get(hi) + " in alphabetical order.";
        return d;
    }
}
