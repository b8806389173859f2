package org.qvlm4j.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.awt.image.BufferedImage;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qvlm4j.io.config.LlavaConfig;
import org.qvlm4j.tensor.Tape;

/**
 * The training loop on a tiny model and task: the loss falls, runs are reproducible bit for bit
 * (across seeds, worker counts and an interruption with resume), checkpoints and the loss log and
 * plot are written, and mismatched resumes are refused.
 */
class TrainerTest {
    @TempDir
    Path tmp;

    private static final LlavaConfig CFG = TinyModels.config();
    private static final List<TrainingExample> DATA = TinyModels.task(CFG, 24, 9, true);

    private static Trainer.Options options(int epochs) {
        return new Trainer.Options(epochs, 4, 1e-2, 0.1, 0.1, 0.01, 1.0, 42, 0, 1, 0, 1);
    }

    private static byte[] weights(TrainableLlava m, Path file) throws Exception {
        m.writeWeights(file);
        return Files.readAllBytes(file);
    }

    @Test
    void lossFallsOnALearnableTask() {
        TrainableLlava m = TrainableLlava.initialize(CFG, TinyModels.PAD, 1);
        double before = meanLoss(m, DATA);
        Trainer.Result r = new Trainer(m, DATA, options(12), null).train(false, null);
        double after = meanLoss(m, DATA);
        assertTrue(r.finished());
        assertEquals(12 * 6, r.log().size());
        // ln(24) ~ 3.2 at the start; the EOS half of the targets alone is learnable to ~0.
        assertTrue(before > 2.5, "initial loss " + before);
        assertTrue(after < 0.5 * before, "loss " + before + " -> " + after);
        double firstEpoch = r.log().subList(0, 6).stream().mapToDouble(Trainer.LogRow::loss).average().orElseThrow();
        double lastEpoch = r.log().subList(66, 72).stream().mapToDouble(Trainer.LogRow::loss).average().orElseThrow();
        assertTrue(lastEpoch < 0.5 * firstEpoch, "logged loss " + firstEpoch + " -> " + lastEpoch);
    }

    private static double meanLoss(TrainableLlava m, List<TrainingExample> data) {
        double s = 0;
        for (TrainingExample ex : data) {
            s += m.loss(Tape.disabled(), ex).item();
        }
        return s / data.size();
    }

    @Test
    void sameSeedSameBytesAndWorkerCountDoesNotMatter() throws Exception {
        byte[][] out = new byte[3][];
        List<List<Trainer.LogRow>> logs = new ArrayList<>();
        int[] workers = {1, 1, 2};
        for (int i = 0; i < 3; i++) {
            TrainableLlava m = TrainableLlava.initialize(CFG, TinyModels.PAD, 1);
            logs.add(new Trainer(m, DATA, options(1).withWorkers(workers[i]), null).train(false, null).log());
            out[i] = weights(m, tmp.resolve("w" + i + ".safetensors"));
        }
        assertArrayEquals(out[0], out[1]);
        assertArrayEquals(out[0], out[2], "2 workers give the bytes of 1");
        for (int i = 0; i < logs.get(0).size(); i++) {
            assertEquals(logs.get(0).get(i).loss(), logs.get(2).get(i).loss());
        }
        TrainableLlava other = TrainableLlava.initialize(CFG, TinyModels.PAD, 1);
        new Trainer(other, DATA, new Trainer.Options(1, 4, 1e-2, 0.1, 0.1, 0.01, 1.0, 43, 0, 1, 0, 1), null).train(false, null);
        assertFalse(Arrays.equals(out[0], weights(other, tmp.resolve("other.safetensors"))), "another shuffle seed");
    }

