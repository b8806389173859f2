package org.qvlm4j.model;

import java.nio.file.Path;
import org.qvlm4j.io.config.Activation;
import org.qvlm4j.io.config.ClipVisionConfig;
import org.qvlm4j.io.config.LlamaTextConfig;
import org.qvlm4j.io.config.LlavaConfig;
import org.qvlm4j.io.safetensors.Checkpoint;
import org.qvlm4j.io.safetensors.TensorEntry;

/**
 * An independent float64 LLaVA forward for tests: plain loops written from HF's CLIPVisionModel,
 * LlavaMultiModalProjector, LlamaForCausalLM and LlavaModel.get_image_features/forward, sharing
 * no code with the runtime except the config and checkpoint readers. It reads only the llava-hf
 * hub key layout, recomputes everything on every call (no KV cache), and is slow by design.
 */
final class ReferenceLlava implements AutoCloseable {
    final LlavaConfig cfg;
    private final Checkpoint ckpt;

    ReferenceLlava(Path dir) {
        cfg = LlavaConfig.load(dir);
        ckpt = Checkpoint.open(dir);
    }

    @Override
    public void close() {
        ckpt.close();
    }

    private final java.util.Map<String, double[]> decoded = new java.util.HashMap<>();

    private double[] t(String name) {
        return decoded.computeIfAbsent(name, this::decode);
    }

    private double[] decode(String name) {
        TensorEntry e = ckpt.get(name);
        double[] a = new double[Math.toIntExact(e.numel())];
        for (int i = 0; i < a.length; i++) {
            a[i] = e.getDouble(i);
        }
        return a;
    }

    private double[] tOrNull(String name) {
        return ckpt.contains(name) ? t(name) : null;
    }

    /** x (T, K) W^T + b with W (N, K) as in torch.nn.Linear. */
    static double[][] linear(double[][] x, double[] w, double[] b, int n) {
        int k = x[0].length;
        double[][] y = new double[x.length][n];
        for (int r = 0; r < x.length; r++) {
            for (int o = 0; o < n; o++) {
                double s = b == null ? 0 : b[o];
                for (int i = 0; i < k; i++) {
                    s += x[r][i] * w[o * k + i];
                }
                y[r][o] = s;
            }
        }
        return y;
    }

    private double[][] linear(double[][] x, String prefix, int n) {
        return linear(x, t(prefix + ".weight"), tOrNull(prefix + ".bias"), n);
    }

    static double[][] layerNorm(double[][] x, double[] w, double[] b, double eps) {
        double[][] y = new double[x.length][];
        for (int r = 0; r < x.length; r++) {
            int n = x[r].length;
            double mean = 0;
            for (double v : x[r]) {
                mean += v / n;
            }
            double var = 0;
            for (double v : x[r]) {
                var += (v - mean) * (v - mean) / n;
            }
            y[r] = new double[n];
            for (int i = 0; i < n; i++) {
                y[r][i] = (x[r][i] - mean) / Math.sqrt(var + eps) * w[i] + b[i];
            }
        }
        return y;
    }

    static double[][] rmsNorm(double[][] x, double[] w, double eps) {
        double[][] y = new double[x.length][];
        for (int r = 0; r < x.length; r++) {
            int n = x[r].length;
            double ms = 0;
            for (double v : x[r]) {
                ms += v * v / n;
            }
            y[r] = new double[n];
            for (int i = 0; i < n; i++) {
                y[r][i] = w[i] * x[r][i] / Math.sqrt(ms + eps);
            }
        }
        return y;
    }

    /** erf by its Maclaurin series for |z| < 2.5 and the Laplace continued fraction of erfc beyond. */
    static double erf(double z) {
        double a = Math.abs(z);
        double r;
        if (a < 2.5) {
            double term = a;
            double sum = a;
            for (int n = 1; n < 120; n++) {
                term *= -a * a / n;
                sum += term / (2 * n + 1);
            }
            r = 2 / Math.sqrt(Math.PI) * sum;
        } else {
            double f = a;
            for (int k = 80; k >= 1; k--) {
                f = a + (k / 2.0) / f;
            }
            r = 1 - Math.exp(-a * a) / Math.sqrt(Math.PI) / f;
        }
        return z < 0 ? -r : r;
    }

