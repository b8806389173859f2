package org.qvlm4j.data;

import java.time.Month;
import java.time.format.TextStyle;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Test-side solver for the synthetic benchmark: recomputes the answer of a problem from its question
 * text, hint and scene graph alone, with its own parsing and its own geometry rules, never calling
 * the generator's code. Returns null for questions it does not know (the test fails on those).
 */
final class AnswerOracle {

    private AnswerOracle() {
    }

    private static final List<String> NUM_WORDS = List.of("zero", "one", "two", "three", "four", "five", "six");
    private static final List<String> COMPASS = List.of("north", "east", "south", "west");

    static String solve(ScienceQaProblem p, Scene s) {
        String q = p.question();
        String h = p.hint();
        Matcher m;
        if ((m = match("How many more (\\w+) shapes than (\\w+) shapes are in the picture\\?", q)) != null) {
            return str(colour(s, m.group(1)).size() - colour(s, m.group(2)).size());
        }
        if ((m = match("How many shapes in the picture are not (\\w+)\\?", q)) != null) {
            return str(s.objects().size() - colour(s, m.group(1)).size());
        }
        if ((m = match("How many large (\\w+) shapes are in the picture\\?", q)) != null) {
            return str(colour(s, m.group(1)).stream().filter(o -> isLarge(s, o)).count());
        }
        if ((m = match("How many (\\w+) (\\w+) are in the picture\\?", q)) != null && !m.group(1).equals("magnets")) {
            String c = m.group(1);
            String plural = m.group(2);
            return str(colour(s, c).stream().filter(o -> o.shape().plural.equals(plural)).count());
        }
        if (q.equals("How many magnets are in the picture?")) {
            Matcher hm = match("In this picture, the (\\w+) shapes are magnets\\.", h);
            return str(colour(s, hm.group(1)).size());
        }
        if (q.equals("How many more magnets than rocks are in the picture?")) {
            Matcher hm = match("In this picture, the (\\w+) shapes are magnets and the (\\w+) shapes are rocks\\.", h);
            return str(colour(s, hm.group(1)).size() - colour(s, hm.group(2)).size());
        }
        if ((m = match("What color is the (\\w+)\\?", q)) != null) {
            String shape = m.group(1);
            return unique(s.objects().stream().filter(o -> o.shape().singular.equals(shape)).toList()).colour().word;
        }
        if ((m = match("Which shape is (\\w+)\\?", q)) != null && !m.group(1).equals("the")) {
            return unique(colour(s, m.group(1))).shape().singular;
        }
        if (q.equals("Which shape is the largest?")) {
            return largest(s).shape().singular;
        }
        if (q.equals("What color is the largest shape?")) {
            return largest(s).colour().word;
        }
        if ((m = match("Where is the (\\w+) (\\w+) in the picture\\?", q)) != null) {
            String c = m.group(1);
            String shape = m.group(2);
            Scene.SceneObject o = unique(colour(s, c).stream().filter(x -> x.shape().singular.equals(shape)).toList());
            return where(s.size(), o);
        }
        if ((m = match("North is at the top of the map\\. Which color square is (second )?farthest (\\w+)\\?", q)) != null) {
            return ranked(squares(s), m.group(2)).get(m.group(1) == null ? 0 : 1).colour().word;
        }
        if ((m = match("North is at the top of the map\\. Which town is (second )?farthest (\\w+)\\?", q)) != null) {
            Scene.SceneObject o = ranked(squares(s), m.group(2)).get(m.group(1) == null ? 0 : 1);
            Matcher km = Pattern.compile("(\\w+) is the (\\w+) square").matcher(h);
            while (km.find()) {
                if (km.group(2).equals(o.colour().word)) {
                    return km.group(1);
                }
            }
            return null;
        }
        if (q.equals("Which phrase describes the picture?")) {
            List<Scene.SceneObject> all = s.objects();
            return phrase(all.size(), unique(all.stream().map(Scene.SceneObject::shape).distinct().toList()));
        }
        if ((m = match("Which phrase describes the (\\w+) shapes in the picture\\?", q)) != null) {
            List<Scene.SceneObject> os = colour(s, m.group(1));
            return phrase(os.size(), unique(os.stream().map(Scene.SceneObject::shape).distinct().toList()));
        }
        if (q.equals("Which word completes the sentence to match the picture?")) {
            Matcher hm = match("Complete the sentence: I see (\\w+)( \\w+)? ___\\.", h);
            int n = NUM_WORDS.indexOf(hm.group(1));
            List<Scene.SceneObject> os = hm.group(2) == null ? s.objects() : colour(s, hm.group(2).trim());
            if (os.size() != n) {
                return null;
            }
            Scene.Shape shape = unique(os.stream().map(Scene.SceneObject::shape).distinct().toList());
            return n == 1 ? shape.singular : shape.plural;
        }
        if ((m = match("Which one is the (second )?(warmest|coldest)\\?", q)) != null) {
            Map<String, Integer> t = facts("The (\\w+) is (\\d+) degrees\\.", h);
            return rank(t, m.group(2).equals("warmest"), m.group(1) != null);
        }
        if ((m = match("How many degrees warmer is the (\\w+) than the (\\w+)\\?", q)) != null) {
            Map<String, Integer> t = facts("The (\\w+) is (\\d+) degrees\\.", h);
            return str(t.get(m.group(1)) - t.get(m.group(2)));
        }
        if ((m = match("Which town sells the (second )?(most|fewest) (\\w+)\\?", q)) != null) {
            Map<String, Integer> t = facts("(\\w+) sells (\\d+) " + m.group(3) + "\\.", h);
            return rank(t, m.group(2).equals("most"), m.group(1) != null);
        }
        if ((m = match("How many more (\\w+) does (\\w+) sell than (\\w+)\\?", q)) != null) {
            Map<String, Integer> t = facts("(\\w+) sells (\\d+) " + m.group(1) + "\\.", h);
            return str(t.get(m.group(2)) - t.get(m.group(3)));
        }
        if ((m = match("Which town is (\\w+) of (\\w+)\\?", q)) != null) {
            Map<String, int[]> pos = townPositions(h);
            String dir = m.group(1);
            String refTown = m.group(2);
            int[] ref = pos.get(refTown);
            List<String> hits = pos.entrySet().stream()
                    .filter(e -> !e.getKey().equals(refTown) && along(dir, e.getValue()) > along(dir, ref))
                    .map(Map.Entry::getKey).toList();
            return hits.size() == 1 ? hits.get(0) : null;
        }
        if ((m = match("Which town is farthest (\\w+)\\?", q)) != null) {
            String dir = m.group(1);
            Map<String, int[]> pos = townPositions(h);
            return pos.entrySet().stream().max(Comparator.comparingInt(e -> along(dir, e.getValue())))
                    .map(Map.Entry::getKey).orElse(null);
        }
        if ((m = match("Which month comes (right after|right before|two months after) (\\w+)\\?", q)) != null) {
            Month month = Month.valueOf(m.group(2).toUpperCase(Locale.ROOT));
            int step = switch (m.group(1)) {
                case "right after" -> 1;
                case "right before" -> -1;
                default -> 2;
            };
            return month.plus(step).getDisplayName(TextStyle.FULL, Locale.ENGLISH);
        }
        if ((m = match("Which direction is opposite to (\\w+)\\?", q)) != null) {
            return COMPASS.get((COMPASS.indexOf(m.group(1)) + 2) % 4);
        }
        if ((m = match("You face (\\w+) and turn (right|left|around)\\. Which way do you face now\\?", q)) != null) {
            int quarter = switch (m.group(2)) {
                case "right" -> 1;
                case "left" -> 3;
                default -> 2;
            };
            return COMPASS.get((COMPASS.indexOf(m.group(1)) + quarter) % 4);
        }
        if ((m = match("Which word comes (first|last) in alphabetical order\\?", q)) != null) {
            List<String> sorted = p.choices().stream().sorted().toList();
            return m.group(1).equals("first") ? sorted.get(0) : sorted.get(sorted.size() - 1);
        }
        if (q.equals("Which word from the text comes first in alphabetical order?")) {
            List<String> words = textWords(h);
            String best = p.choices().stream().filter(words::contains).sorted().findFirst().orElse(null);
            // Every word of the text the choices leave out must not come earlier either.
            return words.stream().filter(w -> w.compareTo(best) < 0 && !w.equals("the") && !w.equals("saw")
                    && !w.equals("by") && !NUM_WORDS.contains(w)).findAny().isPresent() ? null : best;
        }
        if ((m = match("Which word would you find on a dictionary page with the guide words (\\w+) and (\\w+)\\?", q))
                != null) {
            String lo = m.group(1);
            String hi = m.group(2);
            List<String> inside = p.choices().stream().filter(w -> w.compareTo(lo) > 0 && w.compareTo(hi) < 0).toList();
            return inside.size() == 1 ? inside.get(0) : null;
        }
        if ((m = match("Which of these is (not )?an? (\\w+)\\?", q)) != null) {
            boolean not = m.group(1) != null;
            String cls = m.group(2);
            List<String> hits = p.choices().stream().filter(w -> CLASS_OF.get(w).equals(cls) != not).toList();
            return hits.size() == 1 ? hits.get(0) : null;
        }
        if ((m = match("Which word rhymes with (\\w+)\\?", q)) != null) {
            String target = m.group(1);
            List<String> hits = p.choices().stream().filter(w -> !w.equals(target) && rime(w).equals(rime(target)))
                    .toList();
            return hits.size() == 1 ? hits.get(0) : null;
        }
        if ((m = match("Which word from the text rhymes with (\\w+)\\?", q)) != null) {
            String target = m.group(1);
            List<String> hits = textWords(h).stream().filter(w -> !w.equals(target) && rime(w).equals(rime(target)))
                    .toList();
            return hits.size() == 1 ? hits.get(0) : null;
        }
        if ((m = match("Which word is the opposite of (\\w+)\\?", q)) != null) {
            return OPPOSITE.get(m.group(1));
        }
        if ((m = match("What is the plural of (\\w+)\\?", q)) != null) {
            return plural(m.group(1));
        }
        if (q.equals("Which word from the text is a plural noun?")) {
            List<String> hits = textWords(h).stream().filter(w -> SINGULAR_OF.containsKey(w)).toList();
            return hits.size() == 1 ? hits.get(0) : null;
        }
        return null;
    }

