package org.qvlm4j.eval;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.util.DefaultIndenter;
import com.fasterxml.jackson.core.util.DefaultPrettyPrinter;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.DecimalNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.BufferedWriter;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.math.BigDecimal;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;
import java.util.stream.Stream;
import org.qvlm4j.data.ScienceQaDataset;
import org.qvlm4j.data.ScienceQaProblem;
import org.qvlm4j.io.image.ClipImageProcessor;
import org.qvlm4j.io.text.LlavaTokenizer;
import org.qvlm4j.model.LlavaModel;

/**
 * One ScienceQA evaluation run into a run directory: {@code manifest.json} (what is evaluated and
 * how), {@code predictions.jsonl} (one {@link Prediction} per problem, in dataset order, appended
 * and flushed as problems finish so an interrupted run can resume), {@code report.json} and
 * {@code report.md} (the accuracy table). The manifest, reports and the final predictions file are
 * written to a temp file and renamed.
 *
 * <p>Resume: a directory whose manifest equals this run's (same model files, data files, split,
 * limit, seed and settings; the thread count is not part of it) continues where it stopped: the
 * complete, parseable lines of predictions.jsonl are kept and their pids skipped; a torn last line
 * is dropped. Any other non-empty directory is refused unless {@code overwrite} is set, which
 * deletes this class's files there (never others).
 *
 * <p>{@code limit} &gt; 0 evaluates a seeded random sample of that many problems of the split,
 * kept in dataset order; the seed is used for nothing else (and by the random-fallback option).
 */
public final class EvalRun {
    public static final String MANIFEST = "manifest.json";
    public static final String PREDICTIONS = "predictions.jsonl";
    public static final String REPORT_JSON = "report.json";
    public static final String REPORT_MD = "report.md";
    private static final List<String> OWN_FILES = List.of(MANIFEST, PREDICTIONS, REPORT_JSON, REPORT_MD);
    private static final String TMP_SUFFIX = ".tmp";
    private static final int MANIFEST_VERSION = 1;
    private static final List<String> MODEL_FILES = List.of("config.json", LlavaTokenizer.TOKENIZER_FILE,
            LlavaTokenizer.CONFIG_FILE, "preprocessor_config.json");
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final int HEAD_BYTES = 2 << 20;
    private static final int TAIL_BYTES = 1 << 20;

    /**
     * @param limit   0 for the whole split, else the size of a seeded sample
     * @param threads worker threads (results do not depend on it)
     */
    public record Request(Path modelDir, Path dataDir, String split, int limit, long seed, int threads,
                          ScienceQaEvaluator.Settings settings, Path outDir, boolean overwrite) {
        public Request {
            if (limit < 0) {
                throw new IllegalArgumentException("limit must be >= 0 (0 = whole split), got " + limit);
            }
            if (threads < 1) {
                throw new IllegalArgumentException("threads must be >= 1, got " + threads);
            }
        }
    }

    /** Progress after each problem; accuracy and failures count resumed problems too. */
    public record Progress(int done, int total, int correct, int parseFailures, double elapsedSeconds, double etaSeconds) {
        /** Accuracy so far in percent (0 before the first problem). */
        public double accuracy() {
            return done == 0 ? 0 : 100.0 * correct / done;
        }
    }

    /** What a finished run produced. */
    public record Result(ScienceQaMetrics metrics, int problems, int resumed, double wallSeconds, Path outDir) {
    }

    private EvalRun() {
    }