    static double act(Activation a, double x) {
        return switch (a) {
            case SILU -> x / (1 + Math.exp(-x));
            case GELU_ERF -> x / 2 * (1 + erf(x / Math.sqrt(2)));
            case GELU_TANH -> x / 2 * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));
            case QUICK_GELU -> x / (1 + Math.exp(-1.702 * x));
        };
    }

    static double[][] act(Activation a, double[][] x) {
        double[][] y = new double[x.length][x[0].length];
        for (int r = 0; r < x.length; r++) {
            for (int i = 0; i < x[r].length; i++) {
                y[r][i] = act(a, x[r][i]);
            }
        }
        return y;
    }

    static double[][] add(double[][] a, double[][] b) {
        double[][] y = new double[a.length][a[0].length];
        for (int r = 0; r < a.length; r++) {
            for (int i = 0; i < a[r].length; i++) {
                y[r][i] = a[r][i] + b[r][i];
            }
        }
        return y;
    }

    /**
     * Multi-head attention over (T, H*Hd) projections; key/value head of query head h is
     * h / (H / KV); query t may see key s when !causal or s <= t.
     */
    static double[][] attention(double[][] q, double[][] k, double[][] v, int H, int KV, int Hd, boolean causal) {
        int T = q.length;
        double[][] out = new double[T][H * Hd];
        for (int h = 0; h < H; h++) {
            int g = h / (H / KV);
            for (int t = 0; t < T; t++) {
                int n = causal ? t + 1 : T;
                double[] w = new double[n];
                double max = Double.NEGATIVE_INFINITY;
                for (int s = 0; s < n; s++) {
                    double dot = 0;
                    for (int d = 0; d < Hd; d++) {
                        dot += q[t][h * Hd + d] * k[s][g * Hd + d];
                    }
                    w[s] = dot / Math.sqrt(Hd);
                    max = Math.max(max, w[s]);
                }
                double z = 0;
                for (int s = 0; s < n; s++) {
                    w[s] = Math.exp(w[s] - max);
                    z += w[s];
                }
                for (int s = 0; s < n; s++) {
                    for (int d = 0; d < Hd; d++) {
                        out[t][h * Hd + d] += w[s] / z * v[s][g * Hd + d];
                    }
                }
            }
        }
        return out;
    }

    /** HF vision hidden_states[index] for pixels (C, S, S): (P+1, Dv). */
    double[][] visionHiddenState(float[] pixels, int index) {
        ClipVisionConfig v = cfg.visionConfig();
        String p = "vision_tower.vision_model.";
        int D = v.hiddenSize();
        int ps = v.patchSize();
        int g = v.imageSize() / ps;
        int S = v.imageSize();
        double[] conv = t(p + "embeddings.patch_embedding.weight"); // (D, C, ps, ps)
        double[] cls = t(p + "embeddings.class_embedding");
        double[] pos = t(p + "embeddings.position_embedding.weight");
        double[][] h = new double[g * g + 1][D];
        for (int o = 0; o < D; o++) {
            h[0][o] = cls[o] + pos[o];
        }
        for (int gy = 0; gy < g; gy++) {
            for (int gx = 0; gx < g; gx++) {
                int row = 1 + gy * g + gx;
                for (int o = 0; o < D; o++) {
                    double s = 0;
                    for (int c = 0; c < v.numChannels(); c++) {
                        for (int ky = 0; ky < ps; ky++) {
                            for (int kx = 0; kx < ps; kx++) {
                                s += conv[((o * v.numChannels() + c) * ps + ky) * ps + kx]
                                        * pixels[(c * S + gy * ps + ky) * S + gx * ps + kx];
                            }
                        }
                    }
                    h[row][o] = s + pos[row * D + o];
                }
            }
        }
        h = layerNorm(h, t(p + "pre_layrnorm.weight"), t(p + "pre_layrnorm.bias"), v.layerNormEps());
        for (int i = 0; i < index; i++) {
            String l = p + "encoder.layers." + i + ".";
            double[][] x = layerNorm(h, t(l + "layer_norm1.weight"), t(l + "layer_norm1.bias"), v.layerNormEps());
            double[][] att = attention(linear(x, l + "self_attn.q_proj", D), linear(x, l + "self_attn.k_proj", D),
                    linear(x, l + "self_attn.v_proj", D), v.numAttentionHeads(), v.numAttentionHeads(),
                    D / v.numAttentionHeads(), false);
            h = add(h, linear(att, l + "self_attn.out_proj", D));
            x = layerNorm(h, t(l + "layer_norm2.weight"), t(l + "layer_norm2.bias"), v.layerNormEps());
            h = add(h, linear(act(v.hiddenAct(), linear(x, l + "mlp.fc1", v.intermediateSize())), l + "mlp.fc2", D));
        }
        return h;
    }

    double[][] imageFeatures(float[] pixels) {
        int layers = cfg.visionConfig().numHiddenLayers();
        int idx = cfg.visionFeatureLayer() < 0 ? layers + 1 + cfg.visionFeatureLayer() : cfg.visionFeatureLayer();
        double[][] h = visionHiddenState(pixels, idx);
        if (cfg.visionFeatureSelectStrategy() == LlavaConfig.FeatureSelectStrategy.DEFAULT) {
            h = java.util.Arrays.copyOfRange(h, 1, h.length);
        }
        int D = cfg.textConfig().hiddenSize();
        double[][] mid = act(cfg.projectorHiddenAct(), linear(h, "multi_modal_projector.linear_1", D));
        return linear(mid, "multi_modal_projector.linear_2", D);
    }

    double[][] textHidden(int[] ids, float[] pixels) {
        return textHidden(ids, pixels, ids.length);
    }

    /**
     * Final-normed text hidden states (T, D). Image features go to the image tokens among the
     * first promptLength ids only: HF generate passes pixels with the prompt alone, so a generated
     * token equal to the image token id is embedded as a word.
     */
    double[][] textHidden(int[] ids, float[] pixels, int promptLength) {
        LlamaTextConfig tc = cfg.textConfig();
        int D = tc.hiddenSize();
        String p = "language_model.model.";
        double[] emb = t(p + "embed_tokens.weight");
        double[][] feats = pixels == null ? null : imageFeatures(pixels);
        int T = ids.length;
        double[][] h = new double[T][D];
        int f = 0;
        for (int i = 0; i < T; i++) {
            if (feats != null && i < promptLength && ids[i] == cfg.imageTokenIndex()) {
                h[i] = feats[f++].clone();
            } else {
                for (int d = 0; d < D; d++) {
                    h[i][d] = emb[ids[i] * D + d];
                }
            }
        }
        if (feats != null && f != feats.length) {
            throw new IllegalArgumentException("image tokens " + f + " != features " + feats.length);
        }
        int H = tc.numAttentionHeads();
        int KV = tc.numKeyValueHeads();
        int Hd = tc.headDim();
        for (int i = 0; i < tc.numHiddenLayers(); i++) {
            String l = p + "layers." + i + ".";
            double[][] x = rmsNorm(h, t(l + "input_layernorm.weight"), tc.rmsNormEps());
            double[][] q = rope(linear(x, l + "self_attn.q_proj", H * Hd), H, Hd, tc.ropeTheta());
            double[][] k = rope(linear(x, l + "self_attn.k_proj", KV * Hd), KV, Hd, tc.ropeTheta());
            double[][] v = linear(x, l + "self_attn.v_proj", KV * Hd);
            h = add(h, linear(attention(q, k, v, H, KV, Hd, true), l + "self_attn.o_proj", D));
            x = rmsNorm(h, t(l + "post_attention_layernorm.weight"), tc.rmsNormEps());
            double[][] gate = act(tc.hiddenAct(), linear(x, l + "mlp.gate_proj", tc.intermediateSize()));
            double[][] up = linear(x, l + "mlp.up_proj", tc.intermediateSize());
            for (int r = 0; r < T; r++) {
                for (int j = 0; j < gate[r].length; j++) {
                    gate[r][j] *= up[r][j];
                }
            }
            h = add(h, linear(gate, l + "mlp.down_proj", D));
        }
        return rmsNorm(h, t(p + "norm.weight"), tc.rmsNormEps());
    }

    /** LLaMA rotary embedding, rotate_half convention, positions 0 .. T-1. */
    static double[][] rope(double[][] x, int heads, int Hd, double theta) {
        double[][] y = new double[x.length][x[0].length];
        int half = Hd / 2;
        for (int t = 0; t < x.length; t++) {
            for (int h = 0; h < heads; h++) {
                for (int i = 0; i < half; i++) {
                    double ang = t * Math.pow(theta, -2.0 * i / Hd);
                    double a = x[t][h * Hd + i];
                    double b = x[t][h * Hd + half + i];
                    y[t][h * Hd + i] = a * Math.cos(ang) - b * Math.sin(ang);
                    y[t][h * Hd + half + i] = b * Math.cos(ang) + a * Math.sin(ang);
                }
            }
        }
        return y;
    }

    /** Logits (T, V). */
    double[][] logits(int[] ids, float[] pixels) {
        return logits(ids, pixels, ids.length);
    }

    double[][] logits(int[] ids, float[] pixels, int promptLength) {
        double[][] h = textHidden(ids, pixels, promptLength);
        String head = cfg.tieWordEmbeddings() ? "language_model.model.embed_tokens.weight" : "language_model.lm_head.weight";
        return linear(h, t(head), null, cfg.textConfig().vocabSize());
    }

    /** Greedy continuation by full re-forwards, stopping at eos as HF generate does. */
    int[] greedy(int[] ids, float[] pixels, int maxNew) {
        int[] seq = ids.clone();
        int[] out = new int[maxNew];
        int n = 0;
        while (n < maxNew) {
            double[][] lg = logits(seq, pixels, ids.length);
            double[] last = lg[lg.length - 1];
            int best = 0;
            for (int i = 1; i < last.length; i++) {
                if (last[i] > last[best]) {
                    best = i;
                }
            }
            out[n++] = best;
            if (cfg.textConfig().isEos(best)) {
                break;
            }
            seq = java.util.Arrays.copyOf(seq, seq.length + 1);
            seq[seq.length - 1] = best;
        }
        return java.util.Arrays.copyOf(out, n);
    }

    static double[] flatten(double[][] a) {
        double[] out = new double[a.length * a[0].length];
        for (int r = 0; r < a.length; r++) {
            System.arraycopy(a[r], 0, out, r * a[0].length, a[0].length);
        }
        return out;
    }
}