    private static final Map<String, String> IRREGULAR = Map.of("mouse", "mice", "child", "children", "foot", "feet",
            "tooth", "teeth", "man", "men", "goose", "geese", "woman", "women");

    private static final Map<String, String> CLASS_OF = new HashMap<>();
    private static final Map<String, String> OPPOSITE = new HashMap<>();
    private static final Map<String, String> SINGULAR_OF = new HashMap<>();

    static {
        String[][] classes = {
            {"mammal", "cow horse bear whale lion"}, {"bird", "robin eagle owl duck crow"},
            {"fish", "shark trout salmon tuna"}, {"insect", "ant bee moth beetle wasp"},
            {"solid", "rock brick coin ice"}, {"liquid", "milk water juice oil"}, {"gas", "steam air helium oxygen"}};
        for (String[] c : classes) {
            for (String w : c[1].split(" ")) {
                CLASS_OF.put(w, c[0]);
            }
        }
        for (String pair : "hot-cold big-small fast-slow happy-sad wet-dry old-new full-empty hard-soft loud-quiet tall-short"
                .split(" ")) {
            String[] ab = pair.split("-");
            OPPOSITE.put(ab[0], ab[1]);
            OPPOSITE.put(ab[1], ab[0]);
        }
        for (String w : "box fox bus dish bench baby city berry cup book mouse child foot tooth man goose woman".split(" ")) {
            SINGULAR_OF.put(plural(w), w);
        }
    }

