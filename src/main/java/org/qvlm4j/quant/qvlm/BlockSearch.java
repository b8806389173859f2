package org.qvlm4j.quant.qvlm;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.qvlm4j.kernels.WeightMatrix;
import org.qvlm4j.model.ActivationTap;
import org.qvlm4j.model.Linear;
import org.qvlm4j.model.LlamaModel;
import org.qvlm4j.model.LlavaModel;
import org.qvlm4j.quant.FakeQuantTap;
import org.qvlm4j.quant.QuantPlan;
import org.qvlm4j.quant.QuantSpec;
import org.qvlm4j.quant.Ranges;
import org.qvlm4j.quant.calib.CalibrationStats;

/**
 * The block-wise rounding-function search of Q-VLM (Eq. 3, qvlm-method.md §6.7) over stored hidden
 * states of the calibration prompts. For every prompt it keeps two residual streams: the
 * floating-point one X_r (FP weights, FP inputs) and the quantized one X_q (quantized weights and
 * activations of every layer already searched). Searching a block [a, b]:
 *
 * <ol>
 *   <li>the target is X_r advanced through layers a .. b in floating point;</li>
 *   <li>every choice of clipping percentiles for the block's layers (one p per decoder layer, the
 *       same for its four input sites) is tried exhaustively: X_q is run through the block with the
 *       block's weights quantized and its linear inputs fake-quantized with static ranges at those
 *       percentiles, and scored by the mean squared error against the target over all prompt tokens
 *       (of the raw residual stream, or with {@link QvlmMethod.BlockError#NORMED} of both streams
 *       through the RMSNorm that reads the block's output next);
 *       choices sharing a prefix share its forwards (a depth-first walk, G + G² + … + G^s
 *       single-layer forwards per prompt);</li>
 *   <li>ties go to the larger p, earlier layers first (candidates are visited from p = max down and
 *       only a strictly smaller error replaces the best);</li>
 *   <li>optionally, per-site refinement: coordinate descent over the block's sites (q/k/v input,
 *       o input, gate/up input, down input of each layer), each tried at every p with the rest fixed,
 *       accepting strictly smaller errors, for a number of sweeps;</li>
 *   <li>X_r and X_q move to the block's output (X_q under the chosen percentiles), so the next block
 *       sees inputs from the quantized blocks before it.</li>
 * </ol>
 *
 * <p>Blocks of one layer are the layer-wise search of Eq. 2. All arithmetic is the model's own
 * deterministic forward, and {@link #commit} replays a known choice with exactly the same operations
 * as the search, so a resumed run reproduces the searched states bit for bit. A site group whose
 * linears have no static input spec in the plan takes no part (its choice stays at index 0).
 *
 * <p>Left out: searching the vision tower (its ranges are fixed before the LLM search), weight
 * clipping, AdaRound-style rounding variables (§6.3).
 */
final class BlockSearch {

    /** The four activation sites of a decoder layer (§6.3: q/k/v share an input, so do gate/up). */
    enum Group {
        ATTN("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),
        O("self_attn.o_proj"),
        MLP("mlp.gate_proj", "mlp.up_proj"),
        DOWN("mlp.down_proj");

        final List<String> linears;

        Group(String... linears) {
            this.linears = List.of(linears);
        }
    }

    static final int GROUPS = Group.values().length;

    /** What searching or replaying one block produced. */
    record Outcome(Partition.Block block, int[][] choice, double mse, long candidates, long forwards, double seconds) {
    }

    /** A copy of both streams. */
    record State(List<float[]> fp, List<float[]> q) {
    }

    private final LlavaModel model;
    private final QuantPlan plan;
    private final CalibrationStats stats;
    private final double[] grid;
    private final QvlmMethod.BlockError blockError;
    private final Map<String, WeightMatrix> fpWeights = new HashMap<>();
    private final Map<String, WeightMatrix> qWeights;
    private final Map<String, Linear> linears = new HashMap<>();
    private final Map<String, Ranges> rangeCache = new HashMap<>();
    private final List<CalibrationSamples.Sample> samples;
    private final LlamaModel.LayerRunner runner;
    private final int hidden;
    private List<float[]> fp = new ArrayList<>(); // per prompt (T, D)
    private List<float[]> q = new ArrayList<>(); // per prompt (T, D)
    private long forwards;
    private List<float[]> normedFor; // the target whose normed copy normedTarget holds
    private List<float[]> normedTarget;

