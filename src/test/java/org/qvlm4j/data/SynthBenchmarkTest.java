package org.qvlm4j.data;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.stream.Stream;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.qvlm4j.data.SynthBenchmark.Modality;
import org.qvlm4j.data.SynthBenchmark.Sample;
import org.qvlm4j.data.SynthBenchmark.Subject;

class SynthBenchmarkTest {

    private static final long SEED = 20240607L;
    private static final int N = 600;
    private static final int SIZE = 64;
    /** Bounding boxes of drawn blobs may differ from the scene's box by one pixel (polygon edge rule). */
    private static final int BOX_TOLERANCE = 1;
    /** Chi-square bound for answer positions at 4 degrees of freedom (p about 0.001). */
    private static final double CHI2_BOUND_4DF = 18.5;

    private static List<Sample> samples;

    @BeforeAll
    static void generate() {
        SynthBenchmark g = new SynthBenchmark(SEED, SIZE);
        samples = new ArrayList<>();
        for (int i = 0; i < N; i++) {
            samples.add(g.sample("train", i, Integer.toString(i + 1)));
        }
    }

    @Test
    void everySubjectContextGradeCellIsPopulated() {
        Map<String, Integer> cells = new TreeMap<>();
        for (Sample s : samples) {
            ScienceQaProblem p = s.problem();
            String ctx = p.hasText() && p.hasImage() ? "BOTH" : p.contexts().iterator().next().name();
            cells.merge(p.subjectGroup() + "/" + ctx + "/" + p.gradeBand(), 1, Integer::sum);
            // The labels agree with what the sample was drawn as.
            assertEquals(s.modality() == Modality.IMAGE || s.modality() == Modality.BOTH, p.hasImage());
            assertEquals(s.modality() == Modality.TEXT || s.modality() == Modality.BOTH, p.hasText());
            assertEquals(s.hard(), p.gradeBand() == ScienceQaProblem.GradeBand.G7_12);
            assertEquals(s.subject().label, p.subject());
        }
        assertEquals(3 * 4 * 2, cells.size(), cells.toString());
        for (int count : cells.values()) {
            assertTrue(count >= 10, cells.toString());
        }
    }

    @Test
    void choicesAreDistinctCountTwoToFiveAndAnswerPositionIsUniform() {
        Map<Integer, int[]> byK = new TreeMap<>();
        for (Sample s : samples) {
            ScienceQaProblem p = s.problem();
            int k = p.choices().size();
            assertTrue(k >= 2 && k <= 5, p.toString());
            assertEquals(k, new HashSet<>(p.choices()).size(), () -> "duplicate choice: " + p);
            assertTrue(p.answer() >= 0 && p.answer() < k);
            for (String c : p.choices()) {
                assertFalse(c.isBlank(), p.toString());
            }
            byK.computeIfAbsent(k, x -> new int[x])[p.answer()]++;
        }
        assertEquals(Set.of(2, 3, 4, 5), byK.keySet());
        int[] all = new int[5];
        for (int[] counts : byK.values()) {
            for (int i = 0; i < counts.length; i++) {
                all[i] += counts[i];
            }
        }
        // Positions among problems with five choices: chi-square against uniform.
        int[] five = byK.get(5);
        double total = java.util.Arrays.stream(five).sum();
        double chi2 = 0;
        for (int c : five) {
            chi2 += (c - total / 5) * (c - total / 5) / (total / 5);
        }
        assertTrue(total >= 50 && chi2 < CHI2_BOUND_4DF, "five-choice answer positions " + java.util.Arrays.toString(five));
        // Every position is used, and no position takes more than its fair share by a wide margin.
        for (int i = 0; i < 5; i++) {
            assertTrue(all[i] > 0);
        }
        assertTrue(all[0] < 0.5 * N && all[1] < 0.5 * N, java.util.Arrays.toString(all));
    }

    @Test
    void answersAreRecomputedFromSceneAndHintByAnIndependentSolver() {
        Map<String, Integer> solvedByTemplate = new TreeMap<>();
        for (Sample s : samples) {
            ScienceQaProblem p = s.problem();
            String expected = AnswerOracle.solve(p, s.scene());
            assertNotNull(expected, () -> "solver cannot answer " + s.template() + ": " + p);
            assertEquals(expected, p.answerText(), () -> s.template() + ": " + p + " scene " + s.scene());
            solvedByTemplate.merge(s.template(), 1, Integer::sum);
        }
        // Every family contributes: nothing is answered by a fallback.
        assertTrue(solvedByTemplate.size() >= 30, solvedByTemplate.toString());
    }

    @Test
    void hintOnlyQuestionsNameTheirAnswerOrItsOperandsInTheHint() {
        int checked = 0;
        for (Sample s : samples) {
            ScienceQaProblem p = s.problem();
            if (s.modality() != Modality.TEXT) {
                continue;
            }
            checked++;
            if (p.answerText().matches("\\d+")) {
                // Numeric answers are differences of two numbers that both appear in the hint.
                var numbers = java.util.regex.Pattern.compile("\\d+").matcher(p.hint()).results()
                        .map(r -> Integer.parseInt(r.group())).toList();
                int a = Integer.parseInt(p.answerText());
                assertTrue(numbers.stream().anyMatch(x -> numbers.contains(x - a)), p.toString());
            } else {
                assertTrue(p.hint().contains(p.answerText()), p.toString());
            }
        }
        assertTrue(checked > N / 20);
    }

    @Test
    void noContextQuestionsHaveNeitherHintNorImage() {
        for (Sample s : samples) {
            if (s.modality() == Modality.NONE) {
                assertTrue(s.problem().hint().isEmpty() && s.problem().image() == null && s.scene() == null);
            } else if (s.modality() == Modality.IMAGE || s.modality() == Modality.BOTH) {
                assertNotNull(s.scene());
            }
        }
    }

