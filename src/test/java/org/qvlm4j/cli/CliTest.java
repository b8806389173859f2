package org.qvlm4j.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qvlm4j.io.safetensors.SafeTensors;
import org.qvlm4j.io.safetensors.TensorEntry;

/** The commands end to end through {@link Main#run}: outputs against the HF fixture, exit codes on bad input. */
class CliTest {
    private static final Path FIXTURE = Path.of("src/test/resources/fixtures/tiny-llava");
    private static final Path MODEL = Path.of("models/tiny-llava");
    private static final double LOGITS_TOL = 1e-4;

    private record Run(int code, String out, String err) {}

    private static Run run(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        int code = Main.run(args, new PrintWriter(out, true), new PrintWriter(err, true));
        return new Run(code, out.toString(), err.toString());
    }

    @Test
    void logitsCommandMatchesTransformers(@TempDir Path tmp) {
        Path outFile = tmp.resolve("logits.safetensors");
        try (SafeTensors ref = SafeTensors.open(FIXTURE.resolve("reference_forward.safetensors"))) {
            String ids = Arrays.stream(ref.get("input_ids").toLongArray()).mapToObj(Long::toString)
                    .collect(Collectors.joining(","));
            Run r = run("logits", "--model", FIXTURE.toString(), "--input-ids", ids,
                    "--pixel-values", FIXTURE.resolve("reference_forward.safetensors").toString(),
                    "--out", outFile.toString());
            assertEquals(0, r.code(), r.err());
            float[] want = ref.get("logits").toFloatArray();
            try (SafeTensors got = SafeTensors.open(outFile)) {
                TensorEntry logits = got.get("logits");
                assertArrayEquals(new long[] {21, 99}, logits.shape());
                float[] g = logits.toFloatArray();
                double max = 0;
                for (int i = 0; i < want.length; i++) {
                    max = Math.max(max, Math.abs(g[i] - want[i]));
                }
                assertTrue(max < LOGITS_TOL, "max |logits - HF| = " + max);
            }
        }
    }

    @Test
    void logitsRejectsMisshapedPixels(@TempDir Path tmp) {
        Run r = run("logits", "--model", FIXTURE.toString(), "--input-ids", "1,5,6",
                "--pixel-values", FIXTURE.resolve("reference_forward.safetensors").toString(),
                "--tensor", "image_features", "--out", tmp.resolve("x.safetensors").toString());
        assertEquals(Main.EXIT_BAD_INPUT, r.code());
        assertTrue(r.err().contains("image_features") && r.err().contains("[16, 32]"), r.err());
        assertFalse(Files.exists(tmp.resolve("x.safetensors")));
    }

    @Test
    void generateIsDeterministicAndGreedyMatchesFixtureModel() {
        Run a = run("generate", "--model", MODEL.toString(), "--image", "examples/chelsea.jpg",
                "--prompt", "what is this", "--max-new-tokens", "6");
        Run b = run("generate", "--model", MODEL.toString(), "--image", "examples/chelsea.jpg",
                "--prompt", "what is this", "--max-new-tokens", "6");
        assertEquals(0, a.code(), a.err());
        assertEquals(a.out(), b.out());
        assertTrue(a.err().contains("prefill:") && a.err().contains("tokens/s"), a.err());
    }

    @Test
    void sampledGenerationRepeatsWithTheSameSeed() {
        String[] args = {"generate", "--model", MODEL.toString(), "--image", "examples/chelsea.jpg",
            "--prompt", "describe", "--max-new-tokens", "8", "--temperature", "1.5", "--top-p", "0.9", "--seed", "7"};
        Run a = run(args);
        Run b = run(args);
        assertEquals(0, a.code(), a.err());
        assertEquals(a.out(), b.out());
    }

    @Test
    void badInputExitsWithTwo(@TempDir Path tmp) throws Exception {
        assertEquals(Main.EXIT_BAD_INPUT, run("inspect", tmp.resolve("missing").toString()).code());
        assertEquals(Main.EXIT_BAD_INPUT, run("generate", "--model", MODEL.toString()).code()); // no --prompt
        Path text = Files.writeString(tmp.resolve("notes.png"), "not an image");
        Run r = run("generate", "--model", MODEL.toString(), "--image", text.toString(), "--prompt", "hi");
        assertEquals(Main.EXIT_BAD_INPUT, r.code());
        assertTrue(r.err().contains("notes.png"), r.err());
        Run neg = run("generate", "--model", MODEL.toString(), "--prompt", "hi", "--max-new-tokens", "0");
        assertEquals(Main.EXIT_BAD_INPUT, neg.code());
        assertEquals(Main.EXIT_BAD_INPUT, run("frobnicate").code());
        Path noTok = tmp.resolve("no-tokenizer");
        Files.createDirectories(noTok);
        Files.copy(MODEL.resolve("config.json"), noTok.resolve("config.json"));
        Files.copy(MODEL.resolve("model.safetensors"), noTok.resolve("model.safetensors"));
        Run nt = run("generate", "--model", noTok.toString(), "--prompt", "hi");
        assertEquals(Main.EXIT_BAD_INPUT, nt.code());
        assertTrue(nt.err().contains("tokenizer.json"), nt.err());
    }

    @Test
    void inspectListsComponentsAndTensors() {
        Run r = run("inspect", MODEL.toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("vision_tower.vision_model.pre_layrnorm.weight"));
        assertTrue(r.out().matches("(?s).*total\\s+38,570\\s.*"), r.out());
    }
}
