package org.qvlm4j.quant;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.EnumMap;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.qvlm4j.model.Linear;
import org.qvlm4j.model.LlavaModel;
import org.qvlm4j.quant.QuantSpec.Granularity;

/** Category mapping, preset defaults, overrides and JSON of plans. */
class QuantPlanTest {
    static final Path TINY = Path.of("src/test/resources/fixtures/tiny-llava");

    @Test
    void everyLinearOfTheTinyModelHasTheExpectedCategory() {
        Map<TensorCategory, Integer> counts = new EnumMap<>(TensorCategory.class);
        try (LlavaModel model = LlavaModel.load(TINY)) {
            for (Linear l : model.linears()) {
                TensorCategory c = TensorCategory.of(l.name());
                counts.merge(c, 1, Integer::sum);
                String expectedSuffix = switch (c) {
                    case VISION_Q, LLM_Q -> "q_proj";
                    case VISION_K, LLM_K -> "k_proj";
                    case VISION_V, LLM_V -> "v_proj";
                    case VISION_OUT -> "out_proj";
                    case LLM_O -> "o_proj";
                    case VISION_FC1 -> "fc1";
                    case VISION_FC2 -> "fc2";
                    case LLM_GATE -> "gate_proj";
                    case LLM_UP -> "up_proj";
                    case LLM_DOWN -> "down_proj";
                    case PROJECTOR -> "linear_" + l.name().charAt(l.name().length() - 1);
                    case VISION_PATCH_EMBED -> "patch_embedding";
                    case LM_HEAD -> "lm_head";
                    case EMBEDDINGS -> "no linear";
                };
                assertTrue(l.name().endsWith(expectedSuffix), l.name() + " → " + c);
                assertEquals(c.family() == TensorCategory.Family.VISION, l.name().startsWith("vision."), l.name());
            }
        }
        int layers = 2;
        Map<TensorCategory, Integer> expected = new EnumMap<>(TensorCategory.class);
        for (TensorCategory c : TensorCategory.values()) {
            expected.put(c, switch (c) {
                case VISION_PATCH_EMBED, LM_HEAD -> 1;
                case PROJECTOR -> 2;
                case EMBEDDINGS -> 0;
                default -> layers;
            });
        }
        expected.values().removeIf(v -> v == 0);
        assertEquals(expected, counts);
    }