    @Test
    void cleanRenderShowsExactlyTheSceneObjectsAsSeparateBlobs() {
        int scenes = 0;
        for (Sample s : samples) {
            if (s.scene() == null || scenes >= 150) {
                continue;
            }
            scenes++;
            BufferedImage img = SceneRenderer.render(s.scene(), true);
            for (Scene.Colour c : Scene.Colour.values()) {
                List<int[]> blobs = components(img, c.rgb);
                List<Scene.SceneObject> objs = s.scene().withColour(c);
                assertEquals(objs.size(), blobs.size(), () -> s.template() + " colour " + c + " " + s.scene());
                for (Scene.SceneObject o : objs) {
                    assertTrue(blobs.stream().anyMatch(b -> Math.abs(b[0] - o.minX()) <= BOX_TOLERANCE
                                    && Math.abs(b[1] - o.minY()) <= BOX_TOLERANCE
                                    && Math.abs(b[2] - o.maxX()) <= BOX_TOLERANCE
                                    && Math.abs(b[3] - o.maxY()) <= BOX_TOLERANCE),
                            () -> "no blob with the box of " + o);
                }
            }
        }
        assertTrue(scenes >= 100);
    }

    @Test
    void noisyRenderKeepsObjectColoursWithinNoiseAndAddsClutter() {
        for (Sample s : samples.subList(0, 120)) {
            if (s.scene() == null) {
                continue;
            }
            BufferedImage img = SceneRenderer.render(s.scene(), false);
            int amp = s.scene().noiseAmplitude();
            for (Scene.SceneObject o : s.scene().objects()) {
                int p = img.getRGB(o.cx(), o.cy());
                for (int shift = 16; shift >= 0; shift -= 8) {
                    int diff = Math.abs(((p >> shift) & 0xFF) - ((o.colour().rgb >> shift) & 0xFF));
                    assertTrue(diff <= amp, () -> "pixel at centre of " + o + " is " + Integer.toHexString(p));
                }
            }
            assertFalse(s.scene().marks().isEmpty());
            // Noise: the clean and noisy renders differ at object pixels too.
            BufferedImage clean = SceneRenderer.render(s.scene(), true);
            Scene.SceneObject o = s.scene().objects().get(0);
            boolean differs = false;
            for (int y = o.cy() - 1; y <= o.cy() + 1; y++) {
                for (int x = o.cx() - 1; x <= o.cx() + 1; x++) {
                    differs |= clean.getRGB(x, y) != img.getRGB(x, y);
                }
            }
            assertTrue(differs);
        }
    }