    @Test
    void packedForwardsTrainAsOneExamplePerForwardAndWorkerCountStillDoesNotMatter() throws Exception {
        TrainableLlava single = TrainableLlava.initialize(CFG, TinyModels.PAD, 1);
        List<Trainer.LogRow> singleLog = new Trainer(single, DATA, options(2), null).train(false, null).log();
        byte[][] packed = new byte[2][];
        List<List<Trainer.LogRow>> logs = new ArrayList<>();
        for (int w = 1; w <= 2; w++) {
            TrainableLlava m = TrainableLlava.initialize(CFG, TinyModels.PAD, 1);
            logs.add(new Trainer(m, DATA, options(2).withPack(2).withWorkers(w), null).train(false, null).log());
            packed[w - 1] = weights(m, tmp.resolve("p" + w + ".safetensors"));
        }
        assertArrayEquals(packed[0], packed[1], "packs of 2: 2 workers give the bytes of 1");
        // Packs of the whole batch: the same steps up to float summation order.
        TrainableLlava whole = TrainableLlava.initialize(CFG, TinyModels.PAD, 1);
        List<Trainer.LogRow> wholeLog = new Trainer(whole, DATA, options(2).withPack(4), null).train(false, null).log();
        assertEquals(singleLog.size(), wholeLog.size());
        for (int i = 0; i < singleLog.size(); i++) {
            double l = singleLog.get(i).loss();
            assertEquals(l, wholeLog.get(i).loss(), 1e-4 * l, "loss of step " + (i + 1));
            assertEquals(l, logs.get(0).get(i).loss(), 1e-4 * l, "loss of step " + (i + 1) + " in packs of 2");
        }
        for (String name : single.parameters().keySet()) {
            float[] a = single.parameters().get(name).data();
            float[] b = whole.parameters().get(name).data();
            for (int i = 0; i < a.length; i++) {
                assertEquals(a[i], b[i], 1e-4, name + "[" + i + "]");
            }
        }
    }

    @Test
    void resumedRunEndsWithTheBytesOfAnUninterruptedOne() throws Exception {
        Trainer.Options o = new Trainer.Options(1, 4, 1e-2, 0.1, 0.2, 0.01, 1.0, 42, 2, 2, 0, 1);
        TrainableLlava straight = TrainableLlava.initialize(CFG, TinyModels.PAD, 1);
        Trainer.Result full = new Trainer(straight, DATA, o, tmp.resolve("a")).train(false, null);
        assertEquals(6, full.stepsDone());

        List<Integer> checkpoints = new ArrayList<>();
        Trainer.Listener listener = new Trainer.Listener() {
            @Override
            public void onStep(Trainer.Progress p) {
                assertTrue(p.lr() >= 0 && p.tokensPerSecond() > 0 && p.etaSeconds() >= 0);
            }

            @Override
            public void onCheckpoint(int step, Path dir) {
                checkpoints.add(step);
            }
        };
        TrainableLlava first = TrainableLlava.initialize(CFG, TinyModels.PAD, 1);
        Trainer.Result part = new Trainer(first, DATA, o.withStopAfterStep(3), tmp.resolve("b")).train(false, listener);
        assertFalse(part.finished());
        assertEquals(List.of(2, 3), checkpoints);
        Path latest = Trainer.latestCheckpoint(tmp.resolve("b"));
        assertEquals("step-0000003", latest.getFileName().toString());
        assertEquals(1, Files.list(tmp.resolve("b")).count(), "older checkpoints are removed");

        // A fresh process: a model with other weights, restored from the checkpoint.
        TrainableLlava second = TrainableLlava.initialize(CFG, TinyModels.PAD, 99);
        Trainer.Result rest = new Trainer(second, DATA, o, tmp.resolve("b")).train(true, listener);
        assertTrue(rest.finished());
        assertEquals(6, rest.log().size());
        assertArrayEquals(weights(straight, tmp.resolve("s.safetensors")), weights(second, tmp.resolve("r.safetensors")));
        for (int i = 0; i < 6; i++) {
            assertEquals(full.log().get(i).loss(), rest.log().get(i).loss(), "loss of step " + (i + 1));
        }
        assertArrayEquals(Files.readAllBytes(Trainer.latestCheckpoint(tmp.resolve("a")).resolve("model.safetensors")),
                Files.readAllBytes(Trainer.latestCheckpoint(tmp.resolve("b")).resolve("model.safetensors")));
        assertEquals(6, Trainer.readLog(Trainer.latestCheckpoint(tmp.resolve("b")).resolve(Trainer.LOG_FILE)).size());
    }