    /**
     * @param model    the model holding its floating-point weights
     * @param grid     candidate percentiles, distinct, in descending order
     * @param qWeights   linear name → its quantized weight, for every planned linear
     * @param blockError what a candidate's error is measured on (the block's raw output, or it normed)
     */
    BlockSearch(LlavaModel model, QuantPlan plan, CalibrationStats stats, double[] grid,
                Map<String, WeightMatrix> qWeights, List<CalibrationSamples.Sample> samples, QvlmMethod.BlockError blockError) {
        this.model = model;
        this.blockError = blockError;
        this.plan = plan;
        this.stats = stats;
        this.grid = grid.clone();
        this.qWeights = qWeights;
        this.samples = List.copyOf(samples);
        for (Linear l : model.linears()) {
            linears.put(l.name(), l);
            fpWeights.put(l.name(), l.weight());
        }
        int maxTokens = samples.stream().mapToInt(CalibrationSamples.Sample::tokens).max().orElseThrow(
                () -> new IllegalArgumentException("block search needs at least one calibration prompt"));
        runner = model.language().layerRunner(maxTokens);
        hidden = model.config().textConfig().hiddenSize();
    }

    int gridSize() {
        return grid.length;
    }

    double p(int index) {
        return grid[index];
    }

    /** Single-layer forwards over one prompt run so far. */
    long forwards() {
        return forwards;
    }

    /**
     * Starts both streams at the input embeddings: X_r from the FP model, X_q with the vision
     * tower's and projector's weights quantized and visionTap (or null) on their sites.
     */
    void startAtEmbeddings(ActivationTap visionTap) {
        ActivationTap previous = model.activationTap();
        try {
            fp = new ArrayList<>();
            q = new ArrayList<>();
            model.setActivationTap(null);
            for (CalibrationSamples.Sample s : samples) {
                fp.add(model.embedInputs(s.ids(), s.pixels()));
            }
            installVision(true);
            model.setActivationTap(visionTap);
            for (CalibrationSamples.Sample s : samples) {
                q.add(model.embedInputs(s.ids(), s.pixels()));
            }
        } finally {
            installVision(false);
            model.setActivationTap(previous);
        }
    }

    /** Starts both streams at the FP input of decoder layer k (everything before it floating point). */
    void startAtLayer(int k) {
        startAtEmbeddings(null);
        q = new ArrayList<>();
        for (int s = 0; s < samples.size(); s++) {
            float[] h = fp.get(s);
            if (k > 0) {
                runner.run(h, samples.get(s).tokens(), 0, k, null);
            }
            q.add(h.clone());
        }
    }

    State snapshot() {
        return new State(copies(fp), copies(q));
    }

    void restore(State st) {
        fp = copies(st.fp());
        q = copies(st.q());
    }

    /** Current X_q (T, D) of each prompt (copies). */
    List<float[]> quantizedStates() {
        return copies(q);
    }

    /** Current X_r (T, D) of each prompt (copies). */
    List<float[]> floatStates() {
        return copies(fp);
    }

    /** Searches block b (see the class comment) and moves both streams to its output. */
    Outcome search(Partition.Block b, boolean perSite, int sweeps) {
        long t0 = System.nanoTime();
        long f0 = forwards;
        List<float[]> target = floatThrough(b);
        Best best = new Best(b.size());
        install(b, true);
        try {
            walk(b, 0, q, new int[b.size()][GROUPS], target, best);
            if (perSite) {
                refineSites(b, target, best, sweeps);
            }
        } finally {
            install(b, false);
        }
        fp = target;
        q = best.states;
        return new Outcome(b, best.choice, best.mse, best.candidates, forwards - f0, (System.nanoTime() - t0) / 1e9);
    }

