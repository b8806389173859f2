package org.qvlm4j.experiments;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.DecimalNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.math.BigDecimal;
import java.nio.file.Path;
import java.time.ZonedDateTime;
import java.time.format.DateTimeFormatter;
import java.time.temporal.ChronoUnit;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.function.Function;
import org.qvlm4j.eval.PairedComparison;
import org.qvlm4j.eval.ScienceQaMetrics;
import org.qvlm4j.experiments.ConfigSpec.QvlmVariant;
import org.qvlm4j.io.AtomicFiles;

/**
 * Turns the outcomes of an experiment's configurations into its results: {@code <name>.md} (the
 * table in the Q-VLM paper's layout, or the toolkit's for the baselines, then how it was made: the
 * command, model, data, seeds, machine, date and the quantize arguments of every configuration),
 * {@code <name>.json} (the same tables as cell arrays plus every number of every configuration,
 * unrounded) and, for Fig. 3, {@code fig3.png} ({@link SweepPlot}). Every value is read from the
 * outcome records, so a resumed run writes the same files except for the date. A configuration
 * without results shows "n/a" and its reason in the row's note; a timing taken while other
 * processes kept the machine busy is marked with {@value #LOAD_MARK}.
 *
 * <p>Units and readings: accuracy in percent as the evaluation rounds it; "Memory" and "Weights
 * held" are the bytes of the model's tensors the runtime maps (the model's share of memory, not
 * the JVM's); "Peak RSS" is the child JVM's VmHWM; "Time" is the evaluation's time for all of its
 * problems at its measured rate; "Search cost" is Q-VLM's block search time and its single-layer
 * forwards over one prompt ("layer passes", independent of the machine's speed).
 */
final class ResultTables {
    static final String LOAD_MARK = "*";
    static final String NOT_AVAILABLE = "n/a";
    /** The evaluation's empty-column sign. */
    static final String EMPTY = "-";
    private static final String DATE_PREFIX = "- Date: ";
    private static final long KB = 1_000;
    private static final long MB = 1_000_000;
    private static final long GB = 1_000_000_000;
    private static final double MINUTE = 60;
    private static final double HOUR = 3600;
    /** Hex digits of a digest shown in the Markdown (the JSON has all of them). */
    private static final int DIGEST_CHARS = 16;

    /** What the results were made from. */
    record Provenance(Settings settings, String modelDigest, String problemsSha256, String machine) {
    }

    /** One table: optional caption, header, rows of cells. */
    record Table(String caption, List<String> header, List<List<String>> rows) {
        String markdown() {
            StringBuilder sb = new StringBuilder();
            if (caption != null) {
                sb.append("**").append(caption).append("**\n\n");
            }
            line(sb, header);
            sb.append('|').append("---|".repeat(header.size())).append('\n');
            for (List<String> r : rows) {
                line(sb, r);
            }
            return sb.toString();
        }

        private static void line(StringBuilder sb, List<String> cells) {
            sb.append('|');
            for (String c : cells) {
                sb.append(' ').append(c.replace("|", "\\|")).append(" |");
            }
            sb.append('\n');
        }
    }

    /** A document under construction: tables, and the notes they raise. */
    private static final class Doc {
        final List<Table> tables = new ArrayList<>();
        final Set<String> notes = new LinkedHashSet<>();
        boolean loadMarked;
        final List<String> configIds = new ArrayList<>();
        final Map<String, Outcome> outcomes;

        Doc(Map<String, Outcome> outcomes) {
            this.outcomes = outcomes;
        }

        Outcome get(ConfigSpec c) {
            if (!configIds.contains(c.id())) {
                configIds.add(c.id());
            }
            Outcome o = outcomes.get(c.id());
            if (o == null) {
                throw new IllegalStateException("no outcome for configuration " + c.id());
            }
            return o;
        }

        String marked(String value, Outcome.Load load) {
            if (load != null && load.high()) {
                loadMarked = true;
                return value + LOAD_MARK;
            }
            return value;
        }
    }

    private ResultTables() {
    }

    /** Writes the experiment's files into out and returns their paths. */
    static List<Path> write(Experiment e, Map<String, Outcome> outcomes, Provenance p, Path out) {
        Doc d = new Doc(outcomes);
        String intro = switch (e) {
            case BASELINES -> baselines(d);
            case TABLE1 -> table1(d);
            case TABLE2 -> table2(d);
            case TABLE4 -> table4(d);
            case TABLE5 -> table5(d);
            case TABLE6 -> table6(d);
            case FIG3 -> fig3(d);
            case HEADLINE -> headline(d);
            case ALL -> throw new IllegalStateException("ALL writes each table's files");
        };
        String date = ZonedDateTime.now().truncatedTo(ChronoUnit.SECONDS).format(DateTimeFormatter.ISO_OFFSET_DATE_TIME);
        List<Path> written = new ArrayList<>();
        Path md = out.resolve(e.key + ".md");
        AtomicFiles.writeString(md, markdown(e, intro, d, p, date));
        written.add(md);
        Path json = out.resolve(e.key + ".json");
        AtomicFiles.writeString(json, json(e, d, p, date));
        written.add(json);
        if (e == Experiment.FIG3) {
            Path png = out.resolve(ExperimentRunner.FIG3_PNG);
            SweepPlot.write(png, fig3Panels(outcomes), "Q-VLM Fig. 3 sweeps at " + ConfigSpec.bits(
                    Experiment.FIG3_BITS[0], Experiment.FIG3_BITS[1]));
            written.add(png);
        }
        return written;
    }

