package org.qvlm4j.quant.methods;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.qvlm4j.io.safetensors.SafeTensors;
import org.qvlm4j.model.Linear;
import org.qvlm4j.model.LlavaModel;
import org.qvlm4j.quant.calib.CalibrationStats;
import org.qvlm4j.quant.calib.CalibrationTap;
import org.qvlm4j.quant.calib.Calibrator;
import org.qvlm4j.quant.calib.SiteStats;

/**
 * The tiny LLaVA fixture, its reference prompt, calibration prompts (the reference prompt and seeded
 * variants with random text tokens and random pixels) and calibration statistics with Hessians for every linear input.
 */
final class MethodFixture {
    static final Path TINY = Path.of("src/test/resources/fixtures/tiny-llava");
    static final long CALIB_SEED = 5;
    static final int CALIB_SAMPLES = 3;
    static final int TEXT_TOKENS = 4;
    static final int VOCAB = 99;

    final int[] ids;
    final float[] pixels;
    final List<int[]> calibIds = new ArrayList<>();
    final List<float[]> calibPixels = new ArrayList<>();

    MethodFixture() {
        try (SafeTensors ref = SafeTensors.open(TINY.resolve("reference_forward.safetensors"))) {
            long[] l = ref.get("input_ids").toLongArray();
            ids = new int[l.length];
            for (int i = 0; i < l.length; i++) {
                ids[i] = Math.toIntExact(l[i]);
            }
            pixels = ref.get("pixel_values").toFloatArray();
        }
        // the reference prompt itself plus seeded variants, so that static ranges cover the evaluated prompt
        calibIds.add(ids);
        calibPixels.add(pixels);
        SplittableRandom rnd = new SplittableRandom(CALIB_SEED);
        for (int s = 0; s < CALIB_SAMPLES; s++) {
            int[] c = ids.clone();
            for (int i = c.length - TEXT_TOKENS; i < c.length; i++) {
                c[i] = 1 + rnd.nextInt(VOCAB - 1);
            }
            float[] p = new float[pixels.length];
            for (int i = 0; i < p.length; i++) {
                p[i] = (float) (2 * rnd.nextDouble() - 1);
            }
            calibIds.add(c);
            calibPixels.add(p);
        }
    }

    static LlavaModel model() {
        return LlavaModel.load(TINY);
    }

    /** Statistics of every linear input (with Hessian) over the calibration prompts, written to dir. */
    CalibrationStats stats(Path dir) {
        return stats(dir, true);
    }

    /** As {@link #stats(Path)}, with or without the Hessians. */
    CalibrationStats stats(Path dir, boolean hessian) {
        try (LlavaModel m = model()) {
            List<String> sites = m.linears().stream().map(l -> l.name() + ".in").toList();
            SiteStats.Options o = new SiteStats.Options(256, 0, hessian, false);
            CalibrationTap tap = new CalibrationTap(site -> sites.contains(site) ? o : null, null);
            m.setActivationTap(tap);
            for (int s = 0; s < calibIds.size(); s++) {
                m.forward(calibIds.get(s), calibPixels.get(s));
            }
            m.setActivationTap(null);
            ObjectNode manifest = new ObjectMapper().createObjectNode();
            manifest.put("format", CalibrationStats.FORMAT).put("version", CalibrationStats.FORMAT_VERSION);
            manifest.putObject("model").put("digest", "tiny-llava-test");
            CalibrationStats.write(dir, manifest, tap.stats(), Calibrator.PERCENTILE_GRID, false);
        }
        return CalibrationStats.load(dir);
    }

    /** Calibration inputs (T, K) of one linear, all prompts stacked, from an FP forward of m. */
    float[] inputs(LlavaModel m, Linear l) {
        String site = l.name() + ".in";
        List<float[]> parts = new ArrayList<>();
        m.setActivationTap((s, data, rows, cols) -> {
            if (s.equals(site)) {
                parts.add(java.util.Arrays.copyOf(data, rows * cols));
            }
        });
        for (int s = 0; s < calibIds.size(); s++) {
            m.forward(calibIds.get(s), calibPixels.get(s));
        }
        m.setActivationTap(null);
        return concat(parts);
    }

    /** The arrays one after another. */
    static float[] concat(List<float[]> parts) {
        int n = parts.stream().mapToInt(a -> a.length).sum();
        float[] out = new float[n];
        int o = 0;
        for (float[] a : parts) {
            System.arraycopy(a, 0, out, o, a.length);
            o += a.length;
        }
        return out;
    }

    /** ||a − b|| / ||b||. */
    static double relErr(float[] a, float[] b) {
        double num = 0;
        double den = 0;
        for (int i = 0; i < b.length; i++) {
            double d = (double) a[i] - b[i];
            num += d * d;
            den += (double) b[i] * b[i];
        }
        return Math.sqrt(num / den);
    }
}
