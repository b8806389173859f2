package org.qvlm4j.quant.qvlm;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.qvlm4j.io.config.LlavaConfig;
import org.qvlm4j.io.safetensors.SafeTensors;
import org.qvlm4j.io.safetensors.SafeTensorsWriter;
import org.qvlm4j.io.safetensors.TensorEntry;
import org.qvlm4j.kernels.DType;
import org.qvlm4j.quant.QuantPlan;
import org.qvlm4j.quant.Ranges;
import org.qvlm4j.tensor.Tensor;
import org.qvlm4j.train.optim.AdamW;

/**
 * The state of a {@link VisualEncoderOptimizer} run after a finished epoch, in one safetensors file
 * (written atomically), so that a killed run resumes to the same bytes: the clipping factors, the
 * AdamW moments and step of each, the number of epochs and updates done, the loss terms at the start
 * (and, once every epoch is done, at the end), the epoch log and the wall seconds spent. Tensors are
 * named by parameter ({@code <site>.alpha_lo}, {@code <site>.alpha_lo.adam_m},
 * {@code <site>.alpha_lo.adam_v}); everything else is JSON in the {@value #STATE_KEY} metadata entry.
 * The sample order of the epochs done is not stored: it is replayed from the seed.
 *
 * <p>Left out: resuming inside an epoch (an epoch is the unit of work, as a block is for the search).
 */
final class VeoCheckpoint {
    static final String FORMAT = "qvlm4j-veo-state";
    static final String STATE_KEY = "state";
    static final int VERSION = 1;
    private static final String MOMENT_M = ".adam_m";
    private static final String MOMENT_V = ".adam_v";

    /**
     * The state after {@code epochsDone} epochs.
     *
     * @param factors  parameter name → its values
     * @param moments  parameter name → AdamW's moments and step (absent before a parameter's first update)
     * @param last     the terms at the final factors once every epoch is done, else null
     */
    record State(int epochsDone, int epochs, int step, Map<String, float[]> factors,
                 Map<String, AdamW.ParamState> moments, VeoResult.Terms initial, VeoResult.Terms last,
                 List<VeoResult.Epoch> log, double seconds) {
        boolean finished() {
            return last != null;
        }
    }

    /** Where a run keeps its state; a store may also stop the run after a save (a test's simulated kill). */
    interface Store {
        Optional<State> load();

        void save(State s);

        /** The file behind the store, for messages. */
        Path file();
    }

    private VeoCheckpoint() {
    }

    /** A store in file. */
    static Store at(Path file) {
        return new Store() {
            @Override
            public Optional<State> load() {
                return Files.isRegularFile(file) ? Optional.of(read(file)) : Optional.empty();
            }

            @Override
            public void save(State s) {
                write(file, s);
            }

            @Override
            public Path file() {
                return file;
            }
        };
    }

    /** The state of the parameters, as held by the live tensors and optimizer (copies). */
    static State capture(int epochsDone, int epochs, int step, List<Tensor> params, AdamW opt, VeoResult.Terms initial,
                         VeoResult.Terms last, List<VeoResult.Epoch> log, double seconds) {
        Map<String, float[]> factors = new LinkedHashMap<>();
        Map<String, AdamW.ParamState> moments = new LinkedHashMap<>();
        for (Tensor p : params) {
            factors.put(p.name(), p.data().clone());
            AdamW.ParamState st = opt.state(p);
            if (st != null) {
                moments.put(p.name(), new AdamW.ParamState(st.m().clone(), st.v().clone(), st.step()));
            }
        }
        return new State(epochsDone, epochs, step, factors, moments, initial, last, List.copyOf(log), seconds);
    }

    /** Puts the state's factors and moments back into the live tensors and optimizer. */
    static void restore(State s, List<Tensor> params, AdamW opt, Path file) {
        if (s.factors().size() != params.size()) {
            throw new IllegalArgumentException(file + ": holds " + s.factors().size() + " clipping factors, this run has "
                    + params.size() + "; the work directory does not match this model and plan");
        }
        for (Tensor p : params) {
            float[] v = s.factors().get(p.name());
            if (v == null || v.length != p.numel()) {
                throw new IllegalArgumentException(file + ": tensor " + p.name() + ": expected " + p.numel()
                        + " values, got " + (v == null ? "none" : v.length));
            }
            System.arraycopy(v, 0, p.data(), 0, v.length);
            AdamW.ParamState m = s.moments().get(p.name());
            if (m != null) {
                opt.setState(p, m.m(), m.v(), m.step());
            }
        }
    }

    /**
     * The result of a finished run stored in file, without running anything: the factors applied to
     * the initial ranges exactly as the optimiser's forward applies them.
     */
    static Optional<VeoResult> finished(Store store, LlavaConfig cfg, QuantPlan plan, Map<String, Ranges> initial,
                                        int epochs) {
        Path file = store.file();
        Optional<State> s = store.load();
        if (s.isEmpty() || !s.get().finished()) {
            return Optional.empty();
        }
        State st = s.get();
        if (st.epochs() != epochs) {
            throw new IllegalArgumentException(file + ": key epochs: recorded " + st.epochs() + ", this run has " + epochs);
        }
        VeoForward hook = new VeoForward(cfg, plan, initial);
        restore(st, hook.parameters(), AdamW.of(hook.parameters(), 0), file);
        return Optional.of(new VeoResult(hook.ranges(), st.initial(), st.last(), st.log(), st.seconds()));
    }