    @Test
    void namesOutsideTheCategoriesAreRejected() {
        assertTrue(TensorCategory.find("llm.layers.0.in").isEmpty());
        assertTrue(TensorCategory.find("vision.layers.1.self_attn.o_proj").isEmpty());
        assertTrue(TensorCategory.find("llm.layers.0.self_attn.out_proj").isEmpty());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> TensorCategory.of("llm.layers.x.mlp.down_proj"));
        assertTrue(e.getMessage().contains("llm.layers.x.mlp.down_proj"), e.getMessage());
        assertEquals(TensorCategory.LLM_DOWN, TensorCategory.of("llm.layers.31.mlp.down_proj"));
        assertEquals(TensorCategory.VISION_OUT, TensorCategory.of("vision.layers.23.self_attn.out_proj"));
        assertEquals(TensorCategory.EMBEDDINGS, TensorCategory.of("llm.embed_tokens"));
        assertThrows(IllegalArgumentException.class, () -> TensorCategory.ofKey("llm.mlp"));
    }

    @Test
    void presetDefaultsFollowThePaper() {
        for (QuantPreset p : QuantPreset.values()) {
            QuantPlan plan = QuantPlan.preset(p);
            for (TensorCategory c : TensorCategory.values()) {
                LinearQuant e = plan.entry(c);
                if (c == TensorCategory.EMBEDDINGS || c == TensorCategory.LM_HEAD
                        || c == TensorCategory.VISION_PATCH_EMBED) {
                    assertTrue(e.isFloatingPoint(), p + " " + c);
                    continue;
                }
                assertEquals(p.weightBits(), e.weight().bits(), p + " " + c);
                assertEquals(p == QuantPreset.W4A16 ? Granularity.PER_GROUP : Granularity.PER_CHANNEL,
                        e.weight().granularity(), p + " " + c);
                if (p.activationBits() == QuantPreset.FLOAT_BITS) {
                    assertNull(e.input(), p + " " + c);
                } else if (c.family() == TensorCategory.Family.LLM) {
                    assertEquals(QuantSpec.activation(p.activationBits(), false, Granularity.PER_CHANNEL, false),
                            e.input(), p + " " + c);
                } else {
                    assertEquals(QuantSpec.activation(p.activationBits(), false, Granularity.PER_TOKEN, true),
                            e.input(), p + " " + c);
                }
            }
        }
        assertEquals("w4-asym-g128", QuantPlan.preset(QuantPreset.W4A16).entry(TensorCategory.LLM_Q).weight().toString());
        assertTrue(QuantPlan.none().isFloatingPoint());
    }

    @Test
    void overridesByCategoryFamilyAndSpec() {
        QuantPlan plan = QuantPlan.builder().preset(QuantPreset.W4A4)
                .override("llm.down=w8a8; vision=fp, lm_head=w8-sym-channel projector=w4-asym-g32+a8-asym-token-dynamic")
                .build();
        assertEquals(QuantPlan.preset(QuantPreset.W8A8).entry(TensorCategory.LLM_DOWN), plan.entry(TensorCategory.LLM_DOWN));
        assertEquals(QuantPlan.preset(QuantPreset.W4A4).entry(TensorCategory.LLM_UP), plan.entry(TensorCategory.LLM_UP));
        for (TensorCategory c : TensorCategory.values()) {
            if (c.family() == TensorCategory.Family.VISION) {
                assertTrue(plan.entry(c).isFloatingPoint(), c.toString());
            }
        }
        assertEquals(new LinearQuant(QuantSpec.parse("w8-sym-channel"), null), plan.entry(TensorCategory.LM_HEAD));
        assertEquals("w4-asym-g32+a8-asym-token-dynamic", plan.entry(TensorCategory.PROJECTOR).toString());
        assertEquals(plan.entry(TensorCategory.LLM_DOWN), plan.forLinear("llm.layers.1.mlp.down_proj"));

        QuantPlan all = QuantPlan.builder().override("all=w6a6").build();
        assertEquals(QuantPlan.preset(QuantPreset.W6A6), all);
        QuantPlan lmOnly = QuantPlan.builder().override("llm=a8-asym-channel-static").build();
        assertNull(lmOnly.entry(TensorCategory.LLM_Q).weight());
        assertNotNull(lmOnly.entry(TensorCategory.LLM_Q).input());
        assertTrue(lmOnly.entry(TensorCategory.LM_HEAD).isFloatingPoint(), "families never include lm_head");
    }

    @Test
    void badOverridesFailWithTheItem() {
        for (String bad : new String[] {"llm.down", "=w8a8", "llm.mlp=w8a8", "llm.q=w5a5", "llm.q=w8-asym-channel+w4-sym-channel",
            "embeddings=a8-asym-tensor-static"}) {
            assertThrows(IllegalArgumentException.class, () -> QuantPlan.builder().override(bad).build(), bad);
        }
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> QuantPlan.builder().override("llm.q=w8-asym-channel+w4-sym-channel"));
        assertTrue(e.getMessage().contains("llm.q=w8-asym-channel+w4-sym-channel"), e.getMessage());
    }

    @Test
    void inputGranularityMovesOnlyTheFamilysInputs() {
        QuantPlan base = QuantPlan.builder().preset(QuantPreset.W4A4)
                .weight(TensorCategory.LLM_DOWN, QuantSpec.nf4(true))
                .input(TensorCategory.LLM_O, QuantSpec.parse("a6-sym-channel-static-clip0.9"))
                .build();
        QuantPlan t = base.withInputGranularity(TensorCategory.Family.LLM, Granularity.PER_TENSOR);
        for (TensorCategory c : TensorCategory.values()) {
            LinearQuant was = base.entry(c);
            LinearQuant now = t.entry(c);
            assertEquals(was.weight(), now.weight(), c.key());
            if (c.family() == TensorCategory.Family.LLM && was.input() != null) {
                // written by hand: the same spec but for its granularity
                String expected = was.input().toString().replace("-channel-", "-tensor-");
                assertEquals(QuantSpec.parse(expected), now.input(), c.key());
            } else {
                assertEquals(was.input(), now.input(), c.key());
            }
        }
        assertEquals("a6-sym-tensor-static-clip0.9", t.entry(TensorCategory.LLM_O).input().toString());
        assertEquals("a4-asym-tensor-static", t.entry(TensorCategory.LLM_DOWN).input().toString());
        assertEquals(base, t.withInputGranularity(TensorCategory.Family.LLM, Granularity.PER_CHANNEL));
        assertThrows(IllegalArgumentException.class,
                () -> base.withInputGranularity(TensorCategory.Family.LLM, Granularity.PER_GROUP));
    }

    @Test
    void jsonRoundTrip() {
        for (QuantPreset p : QuantPreset.values()) {
            QuantPlan plan = QuantPlan.preset(p);
            assertEquals(plan, QuantPlan.fromJson(plan.toJson()), p.toString());
        }
        QuantPlan custom = QuantPlan.builder().preset(QuantPreset.W4A4)
                .weight(TensorCategory.LLM_DOWN, QuantSpec.nf4(true))
                .input(TensorCategory.VISION_FC2, QuantSpec.parse("a4-asym-token-static-pct0.995"))
                .build();
        assertEquals(custom, QuantPlan.fromJson(custom.toJson()));
        assertEquals(QuantPlan.none(), QuantPlan.fromJson("{\"entries\": {}}"));
        assertThrows(IllegalArgumentException.class, () -> QuantPlan.fromJson("{\"entries\": {\"LLM_MLP\": {}}}"));
    }

    @Test
    void helpTableListsEveryPreset() {
        String table = QuantPreset.helpTable();
        for (QuantPreset p : QuantPreset.values()) {
            assertTrue(table.contains(p.key() + " ") && table.contains(p.weightSpec().toString()), p.toString());
        }
        assertTrue(QuantPlan.preset(QuantPreset.W8A8).describe().contains("llm.down"));
    }
}