    /** English plural: the irregular table, else -es after s, x, ch, sh; -ies after consonant + y; else -s. */
    static String plural(String w) {
        if (IRREGULAR.containsKey(w)) {
            return IRREGULAR.get(w);
        }
        if (w.endsWith("s") || w.endsWith("x") || w.endsWith("ch") || w.endsWith("sh")) {
            return w + "es";
        }
        if (w.endsWith("y") && "aeiou".indexOf(w.charAt(w.length() - 2)) < 0) {
            return w.substring(0, w.length() - 1) + "ies";
        }
        return w + "s";
    }

    /** The rhyming part of a one-syllable word: from its last vowel group on, a final silent e dropped. */
    static String rime(String w) {
        String t = w.endsWith("e") && w.length() > 3 ? w.substring(0, w.length() - 1) : w;
        int i = t.length() - 1;
        while (i >= 0 && "aeiou".indexOf(t.charAt(i)) < 0) {
            i--;
        }
        while (i > 0 && "aeiou".indexOf(t.charAt(i - 1)) >= 0) {
            i--;
        }
        return i < 0 ? t : t.substring(i);
    }

    static Matcher match(String regex, String text) {
        Matcher m = Pattern.compile(regex).matcher(text);
        return m.matches() ? m : null;
    }

    private static String str(long v) {
        return Long.toString(v);
    }

    private static List<Scene.SceneObject> colour(Scene s, String word) {
        return s.objects().stream().filter(o -> o.colour().word.equals(word)).toList();
    }

