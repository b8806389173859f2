package org.qvlm4j.quant;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.qvlm4j.quant.QuantSpec.Clip;
import org.qvlm4j.quant.QuantSpec.Format;
import org.qvlm4j.quant.QuantSpec.Granularity;
import org.qvlm4j.quant.QuantSpec.Target;

/** Spec validation, the compact string form and JSON. */
class QuantSpecTest {

    /** Every valid combination of the spec's dimensions (uniform), plus NF4 variants. */
    static List<QuantSpec> allSpecs() {
        List<QuantSpec> out = new ArrayList<>();
        Clip[] clips = {Clip.NONE, Clip.ratio(0.9), Clip.ratio(1), Clip.percentile(0.999), Clip.percentile(0.99995)};
        for (int bits = QuantSpec.MIN_BITS; bits <= QuantSpec.MAX_BITS; bits++) {
            for (boolean sym : new boolean[] {false, true}) {
                for (Clip clip : clips) {
                    out.add(QuantSpec.weight(bits, sym, Granularity.PER_TENSOR, 0).withClip(clip));
                    out.add(QuantSpec.weight(bits, sym, Granularity.PER_CHANNEL, 0).withClip(clip));
                    for (int g : new int[] {32, 64, 128, 48}) {
                        out.add(QuantSpec.weight(bits, sym, Granularity.PER_GROUP, g).withClip(clip));
                    }
                    for (boolean dyn : new boolean[] {false, true}) {
                        for (Granularity gr : new Granularity[] {Granularity.PER_TENSOR, Granularity.PER_CHANNEL,
                                Granularity.PER_TOKEN}) {
                            out.add(QuantSpec.activation(bits, sym, gr, dyn).withClip(clip));
                        }
                    }
                    out.add(new QuantSpec(Format.UNIFORM, Target.ACTIVATION, bits, sym, Granularity.PER_GROUP, 128,
                            true, clip, 0));
                }
            }
        }
        out.add(QuantSpec.nf4(false));
        out.add(QuantSpec.nf4(true));
        out.add(new QuantSpec(Format.NF4, Target.WEIGHT, 4, true, Granularity.BLOCK, 128, false, Clip.NONE, 512));
        return out;
    }

    @Test
    void stringFormRoundTripsForEverySpec() {
        List<QuantSpec> specs = allSpecs();
        java.util.Set<String> strings = new java.util.HashSet<>();
        for (QuantSpec s : specs) {
            assertEquals(s, QuantSpec.parse(s.toString()), s.toString());
            strings.add(s.toString());
        }
        assertEquals(specs.size(), strings.size(), "distinct specs have distinct strings");
    }

    @Test
    void jsonRoundTripsForEverySpec() {
        for (QuantSpec s : allSpecs()) {
            assertEquals(s, QuantJson.read(QuantJson.write(s), QuantSpec.class), s.toString());
        }
    }

    @ParameterizedTest
    @CsvSource({
        "w4-asym-g128, WEIGHT, 4, false, PER_GROUP, 128, false",
        "a8-sym-token-dynamic, ACTIVATION, 8, true, PER_TOKEN, 0, true",
        "a6-asym-channel-static, ACTIVATION, 6, false, PER_CHANNEL, 0, false",
        "A6-ASYM-CHANNEL, ACTIVATION, 6, false, PER_CHANNEL, 0, false",
        "w2-sym-tensor, WEIGHT, 2, true, PER_TENSOR, 0, false",
    })
    void parsesTheDocumentedExamples(String text, Target target, int bits, boolean sym, Granularity g, int group,
            boolean dynamic) {
        QuantSpec s = QuantSpec.parse(text);
        assertEquals(new QuantSpec(Format.UNIFORM, target, bits, sym, g, group, dynamic, Clip.NONE, 0), s);
    }

    @Test
    void canonicalFormsAndNf4() {
        assertEquals("w4-asym-g128", QuantSpec.weight(4, false, Granularity.PER_GROUP, 128).toString());
        assertEquals("a8-sym-token-dynamic", QuantSpec.activation(8, true, Granularity.PER_TOKEN, true).toString());
        assertEquals("a4-asym-channel-static-pct0.999",
                QuantSpec.activation(4, false, Granularity.PER_CHANNEL, false).withClip(Clip.percentile(0.999))
                        .toString());
        assertEquals("nf4-b64", QuantSpec.nf4(false).toString());
        assertEquals("nf4-b64-dq256", QuantSpec.nf4(true).toString());
        assertEquals(QuantSpec.nf4(true), QuantSpec.parse("nf4-dq"));
        assertEquals(255, QuantSpec.parse("w8-asym-channel").qmax());
        assertEquals(-7, QuantSpec.parse("w4-sym-channel").qmin());
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
        "w9-asym-channel | bits",
        "w1-asym-channel | bits",
        "w4-asym-token | PER_TOKEN for weights",
        "w4-asym-channel-dynamic | dynamic",
        "a4-asym-g128-static | PER_GROUP only with dynamic",
        "w4-asym-g0 | groupSize",
        "w4-asym-channel-clip1.5 | clip ratio",
        "a4-asym-token-dynamic-pct0.4 | clip percentile",
        "w4-half-channel | token 'half'",
        "x4-asym-channel | token 'x4'",
        "w4-asym-rows | token 'rows'",
        "w4-asym | expected <w|a><bits>",
        "wq-asym-channel | bad number",
        "nf4-b64-zz | token 'zz'",
        "nf4-b0 | NF4 block size",
    })
    void invalidSpecsFailWithAMessageNamingTheProblem(String text, String fragment) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> QuantSpec.parse(text));
        assertTrue(e.getMessage().contains(fragment), "'" + e.getMessage() + "' should mention '" + fragment + "'");
    }

    @Test
    void invalidJsonIsRejectedByTheSpecsOwnValidation() {
        String json = QuantJson.write(QuantSpec.weight(4, false, Granularity.PER_CHANNEL, 0)).replace("\"bits\" : 4",
                "\"bits\" : 9");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> QuantJson.read(json, QuantSpec.class));
        assertTrue(e.getMessage().contains("bits"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> QuantJson.read("{\"bogus\": 1}", QuantSpec.class));
    }

    @Test
    void nf4RejectsUniformOptions() {
        assertThrows(IllegalArgumentException.class, () -> new QuantSpec(Format.NF4, Target.WEIGHT, 8, true,
                Granularity.BLOCK, 64, false, Clip.NONE, 0));
        assertThrows(IllegalArgumentException.class, () -> new QuantSpec(Format.NF4, Target.ACTIVATION, 4, true,
                Granularity.BLOCK, 64, false, Clip.NONE, 0));
        assertThrows(IllegalArgumentException.class, () -> new QuantSpec(Format.UNIFORM, Target.WEIGHT, 4, true,
                Granularity.PER_CHANNEL, 0, false, Clip.NONE, 256));
    }
}
