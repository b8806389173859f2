package org.qvlm4j.data;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.TreeSet;

/**
 * The closed word lists the synthetic benchmark draws from. They are kept small on purpose: the
 * model trained on the benchmark is tiny and uses a word-level tokenizer, so the whole benchmark
 * should stay within a few hundred distinct words.
 */
final class WordLists {

    private WordLists() {
    }

    /** Rhyme families; no word of one family rhymes with a word of another or with the other lists. */
    static final List<List<String>> RHYMES = List.of(
            List.of("cat", "hat", "bat", "mat", "rat"),
            List.of("dog", "log", "frog", "fog"),
            List.of("cake", "lake", "snake", "rake"),
            List.of("bell", "shell", "well", "smell"),
            List.of("pin", "fin", "tin", "chin"),
            List.of("bug", "rug", "jug", "plug"),
            List.of("king", "ring", "wing", "swing"),
            List.of("boat", "coat", "goat", "float"));

    /** Pairs of opposite adjectives. */
    static final List<List<String>> OPPOSITES = List.of(
            List.of("hot", "cold"), List.of("big", "small"), List.of("fast", "slow"), List.of("happy", "sad"),
            List.of("wet", "dry"), List.of("old", "new"), List.of("full", "empty"), List.of("hard", "soft"),
            List.of("loud", "quiet"), List.of("tall", "short"));

    /** Nouns with regular plurals (singular, plural). */
    static final List<List<String>> REGULAR_PLURALS = List.of(
            List.of("box", "boxes"), List.of("fox", "foxes"), List.of("bus", "buses"), List.of("dish", "dishes"),
            List.of("bench", "benches"), List.of("baby", "babies"), List.of("city", "cities"),
            List.of("berry", "berries"), List.of("cup", "cups"), List.of("book", "books"));

    /** Nouns with irregular plurals (singular, plural). */
    static final List<List<String>> IRREGULAR_PLURALS = List.of(
            List.of("mouse", "mice"), List.of("child", "children"), List.of("foot", "feet"),
            List.of("tooth", "teeth"), List.of("man", "men"), List.of("goose", "geese"), List.of("woman", "women"));

    /** Classes (sorted maps, so iteration order is fixed) for the natural-science classification questions, grouped so distractors stay in one family. */
    static final Map<String, List<String>> ANIMALS = new TreeMap<>(Map.of(
            "mammal", List.of("cow", "horse", "bear", "whale", "lion"),
            "bird", List.of("robin", "eagle", "owl", "duck", "crow"),
            "fish", List.of("shark", "trout", "salmon", "tuna"),
            "insect", List.of("ant", "bee", "moth", "beetle", "wasp")));
    static final Map<String, List<String>> MATTER = new TreeMap<>(Map.of(
            "solid", List.of("rock", "brick", "coin", "ice"),
            "liquid", List.of("milk", "water", "juice", "oil"),
            "gas", List.of("steam", "air", "helium", "oxygen")));

    static final List<String> TOWNS = List.of("Ardon", "Belmar", "Corvin", "Dunmore", "Eston", "Fairview");
    static final List<String> GOODS = List.of("apples", "pens", "kites");
    static final List<String> CONTAINERS = List.of("cup", "pot", "bowl", "jar", "pan", "mug");
    static final List<String> DIRECTIONS = List.of("north", "east", "south", "west");
    static final List<String> MONTHS = List.of("January", "February", "March", "April", "May", "June", "July",
            "August", "September", "October", "November", "December");
    static final List<String> NUMBER_WORDS = List.of("zero", "one", "two", "three", "four", "five", "six");
    static final List<String> REGIONS = List.of("left", "right", "top", "bottom", "center");

    /** Words for the alphabetical-order and guide-word questions: the nouns and adjectives above. */
    static List<String> dictionary() {
        TreeSet<String> words = new TreeSet<>();
        RHYMES.forEach(words::addAll);
        OPPOSITES.forEach(words::addAll);
        REGULAR_PLURALS.forEach(p -> words.add(p.get(0)));
        IRREGULAR_PLURALS.forEach(p -> words.add(p.get(0)));
        ANIMALS.values().forEach(words::addAll);
        return new ArrayList<>(words);
    }

    /** Wrong plural forms a learner might write, never equal to the correct plural. */
    static List<String> wrongPlurals(String singular, String plural) {
        List<String> out = new ArrayList<>();
        for (String w : List.of(singular + "s", singular + "es")) {
            if (!w.equals(plural)) {
                out.add(w);
            }
        }
        return out;
    }
}
