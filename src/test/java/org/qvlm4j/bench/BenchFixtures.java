package org.qvlm4j.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.stream.Stream;
import org.qvlm4j.cli.Main;
import org.qvlm4j.model.LlavaModel;
import org.qvlm4j.quant.calib.CalibrationStats;
import org.qvlm4j.quant.calib.CalibrationTap;
import org.qvlm4j.quant.calib.Calibrator;
import org.qvlm4j.quant.calib.ModelFingerprint;
import org.qvlm4j.quant.calib.SiteStats;

/**
 * The bundled tiny LLaVA (the HF fixture's configuration and weights, with tokenizer and
 * preprocessor) and its RTN W4 packed export, with the shapes of its linears written out by hand.
 */
public final class BenchFixtures {
    public static final Path TINY = Path.of("models/tiny-llava");
    private static final long CALIB_SEED = 5;
    private static final int HISTOGRAM_BINS = 256;
    /** The export, made once per test JVM (it takes a calibration run). */
    private static Path sharedExport;

    /** (N, K) of a vision layer's q, k, v, out_proj, fc1, fc2: hidden 32, intermediate 37. */
    public static final List<int[]> VISION_LAYER = List.of(new int[] {32, 32}, new int[] {32, 32}, new int[] {32, 32},
            new int[] {32, 32}, new int[] {37, 32}, new int[] {32, 37});
    /** (N, K) of a decoder layer's q, k, v, o, gate, up, down_proj: 4 heads of 8, intermediate 37. */
    public static final List<int[]> TEXT_LAYER = List.of(new int[] {32, 32}, new int[] {32, 32}, new int[] {32, 32},
            new int[] {32, 32}, new int[] {37, 32}, new int[] {37, 32}, new int[] {32, 37});
    /** projector linear_1, linear_2. */
    public static final List<int[]> PROJECTOR = List.of(new int[] {32, 32}, new int[] {32, 32});
    /** The patch embedding, a conv over 3 channels x 2 x 2 pixels, as a (32, 12) linear. */
    public static final int[] PATCH_EMBED = {32, 12};
    /** lm_head over the 99-token vocabulary. */
    public static final int[] LM_HEAD = {99, 32};
    public static final int LAYERS = 2;
    /** Parameters of the whole tiny model (as `qvlm4j inspect` counts them). */
    public static final long PARAMETERS = 38_570;

    private BenchFixtures() {
    }

    /** The linears RTN quantizes by default (all but the patch embedding and lm_head). */
    public static List<int[]> quantizedLinears() {
        List<int[]> all = new ArrayList<>();
        for (int l = 0; l < LAYERS; l++) {
            all.addAll(VISION_LAYER);
        }
        all.addAll(PROJECTOR);
        for (int l = 0; l < LAYERS; l++) {
            all.addAll(TEXT_LAYER);
        }
        return all;
    }

    /**
     * The tiny model's RTN W4 export, made on first use in a temporary directory that is removed
     * when the test JVM exits; callers must not modify it.
     */
    public static synchronized Path int4Export() {
        if (sharedExport == null) {
            try {
                Path work = Files.createTempDirectory("qvlm4j-bench-fixture-");
                Runtime.getRuntime().addShutdownHook(new Thread(() -> deleteTree(work)));
                sharedExport = int4Export(work);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
        return sharedExport;
    }

    private static void deleteTree(Path dir) {
        try (Stream<Path> s = Files.walk(dir)) {
            for (Path p : s.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        } catch (IOException ignored) {
            // the JVM is exiting; a temporary directory left behind is harmless
        }
    }

    /**
     * Writes the tiny model's RTN W4 (per output channel, asymmetric) export to work/tiny-int4 and
     * returns it: statistics of every linear input over the benchmark's own prompt, collected with
     * a calibration tap as the quantization tests do, then the {@code quantize} command.
     */
    private static Path int4Export(Path work) {
        Path stats = work.resolve("stats");
        try (LlavaModel m = LlavaModel.load(TINY)) {
            List<String> sites = m.linears().stream().map(l -> l.name() + ".in").toList();
            SiteStats.Options o = new SiteStats.Options(HISTOGRAM_BINS, 0, false, false);
            CalibrationTap tap = new CalibrationTap(site -> sites.contains(site) ? o : null, null);
            m.setActivationTap(tap);
            ModelBench.Prompt p = ModelBench.prompt(TINY, m.config(), new ModelBench.Options(0, 1, 1, 0, CALIB_SEED,
                    ModelBench.DEFAULT_PROMPT, null));
            m.forward(p.ids(), p.pixels());
            ObjectNode manifest = new ObjectMapper().createObjectNode();
            manifest.put("format", CalibrationStats.FORMAT).put("version", CalibrationStats.FORMAT_VERSION);
            manifest.putObject("model").put("digest", ModelFingerprint.of(TINY).digest());
            CalibrationStats.write(stats, manifest, tap.stats(), Calibrator.PERCENTILE_GRID, false);
        }
        Path out = work.resolve("tiny-int4");
        cli("quantize", "--model", TINY.toString(), "--method", "rtn", "--wbits", "4", "--stats", stats.toString(),
                "--out", out.toString());
        return out;
    }

    private static void cli(String... args) {
        StringWriter err = new StringWriter();
        int code = Main.run(args, new PrintWriter(new StringWriter(), true), new PrintWriter(err, true));
        assertEquals(0, code, String.join(" ", args) + ": " + err);
    }

    /** The JSON header length of a safetensors file (its first 8 bytes, little-endian). */
    public static long safetensorsHeaderBytes(Path file) throws IOException {
        try (FileChannel ch = FileChannel.open(file)) {
            ByteBuffer b = ByteBuffer.allocate(Long.BYTES).order(ByteOrder.LITTLE_ENDIAN);
            ch.read(b, 0);
            return b.flip().getLong();
        }
    }
}
