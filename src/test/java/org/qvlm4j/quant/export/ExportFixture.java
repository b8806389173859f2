package org.qvlm4j.quant.export;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.file.Path;
import java.util.List;
import java.util.SplittableRandom;
import org.qvlm4j.io.safetensors.SafeTensors;
import org.qvlm4j.model.LlavaModel;
import org.qvlm4j.quant.calib.CalibrationStats;
import org.qvlm4j.quant.calib.CalibrationTap;
import org.qvlm4j.quant.calib.Calibrator;
import org.qvlm4j.quant.calib.SiteStats;

/**
 * The tiny LLaVA fixture's reference prompt and calibration statistics of every linear input over
 * seeded random images with that prompt, as the export tests need them.
 */
final class ExportFixture {
    static final Path TINY = Path.of("src/test/resources/fixtures/tiny-llava");
    static final long CALIB_SEED = 17;
    static final int CALIB_SAMPLES = 2;
    static final List<String> PIDS = List.of("p1", "p7");

    final int[] ids;
    final float[] pixels;

    ExportFixture() {
        try (SafeTensors ref = SafeTensors.open(TINY.resolve("reference_forward.safetensors"))) {
            long[] l = ref.get("input_ids").toLongArray();
            ids = new int[l.length];
            for (int i = 0; i < l.length; i++) {
                ids[i] = Math.toIntExact(l[i]);
            }
            pixels = ref.get("pixel_values").toFloatArray();
        }
    }

    /** Statistics (with input Hessians when asked) written to dir, claiming the model digest given. */
    Path stats(Path dir, String digest, boolean hessian) {
        try (LlavaModel m = LlavaModel.load(TINY)) {
            List<String> sites = m.linears().stream().map(l -> l.name() + ".in").toList();
            SiteStats.Options o = new SiteStats.Options(256, 0, hessian, false);
            CalibrationTap tap = new CalibrationTap(site -> sites.contains(site) ? o : null, null);
            m.setActivationTap(tap);
            SplittableRandom rnd = new SplittableRandom(CALIB_SEED);
            for (int s = 0; s < CALIB_SAMPLES; s++) {
                float[] p = new float[pixels.length];
                for (int i = 0; i < p.length; i++) {
                    p[i] = (float) (2 * rnd.nextDouble() - 1);
                }
                m.forward(ids, p);
            }
            m.setActivationTap(null);
            ObjectNode manifest = new ObjectMapper().createObjectNode();
            manifest.put("format", CalibrationStats.FORMAT).put("version", CalibrationStats.FORMAT_VERSION);
            manifest.put("seed", CALIB_SEED);
            PIDS.forEach(manifest.putArray("samples")::add);
            manifest.putObject("model").put("digest", digest);
            CalibrationStats.write(dir, manifest, tap.stats(), Calibrator.PERCENTILE_GRID, false);
        }
        return dir;
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

    /** max |a − b|. */
    static double maxAbsDiff(float[] a, float[] b) {
        double m = 0;
        for (int i = 0; i < b.length; i++) {
            m = Math.max(m, Math.abs((double) a[i] - b[i]));
        }
        return m;
    }
}