    // ------------------------------------------------------------------ the tables

    private static String baselines(Doc d) {
        ConfigSpec fp = ConfigSpec.fp();
        Outcome fpo = d.get(fp);
        List<List<String>> main = new ArrayList<>();
        List<List<String>> classes = new ArrayList<>();
        main.add(baselineRow(d, fpo, fpo));
        classes.add(classRow(d, List.of(methodName(fp), fp.bits()), fpo));
        for (int[] b : Experiment.BASELINE_BITS) {
            for (String m : Experiment.BASELINE_METHODS) {
                ConfigSpec c = ConfigSpec.baseline(m, b[0], b[1]);
                Outcome o = d.get(c);
                main.add(baselineRow(d, o, fpo));
                classes.add(classRow(d, List.of(methodName(c), c.bits()), o));
            }
        }
        d.tables.add(new Table("Average accuracy, size and decode speed", List.of("Method", "Bits", "Avg (%)",
                "Δ FP", "Parse failures", "Size on disk", "Weights held", "Peak RSS", "Decode tokens/s", "Note"),
                main));
        List<String> h = new ArrayList<>(List.of("Method", "Bits"));
        h.addAll(ScienceQaMetrics.COLUMNS);
        h.add("Note");
        d.tables.add(new Table("Accuracy (%) per question class", h, classes));
        return "Accuracy of the floating-point model and of every baseline at W8A8, W6A6, W4A4 and W4A16 (per "
                + "output channel asymmetric weights; inputs as the presets quantize them), with each checkpoint's "
                + "size and decode speed measured. NF4 (QLoRA, with double quantization) exists only at 4 weight bits.";
    }

    private static List<String> baselineRow(Doc d, Outcome o, Outcome fp) {
        Outcome.Evaluated ev = o.eval();
        Outcome.Benched b = o.bench();
        return List.of(methodName(o.config()), o.config().bits(), acc(o, "Avg"), delta(o, fp),
                ev == null ? NOT_AVAILABLE : Integer.toString(ev.parseFailures()),
                b == null ? NOT_AVAILABLE : bytes(b.safetensorsBytes()),
                b == null ? NOT_AVAILABLE : bytes(b.weightBytes()),
                b == null ? NOT_AVAILABLE : d.marked(bytes(b.peakRssBytes()), b.load()),
                b == null ? NOT_AVAILABLE : d.marked(String.format(Locale.ROOT, "%.1f", b.decodeTokensPerSecond()),
                        b.load()),
                note(List.of(o), false));
    }

    /**
     * FP, Q-VLM and the best baseline at {@link Experiment#HEADLINE_BITS} first, then the other
     * baselines by falling accuracy (a baseline without an accuracy last, in table order).
     */
    private static String headline(Doc d) {
        int[] b = Experiment.HEADLINE_BITS;
        Outcome fp = d.get(ConfigSpec.fp());
        List<Outcome> baselines = new ArrayList<>();
        for (String m : Experiment.BASELINE_METHODS) {
            baselines.add(d.get(ConfigSpec.baseline(m, b[0], b[1])));
        }
        baselines.add(d.get(ConfigSpec.smoothQuantAll(b[0], b[1])));
        baselines.sort(java.util.Comparator.comparing(ResultTables::average,
                java.util.Comparator.nullsLast(java.util.Comparator.reverseOrder())));
        List<List<String>> rows = new ArrayList<>();
        rows.add(headlineRow(d, fp, fp, false));
        rows.add(headlineRow(d, d.get(ConfigSpec.qvlm(b[0], b[1], QvlmVariant.FULL)), fp, false));
        for (int i = 0; i < baselines.size(); i++) {
            Outcome o = baselines.get(i);
            rows.add(headlineRow(d, o, fp, i == 0 && average(o) != null));
        }
        d.tables.add(new Table(null, List.of("Method", "Bits", "Avg (%)", "Δ FP", "Size on disk", "Weights held",
                "Decode tokens/s", "Note"), rows));
        List<Outcome> others = new ArrayList<>(List.of(fp));
        others.addAll(baselines);
        pairedTable(d, d.get(ConfigSpec.qvlm(b[0], b[1], QvlmVariant.FULL)), others);
        return "Q-VLM at " + ConfigSpec.bits(b[0], b[1]) + " next to the floating-point model and every baseline of "
                + "the toolkit at the same bits, best first: ScienceQA-protocol accuracy, checkpoint size, the weight "
                + "bytes the runtime holds and greedy decode speed, all measured in this run.";
    }