    static void write(Path file, State s) {
        SafeTensorsWriter w = new SafeTensorsWriter().metadata("format", FORMAT);
        ObjectNode n = WorkDir.JSON.createObjectNode();
        n.put("version", VERSION);
        n.put("epochs_done", s.epochsDone());
        n.put("epochs", s.epochs());
        n.put("step", s.step());
        ObjectNode steps = n.putObject("adam_steps");
        s.factors().forEach((name, v) -> {
            w.addFloats(name, DType.F32, new long[] {v.length}, v);
            AdamW.ParamState m = s.moments().get(name);
            if (m != null) {
                w.addFloats(name + MOMENT_M, DType.F32, new long[] {v.length}, m.m());
                w.addFloats(name + MOMENT_V, DType.F32, new long[] {v.length}, m.v());
                steps.put(name, m.step());
            }
        });
        n.set("initial", termsJson(s.initial()));
        if (s.last() != null) {
            n.set("last", termsJson(s.last()));
        }
        ArrayNode log = n.putArray("log");
        s.log().forEach(e -> log.add(epochJson(e)));
        n.put("seconds", s.seconds());
        try {
            w.metadata(STATE_KEY, WorkDir.JSON.writeValueAsString(n));
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
        w.write(file);
    }

    static State read(Path file) {
        try (SafeTensors st = SafeTensors.open(file)) {
            if (!FORMAT.equals(st.metadata().get("format"))) {
                throw new IllegalArgumentException(file + ": metadata key format: expected " + FORMAT + ", got "
                        + st.metadata().get("format"));
            }
            JsonNode n;
            try {
                n = WorkDir.JSON.readTree(st.metadata().getOrDefault(STATE_KEY, ""));
            } catch (IOException e) {
                throw new IllegalArgumentException(file + ": metadata key " + STATE_KEY + ": not JSON: " + e.getMessage(), e);
            }
            if (n == null || n.path("version").asInt(-1) != VERSION) {
                throw new IllegalArgumentException(file + ": metadata key " + STATE_KEY + ".version: expected " + VERSION
                        + ", got " + (n == null ? "nothing" : n.path("version")));
            }
            Map<String, float[]> factors = new LinkedHashMap<>();
            Map<String, AdamW.ParamState> moments = new LinkedHashMap<>();
            JsonNode steps = n.path("adam_steps");
            for (Map.Entry<String, TensorEntry> e : st.tensors().entrySet()) {
                String name = e.getKey();
                if (name.endsWith(MOMENT_M) || name.endsWith(MOMENT_V)) {
                    continue;
                }
                factors.put(name, e.getValue().toFloatArray());
                if (steps.has(name)) {
                    moments.put(name, new AdamW.ParamState(tensor(st, file, name + MOMENT_M),
                            tensor(st, file, name + MOMENT_V), steps.get(name).asLong()));
                }
            }
            List<VeoResult.Epoch> log = new ArrayList<>();
            for (JsonNode e : n.path("log")) {
                log.add(new VeoResult.Epoch(e.path("epoch").asInt(), doubles(e.path("weights")), terms(e.path("terms")),
                        e.path("last_lr").asDouble()));
            }
            return new State(n.path("epochs_done").asInt(), n.path("epochs").asInt(), n.path("step").asInt(), factors,
                    moments, terms(n.path("initial")), n.has("last") ? terms(n.path("last")) : null, log,
                    n.path("seconds").asDouble());
        }
    }

    private static float[] tensor(SafeTensors st, Path file, String name) {
        TensorEntry e = st.tensors().get(name);
        if (e == null) {
            throw new IllegalArgumentException(file + ": tensor " + name + " is missing");
        }
        return e.toFloatArray();
    }

    /** The loss terms as JSON (also the report's form). */
    static ObjectNode termsJson(VeoResult.Terms t) {
        ObjectNode o = WorkDir.JSON.createObjectNode();
        o.put("total", t.total());
        o.put("reg", t.reg());
        o.put("ent", t.ent());
        o.put("err", t.err());
        o.put("err_vision", t.errVision());
        o.put("err_llm", t.errLlm());
        o.set("entropies", WorkDir.doubles(t.entropies()));
        return o;
    }

    /** One epoch's log entry as JSON (also the report's form). */
    static ObjectNode epochJson(VeoResult.Epoch e) {
        ObjectNode o = WorkDir.JSON.createObjectNode();
        o.put("epoch", e.epoch());
        o.set("weights", WorkDir.doubles(e.weights()));
        o.set("terms", termsJson(e.terms()));
        o.put("last_lr", e.lastLr());
        return o;
    }

    private static VeoResult.Terms terms(JsonNode o) {
        return new VeoResult.Terms(o.path("total").asDouble(), o.path("reg").asDouble(), o.path("ent").asDouble(),
                o.path("err").asDouble(), o.path("err_vision").asDouble(), o.path("err_llm").asDouble(),
                doubles(o.path("entropies")));
    }

    private static double[] doubles(JsonNode a) {
        double[] out = new double[a.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = a.get(i).asDouble();
        }
        return out;
    }
}
