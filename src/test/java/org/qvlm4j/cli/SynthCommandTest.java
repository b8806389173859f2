package org.qvlm4j.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qvlm4j.data.ScienceQaDataset;
import picocli.CommandLine;

class SynthCommandTest {

    @TempDir
    Path tmp;

    private final StringWriter out = new StringWriter();
    private final StringWriter err = new StringWriter();

    private int run(String... args) {
        CommandLine cl = new CommandLine(new SynthCommand());
        cl.setOut(new PrintWriter(out, true));
        cl.setErr(new PrintWriter(err, true));
        return cl.execute(args);
    }

    @Test
    void writesLoadableBenchmarkAndReportsProgressOnStderr() {
        Path dir = tmp.resolve("sqa");
        int code = run("--out", dir.toString(), "--seed", "5", "--train", "30", "--val", "5", "--test", "5",
                "--image-size", "48");
        assertEquals(0, code, err.toString());
        ScienceQaDataset ds = ScienceQaDataset.load(dir);
        assertEquals(30, ds.split("train").size());
        assertEquals(5, ds.split("test").size());
        long progressLines = err.toString().lines().filter(l -> l.startsWith("synth: ")).count();
        assertEquals(10, progressLines, err.toString());
        assertTrue(err.toString().contains("40/40 problems (100%)"), err.toString());
        assertTrue(out.toString().contains("wrote 40 problems"), out.toString());
        assertTrue(Files.isRegularFile(dir.resolve("vocab.txt")));
    }

    @Test
    void existingNonEmptyDirectoryExitsWithTwoAndIsLeftAlone() throws IOException {
        Path dir = Files.createDirectories(tmp.resolve("taken"));
        Files.writeString(dir.resolve("problems.json"), "{}");
        int code = run("--out", dir.toString(), "--seed", "1", "--train", "3", "--val", "0", "--test", "0");
        assertEquals(2, code);
        assertTrue(err.toString().contains("taken") && err.toString().contains("non-empty"), err.toString());
        assertEquals("{}", Files.readString(dir.resolve("problems.json")));
        assertFalse(Files.exists(dir.resolve("pid_splits.json")));
    }

    @Test
    void badImageSizeExitsWithTwo() {
        int code = run("--out", tmp.resolve("x").toString(), "--seed", "1", "--image-size", "8");
        assertEquals(2, code);
        assertTrue(err.toString().contains("image-size") && err.toString().contains("got 8"), err.toString());
        assertFalse(Files.exists(tmp.resolve("x")));
    }
}