    private static List<String> headlineRow(Doc d, Outcome o, Outcome fp, boolean best) {
        List<String> full = baselineRow(d, o, fp);
        // The baseline table's cells without parse failures (4) and peak RSS (7).
        return List.of(full.get(0) + (best ? " (best baseline)" : ""), full.get(1), full.get(2), full.get(3),
                full.get(5), full.get(6), full.get(8), full.get(9));
    }

    private static BigDecimal average(Outcome o) {
        return o.eval() == null ? null : o.eval().accuracy().get("Avg");
    }

    private static String table1(Doc d) {
        List<String> h = new ArrayList<>(List.of("Method"));
        for (int[] b : Experiment.PAPER_BITS) {
            String bits = ConfigSpec.bits(b[0], b[1]);
            h.addAll(List.of(bits + " Memory", bits + " Search cost", bits + " Acc"));
        }
        h.add("Note");
        String[] names = {"Baseline (layer-wise search)", "+CDM", "+VEO", "Q-VLM (CDM + VEO)"};
        List<List<String>> rows = new ArrayList<>();
        for (int r = 0; r < names.length; r++) {
            List<String> row = new ArrayList<>(List.of(names[r]));
            List<Outcome> os = new ArrayList<>();
            for (int[] b : Experiment.PAPER_BITS) {
                Outcome o = d.get(Experiment.table1Row(b).get(r));
                os.add(o);
                row.addAll(List.of(memory(o), searchCost(d, o), acc(o, "Avg")));
            }
            row.add(note(os, true));
            rows.add(row);
        }
        d.tables.add(new Table(null, h, rows));
        fpNote(d);
        for (int[] b : Experiment.PAPER_BITS) {
            List<ConfigSpec> cs = Experiment.table1Row(b);
            List<Outcome> others = new ArrayList<>();
            for (ConfigSpec c : cs.subList(0, cs.size() - 1)) {
                others.add(d.get(c));
            }
            pairedTable(d, names[names.length - 1], d.get(cs.get(cs.size() - 1)),
                    List.of(names).subList(0, names.length - 1), others);
        }
        return "Ablation of Q-VLM's parts at W6A6 and W4A4. Baseline: activation clipping percentiles searched "
                + "layer by layer (`--no-cdm --no-veo`); +CDM: blocks of dependent decoder layers searched jointly; "
                + "+VEO: the visual encoder's quantization optimised, layer-wise search; Q-VLM: both. Memory is the "
                + "weights the runtime holds; search cost is the block search's time and single-layer forwards over "
                + "one prompt (layer passes). The paper's baseline row is QLoRA's quantizer; here every row shares "
                + "Q-VLM's uniform weights, so the rows differ only in the parts named.";
    }

    private static String table2(Doc d) {
        List<String> h = new ArrayList<>(List.of("Bits", "Method"));
        h.addAll(ScienceQaMetrics.COLUMNS);
        h.add("Note");
        List<List<String>> rows = new ArrayList<>();
        ConfigSpec fp = ConfigSpec.fp();
        rows.add(classRow(d, List.of(fp.bits(), methodName(fp)), d.get(fp)));
        for (int[] b : Experiment.PAPER_BITS) {
            for (ConfigSpec c : List.of(ConfigSpec.baseline("awq", b[0], b[1]), ConfigSpec.baseline("nf4", b[0], b[1]),
                    ConfigSpec.qvlm(b[0], b[1], QvlmVariant.FULL))) {
                rows.add(classRow(d, List.of(c.bits(), methodName(c)), d.get(c)));
            }
        }
        d.tables.add(new Table(null, h, rows));
        for (int[] b : Experiment.PAPER_BITS) {
            pairedTable(d, d.get(ConfigSpec.qvlm(b[0], b[1], QvlmVariant.FULL)), List.of(d.get(fp),
                    d.get(ConfigSpec.baseline("awq", b[0], b[1])), d.get(ConfigSpec.baseline("nf4", b[0], b[1]))));
        }
        return "Accuracy (%) per question class: subject (NAT natural science, SOC social science, LAN language), "
                + "context (TXT text hint, IMG image, NO neither), grade (G1-6, G7-12; not in the paper) and the "
                + "average, for FP, AWQ, QLoRA's NF4 and Q-VLM at W6A6 and W4A4.";
    }