    /** Runs (or resumes) the evaluation described by the request. */
    public static Result run(Request r, Consumer<Progress> progress) {
        long t0 = System.nanoTime();
        if (!Files.isDirectory(r.dataDir())) {
            throw new IllegalArgumentException(r.dataDir() + ": data directory does not exist (expected "
                    + ScienceQaDataset.PROBLEMS_FILE + " and " + ScienceQaDataset.SPLITS_FILE + " there)");
        }
        if (!Files.isDirectory(r.modelDir())) {
            throw new IllegalArgumentException(r.modelDir() + ": model directory does not exist");
        }
        ScienceQaDataset data = ScienceQaDataset.load(r.dataDir());
        List<ScienceQaProblem> problems = select(data.split(r.split()), r.limit(), r.seed());
        ObjectNode manifest = manifest(r, problems);

        try (LlavaTokenizer tok = LlavaTokenizer.load(r.modelDir());
             LlavaModel model = LlavaModel.load(r.modelDir())) {
            ClipImageProcessor proc = ClipImageProcessor.forModelDir(r.modelDir(), r.settings().padMode());
            ScienceQaEvaluator evaluator = new ScienceQaEvaluator(model, tok, proc, r.settings());

            Map<String, String> done = prepareDirectory(r, manifest, problems);
            List<ScienceQaProblem> pending = problems.stream().filter(p -> !done.containsKey(p.pid())).toList();
            Map<String, String> lines = new LinkedHashMap<>(done);
            int[] tally = new int[3]; // done, correct, parse failures
            for (String line : done.values()) {
                Prediction p = Prediction.fromJsonLine(line);
                count(tally, p);
            }
            long start = System.nanoTime();
            int resumed = done.size();
            Path predictions = r.outDir().resolve(PREDICTIONS);
            try (BufferedWriter w = Files.newBufferedWriter(predictions, StandardCharsets.UTF_8,
                    StandardOpenOption.CREATE, StandardOpenOption.APPEND)) {
                if (progress != null && resumed > 0) {
                    progress.accept(new Progress(tally[0], problems.size(), tally[1], tally[2], 0, Double.NaN));
                }
                evaluator.evaluate(pending, r.threads(), p -> {
                    String line = p.toJsonLine();
                    try {
                        w.write(line);
                        w.write('\n');
                        w.flush();
                    } catch (IOException e) {
                        throw new UncheckedIOException(predictions + ": cannot append: " + e.getMessage(), e);
                    }
                    lines.put(p.pid(), line);
                    count(tally, p);
                    if (progress != null) {
                        double elapsed = (System.nanoTime() - start) / 1e9;
                        int fresh = tally[0] - resumed;
                        double eta = elapsed / fresh * (problems.size() - tally[0]);
                        progress.accept(new Progress(tally[0], problems.size(), tally[1], tally[2], elapsed, eta));
                    }
                });
            } catch (IOException e) {
                throw new UncheckedIOException(predictions + ": " + e.getMessage(), e);
            }

            StringBuilder all = new StringBuilder();
            ScienceQaMetrics metrics = new ScienceQaMetrics();
            for (ScienceQaProblem p : problems) {
                String line = lines.get(p.pid());
                Prediction pred = Prediction.fromJsonLine(line);
                metrics.add(p.tableColumns(), pred.predicted() == p.answer(), pred.parseFailed());
                all.append(line).append('\n');
            }
            writeAtomically(predictions, all.toString());
            double wall = (System.nanoTime() - t0) / 1e9;
            double evalSeconds = (System.nanoTime() - start) / 1e9;
            writeAtomically(r.outDir().resolve(REPORT_JSON),
                    pretty(report(r, manifest, metrics, problems.size(), resumed, wall, evalSeconds)));
            writeAtomically(r.outDir().resolve(REPORT_MD), markdown(r, metrics, problems.size()));
            return new Result(metrics, problems.size(), resumed, wall, r.outDir());
        }
    }

    private static void count(int[] tally, Prediction p) {
        tally[0]++;
        if (p.correct()) {
            tally[1]++;
        }
        if (p.parseFailed()) {
            tally[2]++;
        }
    }

    /** The whole split, or a seeded sample of limit problems in dataset order. */
    static List<ScienceQaProblem> select(List<ScienceQaProblem> split, int limit, long seed) {
        if (limit == 0 || limit >= split.size()) {
            return split;
        }
        return ScienceQaDataset.sample(split, limit, seed);
    }

