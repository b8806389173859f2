package org.qvlm4j.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.util.List;
import org.qvlm4j.cli.Main;
import org.qvlm4j.data.SynthBenchmark;

/**
 * The bundled tiny LLaVA (the HF fixture's configuration and weights, with tokenizer and
 * preprocessor) and its RTN W4 export made with the commands a user runs (calibrate on a small
 * synthetic benchmark, then quantize), with the shapes of its linears written out by hand.
 */
public final class BenchFixtures {
    public static final Path TINY = Path.of("models/tiny-llava");
    private static final long DATA_SEED = 5;
    private static final int DATA_IMAGE_SIZE = 48;
    private static final int CALIB_SAMPLES = 3;

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
        List<int[]> all = new java.util.ArrayList<>();
        for (int l = 0; l < LAYERS; l++) {
            all.addAll(VISION_LAYER);
        }
        all.addAll(PROJECTOR);
        for (int l = 0; l < LAYERS; l++) {
            all.addAll(TEXT_LAYER);
        }
        return all;
    }

    /** Writes the tiny model's RTN W4 (per output channel, asymmetric) export to work/tiny-int4 and returns it. */
    public static Path int4Export(Path work) {
        Path data = work.resolve("data");
        SynthBenchmark.write(data, new SynthBenchmark.Options(DATA_SEED, CALIB_SAMPLES, 0, 1, DATA_IMAGE_SIZE), null);
        Path stats = work.resolve("stats");
        cli("calibrate", "--model", TINY.toString(), "--data", data.toString(), "--n", String.valueOf(CALIB_SAMPLES),
                "--seed", "0", "--out", stats.toString());
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
