package org.qvlm4j.experiments;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The harder testbed (per-tensor LLM inputs) in an experiment's identity, command line and quantize arguments. */
class SettingsTest {

    private static Settings settings(boolean tensor) {
        return new Settings(Path.of("models/ref"), Path.of("data/ref"), Path.of("out"), 64, 0, "test", 0, 128, 2, 3, 32,
                false, List.of(), false, tensor);
    }

    private static ObjectNode identity(Settings s) {
        return s.identity(ExperimentRunner.JSON.createObjectNode(), "digest", "sha");
    }

    @Test
    void perTensorInputsAreRecordedAndARunOfTheOtherTestbedIsRefused() {
        ObjectNode channel = identity(settings(false));
        ObjectNode tensor = identity(settings(true));
        assertFalse(channel.has("llm_inputs"), "the default testbed keeps earlier runs' identity");
        assertEquals("tensor", tensor.path("llm_inputs").asText());
        assertNull(Settings.firstDifference(tensor, identity(settings(true))));
        assertEquals("llm_inputs (--llm-inputs): earlier absent, now tensor", Settings.firstDifference(channel, tensor));
        assertEquals("llm_inputs (--llm-inputs): earlier tensor, now absent", Settings.firstDifference(tensor, channel));
        // the legacy constructor is the default testbed
        assertEquals(settings(false), new Settings(Path.of("models/ref"), Path.of("data/ref"), Path.of("out"), 64, 0,
                "test", 0, 128, 2, 3, 32, false, List.of(), false));
    }

    @Test
    void commandLineRepeatsTheTestbed() {
        assertTrue(settings(true).commandLine(Experiment.HEADLINE).endsWith("--max-new-tokens 128 --llm-inputs tensor"),
                settings(true).commandLine(Experiment.HEADLINE));
        assertFalse(settings(false).commandLine(Experiment.HEADLINE).contains("--llm-inputs"));
    }

    @Test
    void quantizeArgumentsOfEachConfigurationOnEachTestbed() {
        ConfigSpec qvlm = ConfigSpec.qvlm(4, 4, ConfigSpec.QvlmVariant.FULL);
        ConfigSpec rtn = ConfigSpec.baseline("rtn", 4, 4);
        ConfigSpec weightOnly = ConfigSpec.baseline("gptq", 4, 16);
        assertEquals(List.of(), ExperimentRunner.testbedArgs(settings(false), qvlm, List.of()));
        assertEquals(List.of(), ExperimentRunner.testbedArgs(settings(false), rtn, List.of()));
        assertEquals(List.of("--llm-inputs", "tensor"), ExperimentRunner.testbedArgs(settings(true), rtn, List.of()));
        assertEquals(List.of(), ExperimentRunner.testbedArgs(settings(true), weightOnly, List.of()));
        assertEquals(List.of(), ExperimentRunner.testbedArgs(settings(true), ConfigSpec.fp(), List.of()));
        assertEquals(List.of("--llm-inputs", "tensor", "--block-error", "normed", "--p-grid", "1,0.999,0.998,0.995,0.99,0.985,0.98",
                        "--smooth-alpha", "1.0"),
                ExperimentRunner.testbedArgs(settings(true), qvlm, List.of("--cdm", "--veo")));
        ConfigSpec sq = ConfigSpec.smoothQuantAll(4, 4);
        assertEquals("smoothquant-a1-all-w4a4", sq.id());
        assertEquals(List.of("--alpha", "1.0", "--smooth-all"), sq.flags().get(0).tokens());
        assertTrue(Experiment.HEADLINE.configs().contains(sq), "the headline shows the tuned SmoothQuant");
        assertEquals("SmoothQuant (α = 1.0, all linears)", ResultTables.methodName(sq));
        assertEquals("SmoothQuant", ResultTables.methodName(ConfigSpec.baseline("smoothquant", 4, 4)));
        assertEquals(List.of("--llm-inputs", "tensor"), ExperimentRunner.testbedArgs(settings(true), sq, List.of()));
        // a sweep's own grid and alpha stay
        assertEquals(List.of("--llm-inputs", "tensor", "--block-error", "normed"),
                ExperimentRunner.testbedArgs(settings(true), qvlm, List.of("--p-grid", "1,0.99", "--smooth-alpha", "0.5")));
    }
}