    private static <T> T unique(List<T> xs) {
        if (xs.size() != 1) {
            throw new AssertionError("expected exactly one, got " + xs);
        }
        return xs.get(0);
    }

    /** Large objects are at least 1.5 times as wide as the widest small one can be (5 px at 64). */
    static boolean isLarge(Scene s, Scene.SceneObject o) {
        return o.r() * 64.0 / s.size() >= 7;
    }

    private static Scene.SceneObject largest(Scene s) {
        int max = s.objects().stream().mapToInt(Scene.SceneObject::r).max().orElseThrow();
        return unique(s.objects().stream().filter(o -> o.r() == max).toList());
    }

    /** Region by the larger offset from the centre; within 15% of the size counts as the centre. */
    private static String where(int size, Scene.SceneObject o) {
        double dx = o.cx() - (size - 1) / 2.0;
        double dy = o.cy() - (size - 1) / 2.0;
        if (Math.max(Math.abs(dx), Math.abs(dy)) < 0.15 * size) {
            return "center";
        }
        if (Math.abs(dx) > Math.abs(dy)) {
            return dx < 0 ? "left" : "right";
        }
        return dy < 0 ? "top" : "bottom";
    }

    private static List<Scene.SceneObject> squares(Scene s) {
        return s.objects().stream().filter(o -> o.shape() == Scene.Shape.SQUARE).toList();
    }

    private static List<Scene.SceneObject> ranked(List<Scene.SceneObject> os, String dir) {
        List<Scene.SceneObject> c = new ArrayList<>(os);
        c.sort(Comparator.comparingInt((Scene.SceneObject o) -> along(dir, new int[] {o.cx(), -o.cy()})).reversed());
        return c;
    }

    /** Coordinate along a compass direction of an (east, north) position. */
    private static int along(String dir, int[] eastNorth) {
        return switch (dir) {
            case "north" -> eastNorth[1];
            case "south" -> -eastNorth[1];
            case "east" -> eastNorth[0];
            case "west" -> -eastNorth[0];
            default -> throw new AssertionError(dir);
        };
    }

    private static String phrase(int n, Scene.Shape shape) {
        return NUM_WORDS.get(n) + " " + (n == 1 ? shape.singular : shape.plural);
    }

    private static Map<String, Integer> facts(String regex, String hint) {
        Map<String, Integer> out = new HashMap<>();
        Matcher m = Pattern.compile(regex).matcher(hint);
        while (m.find()) {
            out.put(m.group(1), Integer.parseInt(m.group(2)));
        }
        return out;
    }

    private static String rank(Map<String, Integer> values, boolean highest, boolean second) {
        List<String> keys = new ArrayList<>(values.keySet());
        keys.sort(Comparator.comparingInt(values::get));
        if (highest) {
            keys = keys.reversed();
        }
        return keys.get(second ? 1 : 0);
    }

    /** Positions satisfying "A is D of B." facts: relax until every fact holds (the facts form a chain). */
    private static Map<String, int[]> townPositions(String hint) {
        Map<String, int[]> pos = new HashMap<>();
        List<String[]> facts = new ArrayList<>();
        Matcher m = Pattern.compile("(\\w+) is (north|south|east|west) of (\\w+)\\.").matcher(hint);
        while (m.find()) {
            facts.add(new String[] {m.group(1), m.group(2), m.group(3)});
            pos.putIfAbsent(m.group(1), new int[2]);
            pos.putIfAbsent(m.group(3), new int[2]);
        }
        for (int iter = 0; iter < 100; iter++) {
            boolean changed = false;
            for (String[] f : facts) {
                boolean firstGreater = f[1].equals("north") || f[1].equals("east");
                // Only the greater town moves up: longest-path relaxation, which settles on a chain.
                int[] hi = pos.get(firstGreater ? f[0] : f[2]);
                int[] lo = pos.get(firstGreater ? f[2] : f[0]);
                int axis = f[1].equals("north") || f[1].equals("south") ? 1 : 0;
                if (hi[axis] <= lo[axis]) {
                    hi[axis] = lo[axis] + 1;
                    changed = true;
                }
            }
            if (!changed) {
                return pos;
            }
        }
        throw new AssertionError("inconsistent facts: " + hint);
    }

    private static List<String> textWords(String text) {
        return List.of(text.toLowerCase(Locale.ROOT).replaceAll("[^a-z ]", "").split(" +"));
    }
}