    /** Runs block b with a known choice, exactly as the search ran its winner, and moves both streams on. */
    Outcome commit(Partition.Block b, int[][] choice) {
        checkChoice(b, choice);
        long t0 = System.nanoTime();
        long f0 = forwards;
        List<float[]> target = floatThrough(b);
        install(b, true);
        List<float[]> out;
        try {
            out = q;
            for (int d = 0; d < b.size(); d++) {
                out = runLayer(b.first() + d, choice[d], out);
            }
        } finally {
            install(b, false);
        }
        fp = target;
        q = out;
        return new Outcome(b, copyChoice(choice), error(b, out, target), 1, forwards - f0, (System.nanoTime() - t0) / 1e9);
    }

    /** The block objective of a choice from the current streams, which are left unchanged. */
    double evaluate(Partition.Block b, int[][] choice) {
        checkChoice(b, choice);
        List<float[]> target = floatThrough(b);
        install(b, true);
        try {
            List<float[]> out = q;
            for (int d = 0; d < b.size(); d++) {
                out = runLayer(b.first() + d, choice[d], out);
            }
            return error(b, out, target);
        } finally {
            install(b, false);
        }
    }

    /** Whether group g of layer k has a static input spec to search. */
    boolean active(int k, Group g) {
        for (String l : g.linears) {
            QuantSpec spec = plan.forLinear(linearName(k, l)).input();
            if (spec != null && !spec.dynamic()) {
                return true;
            }
        }
        return false;
    }

    /** Static ranges of every quantized input site of layer k under choice. */
    Map<String, Ranges> ranges(int k, int[] choice) {
        Map<String, Ranges> out = new LinkedHashMap<>();
        for (Group g : Group.values()) {
            for (String l : g.linears) {
                String name = linearName(k, l);
                QuantSpec spec = plan.forLinear(name).input();
                if (spec == null || spec.dynamic()) {
                    continue;
                }
                String site = name + ".in";
                int gi = choice[g.ordinal()];
                out.put(site, rangeCache.computeIfAbsent(site + "@" + gi, x -> SiteRanges.of(stats, site, spec, grid[gi])));
            }
        }
        return out;
    }

    static String linearName(int layer, String local) {
        return "llm.layers." + layer + "." + local;
    }

    // ------------------------------------------------------------------ search internals

    /** Running best of a search. */
    private static final class Best {
        int[][] choice;
        double mse = Double.POSITIVE_INFINITY;
        List<float[]> states;
        long candidates;

        Best(int layers) {
            choice = new int[layers][GROUPS];
        }

        void offer(int[][] c, double m, List<float[]> out) {
            candidates++;
            if (m < mse) {
                mse = m;
                choice = copyChoice(c);
                states = out;
            }
        }
    }

    private void walk(Partition.Block b, int depth, List<float[]> in, int[][] prefix, List<float[]> target, Best best) {
        int k = b.first() + depth;
        int options = layerActive(k) ? grid.length : 1;
        for (int gi = 0; gi < options; gi++) {
            for (Group g : Group.values()) {
                prefix[depth][g.ordinal()] = active(k, g) ? gi : 0;
            }
            List<float[]> out = runLayer(k, prefix[depth], in);
            if (depth == b.size() - 1) {
                best.offer(prefix, error(b, out, target), out);
            } else {
                walk(b, depth + 1, out, prefix, target, best);
            }
        }
    }

    private void refineSites(Partition.Block b, List<float[]> target, Best best, int sweeps) {
        for (int sweep = 0; sweep < sweeps; sweep++) {
            boolean improved = false;
            for (int d = 0; d < b.size(); d++) {
                int k = b.first() + d;
                for (Group g : Group.values()) {
                    if (!active(k, g)) {
                        continue;
                    }
                    List<float[]> entry = q;
                    for (int e = 0; e < d; e++) {
                        entry = runLayer(b.first() + e, best.choice[e], entry);
                    }
                    int current = best.choice[d][g.ordinal()];
                    for (int gi = 0; gi < grid.length; gi++) {
                        if (gi == current) {
                            continue;
                        }
                        int[][] c = copyChoice(best.choice);
                        c[d][g.ordinal()] = gi;
                        List<float[]> out = entry;
                        for (int e = d; e < b.size(); e++) {
                            out = runLayer(b.first() + e, c[e], out);
                        }
                        double before = best.mse;
                        best.offer(c, error(b, out, target), out);
                        improved |= best.mse < before;
                    }
                }
            }
            if (!improved) {
                return;
            }
        }
    }