    /** What identifies a run: model and data files, split, selection and settings. */
    static ObjectNode manifest(Request r, List<ScienceQaProblem> problems) {
        ObjectNode m = JSON.createObjectNode();
        m.put("version", MANIFEST_VERSION);
        m.put("model", r.modelDir().toAbsolutePath().normalize().toString());
        ObjectNode mf = m.putObject("model_files");
        for (String f : MODEL_FILES) {
            Path p = r.modelDir().resolve(f);
            mf.put(f, Files.isRegularFile(p) ? sha256(p) : "absent");
        }
        try (Stream<Path> s = Files.list(r.modelDir())) {
            for (Path p : s.filter(p -> p.getFileName().toString().endsWith(".safetensors")).sorted().toList()) {
                mf.put(p.getFileName().toString(), fingerprint(p));
            }
        } catch (IOException e) {
            throw new UncheckedIOException(r.modelDir() + ": " + e.getMessage(), e);
        }
        m.put("data", r.dataDir().toAbsolutePath().normalize().toString());
        ObjectNode df = m.putObject("data_files");
        df.put(ScienceQaDataset.PROBLEMS_FILE, sha256(r.dataDir().resolve(ScienceQaDataset.PROBLEMS_FILE)));
        df.put(ScienceQaDataset.SPLITS_FILE, sha256(r.dataDir().resolve(ScienceQaDataset.SPLITS_FILE)));
        m.put("split", r.split());
        m.put("limit", r.limit());
        m.put("seed", r.seed());
        m.set("settings", settingsJson(r.settings()));
        m.put("problems", problems.size());
        StringBuilder pids = new StringBuilder();
        problems.forEach(p -> pids.append(p.pid()).append('\n'));
        m.put("pids_sha256", sha256(pids.toString().getBytes(StandardCharsets.UTF_8)));
        return m;
    }

    static ObjectNode settingsJson(ScienceQaEvaluator.Settings s) {
        ObjectNode o = JSON.createObjectNode();
        o.put("template", s.template().name());
        o.put("max_new_tokens", s.maxNewTokens());
        o.put("decoding", "greedy");
        o.put("pad_mode", s.padMode().name());
        o.put("random_fallback", s.randomFallback());
        o.put("prompt_format", "CQM-A, LLaVA-1.5 single-pred-prompt");
        return o;
    }

    /**
     * Makes the run directory ready and returns the prediction lines to keep (pid to line), empty
     * for a fresh run.
     */
    private static Map<String, String> prepareDirectory(Request r, ObjectNode manifest, List<ScienceQaProblem> problems) {
        Path dir = r.outDir();
        try {
            if (Files.exists(dir) && !Files.isDirectory(dir)) {
                throw new IllegalArgumentException(dir + ": --out exists and is not a directory");
            }
            Files.createDirectories(dir);
            if (r.overwrite()) {
                for (String f : OWN_FILES) {
                    Files.deleteIfExists(dir.resolve(f));
                    Files.deleteIfExists(dir.resolve(f + TMP_SUFFIX));
                }
            } else if (!isEmpty(dir)) {
                Path mf = dir.resolve(MANIFEST);
                if (!Files.isRegularFile(mf)) {
                    throw new IllegalArgumentException(dir + ": run directory is not empty and holds no " + MANIFEST
                            + " of an earlier run; choose another --out or pass --overwrite");
                }
                JsonNode old;
                try {
                    old = JSON.readTree(Files.readAllBytes(mf));
                } catch (JsonProcessingException e) {
                    throw new IllegalArgumentException(mf + ": not valid JSON (" + e.getOriginalMessage()
                            + "); pass --overwrite to start over", e);
                }
                // Compare as read back from disk, so number types match (an int seed vs a long one).
                String diff = firstDifference("", old, JSON.readTree(pretty(manifest)));
                if (diff != null) {
                    throw new IllegalArgumentException(mf + ": the run there differs from this one at " + diff
                            + "; choose another --out, or pass --overwrite to start over");
                }
                return readDone(dir.resolve(PREDICTIONS), problems);
            }
            writeAtomically(dir.resolve(MANIFEST), pretty(manifest));
            return Map.of();
        } catch (IOException e) {
            throw new UncheckedIOException(dir + ": " + e.getMessage(), e);
        }
    }