    @Test
    void resumeRefusesOtherOptionsOrData() {
        Trainer.Options o = options(1).withStopAfterStep(2);
        new Trainer(TrainableLlava.initialize(CFG, TinyModels.PAD, 1), DATA, o, tmp.resolve("c")).train(false, null);
        Trainer.Options otherSeed = new Trainer.Options(1, 4, 1e-2, 0.1, 0.1, 0.01, 1.0, 7, 0, 1, 0, 1);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new Trainer(
                TrainableLlava.initialize(CFG, TinyModels.PAD, 1), DATA, otherSeed, tmp.resolve("c")).train(true, null));
        assertTrue(e.getMessage().contains("options.seed") && e.getMessage().contains("42"), e.getMessage());
        List<TrainingExample> otherData = TinyModels.task(CFG, 24, 10, true);
        e = assertThrows(IllegalArgumentException.class, () -> new Trainer(
                TrainableLlava.initialize(CFG, TinyModels.PAD, 1), otherData, options(1), tmp.resolve("c")).train(true, null));
        assertTrue(e.getMessage().contains("data_fingerprint"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> new Trainer(
                TrainableLlava.initialize(CFG, TinyModels.PAD, 1), DATA, options(1).withPack(2), tmp.resolve("c")).train(true, null));
        assertTrue(e.getMessage().contains("options.pack"), e.getMessage());
    }

    @Test
    void epochOrderIsASeededPermutation() {
        int[] a = Trainer.epochOrder(5, 0, 50);
        int[] sorted = a.clone();
        Arrays.sort(sorted);
        for (int i = 0; i < 50; i++) {
            assertEquals(i, sorted[i]);
        }
        assertArrayEquals(a, Trainer.epochOrder(5, 0, 50));
        assertFalse(Arrays.equals(a, Trainer.epochOrder(5, 1, 50)));
        assertFalse(Arrays.equals(a, Trainer.epochOrder(6, 0, 50)));
    }

    @Test
    void lossLogRoundTripsAndThePlotDecodes() throws Exception {
        List<Trainer.LogRow> log = new ArrayList<>();
        for (int i = 1; i <= 300; i++) {
            log.add(new Trainer.LogRow(i, 1 + i / 100, 3.0 * Math.exp(-i / 60.0) + 0.05 * Math.sin(i), 1e-3, 0.5, 1234.5, i * 0.1));
        }
        Path csv = tmp.resolve("log.csv");
        Trainer.writeLog(csv, log);
        List<Trainer.LogRow> back = Trainer.readLog(csv);
        assertEquals(300, back.size());
        assertEquals(log.get(123).loss(), back.get(123).loss());
        Path png = tmp.resolve("loss.png");
        LossPlot.write(png, log, "tiny run");
        BufferedImage img = ImageIO.read(png.toFile());
        assertEquals(LossPlot.WIDTH, img.getWidth());
        assertEquals(LossPlot.HEIGHT, img.getHeight());
        // The curve colour appears inside the plot area, and high values are drawn above low ones.
        int curveTop = Integer.MAX_VALUE;
        int curveBottom = -1;
        int dark = new java.awt.Color(20, 60, 160).getRGB();
        for (int y = 0; y < img.getHeight(); y++) {
            for (int x = 0; x < img.getWidth(); x++) {
                if (img.getRGB(x, y) == dark) {
                    curveTop = Math.min(curveTop, y);
                    curveBottom = Math.max(curveBottom, y);
                }
            }
        }
        assertTrue(curveBottom > curveTop + LossPlot.HEIGHT / 3, "curve spans the height: " + curveTop + ".." + curveBottom);
        assertNotEquals(java.awt.Color.WHITE.getRGB(), img.getRGB(80, LossPlot.HEIGHT - 60), "axis corner drawn");
        assertEquals(2.0, LossPlot.niceStep(1.3));
        assertEquals(0.5, LossPlot.niceStep(0.31));
        assertEquals(10.0, LossPlot.niceStep(7.0));
    }
}
