package org.qvlm4j.quant.qvlm;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import org.qvlm4j.io.safetensors.SafeTensors;
import org.qvlm4j.model.LlavaModel;
import org.qvlm4j.quant.calib.CalibrationStats;
import org.qvlm4j.quant.calib.CalibrationTap;
import org.qvlm4j.quant.calib.Calibrator;
import org.qvlm4j.quant.calib.SiteStats;
import org.qvlm4j.tensor.Ops;
import org.qvlm4j.train.TrainingExample;

/**
 * The tiny LLaVA fixture's reference prompt turned into VEO calibration samples: the reference
 * itself and seeded variants (random text at the prompt's last text positions, random pixels),
 * each with its last {@value #SUPERVISED} tokens supervised; and calibration statistics of the
 * prompts without those tokens (per-position ranges for vision and projector sites, as the
 * calibrator records them).
 */
final class VeoFixture {
    static final Path TINY = Path.of("src/test/resources/fixtures/tiny-llava");
    static final int VOCAB = 99;
    /** Text positions at the end of the reference prompt that the variants randomise. */
    static final int TEXT_TOKENS = 4;
    /** Trailing tokens that act as the supervised answer. */
    static final int SUPERVISED = 3;
    static final int HISTOGRAM_BINS = 256;

    final int[] ids;
    final float[] pixels;

    VeoFixture() {
        try (SafeTensors ref = SafeTensors.open(TINY.resolve("reference_forward.safetensors"))) {
            long[] l = ref.get("input_ids").toLongArray();
            ids = new int[l.length];
            for (int i = 0; i < l.length; i++) {
                ids[i] = Math.toIntExact(l[i]);
            }
            pixels = ref.get("pixel_values").toFloatArray();
        }
    }

    /** The reference and n − 1 seeded variants, each with an image and SUPERVISED answer tokens. */
    List<TrainingExample> samples(int n, long seed) {
        List<TrainingExample> out = new ArrayList<>();
        SplittableRandom rnd = new SplittableRandom(seed);
        for (int s = 0; s < n; s++) {
            int[] c = ids.clone();
            float[] p = pixels.clone();
            if (s > 0) {
                for (int i = c.length - TEXT_TOKENS; i < c.length; i++) {
                    c[i] = 1 + rnd.nextInt(VOCAB - 1);
                }
                for (int i = 0; i < p.length; i++) {
                    p[i] = (float) (2 * rnd.nextDouble() - 1);
                }
            }
            int[] labels = new int[c.length];
            Arrays.fill(labels, Ops.IGNORE_INDEX);
            for (int i = c.length - SUPERVISED; i < c.length; i++) {
                labels[i] = c[i];
            }
            out.add(new TrainingExample(p, c, labels));
        }
        return out;
    }

    /** Statistics of every linear input over the samples' prompts (answers cut off), written to dir. */
    static CalibrationStats stats(Path modelDir, Path dir, List<TrainingExample> samples) {
        try (LlavaModel m = LlavaModel.load(modelDir)) {
            List<String> sites = m.linears().stream().map(l -> l.name() + ".in").toList();
            CalibrationTap tap = new CalibrationTap(site -> sites.contains(site)
                    ? new SiteStats.Options(HISTOGRAM_BINS, 0, false,
                            site.startsWith("vision.") || site.startsWith("projector."))
                    : null, null);
            m.setActivationTap(tap);
            for (TrainingExample ex : samples) {
                m.forward(Arrays.copyOf(ex.inputIds(), ex.length() - SUPERVISED), ex.pixels());
            }
            m.setActivationTap(null);
            ObjectNode manifest = new ObjectMapper().createObjectNode();
            manifest.put("format", CalibrationStats.FORMAT).put("version", CalibrationStats.FORMAT_VERSION);
            manifest.putObject("model").put("digest", "tiny-llava-test");
            CalibrationStats.write(dir, manifest, tap.stats(), Calibrator.PERCENTILE_GRID, false);
        }
        return CalibrationStats.load(dir);
    }
}