    private static String table4(Doc d) {
        List<String> h = new ArrayList<>(List.of("Method", "FP Time", "FP Memory", "FP Acc"));
        for (int[] b : Experiment.SPEED_BITS) {
            String bits = ConfigSpec.bits(b[0], b[1]);
            h.addAll(List.of(bits + " Time", bits + " Memory", bits + " Acc"));
        }
        h.add("Note");
        List<List<String>> rows = new ArrayList<>();
        Outcome fp = d.get(ConfigSpec.fp());
        List<String> fpRow = new ArrayList<>(List.of("FP", evalTime(d, fp), memory(fp), acc(fp, "Avg")));
        fpRow.addAll(List.of("", "", "", "", "", "", note(List.of(fp), false)));
        rows.add(fpRow);
        for (String m : List.of("nf4", "awq", "qvlm")) {
            List<String> row = new ArrayList<>();
            List<Outcome> os = new ArrayList<>();
            row.addAll(List.of("", "", "", ""));
            for (int[] b : Experiment.SPEED_BITS) {
                ConfigSpec c = m.equals("qvlm") ? ConfigSpec.qvlm(b[0], b[1], QvlmVariant.FULL)
                        : ConfigSpec.baseline(m, b[0], b[1]);
                row.set(0, methodName(c));
                Outcome o = d.get(c);
                os.add(o);
                row.addAll(List.of(evalTime(d, o), memory(o), acc(o, "Avg")));
            }
            row.add(note(os, true));
            rows.add(row);
        }
        d.tables.add(new Table(null, h, rows));
        return "Inference time, memory and accuracy of FP, QLoRA's NF4, AWQ and Q-VLM at W8A8 and W4A4. Time is the "
                + "evaluation's wall time for all its problems (greedy decoding; the paper's is hours on an RTX 3090); "
                + "Memory is the weights the runtime holds.";
    }

    private static String table5(Doc d) {
        List<String> h = new ArrayList<>(List.of("Proxy"));
        for (int[] b : Experiment.PAPER_BITS) {
            String bits = ConfigSpec.bits(b[0], b[1]);
            h.addAll(List.of(bits + " Acc", bits + " Search cost"));
        }
        h.add("Note");
        List<List<String>> rows = new ArrayList<>();
        String[] names = {"Quantization errors", "Entropy"};
        QvlmVariant[] variants = {Experiment.table5Error(), Experiment.table5Entropy()};
        for (int r = 0; r < names.length; r++) {
            List<String> row = new ArrayList<>(List.of(names[r]));
            List<Outcome> os = new ArrayList<>();
            for (int[] b : Experiment.PAPER_BITS) {
                Outcome o = d.get(ConfigSpec.qvlm(b[0], b[1], variants[r]));
                os.add(o);
                row.addAll(List.of(acc(o, "Avg"), searchCost(d, o)));
            }
            row.add(note(os, true));
            rows.add(row);
        }
        d.tables.add(new Table(null, h, rows));
        return "The proxy of cross-layer dependency that decides Q-VLM's blocks: the quantization error of "
                + "consecutive decoder layers' outputs (`--proxy error`) versus their conditional entropy (Eq. 4-5). "
                + "Both rows use CDM without VEO, as the paper's (its entropy row equals Table 1's +CDM).";
    }

    private static String table6(Doc d) {
        List<String> h = new ArrayList<>(List.of("Method"));
        for (int[] b : Experiment.SPEED_BITS) {
            String bits = ConfigSpec.bits(b[0], b[1]);
            h.addAll(List.of(bits + " Acc", bits + " Inference time"));
        }
        h.add("Note");
        List<List<String>> rows = new ArrayList<>();
        for (String m : List.of("zeroquant-v2", "qvlm")) {
            List<String> row = new ArrayList<>(List.of(""));
            List<Outcome> os = new ArrayList<>();
            for (int[] b : Experiment.SPEED_BITS) {
                ConfigSpec c = m.equals("qvlm") ? ConfigSpec.qvlm(b[0], b[1], QvlmVariant.FULL)
                        : ConfigSpec.baseline(m, b[0], b[1]);
                row.set(0, methodName(c));
                Outcome o = d.get(c);
                os.add(o);
                row.addAll(List.of(acc(o, "Avg"), evalTime(d, o)));
            }
            row.add(note(os, true));
            rows.add(row);
        }
        d.tables.add(new Table(null, h, rows));
        fpNote(d);
        for (int[] b : Experiment.SPEED_BITS) {
            pairedTable(d, d.get(ConfigSpec.qvlm(b[0], b[1], QvlmVariant.FULL)),
                    List.of(d.get(ConfigSpec.baseline("zeroquant-v2", b[0], b[1]))));
        }
        return "Q-VLM against ZeroQuant-V2 (group-wise RTN with low-rank compensation) at W8A8 and W4A4: accuracy and "
                + "the evaluation's wall time for all its problems.";
    }