    @Test
    void forcedCellsProduceTheirCell() {
        SynthBenchmark g = new SynthBenchmark(SEED, SIZE);
        for (Subject subject : Subject.values()) {
            for (Modality m : Modality.values()) {
                for (boolean hard : new boolean[] {false, true}) {
                    Sample s = g.sample("val", 5, "6", subject, m, hard);
                    assertEquals(subject.label, s.problem().subject());
                    assertEquals(m == Modality.TEXT || m == Modality.BOTH, s.problem().hasText());
                    assertEquals(m == Modality.IMAGE || m == Modality.BOTH, s.problem().hasImage());
                    assertEquals(hard, s.problem().gradeNumber() >= 7);
                    assertEquals("val", s.problem().split());
                }
            }
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {48, 128})
    void otherPictureSizesScaleTheSceneAndKeepAnswersRight(int size) {
        SynthBenchmark g = new SynthBenchmark(SEED, size);
        for (int i = 0; i < 60; i++) {
            Sample s = g.sample("test", i, "x");
            assertEquals(AnswerOracle.solve(s.problem(), s.scene()), s.problem().answerText());
            if (s.scene() != null) {
                BufferedImage clean = SceneRenderer.render(s.scene(), true);
                assertEquals(size, clean.getWidth());
                assertTrue(s.scene().objects().stream().allMatch(o -> o.r() >= Math.round(4 * size / 64.0)));
                for (Scene.Colour c : Scene.Colour.values()) {
                    assertEquals(s.scene().withColour(c).size(), components(clean, c.rgb).size());
                }
            }
        }
    }

    @Test
    void vocabularyStaysSmallAndCoversEveryToken() {
        List<ScienceQaProblem> ps = samples.stream().map(Sample::problem).toList();
        List<String> vocab = SynthBenchmark.vocabulary(ps);
        assertTrue(vocab.size() > 100 && vocab.size() < 600, "vocabulary size " + vocab.size());
        Set<String> set = new HashSet<>(vocab);
        for (ScienceQaProblem p : ps) {
            for (String text : List.of(p.question(), p.hint(), String.join(" ", p.choices()))) {
                assertTrue(set.containsAll(SynthBenchmark.tokenize(text)));
            }
        }
        assertEquals(List.of("how", "many", "red", "circles", "?", "i", "see", "_", "_", "_", "."),
                SynthBenchmark.tokenize("How many red circles? I see ___."));
    }

    @Test
    void differentSeedsDrawDifferentProblemsFromTheSameFamilies() {
        SynthBenchmark other = new SynthBenchmark(SEED + 1, SIZE);
        int same = 0;
        Map<String, Integer> a = new HashMap<>();
        Map<String, Integer> b = new HashMap<>();
        for (int i = 0; i < N; i++) {
            Sample x = samples.get(i);
            Sample y = other.sample("train", i, Integer.toString(i + 1));
            if (x.problem().equals(y.problem())) {
                same++;
            }
            a.merge(x.template(), 1, Integer::sum);
            b.merge(y.template(), 1, Integer::sum);
        }
        assertTrue(same < N / 20, "identical problems across seeds: " + same);
        assertEquals(a.keySet(), b.keySet());
    }

    // ---------------------------------------------------------------------------------------------
    // Writing

    @TempDir
    Path tmp;

    private static final SynthBenchmark.Options SMALL = new SynthBenchmark.Options(SEED, 40, 8, 12, SIZE);

    @Test
    void sameSeedGivesIdenticalBytesAndDifferentSeedDifferentOnes() throws IOException {
        Path a = tmp.resolve("a");
        Path b = tmp.resolve("b");
        Path c = tmp.resolve("c");
        SynthBenchmark.write(a, SMALL, null);
        SynthBenchmark.write(b, SMALL, null);
        SynthBenchmark.write(c, new SynthBenchmark.Options(SEED + 7, 40, 8, 12, SIZE), null);
        List<Path> files = listFiles(a);
        assertEquals(files, listFiles(b));
        assertTrue(files.size() > 20);
        for (Path f : files) {
            assertArrayEquals(Files.readAllBytes(a.resolve(f)), Files.readAllBytes(b.resolve(f)), f.toString());
        }
        assertFalse(java.util.Arrays.equals(Files.readAllBytes(a.resolve("problems.json")),
                Files.readAllBytes(c.resolve("problems.json"))));
        // pid_splits lists the same pids for equal sizes, so compare pictures too.
        int differing = 0;
        int common = 0;
        for (Path f : files) {
            if (f.toString().endsWith(".png") && Files.exists(c.resolve(f))) {
                common++;
                differing += java.util.Arrays.equals(Files.readAllBytes(a.resolve(f)), Files.readAllBytes(c.resolve(f))) ? 0 : 1;
            }
        }
        assertTrue(common > 0 && differing == common);
        assertTrue(Stream.of(tmp.toFile().list()).noneMatch(n -> n.contains(".tmp-")));
    }

    @Test
    void solutionsAreReadBackFromTheBenchmarkAndFromATrainingManifest() throws IOException {
        Path steps = tmp.resolve("steps");
        SynthBenchmark.write(steps, new SynthBenchmark.Options(SEED, 4, 0, 2, SIZE, SynthBenchmark.Solutions.STEPS), null);
        assertEquals(SynthBenchmark.Solutions.STEPS, SynthBenchmark.Solutions.ofData(steps));
        Path plain = tmp.resolve("plain");
        SynthBenchmark.write(plain, new SynthBenchmark.Options(SEED, 4, 0, 2, SIZE), null);
        assertEquals(SynthBenchmark.Solutions.PLAIN, SynthBenchmark.Solutions.ofData(plain));
        // a manifest from before the key: plain; no manifest (not a synth benchmark): unknown
        Files.writeString(plain.resolve(SynthBenchmark.MANIFEST_FILE), "{\"seed\": 1}");
        assertEquals(SynthBenchmark.Solutions.PLAIN, SynthBenchmark.Solutions.ofData(plain));
        assertNull(SynthBenchmark.Solutions.ofData(tmp));

        Path model = tmp.resolve("model");
        Files.createDirectories(model);
        assertEquals(SynthBenchmark.Solutions.PLAIN, SynthBenchmark.Solutions.ofModel(model));
        Files.writeString(model.resolve("train_manifest.json"), "{\"data_solutions\": \"steps\"}");
        assertEquals(SynthBenchmark.Solutions.STEPS, SynthBenchmark.Solutions.ofModel(model));
        Files.writeString(model.resolve("train_manifest.json"), "{\"data_solutions\": \"tree\"}");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> SynthBenchmark.Solutions.ofModel(model));
        assertTrue(e.getMessage().contains("train_manifest.json key data_solutions") && e.getMessage().contains("'tree'"),
                e.getMessage());
    }

    @Test
    void writtenDirectoryLoadsAndMatchesTheSamples() throws IOException {
        Path out = tmp.resolve("bench");
        List<int[]> progress = new ArrayList<>();
        SynthBenchmark.write(out, SMALL, (done, total) -> progress.add(new int[] {done, total}));
        assertEquals(SMALL.total(), progress.size());
        assertArrayEquals(new int[] {SMALL.total(), SMALL.total()}, progress.getLast());

        ScienceQaDataset ds = ScienceQaDataset.load(out);
        assertEquals(List.of("train", "val", "test"), ds.splitNames());
        assertEquals(40, ds.split("train").size());
        assertEquals(8, ds.split("val").size());
        assertEquals(12, ds.split("test").size());
        SynthBenchmark g = new SynthBenchmark(SEED, SIZE);
        int index = 0;
        for (String split : List.of("train", "val", "test")) {
            for (ScienceQaProblem p : ds.split(split)) {
                assertEquals(split, p.split());
                Sample s = g.sample(split, index, Integer.toString(index + 1));
                index++;
                assertEquals(s.problem().pid(), p.pid());
                assertEquals(s.problem().question(), p.question());
                assertEquals(s.problem().choices(), p.choices());
                assertEquals(s.problem().answer(), p.answer());
                if (s.scene() == null) {
                    assertNull(p.imagePath());
                } else {
                    assertEquals(out.resolve("images").resolve(p.pid()).resolve("image.png"), p.imagePath());
                    BufferedImage read = ImageIO.read(p.imagePath().toFile());
                    BufferedImage drawn = SceneRenderer.render(s.scene(), false);
                    assertEquals(SIZE, read.getWidth());
                    assertEquals(SIZE, read.getHeight());
                    for (int y = 0; y < SIZE; y++) {
                        for (int x = 0; x < SIZE; x++) {
                            assertEquals(drawn.getRGB(x, y), read.getRGB(x, y));
                        }
                    }
                }
            }
        }
        List<String> vocab = Files.readAllLines(out.resolve(SynthBenchmark.VOCAB_FILE));
        assertEquals(SynthBenchmark.vocabulary(ds.problems().values()), vocab);
        String manifest = Files.readString(out.resolve(SynthBenchmark.MANIFEST_FILE));
        assertTrue(manifest.contains("\"seed\" : " + SEED), manifest);
    }

