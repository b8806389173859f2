package org.qvlm4j.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.qvlm4j.quant.qvlm.QvlmMethod;
import org.qvlm4j.quant.qvlm.VeoConfig;
import picocli.CommandLine;

/**
 * {@code quantize --method qvlm}'s options: with none given they are the library's defaults
 * ({@link QvlmMethod.Config#DEFAULT}, {@link VeoConfig#defaults()}), each given option lands in its
 * field, and bad values are errors naming the option.
 */
class QvlmOptionsTest {
    private static QvlmOptions parse(String... extra) {
        List<String> args = new ArrayList<>(List.of("--model", "m", "--method", "qvlm", "--wbits", "4", "--stats", "s",
                "--out", "o"));
        args.addAll(List.of(extra));
        QuantizeCommand cmd = new QuantizeCommand();
        new CommandLine(cmd).parseArgs(args.toArray(String[]::new));
        return cmd.qvlm;
    }

    @Test
    void noOptionsGiveTheLibraryDefaults() {
        QvlmMethod.Config c = parse().config();
        QvlmMethod.Config d = QvlmMethod.Config.DEFAULT;
        assertEquals(d.cdm(), c.cdm());
        assertEquals(d.veo(), c.veo());
        assertEquals(d.maxDepth(), c.maxDepth());
        assertArrayEquals(d.grid(), c.grid());
        assertEquals(d.h0Multiplier(), c.h0Multiplier());
        assertEquals(d.partition(), c.partition());
        assertEquals(d.proxy(), c.proxy());
        assertEquals(d.dependencyForward(), c.dependencyForward());
        assertEquals(d.perSite(), c.perSite());
        assertEquals(d.perSiteSweeps(), c.perSiteSweeps());
        assertEquals(d.seed(), c.seed());
        assertEquals(d.tau(), c.tau());
        assertEquals(d.visionPercentile(), c.visionPercentile());
        assertEquals(d.searchSamples(), c.searchSamples());
        assertEquals(d.temperature(), c.temperature());
        assertEquals(VeoConfig.defaults(), c.veoConfig());
        assertEquals("q-vlm", c.label());
    }

    @Test
    void givenOptionsLandInTheirFields() {
        QvlmMethod.Config c = parse("--no-cdm", "--no-veo", "--eta", "0.5", "--lambda1", "0.2", "--lambda2", "3",
                "--veo-epochs", "4", "--veo-lr", "0.001", "--veo-samples", "16", "--veo-batch", "2",
                "--dependency-on", "fp").config();
        assertEquals("baseline", c.label());
        assertEquals(new VeoConfig(0.5, 0.2, 3, 0.001, 4, 2, 16, VeoConfig.DEFAULT_SEED, VeoConfig.DEFAULT_BITS),
                c.veoConfig());
        assertEquals(QvlmMethod.DependencyForward.FP, c.dependencyForward());
        assertEquals("+veo", parse("--no-cdm").config().label());
        assertEquals("+cdm", parse("--no-veo").config().label());

        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> parse("--veo-epochs", "0").config());
        assertTrue(e.getMessage().contains("--veo-epochs") && e.getMessage().contains("key epochs expected >= 1, got 0"),
                e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> parse("--dependency-on", "both").config());
        assertEquals("--dependency-on: expected quantized or fp, got 'both'", e.getMessage());
    }
}