    private static String fig3(Doc d) {
        int w = Experiment.FIG3_BITS[0];
        int a = Experiment.FIG3_BITS[1];
        List<List<String>> depth = new ArrayList<>();
        for (int k : Experiment.DEPTHS) {
            Outcome o = d.get(ConfigSpec.qvlm(w, a, QvlmVariant.FULL.withDepth(k)));
            depth.add(List.of(Integer.toString(k), acc(o, "Avg"), searchCost(d, o), note(List.of(o), false)));
        }
        d.tables.add(new Table("(a) Maximum decoder layers per block", List.of("Max depth", "Acc", "Search cost",
                "Note"), depth));
        List<List<String>> p = new ArrayList<>();
        for (BigDecimal pm : Experiment.P_MINS) {
            Outcome o = d.get(ConfigSpec.qvlm(w, a, QvlmVariant.FULL.withPMin(pm)));
            p.add(List.of(pm.toPlainString(), ConfigSpec.pGrid(pm), acc(o, "Avg"), searchCost(d, o),
                    note(List.of(o), false)));
        }
        d.tables.add(new Table("(b) Percentile grid: " + ConfigSpec.GRID_POINTS + " points from 1 down to p",
                List.of("p", "Grid", "Acc", "Search cost", "Note"), p));
        List<List<String>> eta = new ArrayList<>();
        for (BigDecimal e : Experiment.ETAS) {
            Outcome o = d.get(ConfigSpec.qvlm(w, a, QvlmVariant.FULL.withEta(e)));
            eta.add(List.of(e.toPlainString(), acc(o, "Avg"), searchCost(d, o), note(List.of(o), false)));
        }
        d.tables.add(new Table("(c) VEO's weight eta of the final layer's error (Eq. 9)", List.of("eta", "Acc",
                "Search cost", "Note"), eta));
        fpNote(d);
        return "Sweeps of Q-VLM at " + ConfigSpec.bits(w, a) + " (all else at the paper's settings: depth "
                + ConfigSpec.DEFAULT_DEPTH + ", grid 1 to " + ConfigSpec.DEFAULT_P_MIN + ", eta 1): the maximum block "
                + "depth (the paper's Fig. 3a, accuracy and search cost), the lower end p of the clipping percentile "
                + "grid and VEO's eta (Fig. 3b). Plotted in fig3.png.";
    }

    /**
     * Problem-by-problem comparison of ref with each of others ({@link PairedComparison}): how many
     * problems only one of the two gets right, the accuracy difference with its 95% interval, and the
     * exact McNemar p-value. Cells are n/a when either side has no predictions or they cover
     * different problems.
     */
    private static void pairedTable(Doc d, Outcome ref, List<Outcome> others) {
        pairedTable(d, methodName(ref.config()), ref, others.stream().map(o -> methodName(o.config())).toList(),
                others);
    }

    /** As {@link #pairedTable(Doc, Outcome, List)} with the rows' names given (the ablations of one method). */
    private static void pairedTable(Doc d, String refName, Outcome ref, List<String> names, List<Outcome> others) {
        String name = refName + " " + ref.config().bits();
        List<List<String>> rows = new ArrayList<>();
        for (int i = 0; i < others.size(); i++) {
            Outcome o = others.get(i);
            PairedComparison p = paired(ref, o);
            List<String> row = new ArrayList<>(List.of(names.get(i), o.config().bits()));
            if (p == null) {
                row.addAll(List.of(NOT_AVAILABLE, NOT_AVAILABLE, NOT_AVAILABLE, NOT_AVAILABLE, NOT_AVAILABLE,
                        NOT_AVAILABLE));
            } else {
                row.addAll(List.of(Integer.toString(p.onlyFirst()), Integer.toString(p.onlySecond()),
                        String.format(Locale.ROOT, "%+.2f", p.difference()),
                        String.format(Locale.ROOT, "[%+.2f, %+.2f]", p.ciLow(), p.ciHigh()), pValue(p.pValue()),
                        p.separates() ? (p.difference() > 0 ? "yes, " + name + " better" : "yes, " + name + " worse")
                                : "no"));
            }
            rows.add(row);
        }
        d.tables.add(new Table(name + " against each configuration, problem by problem", List.of("Against", "Bits",
                "Right only with " + name, "Right only with the other", "Δ Avg (points)", "95% interval",
                "McNemar p", "Separated"), rows));
        d.notes.add("Problem by problem: Δ is the accuracy difference on the same problems, its 95% interval the "
                + "Wald interval of a paired difference, p the exact two-sided McNemar test on the problems only one "
                + "side gets right; \"separated\" means the interval excludes zero.");
    }

    private static PairedComparison paired(Outcome a, Outcome b) {
        if (a.eval() == null || b.eval() == null || a.eval().correct().isEmpty()
                || !a.eval().correct().keySet().equals(b.eval().correct().keySet())) {
            return null;
        }
        return PairedComparison.of(a.eval().correct(), b.eval().correct());
    }

    static String pValue(double p) {
        return p < 0.001 ? "< 0.001" : String.format(Locale.ROOT, "%.3f", p);
    }

    private static void fpNote(Doc d) {
        Outcome fp = d.get(ConfigSpec.fp());
        d.notes.add("FP accuracy (Avg): " + acc(fp, "Avg") + "%.");
    }

