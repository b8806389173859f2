package org.qvlm4j.quant.methods;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.Test;
import org.qvlm4j.quant.QuantSpec;

/** GPTQ and AWQ against RTN on seeded correlated layers, measured by direct matmuls. */
class GptqAwqTest {
    static final int T = 512;
    static final int K = 64;
    static final int N = 32;
    static final int LATENT = 6;
    static final long SEED = 23;

    /** X (T, K) = Z (T, LATENT) · A (LATENT, K) + small noise, a few high-magnitude channels; W (N, K). */
    static float[][] correlatedLayer(long seed) {
        SplittableRandom rnd = new SplittableRandom(seed);
        double[] a = new double[LATENT * K];
        for (int i = 0; i < a.length; i++) {
            a[i] = rnd.nextGaussian();
        }
        float[] x = new float[T * K];
        for (int t = 0; t < T; t++) {
            double[] z = new double[LATENT];
            for (int i = 0; i < LATENT; i++) {
                z[i] = rnd.nextGaussian();
            }
            for (int j = 0; j < K; j++) {
                double v = 0.05 * rnd.nextGaussian();
                for (int i = 0; i < LATENT; i++) {
                    v += z[i] * a[i * K + j];
                }
                x[t * K + j] = (float) (v * (j % 9 == 0 ? 8 : 1));
            }
        }
        float[] w = new float[N * K];
        for (int i = 0; i < w.length; i++) {
            w[i] = (float) (0.1 * rnd.nextGaussian());
        }
        return new float[][] {x, w};
    }

    static double[] hessian(float[] x) {
        double[] h = new double[K * K];
        for (int t = 0; t < T; t++) {
            for (int i = 0; i < K; i++) {
                double xi = x[t * K + i];
                for (int j = 0; j < K; j++) {
                    h[i * K + j] += xi * x[t * K + j];
                }
            }
        }
        return h;
    }

    static float[] meanAbs(float[] x) {
        float[] m = new float[K];
        double[] s = new double[K];
        for (int i = 0; i < x.length; i++) {
            s[i % K] += Math.abs(x[i]);
        }
        for (int j = 0; j < K; j++) {
            m[j] = (float) (s[j] / T);
        }
        return m;
    }

    /** ||X Wqᵀ − X Wᵀ||² by direct products. */
    static double outputError(float[] x, float[] wq, float[] w) {
        double total = 0;
        for (int t = 0; t < T; t++) {
            for (int r = 0; r < N; r++) {
                double a = 0;
                double b = 0;
                for (int j = 0; j < K; j++) {
                    a += (double) x[t * K + j] * wq[r * K + j];
                    b += (double) x[t * K + j] * w[r * K + j];
                }
                total += (a - b) * (a - b);
            }
        }
        return total;
    }

    @ParameterizedTest
    @ValueSource(strings = {"w4-asym-channel", "w3-asym-channel", "w4-sym-channel", "w4-asym-g16", "w3-asym-g16"})
    void gptqAndAwqBeatRtnOnCorrelatedInputs(String specText) {
        QuantSpec spec = QuantSpec.parse(specText);
        float[][] xw = correlatedLayer(SEED);
        float[] x = xw[0];
        float[] w = xw[1];
        double[] h = hessian(x);
        double rtn = outputError(x, MethodSupport.fakeQuant(w, N, K, spec), w);
        double gptq = outputError(x, Gptq.quantize("t", w, N, K, h, spec, Gptq.Config.DEFAULT), w);
        double gptqAct = outputError(x, Gptq.quantize("t", w, N, K, h, spec, new Gptq.Config(0.01, 128, true)), w);
        double awq = outputError(x, Awq.quantizeLayer(w, N, K, meanAbs(x), h, spec, Awq.Config.DEFAULT), w);
        double awqNoClip = outputError(x, Awq.quantizeLayer(w, N, K, meanAbs(x), h, spec,
                new Awq.Config(20, false, 20, 0.5)), w);
        assertTrue(gptq < rtn, specText + ": gptq " + gptq + " rtn " + rtn);
        assertTrue(gptqAct < rtn, specText + ": gptq act-order " + gptqAct + " rtn " + rtn);
        assertTrue(awq < rtn, specText + ": awq " + awq + " rtn " + rtn);
        assertTrue(awq <= awqNoClip * (1 + 1e-9), specText + ": clipping raised the loss " + awq + " > " + awqNoClip);
    }

