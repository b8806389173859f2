package org.qvlm4j.quant.qvlm;

import com.fasterxml.jackson.databind.node.ArrayNode;
import java.util.Arrays;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.lang.management.MemoryPoolMXBean;
import java.lang.management.MemoryType;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;

/**
 * The report of a {@link QvlmMethod} run ({@value QvlmMethod#REPORT_FILE} beside a checkpoint or a
 * search-only output, {@value QvlmMethod#RESULT_FILE} in the work directory), what the paper's
 * Tables 1, 4 and 5 are read from: the configuration and its Table 1 label, the calibration prompts
 * used, VEO's samples, settings, loss terms before and after and epoch log, the dependency values,
 * h0 and the partition, per block the chosen percentiles, block MSE, candidates, single-layer
 * forwards and seconds, the final-layer MSE, the total search cost, wall seconds per stage of this
 * process, the JVM's peak heap and, for a checkpoint, the bytes of its files against the
 * floating-point model's.
 *
 * <p>Costs of resumed work (VEO epochs, blocks) are those recorded when it was first done; stage
 * seconds are this process's.
 */
final class QvlmReport {
    private QvlmReport() {
    }

    static ObjectNode json(QvlmMethod m, QvlmMethod.Summary s) {
        ObjectNode n = WorkDir.JSON.createObjectNode();
        n.put("method", QvlmMethod.NAME);
        n.put("version", QvlmMethod.FORMAT_VERSION);
        n.put("configuration", s.label());
        n.set("config", m.config().toJson());
        ObjectNode cal = n.putObject("calibration");
        cal.put("prompts", s.prompts());
        cal.put("search_prompts", s.searchPrompts());
        cal.put("search_tokens", s.searchTokens());
        if (s.veo() == null) {
            n.putNull("veo");
        } else {
            QvlmMethod.VeoRun v = s.veo();
            ObjectNode o = n.putObject("veo");
            o.set("config", QvlmMethod.veoJson(v.config()));
            o.set("samples", v.samples());
            o.put("sites", v.result().ranges().size());
            o.set("initial", VeoCheckpoint.termsJson(v.result().initial()));
            o.set("final", VeoCheckpoint.termsJson(v.result().last()));
            ArrayNode epochs = o.putArray("epochs");
            v.result().epochs().forEach(e -> epochs.add(VeoCheckpoint.epochJson(e)));
            o.put("seconds", v.result().seconds());
            o.put("resumed_epochs", v.resumed());
        }
        if (s.refine() == null) {
            n.putNull("refine");
        } else {
            QvlmMethod.RefineRun r = s.refine();
            ObjectNode o = n.putObject("refine");
            o.set("config", QvlmMethod.refineJson(r.config()));
            ArrayNode t = o.putArray("target_layers");
            Arrays.stream(r.targets()).forEach(t::add);
            o.put("sites", r.result().ranges().size());
            o.set("epoch_objective", WorkDir.doubles(r.result().epochLoss()));
            o.put("final_objective", r.result().finalLoss());
            o.put("seconds", r.result().seconds());
            o.put("resumed", r.resumed());
        }
        n.set("partition", QvlmMethod.partitionJson(s.partition(), s.dependency(), s.h0(),
                m.config().dependencyForward()));
        n.put("num_blocks", s.blocks().size());
        ArrayNode blocks = n.putArray("blocks");
        double seconds = 0;
        long forwards = 0;
        long candidates = 0;
        for (QvlmMethod.BlockResult r : s.blocks()) {
            ObjectNode o = blocks.addObject();
            o.put("first", r.block().first());
            o.put("last", r.block().last());
            ArrayNode ps = o.putArray("percentiles");
            for (double[] layer : r.percentiles()) {
                ps.add(WorkDir.doubles(layer));
            }
            o.put("mse", r.mse());
            o.put("candidates", r.candidates());
            o.put("forwards", r.forwards());
            o.put("seconds", r.seconds());
            o.put("resumed", r.resumed());
            seconds += r.seconds();
            forwards += r.forwards();
            candidates += r.candidates();
        }
        n.put("final_mse", s.finalMse());
        ObjectNode cost = n.putObject("search_cost");
        cost.put("seconds", seconds);
        cost.put("forwards", forwards);
        cost.put("candidates", candidates);
        ObjectNode stages = n.putObject("stages");
        s.stages().forEach(stages::put);
        ObjectNode mem = n.putObject("memory");
        mem.put("jvm_peak_heap_bytes", peakHeap());
        mem.put("jvm_max_heap_bytes", Runtime.getRuntime().maxMemory());
        return n;
    }

    /** Bytes of every file of the checkpoint directory dir, and of the floating-point model's safetensors. */
    static ObjectNode checkpointJson(Path dir, Path modelDir) throws IOException {
        ObjectNode n = WorkDir.JSON.createObjectNode();
        ObjectNode files = n.putObject("files");
        long total = 0;
        for (Path f : sorted(dir)) {
            long b = Files.size(f);
            files.put(f.getFileName().toString(), b);
            total += b;
        }
        long fp = 0;
        for (Path f : sorted(modelDir)) {
            if (f.getFileName().toString().endsWith(".safetensors")) {
                fp += Files.size(f);
            }
        }
        n.put("bytes", total);
        n.put("fp_weights_bytes", fp);
        return n;
    }

    private static List<Path> sorted(Path dir) throws IOException {
        try (Stream<Path> s = Files.list(dir)) {
            return s.filter(Files::isRegularFile).sorted().toList();
        }
    }

    /**
     * Sum over the heap's memory pools of each pool's peak use since the JVM started: an upper
     * bound of the peak heap (pools peak at different times).
     */
    private static long peakHeap() {
        long sum = 0;
        for (MemoryPoolMXBean p : ManagementFactory.getMemoryPoolMXBeans()) {
            if (p.getType() == MemoryType.HEAP && p.getPeakUsage() != null) {
                sum += p.getPeakUsage().getUsed();
            }
        }
        return sum;
    }
}