    /** The PNG's panels from the Fig. 3 outcomes (points without results are left out). */
    static List<SweepPlot.Panel> fig3Panels(Map<String, Outcome> outcomes) {
        int w = Experiment.FIG3_BITS[0];
        int a = Experiment.FIG3_BITS[1];
        Outcome fp = outcomes.get(ConfigSpec.fp().id());
        double fpAcc = fp != null && fp.eval() != null && fp.eval().accuracy().get("Avg") != null
                ? fp.eval().accuracy().get("Avg").doubleValue() : Double.NaN;
        Function<Outcome, Double> acc = o -> o.eval() != null && o.eval().accuracy().get("Avg") != null
                ? o.eval().accuracy().get("Avg").doubleValue() : Double.NaN;
        Function<Outcome, Double> cost = o -> o.quantized() != null ? o.quantized().searchSeconds() : Double.NaN;
        List<String> dl = new ArrayList<>();
        List<Outcome> dos = new ArrayList<>();
        for (int k : Experiment.DEPTHS) {
            dl.add(Integer.toString(k));
            dos.add(outcomes.get(ConfigSpec.qvlm(w, a, QvlmVariant.FULL.withDepth(k)).id()));
        }
        List<String> pl = new ArrayList<>();
        List<Outcome> pos = new ArrayList<>();
        for (BigDecimal p : Experiment.P_MINS) {
            pl.add(p.toPlainString());
            pos.add(outcomes.get(ConfigSpec.qvlm(w, a, QvlmVariant.FULL.withPMin(p)).id()));
        }
        List<String> el = new ArrayList<>();
        List<Outcome> eos = new ArrayList<>();
        for (BigDecimal e : Experiment.ETAS) {
            el.add(e.toPlainString());
            eos.add(outcomes.get(ConfigSpec.qvlm(w, a, QvlmVariant.FULL.withEta(e)).id()));
        }
        return List.of(
                new SweepPlot.Panel("(a) accuracy vs max depth", "max depth", "accuracy (%)", dl, values(dos, acc),
                        fpAcc, true),
                new SweepPlot.Panel("(a) search cost vs max depth", "max depth", "search time (s)", dl,
                        values(dos, cost), Double.NaN, false),
                new SweepPlot.Panel("(b) accuracy vs percentile grid end p", "p", "accuracy (%)", pl, values(pos, acc),
                        fpAcc, true),
                new SweepPlot.Panel("(b) accuracy vs eta", "eta", "accuracy (%)", el, values(eos, acc), fpAcc, true));
    }

    private static double[] values(List<Outcome> os, Function<Outcome, Double> f) {
        double[] v = new double[os.size()];
        for (int i = 0; i < v.length; i++) {
            Outcome o = os.get(i);
            v[i] = o == null ? Double.NaN : f.apply(o);
        }
        return v;
    }

    // ------------------------------------------------------------------ cells

    /** The display name of a configuration's method. */
    static String methodName(ConfigSpec c) {
        if (c.id().equals(ConfigSpec.smoothQuantAll(c.wbits(), c.abits()).id())) {
            return "SmoothQuant (α = " + ConfigSpec.STRONG_ALPHA + ", all linears)";
        }
        return switch (c.method()) {
            case ConfigSpec.FP -> "FP";
            case "rtn" -> "RTN";
            case "smoothquant" -> "SmoothQuant";
            case "awq" -> "AWQ";
            case "gptq" -> "GPTQ";
            case "nf4" -> "QLoRA (NF4)";
            case "zeroquant-v2" -> "ZeroQuant-V2";
            case "qvlm" -> "Q-VLM";
            default -> c.method();
        };
    }

    /** A column's accuracy as the evaluation's report prints it, {@value #EMPTY} for an empty column. */
    static String acc(Outcome o, String column) {
        if (o.eval() == null) {
            return NOT_AVAILABLE;
        }
        BigDecimal a = o.eval().accuracy().get(column);
        return a == null ? EMPTY : a.toPlainString();
    }

    private static String delta(Outcome o, Outcome fp) {
        if (o.config().isFp()) {
            return "";
        }
        if (o.eval() == null || fp.eval() == null || o.eval().accuracy().get("Avg") == null
                || fp.eval().accuracy().get("Avg") == null) {
            return NOT_AVAILABLE;
        }
        BigDecimal d = o.eval().accuracy().get("Avg").subtract(fp.eval().accuracy().get("Avg"));
        return (d.signum() >= 0 ? "+" : "") + d.toPlainString();
    }

    private static List<String> classRow(Doc d, List<String> lead, Outcome o) {
        List<String> row = new ArrayList<>(lead);
        for (String c : ScienceQaMetrics.COLUMNS) {
            row.add(acc(o, c));
        }
        row.add(note(List.of(o), false));
        return row;
    }

    private static String memory(Outcome o) {
        return o.bench() == null ? NOT_AVAILABLE : bytes(o.bench().weightBytes());
    }