    private boolean layerActive(int k) {
        for (Group g : Group.values()) {
            if (active(k, g)) {
                return true;
            }
        }
        return false;
    }

    /** Layer k run on copies of in with its inputs quantized under choice (its weights must be installed). */
    private List<float[]> runLayer(int k, int[] choice, List<float[]> in) {
        ActivationTap tap = new FakeQuantTap(plan, ranges(k, choice));
        List<float[]> out = new ArrayList<>(in.size());
        for (int s = 0; s < in.size(); s++) {
            float[] h = in.get(s).clone();
            runner.run(h, samples.get(s).tokens(), k, k + 1, tap);
            forwards++;
            out.add(h);
        }
        return out;
    }

    /** X_r through block b in floating point, without changing the streams. */
    private List<float[]> floatThrough(Partition.Block b) {
        List<float[]> out = new ArrayList<>(fp.size());
        for (int s = 0; s < fp.size(); s++) {
            float[] h = fp.get(s).clone();
            runner.run(h, samples.get(s).tokens(), b.first(), b.last() + 1, null);
            forwards += b.size();
            out.add(h);
        }
        return out;
    }

    /** The block's error under the configured measure: output streams against the target, over all prompts. */
    double error(Partition.Block b, List<float[]> out, List<float[]> target) {
        if (blockError == QvlmMethod.BlockError.RESIDUAL) {
            return mse(out, target);
        }
        if (target != normedFor) { // one target per block: norm it once for all its candidates
            normedTarget = normed(b.last(), target);
            normedFor = target;
        }
        return mse(normed(b.last(), out), normedTarget);
    }

    /** Each prompt's states (T, D) through the norm that reads decoder layer k's output. */
    private List<float[]> normed(int k, List<float[]> states) {
        List<float[]> out = new ArrayList<>(states.size());
        for (int s = 0; s < states.size(); s++) {
            int T = samples.get(s).tokens();
            float[] x = new float[T * hidden];
            model.language().normAfterLayer(k, states.get(s), x, T);
            out.add(x);
        }
        return out;
    }

    /** Mean squared error over all prompts' elements, summed in double in prompt order. */
    static double mse(List<float[]> a, List<float[]> b) {
        double sum = 0;
        long n = 0;
        for (int s = 0; s < a.size(); s++) {
            float[] x = a.get(s);
            float[] y = b.get(s);
            for (int i = 0; i < x.length; i++) {
                double d = (double) x[i] - y[i];
                sum += d * d;
            }
            n += x.length;
        }
        return sum / n;
    }

    private void install(Partition.Block b, boolean quantized) {
        for (int k = b.first(); k <= b.last(); k++) {
            for (Group g : Group.values()) {
                for (String l : g.linears) {
                    swap(linearName(k, l), quantized);
                }
            }
        }
    }

    private void installVision(boolean quantized) {
        for (String name : linears.keySet()) {
            if (name.startsWith("vision.") || name.startsWith("projector.")) {
                swap(name, quantized);
            }
        }
    }

    private void swap(String name, boolean quantized) {
        WeightMatrix w = quantized ? qWeights.get(name) : fpWeights.get(name);
        if (w != null) {
            linears.get(name).replaceWeight(w);
        }
    }

    private void checkChoice(Partition.Block b, int[][] choice) {
        if (choice.length != b.size()) {
            throw new IllegalArgumentException("block " + b + ": choice for " + choice.length + " layers, expected " + b.size());
        }
        for (int[] c : choice) {
            if (c.length != GROUPS) {
                throw new IllegalArgumentException("block " + b + ": choice of " + c.length + " sites, expected " + GROUPS);
            }
            for (int gi : c) {
                if (gi < 0 || gi >= grid.length) {
                    throw new IllegalArgumentException("block " + b + ": grid index " + gi + " outside 0 .. " + (grid.length - 1));
                }
            }
        }
    }

    static int[][] copyChoice(int[][] c) {
        int[][] out = new int[c.length][];
        for (int i = 0; i < c.length; i++) {
            out[i] = c[i].clone();
        }
        return out;
    }

    private static List<float[]> copies(List<float[]> a) {
        List<float[]> out = new ArrayList<>(a.size());
        for (float[] x : a) {
            out.add(Arrays.copyOf(x, x.length));
        }
        return out;
    }
}
