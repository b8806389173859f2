package org.qvlm4j.experiments;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * What an experiment run is asked to do. The settings that decide its numbers (model, data,
 * calibration sample, evaluation split and sample, generation limit, benchmark repetitions) are
 * recorded in {@code OUT/experiment.json}, and a run resumed into that directory must repeat them;
 * the thread count, {@code --only} and {@code --resume} change how a run goes, not what it
 * measures, so they may differ between runs.
 *
 * @param limit        0 for the whole split, else a seeded sample of that many problems (seed 0)
 * @param threads      evaluation and calibration workers
 * @param benchInProcess measure every model in this JVM instead of one child JVM each (quicker; a later
 *                       model's resident memory then includes what earlier ones left in the heap)
 * @param only         configuration ids to run (empty: all of the experiment's)
 * @param tensorInputs quantize the LLM's linear inputs with one static range per tensor instead of
 *                     per input channel (quantize's {@code --llm-inputs tensor}), the harder setting;
 *                     Q-VLM then searches {@link #TENSOR_GRID}, measures its block error normed and
 *                     runs on a smoothed copy of the model ({@link #TENSOR_SMOOTH_ALPHA})
 */
public record Settings(Path model, Path data, Path out, int calibN, long calibSeed, String evalSplit, int limit,
                       int maxNewTokens, int threads, int benchReps, int decodeTokens, boolean benchInProcess,
                       List<String> only, boolean resume, boolean tensorInputs) {
    /** Format of experiment.json. */
    public static final String FORMAT = "qvlm4j-experiment";
    public static final int FORMAT_VERSION = 1;
    public static final int DEFAULT_CALIB_N = 64;
    public static final String DEFAULT_SPLIT = "test";
    public static final int DEFAULT_MAX_NEW_TOKENS = org.qvlm4j.eval.ScienceQaEvaluator.DEFAULT_MAX_NEW_TOKENS;
    public static final int DEFAULT_BENCH_REPS = 3;
    public static final int DEFAULT_DECODE_TOKENS = 32;
    /**
     * Q-VLM's percentile grid with per-tensor LLM inputs: the paper's five (1 down to 0.98 in steps of
     * 0.005) and 0.999 and 0.998. One range per tensor pools every channel, so a percentile clips far
     * more of the range than the same percentile of one channel (0.98 keeps 1 to 43% of the LLM
     * inputs' min-max range on the reference model), and the paper's step cannot express the light
     * clipping such tensors need.
     */
    public static final String TENSOR_GRID = "1,0.999,0.998,0.995,0.99,0.985,0.98";
    /** Q-VLM's smoothing strength on the per-tensor testbed (quantize --smooth-alpha). */
    public static final String TENSOR_SMOOTH_ALPHA = "1.0";

    public Settings {
        require(calibN >= 1, "--calib-n", ">= 1", calibN);
        require(limit >= 0, "--limit", ">= 0 (0 = the whole split)", limit);
        require(maxNewTokens >= 1, "--max-new-tokens", ">= 1", maxNewTokens);
        require(threads >= 1, "--threads", ">= 1", threads);
        require(benchReps >= 1, "--bench-reps", ">= 1", benchReps);
        require(decodeTokens >= 1, "--decode-tokens", ">= 1", decodeTokens);
        if (evalSplit == null || evalSplit.isBlank()) {
            throw new IllegalArgumentException("--eval-split: expected a split name such as test, got '" + evalSplit + "'");
        }
        only = List.copyOf(only);
    }

    /** Settings with the LLM's inputs per input channel (the default testbed). */
    public Settings(Path model, Path data, Path out, int calibN, long calibSeed, String evalSplit, int limit,
                    int maxNewTokens, int threads, int benchReps, int decodeTokens, boolean benchInProcess,
                    List<String> only, boolean resume) {
        this(model, data, out, calibN, calibSeed, evalSplit, limit, maxNewTokens, threads, benchReps, decodeTokens,
                benchInProcess, only, resume, false);
    }

    private static void require(boolean ok, String option, String expected, long actual) {
        if (!ok) {
            throw new IllegalArgumentException(option + ": expected " + expected + ", got " + actual);
        }
    }

    /** The settings that decide the results, as experiment.json records them. */
    ObjectNode identity(ObjectNode o, String modelDigest, String problemsSha256) {
        o.put("format", FORMAT);
        o.put("version", FORMAT_VERSION);
        o.put("model", model.toAbsolutePath().normalize().toString());
        o.put("model_fingerprint", modelDigest);
        o.put("data", data.toAbsolutePath().normalize().toString());
        o.put("problems_sha256", problemsSha256);
        o.put("calib_n", calibN);
        o.put("calib_seed", calibSeed);
        o.put("eval_split", evalSplit);
        o.put("limit", limit);
        o.put("max_new_tokens", maxNewTokens);
        o.put("bench_reps", benchReps);
        o.put("decode_tokens", decodeTokens);
        o.put("bench_in_process", benchInProcess);
        if (tensorInputs) {
            o.put("llm_inputs", "tensor");
        }
        return o;
    }

    /** The option that sets an identity key, for messages. */
    static String optionOf(String key) {
        return switch (key) {
            case "model", "model_fingerprint" -> "--model";
            case "data", "problems_sha256" -> "--data";
            default -> "--" + key.replace('_', '-');
        };
    }

    /** The first identity key whose value differs, described, or null when all agree. */
    static String firstDifference(JsonNode earlier, JsonNode now) {
        for (var e : now.properties()) {
            JsonNode old = earlier.get(e.getKey());
            if (old == null || !old.asText().equals(e.getValue().asText())) {
                return e.getKey() + " (" + optionOf(e.getKey()) + "): earlier " + (old == null ? "absent" : old.asText())
                        + ", now " + e.getValue().asText();
            }
        }
        for (var e : earlier.properties()) {
            if (!now.has(e.getKey())) {
                return e.getKey() + " (" + optionOf(e.getKey()) + "): earlier " + e.getValue().asText() + ", now absent";
            }
        }
        return null;
    }

    /**
     * The command line that reproduces the results of this run for the experiment, as given (paths
     * as typed); --resume, --threads and the launcher's options are left out.
     */
    public String commandLine(Experiment e) {
        List<String> a = new ArrayList<>(List.of("qvlm4j", "experiment", e.key, "--model", model.toString(), "--data",
                data.toString(), "--out", out.toString(), "--calib-n", Integer.toString(calibN), "--calib-seed",
                Long.toString(calibSeed), "--eval-split", evalSplit));
        if (limit > 0) {
            a.addAll(List.of("--limit", Integer.toString(limit)));
        }
        // Always written: the default has changed before, and the tables must stay reproducible.
        a.addAll(List.of("--max-new-tokens", Integer.toString(maxNewTokens)));
        if (benchReps != DEFAULT_BENCH_REPS) {
            a.addAll(List.of("--bench-reps", Integer.toString(benchReps)));
        }
        if (decodeTokens != DEFAULT_DECODE_TOKENS) {
            a.addAll(List.of("--decode-tokens", Integer.toString(decodeTokens)));
        }
        if (benchInProcess) {
            a.add("--bench-in-process");
        }
        if (tensorInputs) {
            a.addAll(List.of("--llm-inputs", "tensor"));
        }
        if (!only.isEmpty()) {
            a.addAll(List.of("--only", String.join(",", only)));
        }
        return String.join(" ", a.stream().map(Settings::shellQuote).toList());
    }

    /** The word as a POSIX shell reads it back: quoted when it holds anything but safe characters. */
    static String shellQuote(String w) {
        return w.matches("[A-Za-z0-9_./=:,+@%-]+") ? w : "'" + w.replace("'", "'\\''") + "'";
    }
}