    @Test
    void refusesNonEmptyOutputAndAcceptsEmptyOne() throws IOException {
        Path full = Files.createDirectories(tmp.resolve("full"));
        Files.writeString(full.resolve("keep.txt"), "x");
        Exception e = assertThrows(IllegalArgumentException.class,
                () -> SynthBenchmark.write(full, SMALL, null));
        assertTrue(e.getMessage().contains("full") && e.getMessage().contains("non-empty"), e.getMessage());
        assertEquals(List.of("keep.txt"), List.of(full.toFile().list()));

        Path empty = Files.createDirectories(tmp.resolve("empty"));
        SynthBenchmark.write(empty, new SynthBenchmark.Options(1, 3, 0, 0, SIZE), null);
        assertEquals(3, ScienceQaDataset.load(empty).problems().size());
    }

    @Test
    void rejectsBadOptions() {
        Exception e = assertThrows(IllegalArgumentException.class, () -> new SynthBenchmark.Options(1, -1, 0, 0, 64));
        assertTrue(e.getMessage().contains("train") && e.getMessage().contains("-1"));
        e = assertThrows(IllegalArgumentException.class, () -> new SynthBenchmark.Options(1, 1, 0, 0, 16));
        assertTrue(e.getMessage().contains("image-size") && e.getMessage().contains("16"));
        assertThrows(IllegalArgumentException.class, () -> new SynthBenchmark.Options(1, 0, 0, 0, 64));
    }

    private static List<Path> listFiles(Path dir) throws IOException {
        try (Stream<Path> s = Files.walk(dir)) {
            return s.filter(Files::isRegularFile).map(dir::relativize).sorted().toList();
        }
    }

    /** 8-connected components of pixels with exactly this colour: boxes {minX, minY, maxX, maxY}. */
    static List<int[]> components(BufferedImage img, int rgb) {
        int w = img.getWidth();
        int h = img.getHeight();
        boolean[] seen = new boolean[w * h];
        List<int[]> out = new ArrayList<>();
        for (int y0 = 0; y0 < h; y0++) {
            for (int x0 = 0; x0 < w; x0++) {
                if (seen[y0 * w + x0] || (img.getRGB(x0, y0) & 0xFFFFFF) != rgb) {
                    continue;
                }
                int[] box = {x0, y0, x0, y0};
                java.util.ArrayDeque<int[]> queue = new java.util.ArrayDeque<>();
                queue.add(new int[] {x0, y0});
                seen[y0 * w + x0] = true;
                while (!queue.isEmpty()) {
                    int[] p = queue.poll();
                    box[0] = Math.min(box[0], p[0]);
                    box[1] = Math.min(box[1], p[1]);
                    box[2] = Math.max(box[2], p[0]);
                    box[3] = Math.max(box[3], p[1]);
                    for (int dy = -1; dy <= 1; dy++) {
                        for (int dx = -1; dx <= 1; dx++) {
                            int x = p[0] + dx;
                            int y = p[1] + dy;
                            if (x >= 0 && y >= 0 && x < w && y < h && !seen[y * w + x]
                                    && (img.getRGB(x, y) & 0xFFFFFF) == rgb) {
                                seen[y * w + x] = true;
                                queue.add(new int[] {x, y});
                            }
                        }
                    }
                }
                out.add(box);
            }
        }
        return out;
    }

    @Test
    void runningComparisonKeepsTheBestSoFarInTextOrder() {
        List<String> items = List.of("jar", "pan", "bowl", "cup");
        List<Integer> temps = List.of(9, 8, 7, 3);
        assertEquals("jar 9. pan 8: pan 8. bowl 7: bowl 7. cup 3: cup 3.",
                SynthBenchmark.runningComparison(items, temps, false, 1));
        assertEquals("jar 9. pan 8: jar 9. bowl 7: jar 9. cup 3: jar 9.",
                SynthBenchmark.runningComparison(items, temps, true, 1));
        assertEquals("jar 9. pan 8: pan 8, jar 9. bowl 7: bowl 7, pan 8. cup 3: cup 3, bowl 7.",
                SynthBenchmark.runningComparison(items, temps, false, 2));
        assertEquals("jar 9. pan 8: jar 9, pan 8. bowl 7: jar 9, pan 8. cup 3: jar 9, pan 8.",
                SynthBenchmark.runningComparison(items, temps, true, 2));
    }

    @Test
    void runningOrderKeepsTheFarthestSoFar() {
        List<String> names = List.of("red", "blue", "green", "yellow");
        List<Integer> along = List.of(5, 9, 2, 7);
        assertEquals("red. blue: blue. green: blue. yellow: blue.", SynthBenchmark.runningOrder(names, along, 1));
        assertEquals("red. blue: blue, red. green: blue, red. yellow: blue, yellow.",
                SynthBenchmark.runningOrder(names, along, 2));
    }

    /**
     * The map problems of the first N train samples drawn with the step solutions and with the given
     * style, with each question's direction and how many squares it ranks, after checking that every problem is the same in both and that
     * only the maps' solutions differ.
     */
    private record MapPair(Sample steps, Sample other, String template, String direction, int keep) {
    }