    private static boolean isEmpty(Path dir) throws IOException {
        try (Stream<Path> s = Files.list(dir)) {
            return s.findAny().isEmpty();
        }
    }

    /** Complete, parseable lines of an earlier run for pids of this selection; stops at the first bad line. */
    private static Map<String, String> readDone(Path file, List<ScienceQaProblem> problems) throws IOException {
        Map<String, String> done = new LinkedHashMap<>();
        if (!Files.isRegularFile(file)) {
            return done;
        }
        Map<String, ScienceQaProblem> wanted = new LinkedHashMap<>();
        problems.forEach(p -> wanted.put(p.pid(), p));
        String text = Files.readString(file, StandardCharsets.UTF_8);
        int start = 0;
        int nl;
        while ((nl = text.indexOf('\n', start)) >= 0) {
            String line = text.substring(start, nl);
            start = nl + 1;
            Prediction p;
            try {
                p = Prediction.fromJsonLine(line);
            } catch (IllegalArgumentException e) {
                break;
            }
            if (wanted.containsKey(p.pid())) {
                done.putIfAbsent(p.pid(), line);
            }
        }
        StringBuilder kept = new StringBuilder();
        for (String pid : wanted.keySet()) {
            String line = done.get(pid);
            if (line != null) {
                kept.append(line).append('\n');
            }
        }
        // The file is appended to next; it must end at a line boundary, in dataset order.
        writeAtomically(file, kept.toString());
        Map<String, String> ordered = new LinkedHashMap<>();
        for (String pid : wanted.keySet()) {
            if (done.containsKey(pid)) {
                ordered.put(pid, done.get(pid));
            }
        }
        return ordered;
    }

    /** The JSON path of the first value that differs, or null when equal. */
    static String firstDifference(String path, JsonNode a, JsonNode b) {
        if (a == null || b == null) {
            return a == b ? null : path + " (present in only one)";
        }
        if (a.isObject() && b.isObject()) {
            for (var e : b.properties()) {
                String d = firstDifference(path + "/" + e.getKey(), a.get(e.getKey()), e.getValue());
                if (d != null) {
                    return d;
                }
            }
            for (var e : a.properties()) {
                if (!b.has(e.getKey())) {
                    return path + "/" + e.getKey() + " (present in only one)";
                }
            }
            return null;
        }
        return a.equals(b) ? null : path + ": earlier " + a + ", now " + b;
    }

    private static ObjectNode report(Request r, ObjectNode manifest, ScienceQaMetrics m, int problems, int resumed,
                                     double wall, double evalSeconds) {
        ObjectNode o = JSON.createObjectNode();
        o.put("model", manifest.get("model").asText());
        o.put("data", manifest.get("data").asText());
        o.put("split", r.split());
        o.put("seed", r.seed());
        o.put("limit", r.limit());
        o.set("settings", settingsJson(r.settings()));
        o.put("problems", problems);
        ObjectNode acc = o.putObject("accuracy");
        for (Map.Entry<String, BigDecimal> e : m.accuracies().entrySet()) {
            if (e.getValue() == null) {
                acc.putNull(e.getKey());
            } else {
                // DecimalNode keeps the trailing zeros that the node factory would strip.
                acc.set(e.getKey(), DecimalNode.valueOf(e.getValue()));
            }
        }
        ObjectNode correct = o.putObject("correct");
        ObjectNode count = o.putObject("count");
        for (String c : ScienceQaMetrics.COLUMNS) {
            correct.put(c, m.correct(c));
            count.put(c, m.count(c));
        }
        o.put("parse_failures", m.parseFailures());
        ObjectNode run = o.putObject("run");
        run.put("threads", r.threads());
        run.put("resumed", resumed);
        run.put("wall_seconds", round3(wall));
        int fresh = problems - resumed;
        run.put("problems_per_second", fresh == 0 || evalSeconds <= 0 ? 0 : round3(fresh / evalSeconds));
        return o;
    }