    private static String evalTime(Doc d, Outcome o) {
        if (o.eval() == null || !Double.isFinite(o.eval().seconds())) {
            return NOT_AVAILABLE;
        }
        return d.marked(duration(o.eval().seconds()), o.eval().load());
    }

    private static String searchCost(Doc d, Outcome o) {
        Outcome.Quantized q = o.quantized();
        if (q == null || !Double.isFinite(q.searchSeconds())) {
            return NOT_AVAILABLE;
        }
        String passes = q.searchForwards() >= 0 ? String.format(Locale.ROOT, ", %,d layer passes", q.searchForwards())
                : "";
        return d.marked(duration(q.searchSeconds()), q.load()) + passes;
    }

    /**
     * Why a row (or part of it) has no results; parts are labelled by their bits when several
     * configurations share the row and their reasons differ.
     */
    private static String note(List<Outcome> os, boolean byBits) {
        Set<String> reasons = new LinkedHashSet<>();
        List<String> parts = new ArrayList<>();
        for (Outcome o : os) {
            if (o.reason() != null) {
                reasons.add(o.reason());
                parts.add(byBits ? o.config().bits() + ": " + o.reason() : o.reason());
            }
        }
        boolean allSame = reasons.size() == 1 && parts.size() == os.size();
        return allSame ? reasons.iterator().next() : String.join("; ", parts);
    }

    /** Bytes in decimal units: kB below 1 MB, MB below 1 GB, else GB. */
    static String bytes(long b) {
        if (b < 0) {
            return NOT_AVAILABLE;
        }
        if (b < MB) {
            return String.format(Locale.ROOT, "%.1f kB", b / (double) KB);
        }
        if (b < GB) {
            return String.format(Locale.ROOT, "%.2f MB", b / (double) MB);
        }
        return String.format(Locale.ROOT, "%.2f GB", b / (double) GB);
    }

    /** Seconds below two minutes, minutes below two hours, else hours. */
    static String duration(double s) {
        if (s < 2 * MINUTE) {
            return String.format(Locale.ROOT, "%.1f s", s);
        }
        if (s < 2 * HOUR) {
            return String.format(Locale.ROOT, "%.1f min", s / MINUTE);
        }
        return String.format(Locale.ROOT, "%.2f h", s / HOUR);
    }

    // ------------------------------------------------------------------ documents

    private static String markdown(Experiment e, String intro, Doc d, Provenance p, String date) {
        Settings s = p.settings();
        StringBuilder sb = new StringBuilder();
        sb.append("# ").append(e.title).append("\n\n").append(intro).append("\n\n");
        for (Table t : d.tables) {
            sb.append(t.markdown()).append('\n');
        }
        List<String> notes = new ArrayList<>(d.notes);
        if (d.loadMarked) {
            notes.add(LOAD_MARK + " timed while other processes kept more than "
                    + Math.round(Outcome.Load.HIGH_FRACTION * 100) + "% of the cores busy (each step's load is in "
                    + e.key + ".json).");
        }
        if (!notes.isEmpty()) {
            for (String n : notes) {
                sb.append("- ").append(n).append('\n');
            }
            sb.append('\n');
        }
        sb.append("## How this was made\n\n");
        sb.append("- Command: `").append(s.commandLine(e)).append("` (add `--resume` to continue an interrupted run; "
                + "see docs/results/README.md)\n");
        sb.append("- Model: `").append(s.model()).append("` (fingerprint ")
                .append(p.modelDigest(), 0, Math.min(DIGEST_CHARS, p.modelDigest().length())).append(")\n");
        sb.append("- Data: `").append(s.data()).append("`, split `").append(s.evalSplit()).append("`, ")
                .append(s.limit() > 0 ? "a sample of " + s.limit() + " problems (seed " + ExperimentRunner.EVAL_SEED
                        + ")" : "all problems")
                .append(" (problems.json sha256 ")
                .append(p.problemsSha256(), 0, Math.min(DIGEST_CHARS, p.problemsSha256().length())).append(")\n");
        sb.append("- Calibration: ").append(s.calibN()).append(" train prompts, seed ").append(s.calibSeed())
                .append("\n");
        if (s.tensorInputs()) {
            sb.append("- Quantized LLM linear inputs: one static range per tensor (`--llm-inputs tensor`) for every ")
                    .append("method; Q-VLM searches the percentiles ").append(Settings.TENSOR_GRID)
                    .append(" with its block error measured after the next RMSNorm (`--block-error normed`), on a ")
                    .append("copy of the model with SmoothQuant's scales at α = ").append(Settings.TENSOR_SMOOTH_ALPHA)
                    .append(" folded into its weights and the calibration repeated on it (`--smooth-alpha ")
                    .append(Settings.TENSOR_SMOOTH_ALPHA).append("`)\n");
        }
        sb.append("- Evaluation: LLaVA-1.5 ScienceQA protocol, VICUNA_V1 template, greedy, at most ")
                .append(s.maxNewTokens()).append(" new tokens\n");
        sb.append("- Measurement: ").append(s.benchInProcess() ? "every model in the experiment's JVM (resident "
                + "memory of later models includes earlier ones' heap)" : "each model in its own JVM").append(", ")
                .append(s.benchReps()).append(" repetitions after one warm-up, ")
                .append(s.decodeTokens()).append(" decode tokens\n");
        sb.append("- Machine: ").append(p.machine()).append('\n');
        sb.append(DATE_PREFIX).append(date).append("\n\n");
        sb.append("Configurations (`qvlm4j quantize` arguments; the FP model is `--model` itself):\n\n");
        List<List<String>> rows = new ArrayList<>();
        for (String id : d.configIds) {
            Outcome o = d.outcomes.get(id);
            String args = o.config().isFp() ? "" : o.quantized() != null ? String.join(" ",
                    o.quantized().args()) : String.join(" ", o.config().baseArgs());
            rows.add(List.of("`" + id + "`", args.isEmpty() ? "" : "`" + args + "`",
                    o.status().name().toLowerCase(Locale.ROOT).replace('_', ' ')));
        }
        sb.append(new Table(null, List.of("Configuration", "quantize arguments", "Status"), rows).markdown());
        return sb.toString();
    }