    /**
     * The first n train samples drawn with two solution styles, after checking that every problem
     * (scene, question, choices, answer, hint) is the same in both.
     */
    private static List<Sample[]> samePairs(SynthBenchmark.Solutions first, SynthBenchmark.Solutions second, int n) {
        SynthBenchmark x = new SynthBenchmark(SEED, SIZE, first);
        SynthBenchmark y = new SynthBenchmark(SEED, SIZE, second);
        List<Sample[]> pairs = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            Sample a = x.sample("train", i, Integer.toString(i + 1));
            Sample b = y.sample("train", i, Integer.toString(i + 1));
            assertEquals(a.scene(), b.scene());
            ScienceQaProblem pa = a.problem();
            ScienceQaProblem pb = b.problem();
            assertEquals(pa.question() + pa.choices() + pa.answer() + pa.hint(),
                    pb.question() + pb.choices() + pb.answer() + pb.hint());
            pairs.add(new Sample[] {a, b});
        }
        return pairs;
    }

    private static List<MapPair> mapPairs(SynthBenchmark.Solutions style) {
        List<MapPair> maps = new ArrayList<>();
        for (Sample[] pair : samePairs(SynthBenchmark.Solutions.STEPS, style, N)) {
            Sample a = pair[0];
            Sample b = pair[1];
            ScienceQaProblem pa = a.problem();
            ScienceQaProblem pb = b.problem();
            String t = a.template().replaceAll("\\.(easy|hard)$", "");
            if (t.equals("soc.image.map") || t.equals("soc.both.map")) {
                maps.add(new MapPair(a, b, t, pb.question().replaceAll(".*farthest (\\w+)\\?", "$1"),
                        pb.question().contains("second farthest") ? 2 : 1));
            } else {
                assertEquals(pa.solution(), pb.solution(), t);
            }
        }
        return maps;
    }

    /**
     * Position solutions: the same problems as the step solutions, the map questions with a running
     * comparison whose every state is the farthest squares of the prefix (positions from the scene),
     * over the squares in colour order (no key) or in the key's order, ending at the answer.
     */
    @Test
    void positionSolutionsCompareTheSquaresOfTheMapInOrder() {
        Map<String, Integer> checked = new java.util.TreeMap<>();
        for (MapPair pair : mapPairs(SynthBenchmark.Solutions.POSITIONS)) {
            Sample b = pair.other();
            ScienceQaProblem pa = pair.steps().problem();
            ScienceQaProblem pb = b.problem();
            String t = pair.template();
            String dir = pair.direction();
            int keep = pair.keep();
            List<Scene.SceneObject> squares = b.scene().objects().stream()
                    .filter(o -> o.shape() == Scene.Shape.SQUARE).toList();
            Map<String, Integer> along = new HashMap<>();
            for (Scene.SceneObject o : squares) {
                along.put(o.colour().word, switch (dir) {
                    case "north" -> -o.cy();
                    case "south" -> o.cy();
                    case "east" -> o.cx();
                    default -> -o.cx();
                });
            }
            String sol = pb.solution();
            String[] parts = sol.substring(0, sol.indexOf(" So ")).split("\\. ?");
            List<String> order = new ArrayList<>();
            for (String part : parts) {
                String[] sides = part.split(": ");
                order.add(sides[0].split(", ")[0]);
                List<String> want = order.stream().sorted(Comparator.comparing((String c) -> -along.get(c)))
                        .limit(keep).toList();
                assertEquals(want, List.of(sides[sides.length - 1].split(", ")), sol);
            }
            assertEquals(squares.size(), order.size(), sol);
            if (t.equals("soc.image.map")) {
                assertEquals(order.stream().sorted(Comparator.comparing((String c) -> colourIndex(c))).toList(), order,
                        sol);
                String answer = pb.choices().get(pb.answer());
                assertTrue(sol.endsWith("So the " + answer + " square is " + (keep == 2 ? "second " : "")
                        + "farthest " + dir + "."), sol);
            } else {
                List<String> keyOrder = new ArrayList<>();
                java.util.regex.Matcher m = java.util.regex.Pattern.compile("is the (\\w+) square").matcher(pb.hint());
                while (m.find()) {
                    keyOrder.add(m.group(1));
                }
                assertEquals(keyOrder, order, sol);
                assertTrue(pa.solution().startsWith("The ") && sol.endsWith(" So t" + pa.solution().substring(1)), sol);
            }
            checked.merge(t, 1, Integer::sum);
        }
        assertEquals(java.util.Set.of("soc.both.map", "soc.image.map"), checked.keySet(), checked.toString());
    }

    /**
     * Keyed solutions: maps without a key as the coordinate solutions; a map with a key walks the
     * key's sentences in their order, each with its colour's row or column (recomputed here from the
     * scene) and the towns farthest so far, and ends with the answer's town.
     */
    @Test
    void keyedSolutionsWalkTheKeyAndKeepTheTowns() {
        Map<String, String> coordinates = new HashMap<>();
        for (MapPair pair : mapPairs(SynthBenchmark.Solutions.COORDINATES)) {
            coordinates.put(pair.other().problem().pid(), pair.other().problem().solution());
        }
        Map<String, Integer> checked = new java.util.TreeMap<>();
        for (MapPair pair : mapPairs(SynthBenchmark.Solutions.KEYED)) {
            ScienceQaProblem p = pair.other().problem();
            String sol = p.solution();
            if (pair.template().equals("soc.image.map")) {
                assertEquals(coordinates.get(p.pid()), sol);
                checked.merge(pair.template(), 1, Integer::sum);
                continue;
            }
            String dir = pair.direction();
            boolean vertical = dir.equals("north") || dir.equals("south");
            Map<String, Integer> cell = new HashMap<>();
            Map<String, Integer> along = new HashMap<>();
            for (Scene.SceneObject o : pair.other().scene().objects()) {
                if (o.shape() == Scene.Shape.SQUARE) {
                    cell.put(o.colour().word, (vertical ? o.cy() : o.cx()) * 8 / SIZE + 1);
                    along.put(o.colour().word, SynthBenchmark.towards(dir, o));
                }
            }
            java.util.regex.Matcher m = java.util.regex.Pattern.compile("(\\w+) is the (\\w+) square").matcher(p.hint());
            List<String> towns = new ArrayList<>();
            Map<String, String> colourOf = new HashMap<>();
            while (m.find()) {
                towns.add(m.group(1));
                colourOf.put(m.group(1), m.group(2));
            }
            String[] steps = sol.substring(0, sol.indexOf(" So ")).split("\\. ?");
            assertEquals(towns.size(), steps.length, sol);
            for (int i = 0; i < steps.length; i++) {
                String town = towns.get(i);
                String colour = colourOf.get(town);
                String[] sides = steps[i].split(": ");
                assertEquals(town + " is the " + colour + " square", sides[0], sol);
                assertEquals(colour + " " + cell.get(colour), sides[1], sol);
                List<String> want = towns.subList(0, i + 1).stream()
                        .sorted(Comparator.comparing((String t) -> -along.get(colourOf.get(t)))).limit(pair.keep())
                        .map(t -> t + " " + cell.get(colourOf.get(t))).toList();
                assertEquals(i == 0 ? 2 : 3, sides.length, sol);
                if (i > 0) {
                    assertEquals(want, List.of(sides[2].split(", ")), sol);
                }
            }
            assertTrue(sol.endsWith(" So " + p.choices().get(p.answer()) + " is " + (pair.keep() == 2 ? "second " : "")
                    + "farthest " + dir + "."), sol);
            checked.merge(pair.template(), 1, Integer::sum);
        }
        assertEquals(java.util.Set.of("soc.both.map", "soc.image.map"), checked.keySet(), checked.toString());
    }

    /**
     * Count solutions: the same problems as the coordinate solutions; only the families that count or
     * name one colour's shapes differ, and every "colour N" or "colour shape" they write names that
     * colour's number of shapes in the scene, or its shape.
     */
    @Test
    void countsSolutionsNameEachColoursCountAndShapeFromTheScene() {
        java.util.Set<String> families = java.util.Set.of("nat.image.more", "nat.image.not", "nat.image.shape",
                "lan.image.phrase", "nat.both.magnets");
        java.util.regex.Pattern read = java.util.regex.Pattern.compile(
                "\\b(red|blue|green|yellow|purple|orange) (\\d|(?:circle|square|triangle|diamond|cross)(?:e?s)?)\\.");
        Map<String, Integer> checked = new java.util.TreeMap<>();
        for (Sample[] pair : samePairs(SynthBenchmark.Solutions.COORDINATES, SynthBenchmark.Solutions.COUNTS, 3 * N)) {
            Sample a = pair[0];
            Sample b = pair[1];
            ScienceQaProblem pa = a.problem();
            ScienceQaProblem pb = b.problem();
            String t = a.template().replaceAll("\\.(easy|hard)$", "");
            if (!families.contains(t)) {
                assertEquals(pa.solution(), pb.solution(), t);
                continue;
            }
            java.util.regex.Matcher m = read.matcher(pb.solution());
            int pairs = 0;
            while (m.find()) {
                Scene.Colour c = Scene.Colour.valueOf(m.group(1).toUpperCase(java.util.Locale.ROOT));
                List<Scene.SceneObject> mine = b.scene().withColour(c);
                if (Character.isDigit(m.group(2).charAt(0))) {
                    assertEquals(mine.size(), Integer.parseInt(m.group(2)), pb.solution());
                } else {
                    assertTrue(mine.stream().allMatch(o -> m.group(2).equals(mine.size() == 1 ? o.shape().singular
                            : o.shape().plural)), pb.solution() + " " + mine);
                }
                pairs++;
            }
            assertTrue(pairs >= 1, pb.solution());
            checked.merge(t, 1, Integer::sum);
        }
        assertEquals(families, checked.keySet(), checked.toString());
    }

    @Test
    void coordinatesAreEighthsOfThePicture() {
        Scene.SceneObject o = new Scene.SceneObject(Scene.Shape.SQUARE, Scene.Colour.RED, 63, 8, 3, false);
        assertEquals(2, SynthBenchmark.coordinate(64, "north", o));
        assertEquals(2, SynthBenchmark.coordinate(64, "south", o));
        assertEquals(8, SynthBenchmark.coordinate(64, "east", o));
        assertEquals(8, SynthBenchmark.coordinate(64, "west", o));
        Scene.SceneObject p = new Scene.SceneObject(Scene.Shape.SQUARE, Scene.Colour.RED, 0, 7, 3, false);
        assertEquals(1, SynthBenchmark.coordinate(64, "north", p));
        assertEquals(1, SynthBenchmark.coordinate(64, "west", p));
        assertEquals(4, SynthBenchmark.coordinate(96, "north",
                new Scene.SceneObject(Scene.Shape.SQUARE, Scene.Colour.RED, 0, 47, 3, false)));
    }

    /**
     * Coordinate solutions: the same problems as the step solutions; the map questions write every
     * square with its row or column on the 8 x 8 grid (recomputed here from the scene), in colour
     * order or the key's order, and each state keeps the squares farthest along the direction so far.
     */
    @Test
    void coordinateSolutionsCompareTheSquaresRowsOrColumns() {
        Map<String, Integer> checked = new java.util.TreeMap<>();
        int ties = 0;
        for (MapPair pair : mapPairs(SynthBenchmark.Solutions.COORDINATES)) {
            Sample b = pair.other();
            ScienceQaProblem pa = pair.steps().problem();
            ScienceQaProblem pb = b.problem();
            String t = pair.template();
            String dir = pair.direction();
            int keep = pair.keep();
            boolean vertical = dir.equals("north") || dir.equals("south");
            Map<String, Integer> cell = new HashMap<>();
            Map<String, Integer> along = new HashMap<>();
            for (Scene.SceneObject o : b.scene().objects()) {
                if (o.shape() == Scene.Shape.SQUARE) {
                    cell.put(o.colour().word, (vertical ? o.cy() : o.cx()) * 8 / SIZE + 1);
                    along.put(o.colour().word, SynthBenchmark.towards(dir, o));
                }
            }
            String sol = pb.solution();
            String[] parts = sol.substring(0, sol.indexOf(" So ")).split("\\. ?");
            List<String> order = new ArrayList<>();
            for (String part : parts) {
                String[] sides = part.split(": ");
                String[] first = sides[0].split(", ")[0].split(" ");
                assertEquals(cell.get(first[0]), Integer.valueOf(first[1]), sol);
                order.add(first[0]);
                List<String> want = order.stream().sorted(Comparator.comparing((String c) -> -along.get(c)))
                        .limit(keep).map(c -> c + " " + cell.get(c)).toList();
                assertEquals(want, List.of(sides[sides.length - 1].split(", ")), sol);
            }
            assertEquals(cell.size(), order.size(), sol);
            List<String> ranked = order.stream().sorted(Comparator.comparing((String c) -> -along.get(c))).toList();
            ties += cell.get(ranked.get(keep - 1)).equals(cell.get(ranked.get(keep))) ? 1 : 0;
            String tail = t.equals("soc.image.map") ? " So the " + pb.choices().get(pb.answer()) + " square is "
                    + (keep == 2 ? "second " : "") + "farthest " + dir + "." : " So t" + pa.solution().substring(1);
            assertTrue(sol.endsWith(tail), sol);
            checked.merge(t, 1, Integer::sum);
        }
        assertEquals(java.util.Set.of("soc.both.map", "soc.image.map"), checked.keySet(), checked.toString());
        int maps = checked.values().stream().mapToInt(Integer::intValue).sum();
        assertTrue(ties < maps / 4, ties + " of " + maps + " answers share their cell with the next square");
    }

    @Test
    void placesAreThirdsOfThePicture() {
        assertEquals("top left", SynthBenchmark.place(60, 0, 19));
        assertEquals("top", SynthBenchmark.place(60, 20, 0));
        assertEquals("top right", SynthBenchmark.place(60, 40, 10));
        assertEquals("left", SynthBenchmark.place(60, 19, 20));
        assertEquals("center", SynthBenchmark.place(60, 39, 39));
        assertEquals("right", SynthBenchmark.place(60, 59, 30));
        assertEquals("bottom left", SynthBenchmark.place(60, 5, 40));
        assertEquals("bottom", SynthBenchmark.place(60, 30, 59));
        assertEquals("bottom right", SynthBenchmark.place(60, 40, 40));
    }

    @Test
    void aDescriptionNamesEveryShapeInReadingOrder() {
        List<Scene.SceneObject> objects = List.of(
                new Scene.SceneObject(Scene.Shape.CROSS, Scene.Colour.GREEN, 30, 50, 4, false),
                new Scene.SceneObject(Scene.Shape.CIRCLE, Scene.Colour.BLUE, 30, 30, 8, true),
                new Scene.SceneObject(Scene.Shape.SQUARE, Scene.Colour.RED, 50, 5, 4, false),
                new Scene.SceneObject(Scene.Shape.TRIANGLE, Scene.Colour.YELLOW, 4, 15, 4, false));
        Scene scene = new Scene(60, objects, List.of(), 0, 0, false, 0, 0, 0, 0L);
        assertEquals("The picture has a yellow triangle at top left, a red square at top right, a large blue circle at "
                + "center and a green cross at bottom.", SynthBenchmark.describe(scene));
        Scene one = new Scene(60, objects.subList(0, 1), List.of(), 0, 0, false, 0, 0, 0, 0L);
        assertEquals("The picture has a green cross at bottom.", SynthBenchmark.describe(one));
        Scene orange = new Scene(60, List.of(new Scene.SceneObject(Scene.Shape.SQUARE, Scene.Colour.ORANGE, 5, 5, 4,
                false), new Scene.SceneObject(Scene.Shape.SQUARE, Scene.Colour.ORANGE, 50, 50, 8, true)), List.of(), 0,
                0, false, 0, 0, 0, 0L);
        assertEquals("The picture has an orange square at top left and a large orange square at bottom right.",
                SynthBenchmark.describe(orange));
    }

    /** Described solutions: the position solutions, with the picture's description first where there is one. */
    @Test
    void describedSolutionsOpenWithThePicture() {
        SynthBenchmark po = new SynthBenchmark(SEED, SIZE, SynthBenchmark.Solutions.POSITIONS);
        SynthBenchmark de = new SynthBenchmark(SEED, SIZE, SynthBenchmark.Solutions.DESCRIBED);
        int described = 0;
        for (int i = 0; i < N; i++) {
            Sample a = po.sample("train", i, Integer.toString(i + 1));
            Sample b = de.sample("train", i, Integer.toString(i + 1));
            assertEquals(a.scene(), b.scene());
            String want = a.scene() == null ? a.problem().solution()
                    : SynthBenchmark.describe(a.scene()) + " " + a.problem().solution();
            assertEquals(want, b.problem().solution(), a.template());
            described += a.scene() == null ? 0 : 1;
        }
        assertTrue(described > N / 4 && described < N, "pictures: " + described);
    }

    private static int colourIndex(String word) {
        for (Scene.Colour c : Scene.Colour.values()) {
            if (c.word.equals(word)) {
                return c.ordinal();
            }
        }
        throw new AssertionError(word);
    }

    /**
     * Step solutions: the same problems with another solution text, every step checked against the
     * hint by re-deriving it (values looked up by name, the kept entries the best of the prefix, the
     * walk's claims stated in the hint directly or as their converse), ending at the answer.
     */
    @Test
    void stepSolutionsChangeOnlyTheSolutionAndEveryStepFollowsFromTheHint() {
        SynthBenchmark g = new SynthBenchmark(SEED, SIZE, SynthBenchmark.Solutions.STEPS);
        java.util.regex.Pattern value = java.util.regex.Pattern.compile("(?:The )?(\\w+) (?:is|sells) (\\d+)");
        java.util.regex.Pattern step = java.util.regex.Pattern.compile("(\\w+) (\\d+)");
        java.util.regex.Pattern claim = java.util.regex.Pattern.compile("(\\w+) is (north|south|east|west) of (\\w+)\\.");
        Map<String, String> opposite = Map.of("north", "south", "south", "north", "east", "west", "west", "east");
        Map<String, Integer> checked = new java.util.TreeMap<>();
        for (int i = 0; i < N; i++) {
            Sample plain = samples.get(i);
            Sample st = g.sample("train", i, Integer.toString(i + 1));
            ScienceQaProblem a = plain.problem();
            ScienceQaProblem b = st.problem();
            assertEquals(new ScienceQaProblem(a.pid(), a.question(), a.choices(), a.answer(), a.hint(), a.image(),
                    a.imagePath(), a.subject(), a.grade(), a.category(), a.topic(), a.skill(), a.lecture(), b.solution(),
                    a.split(), a.task()), b, a.pid());
            assertEquals(plain.scene(), st.scene());
            String answer = a.choices().get(a.answer());
            String sol = b.solution();
            String t = plain.template().replaceAll("\\.(easy|hard)$", "");
            if (t.equals("nat.text.temperature") || t.equals("soc.text.sales")) {
                Map<String, Integer> told = new HashMap<>();
                java.util.regex.Matcher m = value.matcher(a.hint());
                List<String> order = new ArrayList<>();
                while (m.find()) {
                    told.put(m.group(1), Integer.parseInt(m.group(2)));
                    order.add(m.group(1));
                }
                boolean largest = a.question().contains("warmest") || a.question().contains("most");
                int keep = a.question().contains("second") ? 2 : 1;
                String[] parts = sol.substring(0, sol.indexOf(" So ")).split("\\. ?");
                assertEquals(order.size(), parts.length, sol);
                List<String> prefix = new ArrayList<>();
                for (int k = 0; k < parts.length; k++) {
                    prefix.add(order.get(k));
                    String[] sides = parts[k].split(": ");
                    String state = sides[sides.length - 1];
                    if (k > 0) {
                        assertEquals(order.get(k) + " " + told.get(order.get(k)), sides[0], sol);
                    }
                    List<String> want = prefix.stream().sorted(Comparator.comparing((String x) -> largest
                            ? -told.get(x) : told.get(x))).limit(keep).toList();
                    java.util.regex.Matcher sm = step.matcher(state);
                    List<String> got = new ArrayList<>();
                    while (sm.find()) {
                        assertEquals(told.get(sm.group(1)), Integer.valueOf(sm.group(2)), sol);
                        got.add(sm.group(1));
                    }
                    assertEquals(want, got, sol);
                }
                assertTrue(sol.startsWith(order.get(0) + " " + told.get(order.get(0)) + "."), sol);
                assertTrue(sol.contains("So the " + answer + " ") || sol.contains("So " + answer + " "), sol);
                checked.merge(t, 1, Integer::sum);
            } else if (t.equals("soc.text.chain")) {
                String dir = a.question().replaceAll(".*farthest (\\w+)\\?", "$1");
                java.util.regex.Matcher m = claim.matcher(sol);
                String last = sol.substring("From ".length(), sol.indexOf(':'));
                assertTrue(a.hint().startsWith(last + " "), sol + " / " + a.hint()); // the first town the text names
                while (m.find()) {
                    if (m.group(1).equals("Nothing")) {
                        continue;
                    }
                    assertEquals(dir, m.group(2), sol);
                    assertEquals(last, m.group(3), sol);
                    String direct = m.group(1) + " is " + dir + " of " + m.group(3) + ".";
                    String converse = m.group(3) + " is " + opposite.get(dir) + " of " + m.group(1) + ".";
                    assertTrue(a.hint().contains(direct) || a.hint().contains(converse), sol + " / " + a.hint());
                    last = m.group(1);
                }
                assertEquals(answer, last, sol);
                assertTrue(sol.endsWith("Nothing is " + dir + " of " + answer + ". So " + answer + " is farthest " + dir
                        + "."), sol);
                checked.merge(t, 1, Integer::sum);
            } else if (t.equals("soc.both.map")) {
                assertTrue(sol.endsWith(answer + " is the " + sol.split(" ")[1] + " square."), sol);
                assertTrue(a.hint().contains(answer + " is the " + sol.split(" ")[1] + " square"), sol);
                checked.merge(t, 1, Integer::sum);
            } else if (t.equals("soc.text.relative")) {
                assertTrue(sol.endsWith("So the answer is " + answer + "."), sol);
                checked.merge(t, 1, Integer::sum);
            } else {
                assertEquals(a.solution(), sol, t);
            }
        }
        for (String t : List.of("nat.text.temperature", "soc.text.sales", "soc.text.chain", "soc.both.map",
                "soc.text.relative")) {
            assertTrue(checked.getOrDefault(t, 0) >= 3, t + " checked only " + checked.getOrDefault(t, 0) + " times");
        }
    }
}