    private static double round3(double x) {
        return Math.round(x * 1000) / 1000.0;
    }

    private static String markdown(Request r, ScienceQaMetrics m, int problems) {
        StringBuilder sb = new StringBuilder();
        sb.append("# ScienceQA evaluation\n\n");
        sb.append("Model: `").append(r.modelDir().toAbsolutePath().normalize()).append("`  \n");
        sb.append("Data: `").append(r.dataDir().toAbsolutePath().normalize()).append("`, split `").append(r.split())
                .append("`, ").append(problems).append(" problems");
        if (r.limit() > 0) {
            sb.append(" (limit ").append(r.limit()).append(", seed ").append(r.seed()).append(')');
        }
        sb.append("  \n");
        ScienceQaEvaluator.Settings s = r.settings();
        sb.append("Settings: template ").append(s.template().name()).append(", greedy, max new tokens ")
                .append(s.maxNewTokens()).append(", pad mode ").append(s.padMode().name())
                .append(", random fallback ").append(s.randomFallback() ? "on" : "off").append("\n\n");
        sb.append("Accuracy (%):\n\n").append(m.markdownTable()).append('\n');
        sb.append("Problems per column:\n\n|");
        for (String c : ScienceQaMetrics.COLUMNS) {
            sb.append(' ').append(c).append(" |");
        }
        sb.append("\n|").append("---|".repeat(ScienceQaMetrics.COLUMNS.size())).append("\n|");
        for (String c : ScienceQaMetrics.COLUMNS) {
            sb.append(' ').append(m.count(c)).append(" |");
        }
        sb.append("\n\nParse failures: ").append(m.parseFailures()).append(" of ").append(problems).append('\n');
        return sb.toString();
    }

    private static String pretty(JsonNode node) {
        DefaultPrettyPrinter pp = new DefaultPrettyPrinter()
                .withObjectIndenter(new DefaultIndenter("  ", "\n"))
                .withArrayIndenter(new DefaultIndenter("  ", "\n"));
        try {
            return JSON.writer(pp).writeValueAsString(node) + "\n";
        } catch (JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }

    static void writeAtomically(Path target, String text) {
        Path tmp = target.resolveSibling(target.getFileName() + TMP_SUFFIX);
        try {
            Files.writeString(tmp, text, StandardCharsets.UTF_8);
            Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            throw new UncheckedIOException(target + ": cannot write: " + e.getMessage(), e);
        }
    }

    private static String sha256(Path file) {
        try {
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            try (var in = Files.newInputStream(file)) {
                byte[] buf = new byte[1 << 16];
                int n;
                while ((n = in.read(buf)) > 0) {
                    md.update(buf, 0, n);
                }
            }
            return HexFormat.of().formatHex(md.digest());
        } catch (IOException e) {
            throw new UncheckedIOException(file + ": cannot read: " + e.getMessage(), e);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    private static String sha256(byte[] bytes) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(bytes));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    /**
     * SHA-256 of a weights file's size, first {@value #HEAD_BYTES} and last {@value #TAIL_BYTES}
     * bytes: the safetensors header (names, dtypes, shapes) and the first and last weights, cheap
     * even for multi-gigabyte shards.
     */
    private static String fingerprint(Path file) throws IOException {
        try (FileChannel ch = FileChannel.open(file)) {
            long size = ch.size();
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            md.update(ByteBuffer.allocate(Long.BYTES).putLong(0, size));
            md.update(readAt(ch, 0, (int) Math.min(size, HEAD_BYTES)));
            long tail = Math.min(size, TAIL_BYTES);
            md.update(readAt(ch, size - tail, (int) tail));
            return HexFormat.of().formatHex(md.digest());
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    private static ByteBuffer readAt(FileChannel ch, long pos, int n) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(n);
        while (b.hasRemaining()) {
            if (ch.read(b, pos + b.position()) < 0) {
                break;
            }
        }
        return b.flip();
    }
}