    private static String json(Experiment e, Doc d, Provenance p, String date) {
        Settings s = p.settings();
        ObjectNode root = ExperimentRunner.JSON.createObjectNode();
        root.put("format", "qvlm4j-experiment-results");
        root.put("version", 1);
        root.put("experiment", e.key);
        root.put("title", e.title);
        root.put("command", s.commandLine(e));
        root.put("date", date);
        root.put("machine", p.machine());
        ObjectNode st = root.putObject("settings");
        s.identity(st, p.modelDigest(), p.problemsSha256());
        st.put("eval_seed", ExperimentRunner.EVAL_SEED);
        ArrayNode tables = root.putArray("tables");
        for (Table t : d.tables) {
            ObjectNode tn = tables.addObject();
            tn.put("caption", t.caption());
            ArrayNode h = tn.putArray("header");
            t.header().forEach(h::add);
            ArrayNode rows = tn.putArray("rows");
            for (List<String> r : t.rows()) {
                ArrayNode rn = rows.addArray();
                r.forEach(rn::add);
            }
        }
        ArrayNode notes = root.putArray("notes");
        d.notes.forEach(notes::add);
        ArrayNode configs = root.putArray("configurations");
        for (String id : d.configIds) {
            configs.add(outcomeJson(d.outcomes.get(id)));
        }
        try {
            return ExperimentRunner.JSON.writeValueAsString(root) + "\n";
        } catch (JsonProcessingException ex) {
            throw new IllegalStateException("cannot serialise the results of " + e.key, ex);
        }
    }

    /** Every recorded number of a configuration, unrounded. */
    static ObjectNode outcomeJson(Outcome o) {
        ObjectNode n = ExperimentRunner.JSON.createObjectNode();
        ConfigSpec c = o.config();
        n.put("id", c.id());
        n.put("method", c.method());
        n.put("bits", c.bits());
        n.put("status", o.status().name().toLowerCase(Locale.ROOT));
        n.put("reason", o.reason());
        if (o.quantized() != null) {
            n.set("quantize", ExperimentRunner.quantizedJson(o.quantized()));
        }
        if (o.eval() != null) {
            ObjectNode ev = n.putObject("eval");
            ObjectNode acc = ev.putObject("accuracy");
            Map<String, BigDecimal> a = new LinkedHashMap<>(o.eval().accuracy());
            a.forEach((k, v) -> {
                if (v == null) {
                    acc.putNull(k);
                } else {
                    acc.set(k, DecimalNode.valueOf(v));
                }
            });
            ObjectNode cnt = ev.putObject("count");
            o.eval().count().forEach(cnt::put);
            ev.put("parse_failures", o.eval().parseFailures());
            ev.put("problems", o.eval().problems());
            ExperimentRunner.putDouble(ev, "seconds", o.eval().seconds());
            ev.set("load", ExperimentRunner.loadJson(o.eval().load()));
        }
        if (o.bench() != null) {
            Outcome.Benched b = o.bench();
            ObjectNode bn = n.putObject("bench");
            bn.put("safetensors_bytes", b.safetensorsBytes());
            bn.put("weight_bytes", b.weightBytes());
            bn.put("peak_rss_bytes", b.peakRssBytes());
            ExperimentRunner.putDouble(bn, "prefill_tokens_per_s", b.prefillTokensPerSecond());
            ExperimentRunner.putDouble(bn, "decode_tokens_per_s", b.decodeTokensPerSecond());
            bn.put("threads", b.threads());
            bn.set("load", ExperimentRunner.loadJson(b.load()));
        }
        return n;
    }
}