    @ParameterizedTest
    @ValueSource(strings = {"w4-asym-channel", "w3-sym-channel", "w4-asym-g16", "w4-asym-g20", "w2-asym-tensor"})
    void gptqWithIdentityHessianIsRtn(String specText) {
        QuantSpec spec = QuantSpec.parse(specText);
        float[] w = correlatedLayer(SEED + 1)[1];
        double[] eye = new double[K * K];
        for (int i = 0; i < K; i++) {
            eye[i * K + i] = 1;
        }
        float[] rtn = MethodSupport.fakeQuant(w, N, K, spec);
        for (int block : new int[] {128, 16, 5}) {
            assertArrayEquals(rtn, Gptq.quantize("t", w, N, K, eye, spec, new Gptq.Config(0.01, block, false)),
                    specText + " block " + block);
        }
        assertArrayEquals(rtn, Gptq.quantize("t", w, N, K, eye, spec, new Gptq.Config(0.01, 128, true)), specText);
    }

    @Test
    void gptqLazyBatchingDoesNotChangeTheResult() {
        QuantSpec spec = QuantSpec.parse("w4-asym-channel");
        float[][] xw = correlatedLayer(SEED + 2);
        double[] h = hessian(xw[0]);
        float[] one = Gptq.quantize("t", xw[1], N, K, h, spec, new Gptq.Config(0.01, 1, false));
        float[] full = Gptq.quantize("t", xw[1], N, K, h, spec, new Gptq.Config(0.01, 128, false));
        float[] odd = Gptq.quantize("t", xw[1], N, K, h, spec, new Gptq.Config(0.01, 7, false));
        double d1 = MethodSupport.meanSquaredDiff(one, full);
        double d2 = MethodSupport.meanSquaredDiff(odd, full);
        double scale = MethodSupport.meanSquaredDiff(full, xw[1]);
        // batching reorders float sums only: at most a rare rounding flip, never a systematic change
        assertTrue(d1 <= 1e-3 * scale && d2 <= 1e-3 * scale, d1 + " " + d2 + " vs " + scale);
    }

    @Test
    void awqAlphaZeroIsRtnAndScalesAreNormalised() {
        float[] m = meanAbs(correlatedLayer(SEED)[0]);
        float[] s0 = Awq.scalesFor(m, 0);
        for (float v : s0) {
            assertEquals(1f, v, 0f);
        }
        float[] s = Awq.scalesFor(m, 0.5);
        float mx = 0;
        float mn = Float.MAX_VALUE;
        for (float v : s) {
            mx = Math.max(mx, v);
            mn = Math.min(mn, v);
        }
        assertEquals(1.0, Math.sqrt((double) mx * mn), 1e-6);
        for (int j = 0; j < K; j++) {
            for (int i = 0; i < K; i++) {
                // monotone in mean |x|: a busier channel never gets a smaller scale
                if (m[i] > m[j]) {
                    assertTrue(s[i] >= s[j]);
                }
            }
        }
    }

    @Test
    void gptqRejectsNf4AndBadHessians() {
        float[] w = new float[N * K];
        assertThrows(IllegalArgumentException.class,
                () -> Gptq.quantize("t", w, N, K, new double[K * K], QuantSpec.nf4(false), Gptq.Config.DEFAULT));
        double[] neg = new double[K * K];
        for (int i = 0; i < K; i++) {
            neg[i * K + i] = -1;
        }
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Gptq.quantize("lin.x", w, N, K, neg, QuantSpec.parse("w4-asym-channel"), Gptq.Config.DEFAULT));
        assertTrue(e.getMessage().contains("lin.x"), e.getMessage());
    }
}
