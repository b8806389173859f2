package org.qvlm4j.tensor;

import java.util.Arrays;
import java.util.function.DoubleUnaryOperator;
import org.qvlm4j.kernels.Gemm;
import org.qvlm4j.kernels.WeightMatrix;

/**
 * The one table of differentiable ops: each static method computes its forward result and records
 * its backward rule on the {@link Tape}, side by side, so every gradient formula sits next to the
 * forward it differentiates. A new op (for example a fake quantizer with a custom straight-through
 * gradient) is just another method here; {@link #fakeQuantize} shows the pattern.
 *
 * <p>Shapes are explicit and checked: T rows (tokens), D or K columns. Rank-2 inputs are written
 * (T, D); ops documented as "any shape" are elementwise. There is no implicit broadcasting except
 * {@link #addBias}. Losses are rank-0 (one element) tensors.
 *
 * <p>Conventions follow PyTorch / HF transformers: linear weights are (N, K) with y = x W^T
 * (nn.Linear); LayerNorm and LlamaRMSNorm normalise over the last axis in fp32; GELU variants follow
 * ACT2FN ("gelu" = erf, "gelu_pytorch_tanh", "quick_gelu"); RoPE uses LLaMA's rotate_half layout;
 * attention is scaled dot-product attention with grouped-query heads; cross-entropy ignores target
 * -100 and averages over the remaining rows.
 *
 * <p>Performance: the forward of {@link #linear} goes through the inference kernel
 * ({@code Gemm.matmul} with an F32 {@code WeightMatrix} over the weight array). The backward of
 * {@link #linear} (dX = dY W, dW = dY^T X, reading dY transposed in place) and both directions of
 * {@link #matmul} use {@link MulAdd}, a register-tiled Vector API kernel with a bit-identical scalar
 * twin, split over rows with {@link ParallelLoop}. {@link #attention} runs its four products per
 * head (scores, output, and in backward dP, dQ, dK, dV) through the same kernel, split over
 * key/value heads. Everything else (norms, activations, softmax, RoPE, embedding, concat/slice,
 * losses, fake quantization) is a single-threaded scalar loop; these are memory-bound and cheap next
 * to the products at the sizes we train. For training speed the next steps are: fusing norm +
 * linear and activation + linear to save passes over activations; a flash-style attention that
 * does not keep the (H, T, T) probabilities and skips the masked half of causal scores;
 * a fused softmax-cross-entropy over the vocabulary; and reusing activation buffers across steps
 * instead of allocating every op's output.
 *
 * <p>Left out: broadcasting beyond {@link #addBias}, dropout, masks other than causal, attention
 * with different query and key lengths (KV cache), a learnable zero point in {@link #fakeQuantize}.
 */
public final class Ops {
    /**
     * Above this many rows {@link #linear}'s backward runs its two products on the blocked GEMM
     * ({@link Gemm}, over transposed copies) instead of {@link MulAdd}: a tall input (several
     * examples packed into one forward) no longer fits the cache MulAdd's tiles rely on, and the
     * GEMM's packed panels are faster there. Inputs of at most this many rows keep MulAdd's bits.
     */
    static final int TALL_ROWS = 256;

    /** Target value that {@link #crossEntropy} skips (torch's default {@code ignore_index}). */
    public static final int IGNORE_INDEX = -100;
    /** {@link #embedding} padding index meaning "every row receives gradients". */
    public static final int NO_PADDING = -1;

    private static final double SQRT_2_OVER_PI = Math.sqrt(2.0 / Math.PI);
    private static final double INV_SQRT_2 = 1.0 / Math.sqrt(2.0);
    private static final double INV_SQRT_2PI = 1.0 / Math.sqrt(2.0 * Math.PI);
    private static final double GELU_TANH_CUBIC = 0.044715;
    private static final double QUICK_GELU_ALPHA = 1.702;

    private Ops() {
    }

    // ---------------------------------------------------------------- linear algebra

    /**
     * nn.Linear: x (T, K), w (N, K), b (N) or null → (T, N) = x w^T + b.
     * Backward: dx += dy w, dw += dy^T x, db += sum_t dy.
     */
    public static Tensor linear(Tape tape, Tensor x, Tensor w, Tensor b) {
        require(x.rank() == 2 && w.rank() == 2 && x.dim(1) == w.dim(1), "linear",
                "x (T, K) and w (N, K) with equal K", x, w);
        int T = x.dim(0);
        int K = x.dim(1);
        int N = w.dim(0);
        if (b != null) {
            require(b.rank() == 1 && b.dim(0) == N, "linear", "bias (N) with N = " + N, b);
        }
        float[] y = new float[T * N]; // (T, N)
        if (T > 0) {
            Gemm.matmul(x.data(), T, WeightMatrix.ofFloats(w.data(), N, K), y);
        }
        if (b != null) {
            float[] bd = b.data();
            for (int t = 0; t < T; t++) {
                for (int n = 0; n < N; n++) {
                    y[t * N + n] += bd[n];
                }
            }
        }
        Tensor out = Tensor.of(y, T, N);
        return tape.record("linear", out, () -> {
            float[] dy = out.grad(); // (T, N)
            if (T > TALL_ROWS) {
                if (x.requiresGrad()) { // dx (T, K) += dy w = dy (w^T)^T
                    float[] dx = new float[T * K];
                    Gemm.matmul(dy, T, WeightMatrix.ofFloats(transpose(w.data(), N, K), K, N), dx);
                    addInto(x.gradOrCreate(), dx);
                }
                if (w.requiresGrad()) { // dw (N, K) += dy^T x = (dy^T) (x^T)^T
                    float[] dw = new float[N * K];
                    Gemm.matmul(transpose(dy, T, N), N, WeightMatrix.ofFloats(transpose(x.data(), T, K), K, T), dw);
                    addInto(w.gradOrCreate(), dw);
                }
            } else {
                if (x.requiresGrad()) {
                    MulAdd.mulAdd(dy, 0, N, 1, w.data(), 0, x.gradOrCreate(), 0, T, N, K); // dx (T, K) += dy w
                }
                if (w.requiresGrad()) {
                    MulAdd.mulAdd(dy, 0, 1, N, x.data(), 0, w.gradOrCreate(), 0, N, T, K); // dw (N, K) += dy^T x
                }
            }
            if (b != null && b.requiresGrad()) {
                float[] db = b.gradOrCreate();
                for (int t = 0; t < T; t++) {
                    for (int n = 0; n < N; n++) {
                        db[n] += dy[t * N + n];
                    }
                }
            }
        }, x, w, b);
    }

    /** The (cols, rows) transpose of a row-major (rows, cols) matrix. */
    private static float[] transpose(float[] a, int rows, int cols) {
        float[] t = new float[a.length];
        for (int r = 0; r < rows; r++) {
            int o = r * cols;
            for (int c = 0; c < cols; c++) {
                t[c * rows + r] = a[o + c];
            }
        }
        return t;
    }

    /**
     * Matrix product: a (M, K) · b (K, N) → (M, N), or batched a (B, M, K) · b (B, K, N) → (B, M, N)
     * (one product per leading index, e.g. per head). Backward: da += dc b^T, db += a^T dc.
     */
    public static Tensor matmul(Tape tape, Tensor a, Tensor b) {
        boolean ok = a.rank() == b.rank() && (a.rank() == 2 || a.rank() == 3)
                && a.dim(-1) == b.dim(-2) && (a.rank() == 2 || a.dim(0) == b.dim(0));
        require(ok, "matmul", "a (M, K), b (K, N) or a (B, M, K), b (B, K, N)", a, b);
        int B = a.rank() == 3 ? a.dim(0) : 1;
        int M = a.dim(-2);
        int K = a.dim(-1);
        int N = b.dim(-1);
        float[] ad = a.data();
        float[] bd = b.data();
        float[] c = new float[B * M * N]; // (B, M, N)
        for (int i = 0; i < B; i++) {
            MulAdd.mulAdd(ad, i * M * K, K, 1, bd, i * K * N, c, i * M * N, M, K, N);
        }
        Tensor out = a.rank() == 3 ? Tensor.of(c, B, M, N) : Tensor.of(c, M, N);
        return tape.record("matmul", out, () -> {
            float[] dc = out.grad(); // (B, M, N)
            if (a.requiresGrad()) {
                float[] da = a.gradOrCreate(); // (B, M, K)
                float[] bt = new float[N * K]; // (N, K): one batch of b transposed
                for (int i = 0; i < B; i++) {
                    for (int k = 0; k < K; k++) {
                        for (int n = 0; n < N; n++) {
                            bt[n * K + k] = bd[i * K * N + k * N + n];
                        }
                    }
                    MulAdd.mulAdd(dc, i * M * N, N, 1, bt, 0, da, i * M * K, M, N, K);
                }
            }
            if (b.requiresGrad()) {
                float[] db = b.gradOrCreate(); // (B, K, N)
                for (int i = 0; i < B; i++) {
                    MulAdd.mulAdd(ad, i * M * K, 1, K, dc, i * M * N, db, i * K * N, K, M, N); // a^T dc
                }
            }
        }, a, b);
    }

    // ---------------------------------------------------------------- elementwise arithmetic

    /** a + b, both the same (any) shape. */
    public static Tensor add(Tape tape, Tensor a, Tensor b) {
        require(a.sameShape(b), "add", "equal shapes", a, b);
        float[] y = new float[a.numel()];
        float[] ad = a.data();
        float[] bd = b.data();
        for (int i = 0; i < y.length; i++) {
            y[i] = ad[i] + bd[i];
        }
        Tensor out = Tensor.of(y, a.shape());
        return tape.record("add", out, () -> {
            float[] dy = out.grad();
            if (a.requiresGrad()) {
                addInto(a.gradOrCreate(), dy);
            }
            if (b.requiresGrad()) {
                addInto(b.gradOrCreate(), dy);
            }
        }, a, b);
    }

    /** x (..., D) + bias (D), the bias added to every row. Backward: dbias += sum over rows of dy. */
    public static Tensor addBias(Tape tape, Tensor x, Tensor bias) {
        require(x.rank() >= 1 && bias.rank() == 1 && bias.dim(0) == x.cols(), "addBias",
                "x (..., D) and bias (D)", x, bias);
        int D = x.cols();
        int rows = x.rows();
        float[] y = new float[x.numel()];
        float[] xd = x.data();
        float[] bd = bias.data();
        for (int r = 0; r < rows; r++) {
            for (int d = 0; d < D; d++) {
                y[r * D + d] = xd[r * D + d] + bd[d];
            }
        }
        Tensor out = Tensor.of(y, x.shape());
        return tape.record("addBias", out, () -> {
            float[] dy = out.grad();
            if (x.requiresGrad()) {
                addInto(x.gradOrCreate(), dy);
            }
            if (bias.requiresGrad()) {
                float[] db = bias.gradOrCreate();
                for (int r = 0; r < rows; r++) {
                    for (int d = 0; d < D; d++) {
                        db[d] += dy[r * D + d];
                    }
                }
            }
        }, x, bias);
    }

    /** a * b elementwise, both the same (any) shape. Backward: da += dy b, db += dy a. */
    public static Tensor mul(Tape tape, Tensor a, Tensor b) {
        require(a.sameShape(b), "mul", "equal shapes", a, b);
        float[] ad = a.data();
        float[] bd = b.data();
        float[] y = new float[a.numel()];
        for (int i = 0; i < y.length; i++) {
            y[i] = ad[i] * bd[i];
        }
        Tensor out = Tensor.of(y, a.shape());
        return tape.record("mul", out, () -> {
            float[] dy = out.grad();
            if (a.requiresGrad()) {
                float[] da = a.gradOrCreate();
                for (int i = 0; i < dy.length; i++) {
                    da[i] += dy[i] * bd[i];
                }
            }
            if (b.requiresGrad()) {
                float[] db = b.gradOrCreate();
                for (int i = 0; i < dy.length; i++) {
                    db[i] += dy[i] * ad[i];
                }
            }
        }, a, b);
    }

    /** c * x for a constant c, any shape. */
    public static Tensor scale(Tape tape, Tensor x, float c) {
        float[] xd = x.data();
        float[] y = new float[xd.length];
        for (int i = 0; i < y.length; i++) {
            y[i] = c * xd[i];
        }
        Tensor out = Tensor.of(y, x.shape());
        return tape.record("scale", out, () -> {
            float[] dy = out.grad();
            float[] dx = x.gradOrCreate();
            for (int i = 0; i < dy.length; i++) {
                dx[i] += c * dy[i];
            }
        }, x);
    }

    /** The same elements under a new shape with the same element count (data shared, not copied). */
    public static Tensor reshape(Tape tape, Tensor x, int... shape) {
        require(Tensor.numel(shape) == x.numel(), "reshape", "target shape " + Arrays.toString(shape)
                + " with " + x.numel() + " elements", x);
        Tensor out = Tensor.of(x.data(), shape);
        return tape.record("reshape", out, () -> addInto(x.gradOrCreate(), out.grad()), x);
    }

    // ---------------------------------------------------------------- normalisation

    /**
     * nn.LayerNorm over the last axis: x (T, D), weight (D), bias (D) → (T, D);
     * y = (x - mean) / sqrt(var + eps) * weight + bias with the biased variance.
     * Backward with xhat = (x - mean) * rstd and g = dy * weight:
     * dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), dweight += sum_t dy * xhat, dbias += sum_t dy.
     */
    public static Tensor layerNorm(Tape tape, Tensor x, Tensor weight, Tensor bias, float eps) {
        int D = x.cols();
        require(x.rank() >= 1 && weight.rank() == 1 && weight.dim(0) == D && bias.rank() == 1 && bias.dim(0) == D,
                "layerNorm", "x (T, D), weight (D), bias (D)", x, weight, bias);
        int T = x.rows();
        float[] xd = x.data();
        float[] wd = weight.data();
        float[] bd = bias.data();
        float[] xhat = new float[T * D]; // (T, D)
        float[] rstd = new float[T]; // (T)
        float[] y = new float[T * D]; // (T, D)
        for (int t = 0; t < T; t++) {
            int o = t * D;
            double mean = 0;
            for (int d = 0; d < D; d++) {
                mean += xd[o + d];
            }
            mean /= D;
            double var = 0;
            for (int d = 0; d < D; d++) {
                double c = xd[o + d] - mean;
                var += c * c;
            }
            var /= D;
            double r = 1.0 / Math.sqrt(var + eps);
            rstd[t] = (float) r;
            for (int d = 0; d < D; d++) {
                float h = (float) ((xd[o + d] - mean) * r);
                xhat[o + d] = h;
                y[o + d] = h * wd[d] + bd[d];
            }
        }
        Tensor out = Tensor.of(y, x.shape());
        return tape.record("layerNorm", out, () -> {
            float[] dy = out.grad();
            float[] dx = x.requiresGrad() ? x.gradOrCreate() : null;
            float[] dw = weight.requiresGrad() ? weight.gradOrCreate() : null;
            float[] db = bias.requiresGrad() ? bias.gradOrCreate() : null;
            for (int t = 0; t < T; t++) {
                int o = t * D;
                double meanG = 0;
                double meanGx = 0;
                for (int d = 0; d < D; d++) {
                    double g = (double) dy[o + d] * wd[d];
                    meanG += g;
                    meanGx += g * xhat[o + d];
                    if (dw != null) {
                        dw[d] += dy[o + d] * xhat[o + d];
                    }
                    if (db != null) {
                        db[d] += dy[o + d];
                    }
                }
                meanG /= D;
                meanGx /= D;
                if (dx != null) {
                    for (int d = 0; d < D; d++) {
                        double g = (double) dy[o + d] * wd[d];
                        dx[o + d] += (float) (rstd[t] * (g - meanG - xhat[o + d] * meanGx));
                    }
                }
            }
        }, x, weight, bias);
    }

    /**
     * LlamaRMSNorm over the last axis: x (T, D), weight (D) → (T, D);
     * y = weight * x / sqrt(mean(x^2) + eps), computed in fp32 as HF does.
     * Backward with r = 1/sqrt(mean(x^2) + eps) and g = dy * weight:
     * dx = r * (g - x * r^2 * mean(g * x)), dweight += sum_t dy * x * r.
     */
    public static Tensor rmsNorm(Tape tape, Tensor x, Tensor weight, float eps) {
        int D = x.cols();
        require(x.rank() >= 1 && weight.rank() == 1 && weight.dim(0) == D, "rmsNorm", "x (T, D), weight (D)",
                x, weight);
        int T = x.rows();
        float[] xd = x.data();
        float[] wd = weight.data();
        float[] rs = new float[T]; // (T)
        float[] y = new float[T * D]; // (T, D)
        for (int t = 0; t < T; t++) {
            int o = t * D;
            double ss = 0;
            for (int d = 0; d < D; d++) {
                ss += (double) xd[o + d] * xd[o + d];
            }
            float r = (float) (1.0 / Math.sqrt(ss / D + eps));
            rs[t] = r;
            for (int d = 0; d < D; d++) {
                y[o + d] = wd[d] * (xd[o + d] * r);
            }
        }
        Tensor out = Tensor.of(y, x.shape());
        return tape.record("rmsNorm", out, () -> {
            float[] dy = out.grad();
            float[] dx = x.requiresGrad() ? x.gradOrCreate() : null;
            float[] dw = weight.requiresGrad() ? weight.gradOrCreate() : null;
            for (int t = 0; t < T; t++) {
                int o = t * D;
                double r = rs[t];
                double meanGx = 0;
                for (int d = 0; d < D; d++) {
                    meanGx += (double) dy[o + d] * wd[d] * xd[o + d];
                    if (dw != null) {
                        dw[d] += (float) (dy[o + d] * xd[o + d] * r);
                    }
                }
                meanGx /= D;
                if (dx != null) {
                    for (int d = 0; d < D; d++) {
                        double g = (double) dy[o + d] * wd[d];
                        dx[o + d] += (float) (r * (g - xd[o + d] * r * r * meanGx));
                    }
                }
            }
        }, x, weight);
    }

    // ---------------------------------------------------------------- activations (any shape)

    /** GELU with erf (HF "gelu", torch.nn.GELU()): 0.5 x (1 + erf(x / sqrt 2)); d = Phi(x) + x phi(x). */
    public static Tensor gelu(Tape tape, Tensor x) {
        return pointwise(tape, "gelu", x,
                v -> 0.5 * v * (1.0 + Erf.erf(v * INV_SQRT_2)),
                v -> 0.5 * (1.0 + Erf.erf(v * INV_SQRT_2)) + v * INV_SQRT_2PI * Math.exp(-0.5 * v * v));
    }

    /**
     * GELU, tanh approximation (HF "gelu_pytorch_tanh"): 0.5 x (1 + tanh(u)), u = sqrt(2/pi)(x + 0.044715 x^3);
     * d = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) sqrt(2/pi) (1 + 3 * 0.044715 x^2).
     */
    public static Tensor geluTanh(Tape tape, Tensor x) {
        return pointwise(tape, "geluTanh", x,
                v -> 0.5 * v * (1.0 + Math.tanh(SQRT_2_OVER_PI * (v + GELU_TANH_CUBIC * v * v * v))),
                v -> {
                    double th = Math.tanh(SQRT_2_OVER_PI * (v + GELU_TANH_CUBIC * v * v * v));
                    return 0.5 * (1.0 + th)
                            + 0.5 * v * (1.0 - th * th) * SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_TANH_CUBIC * v * v);
                });
    }

    /** quick_gelu (CLIP): x sigmoid(1.702 x); d = s + 1.702 x s (1 - s). */
    public static Tensor quickGelu(Tape tape, Tensor x) {
        float[] xd = x.data();
        float[] y = new float[xd.length];
        double[] sig = new double[xd.length]; // kept for backward: the exp is the costly part
        for (int i = 0; i < y.length; i++) {
            double v = xd[i];
            double sv = sigmoid(QUICK_GELU_ALPHA * v);
            sig[i] = sv;
            y[i] = (float) (v * sv);
        }
        Tensor out = Tensor.of(y, x.shape());
        return tape.record("quickGelu", out, () -> {
            float[] dy = out.grad();
            float[] dx = x.gradOrCreate();
            for (int i = 0; i < dy.length; i++) {
                double v = xd[i];
                double sv = sig[i];
                dx[i] += (float) (dy[i] * (sv + QUICK_GELU_ALPHA * v * sv * (1.0 - sv)));
            }
        }, x);
    }

    /** SiLU (swish): x sigmoid(x); d = s (1 + x (1 - s)). */
    public static Tensor silu(Tape tape, Tensor x) {
        float[] xd = x.data();
        float[] y = new float[xd.length];
        double[] sig = new double[xd.length]; // kept for backward: the exp is the costly part
        for (int i = 0; i < y.length; i++) {
            double v = xd[i];
            double sv = sigmoid(v);
            sig[i] = sv;
            y[i] = (float) (v * sv);
        }
        Tensor out = Tensor.of(y, x.shape());
        return tape.record("silu", out, () -> {
            float[] dy = out.grad();
            float[] dx = x.gradOrCreate();
            for (int i = 0; i < dy.length; i++) {
                double v = xd[i];
                double sv = sig[i];
                dx[i] += (float) (dy[i] * (sv * (1.0 + v * (1.0 - sv))));
            }
        }, x);
    }

    /** Softmax over the last axis, x (..., D). Backward: dx = y (dy - sum(dy y)). */
    public static Tensor softmax(Tape tape, Tensor x) {
        require(x.rank() >= 1, "softmax", "rank >= 1", x);
        int D = x.cols();
        int T = x.rows();
        float[] xd = x.data();
        float[] y = new float[xd.length];
        for (int t = 0; t < T; t++) {
            softmaxRow(xd, t * D, D, y, t * D);
        }
        Tensor out = Tensor.of(y, x.shape());
        return tape.record("softmax", out, () -> {
            float[] dy = out.grad();
            float[] dx = x.gradOrCreate();
            for (int t = 0; t < T; t++) {
                int o = t * D;
                double s = 0;
                for (int d = 0; d < D; d++) {
                    s += (double) dy[o + d] * y[o + d];
                }
                for (int d = 0; d < D; d++) {
                    dx[o + d] += (float) (y[o + d] * (dy[o + d] - s));
                }
            }
        }, x);
    }

    // ---------------------------------------------------------------- attention and positions

    /**
     * Fused multi-head scaled dot-product attention with grouped-query heads (HF
     * {@code eager_attention_forward}): q (T, H*Hd), k and v (T, Hkv*Hd) → (T, H*Hd). Query head h
     * reads key/value head h / (H / Hkv). Scores are q.k / sqrt(Hd); {@code causal} masks keys after
     * the query position (LLaMA), otherwise all keys are visible (CLIP). The (H, T, T) probabilities
     * are kept for backward: with dP = dO V^T and dS = scale * P (dP - rowsum(P dP)),
     * dV += P^T dO, dQ += dS K, dK += dS^T Q. Per head these are four dense products on
     * {@link MulAdd}; causal rows hold exact zeros beyond the diagonal, which add nothing.
     */
    public static Tensor attention(Tape tape, Tensor q, Tensor k, Tensor v, int heads, int kvHeads, boolean causal) {
        require(heads > 0 && kvHeads > 0 && heads % kvHeads == 0, "attention",
                "heads divisible by kvHeads, got heads=" + heads + " kvHeads=" + kvHeads, q);
        require(q.rank() == 2 && q.dim(1) % heads == 0, "attention", "q (T, H*Hd) with H = " + heads, q);
        int T = q.dim(0);
        int Hd = q.dim(1) / heads;
        int KvD = kvHeads * Hd;
        require(k.rank() == 2 && v.rank() == 2 && k.dim(0) == T && v.dim(0) == T && k.dim(1) == KvD && v.dim(1) == KvD,
                "attention", "k, v (T, Hkv*Hd) = (" + T + ", " + KvD + ")", k, v);
        int QD = heads * Hd;
        int group = heads / kvHeads;
        float scale = (float) (1.0 / Math.sqrt(Hd));
        float[] qd = q.data();
        float[] kd = k.data();
        float[] vd = v.data();
        float[] p = new float[heads * T * T]; // (H, T, T), zero above the diagonal when causal
        float[] o = new float[T * QD]; // (T, H*Hd)
        ParallelLoop.forRange(kvHeads, 2L * group * T * T * Hd, (g0, g1) -> {
            float[] kT = new float[Hd * T]; // (Hd, T): this group's keys transposed
            float[] vg = new float[T * Hd]; // (T, Hd)
            float[] oh = new float[T * Hd]; // (T, Hd)
            for (int g = g0; g < g1; g++) {
                gatherColumns(kd, KvD, g * Hd, T, Hd, kT, true);
                gatherColumns(vd, KvD, g * Hd, T, Hd, vg, false);
                for (int h = g * group; h < (g + 1) * group; h++) {
                    int po = h * T * T;
                    MulAdd.mulAddRows(qd, h * Hd, QD, 1, kT, 0, p, po, Hd, T, 0, T); // S = Q_h K^T
                    for (int t = 0; t < T; t++) {
                        int n = causal ? t + 1 : T;
                        int ro = po + t * T;
                        for (int j = 0; j < n; j++) {
                            p[ro + j] *= scale;
                        }
                        softmaxRow(p, ro, n, p, ro);
                        Arrays.fill(p, ro + n, ro + T, 0f);
                    }
                    Arrays.fill(oh, 0f);
                    MulAdd.mulAddRows(p, po, T, 1, vg, 0, oh, 0, T, Hd, 0, T); // O_h = P V
                    scatterColumns(oh, T, Hd, o, QD, h * Hd);
                }
            }
        });
        Tensor out = Tensor.of(o, T, QD);
        return tape.record("attention", out, () -> {
            float[] dO = out.grad(); // (T, H*Hd)
            float[] dq = new float[T * QD];
            float[] dk = new float[T * KvD];
            float[] dv = new float[T * KvD];
            ParallelLoop.forRange(kvHeads, 5L * group * T * T * Hd, (g0, g1) -> {
                float[] kg = new float[T * Hd]; // (T, Hd)
                float[] vT = new float[Hd * T]; // (Hd, T)
                float[] qh = new float[T * Hd]; // (T, Hd)
                float[] dOh = new float[T * Hd]; // (T, Hd)
                float[] tmp = new float[T * Hd]; // (T, Hd)
                float[] dkg = new float[T * Hd]; // (T, Hd)
                float[] dvg = new float[T * Hd]; // (T, Hd)
                float[] ds = new float[T * T]; // (T, T)
                for (int g = g0; g < g1; g++) {
                    gatherColumns(kd, KvD, g * Hd, T, Hd, kg, false);
                    gatherColumns(vd, KvD, g * Hd, T, Hd, vT, true);
                    Arrays.fill(dkg, 0f);
                    Arrays.fill(dvg, 0f);
                    for (int h = g * group; h < (g + 1) * group; h++) {
                        int po = h * T * T;
                        gatherColumns(qd, QD, h * Hd, T, Hd, qh, false);
                        gatherColumns(dO, QD, h * Hd, T, Hd, dOh, false);
                        Arrays.fill(ds, 0f);
                        MulAdd.mulAddRows(dOh, 0, Hd, 1, vT, 0, ds, 0, Hd, T, 0, T); // dP = dO_h V^T
                        for (int t = 0; t < T; t++) {
                            int n = causal ? t + 1 : T;
                            int ro = t * T;
                            double sum = 0;
                            for (int j = 0; j < n; j++) {
                                sum += (double) p[po + ro + j] * ds[ro + j];
                            }
                            for (int j = 0; j < n; j++) {
                                ds[ro + j] = scale * (float) (p[po + ro + j] * (ds[ro + j] - sum));
                            }
                            Arrays.fill(ds, ro + n, ro + T, 0f);
                        }
                        Arrays.fill(tmp, 0f);
                        MulAdd.mulAddRows(ds, 0, T, 1, kg, 0, tmp, 0, T, Hd, 0, T); // dQ_h = dS K
                        scatterColumns(tmp, T, Hd, dq, QD, h * Hd);
                        MulAdd.mulAddRows(ds, 0, 1, T, qh, 0, dkg, 0, T, Hd, 0, T); // dK += dS^T Q_h
                        MulAdd.mulAddRows(p, po, 1, T, dOh, 0, dvg, 0, T, Hd, 0, T); // dV += P^T dO_h
                    }
                    scatterColumns(dkg, T, Hd, dk, KvD, g * Hd);
                    scatterColumns(dvg, T, Hd, dv, KvD, g * Hd);
                }
            });
            if (q.requiresGrad()) {
                addInto(q.gradOrCreate(), dq);
            }
            if (k.requiresGrad()) {
                addInto(k.gradOrCreate(), dk);
            }
            if (v.requiresGrad()) {
                addInto(v.gradOrCreate(), dv);
            }
        }, q, k, v);
    }

    /**
     * Copies columns [col, col + w) of the (T, W) row-major src into dst as a contiguous (T, w)
     * matrix, or transposed as (w, T).
     */
    private static void gatherColumns(float[] src, int W, int col, int T, int w, float[] dst, boolean transpose) {
        for (int t = 0; t < T; t++) {
            int so = t * W + col;
            if (transpose) {
                for (int d = 0; d < w; d++) {
                    dst[d * T + t] = src[so + d];
                }
            } else {
                System.arraycopy(src, so, dst, t * w, w);
            }
        }
    }

    /** Writes the contiguous (T, w) src into columns [col, col + w) of the (T, W) row-major dst. */
    private static void scatterColumns(float[] src, int T, int w, float[] dst, int W, int col) {
        for (int t = 0; t < T; t++) {
            System.arraycopy(src, t * w, dst, t * W + col, w);
        }
    }

    /**
     * Rotary position embedding, LLaMA rotate_half layout: x (T, H*Hd) → (T, H*Hd). Position of row t
     * is {@code positionOffset + t}; frequency i &lt; Hd/2 is theta^(-2i/Hd); within each head,
     * y[i] = x[i] cos - x[i + Hd/2] sin and y[i + Hd/2] = x[i + Hd/2] cos + x[i] sin.
     * Backward is the inverse rotation of dy.
     */
    public static Tensor rope(Tape tape, Tensor x, int heads, double theta, int positionOffset) {
        require(x.rank() == 2 && heads > 0 && x.dim(1) % heads == 0 && (x.dim(1) / heads) % 2 == 0, "rope",
                "x (T, H*Hd) with even Hd and H = " + heads, x);
        int T = x.dim(0);
        int W = x.dim(1);
        int Hd = W / heads;
        int half = Hd / 2;
        RopeTable table = RopeTable.covering(theta, Hd, positionOffset + T);
        float[] cos = Arrays.copyOfRange(table.cos, positionOffset * half, (positionOffset + T) * half); // (T, Hd/2)
        float[] sin = Arrays.copyOfRange(table.sin, positionOffset * half, (positionOffset + T) * half); // (T, Hd/2)
        float[] xd = x.data();
        float[] y = new float[xd.length];
        rotate(xd, y, cos, sin, T, heads, Hd, 1f);
        Tensor out = Tensor.of(y, T, W);
        return tape.record("rope", out, () -> {
            float[] dx = new float[xd.length];
            rotate(out.grad(), dx, cos, sin, T, heads, Hd, -1f);
            addInto(x.gradOrCreate(), dx);
        }, x);
    }

    /**
     * cos and sin of RoPE's angles, (positions, Hd/2) row-major, for one theta and head size; the
     * latest table is kept, and a longer one is computed when a call needs more positions. Each entry
     * is the same expression of (position, i) whatever the table's length, so a cached table gives
     * the bits a fresh one would.
     */
    record RopeTable(double theta, int hd, int positions, float[] cos, float[] sin) {
        private static volatile RopeTable latest;

        static RopeTable covering(double theta, int hd, int positions) {
            RopeTable t = latest;
            if (t != null && t.theta == theta && t.hd == hd && t.positions >= positions) {
                return t;
            }
            int n = Math.max(positions, t != null && t.theta == theta && t.hd == hd ? 2 * t.positions : 256);
            t = compute(theta, hd, n);
            latest = t;
            return t;
        }

        static RopeTable compute(double theta, int hd, int positions) {
            int half = hd / 2;
            float[] cos = new float[positions * half];
            float[] sin = new float[positions * half];
            for (int p = 0; p < positions; p++) {
                for (int i = 0; i < half; i++) {
                    double invFreq = 1.0 / Math.pow(theta, (2.0 * i) / hd);
                    double angle = (double) p * invFreq;
                    cos[p * half + i] = (float) Math.cos(angle);
                    sin[p * half + i] = (float) Math.sin(angle);
                }
            }
            return new RopeTable(theta, hd, positions, cos, sin);
        }
    }

    /** Rotates each head's (x[i], x[i + Hd/2]) pairs by +angle (sign 1) or -angle (sign -1). */
    private static void rotate(float[] src, float[] dst, float[] cos, float[] sin, int T, int heads, int Hd,
                               float sign) {
        int half = Hd / 2;
        int W = heads * Hd;
        for (int t = 0; t < T; t++) {
            for (int h = 0; h < heads; h++) {
                int o = t * W + h * Hd;
                for (int i = 0; i < half; i++) {
                    float c = cos[t * half + i];
                    float s = sign * sin[t * half + i];
                    float a = src[o + i];
                    float b = src[o + i + half];
                    dst[o + i] = a * c - b * s;
                    dst[o + i + half] = b * c + a * s;
                }
            }
        }
    }

    // ---------------------------------------------------------------- indexing and layout

    /** Row gather (nn.Embedding without padding_idx): table (V, D), ids (T) in [0, V) → (T, D). */
    public static Tensor embedding(Tape tape, Tensor table, int[] ids) {
        return embedding(tape, table, ids, NO_PADDING);
    }

    /**
     * Row gather (nn.Embedding): table (V, D), ids (T) in [0, V) → (T, D). Backward scatter-adds dy
     * rows into the table, except into row {@code paddingIdx} (nn.Embedding's padding_idx, which
     * receives no gradient; LLaMA passes pad_token_id), or {@link #NO_PADDING}.
     */
    public static Tensor embedding(Tape tape, Tensor table, int[] ids, int paddingIdx) {
        require(table.rank() == 2, "embedding", "table (V, D)", table);
        int V = table.dim(0);
        int D = table.dim(1);
        for (int t = 0; t < ids.length; t++) {
            if (ids[t] < 0 || ids[t] >= V) {
                throw new IllegalArgumentException("embedding: id " + ids[t] + " at position " + t
                        + " outside vocabulary [0, " + V + ")" + nameOf(table));
            }
        }
        int[] idsCopy = ids.clone();
        float[] td = table.data();
        float[] y = new float[idsCopy.length * D]; // (T, D)
        for (int t = 0; t < idsCopy.length; t++) {
            System.arraycopy(td, idsCopy[t] * D, y, t * D, D);
        }
        Tensor out = Tensor.of(y, idsCopy.length, D);
        return tape.record("embedding", out, () -> {
            float[] dy = out.grad();
            float[] dt = table.gradOrCreate();
            for (int t = 0; t < idsCopy.length; t++) {
                if (idsCopy[t] != paddingIdx) {
                    axpy(1f, dy, t * D, dt, idsCopy[t] * D, D);
                }
            }
        }, table);
    }

    /** Concatenation along the first axis: parts (T_i, ...) with equal trailing shape → (sum T_i, ...). */
    public static Tensor concatRows(Tape tape, Tensor... parts) {
        require(parts.length > 0, "concatRows", "at least one part");
        int[] trailing = Arrays.copyOfRange(parts[0].shape(), 1, parts[0].rank());
        int rows = 0;
        for (Tensor p : parts) {
            require(p.rank() >= 1 && Arrays.equals(trailing, Arrays.copyOfRange(p.shape(), 1, p.rank())),
                    "concatRows", "equal trailing shape " + Arrays.toString(trailing), p);
            rows += p.dim(0);
        }
        int[] shape = parts[0].shape();
        shape[0] = rows;
        float[] y = new float[Math.toIntExact(Tensor.numel(shape))];
        int[] offsets = new int[parts.length];
        int off = 0;
        for (int i = 0; i < parts.length; i++) {
            offsets[i] = off;
            System.arraycopy(parts[i].data(), 0, y, off, parts[i].numel());
            off += parts[i].numel();
        }
        Tensor out = Tensor.of(y, shape);
        Tensor[] ins = parts.clone();
        return tape.record("concatRows", out, () -> {
            float[] dy = out.grad();
            for (int i = 0; i < ins.length; i++) {
                if (ins[i].requiresGrad()) {
                    axpy(1f, dy, offsets[i], ins[i].gradOrCreate(), 0, ins[i].numel());
                }
            }
        }, ins);
    }

    /** Rows [from, to) along the first axis: x (T, ...) → (to - from, ...). */
    public static Tensor sliceRows(Tape tape, Tensor x, int from, int to) {
        require(x.rank() >= 1 && 0 <= from && from <= to && to <= x.dim(0), "sliceRows",
                "0 <= from <= to <= rows, got from=" + from + " to=" + to, x);
        int rowSize = x.dim(0) == 0 ? 0 : x.numel() / x.dim(0);
        int[] shape = x.shape();
        shape[0] = to - from;
        float[] y = Arrays.copyOfRange(x.data(), from * rowSize, to * rowSize);
        Tensor out = Tensor.of(y, shape);
        return tape.record("sliceRows", out,
                () -> axpy(1f, out.grad(), 0, x.gradOrCreate(), from * rowSize, y.length), x);
    }

    // ---------------------------------------------------------------- losses

    /**
     * Cross-entropy with integer targets (nn.CrossEntropyLoss, reduction mean): logits (T, V),
     * targets (T) in [0, V) or {@link #IGNORE_INDEX} → rank-0 loss, the mean of
     * logsumexp(row) - row[target] over non-ignored rows. Backward: (softmax - onehot) / count.
     * If every row is ignored the loss is 0 with zero gradient (torch would return NaN).
     */
    public static Tensor crossEntropy(Tape tape, Tensor logits, int[] targets) {
        require(logits.rank() == 2 && logits.dim(0) == targets.length, "crossEntropy",
                "logits (T, V) with T = targets.length = " + targets.length, logits);
        int T = logits.dim(0);
        int V = logits.dim(1);
        int[] tg = targets.clone();
        float[] ld = logits.data();
        double[] lse = new double[T]; // (T)
        double total = 0;
        int count = 0;
        for (int t = 0; t < T; t++) {
            if (tg[t] == IGNORE_INDEX) {
                continue;
            }
            if (tg[t] < 0 || tg[t] >= V) {
                throw new IllegalArgumentException("crossEntropy: target " + tg[t] + " at row " + t
                        + " outside [0, " + V + ") and not " + IGNORE_INDEX);
            }
            int o = t * V;
            double max = Double.NEGATIVE_INFINITY;
            for (int c = 0; c < V; c++) {
                max = Math.max(max, ld[o + c]);
            }
            double s = 0;
            for (int c = 0; c < V; c++) {
                s += Math.exp(ld[o + c] - max);
            }
            double l = max + Math.log(s);
            lse[t] = l;
            total += l - ld[o + tg[t]];
            count++;
        }
        int n = count;
        Tensor out = Tensor.of(new float[] {n == 0 ? 0f : (float) (total / n)});
        return tape.record("crossEntropy", out, () -> {
            if (n == 0) {
                return;
            }
            float g = out.grad()[0] / n;
            float[] dl = logits.gradOrCreate();
            for (int t = 0; t < T; t++) {
                if (tg[t] == IGNORE_INDEX) {
                    continue;
                }
                int o = t * V;
                for (int c = 0; c < V; c++) {
                    dl[o + c] += g * (float) Math.exp(ld[o + c] - lse[t]);
                }
                dl[o + tg[t]] -= g;
            }
        }, logits);
    }

    /** Mean squared error (nn.MSELoss, reduction mean): a, b same shape → rank-0 mean((a - b)^2). */
    public static Tensor mse(Tape tape, Tensor a, Tensor b) {
        require(a.sameShape(b) && a.numel() > 0, "mse", "equal non-empty shapes", a, b);
        float[] ad = a.data();
        float[] bd = b.data();
        double s = 0;
        for (int i = 0; i < ad.length; i++) {
            double d = (double) ad[i] - bd[i];
            s += d * d;
        }
        int n = ad.length;
        Tensor out = Tensor.of(new float[] {(float) (s / n)});
        return tape.record("mse", out, () -> {
            float g = 2f * out.grad()[0] / n;
            float[] da = a.requiresGrad() ? a.gradOrCreate() : null;
            float[] db = b.requiresGrad() ? b.gradOrCreate() : null;
            for (int i = 0; i < n; i++) {
                float d = g * (ad[i] - bd[i]);
                if (da != null) {
                    da[i] += d;
                }
                if (db != null) {
                    db[i] -= d;
                }
            }
        }, a, b);
    }

    // ---------------------------------------------------------------- quantization

    /** {@link #fakeQuantize(Tape, Tensor, Tensor, float, int, int, float)} with scale-gradient factor 1. */
    public static Tensor fakeQuantize(Tape tape, Tensor x, Tensor scale, float zeroPoint, int qmin, int qmax) {
        return fakeQuantize(tape, x, scale, zeroPoint, qmin, qmax, 1f);
    }

    /**
     * Affine fake quantization with a learnable step size (LSQ, Esser et al. 2020; torch's
     * {@code _fake_quantize_learnable_per_tensor_affine}): x any shape, scale (1) per tensor or
     * (rows) per row (per output channel of an (N, K) weight), zeroPoint a constant.
     * q = clamp(round(x / s) + z, qmin, qmax) with round-half-even, y = (q - z) s.
     * Backward: x gets the straight-through gradient dy where round(x / s) + z lies in [qmin, qmax]
     * and 0 where it clips; the scale gets dy * (round(x/s) - x/s) inside the range and
     * dy * (qmin - z) or dy * (qmax - z) where it clips, summed (per row), times {@code gradFactor}
     * (LSQ suggests 1 / sqrt(numel * qmax)).
     */
    public static Tensor fakeQuantize(Tape tape, Tensor x, Tensor scale, float zeroPoint, int qmin, int qmax,
                                      float gradFactor) {
        require(qmin < qmax, "fakeQuantize", "qmin < qmax, got qmin=" + qmin + " qmax=" + qmax, x);
        int rows = x.rows();
        int cols = x.cols();
        boolean perRow = scale.numel() != 1;
        require(!perRow || (scale.numel() == rows && scale.rank() == 1), "fakeQuantize",
                "scale (1) or (rows) with rows = " + rows, x, scale);
        float[] sd = scale.data();
        for (int i = 0; i < sd.length; i++) {
            if (!(sd[i] > 0f) || Float.isInfinite(sd[i])) {
                throw new IllegalArgumentException("fakeQuantize: scale[" + i + "] must be positive and finite, got "
                        + sd[i] + nameOf(scale));
            }
        }
        float[] xd = x.data();
        float[] y = new float[xd.length];
        // -1 below the range, +1 above, 0 inside: decides both gradients.
        byte[] clip = new byte[xd.length];
        for (int r = 0; r < rows; r++) {
            float s = sd[perRow ? r : 0];
            for (int c = 0; c < cols; c++) {
                int i = r * cols + c;
                float qv = (float) Math.rint(xd[i] / s) + zeroPoint;
                if (qv < qmin) {
                    clip[i] = -1;
                    qv = qmin;
                } else if (qv > qmax) {
                    clip[i] = 1;
                    qv = qmax;
                }
                y[i] = (qv - zeroPoint) * s;
            }
        }
        Tensor out = Tensor.of(y, x.shape());
        return tape.record("fakeQuantize", out, () -> {
            float[] dy = out.grad();
            float[] dx = x.requiresGrad() ? x.gradOrCreate() : null;
            float[] ds = scale.requiresGrad() ? scale.gradOrCreate() : null;
            double rowSum = 0;
            for (int r = 0; r < rows; r++) {
                float s = sd[perRow ? r : 0];
                if (perRow) {
                    rowSum = 0;
                }
                for (int c = 0; c < cols; c++) {
                    int i = r * cols + c;
                    double local;
                    if (clip[i] == 0) {
                        if (dx != null) {
                            dx[i] += dy[i];
                        }
                        double u = xd[i] / s;
                        local = Math.rint((float) u) - u;
                    } else {
                        local = (clip[i] < 0 ? qmin : qmax) - zeroPoint;
                    }
                    rowSum += (double) dy[i] * local;
                }
                if (perRow && ds != null) {
                    ds[r] += (float) (rowSum * gradFactor);
                }
            }
            if (!perRow && ds != null) {
                ds[0] += (float) (rowSum * gradFactor);
            }
        }, x, scale);
    }

    // ---------------------------------------------------------------- helpers

    private static Tensor pointwise(Tape tape, String op, Tensor x, DoubleUnaryOperator f, DoubleUnaryOperator df) {
        float[] xd = x.data();
        float[] y = new float[xd.length];
        for (int i = 0; i < y.length; i++) {
            y[i] = (float) f.applyAsDouble(xd[i]);
        }
        Tensor out = Tensor.of(y, x.shape());
        return tape.record(op, out, () -> {
            float[] dy = out.grad();
            float[] dx = x.gradOrCreate();
            for (int i = 0; i < dy.length; i++) {
                dx[i] += (float) (dy[i] * df.applyAsDouble(xd[i]));
            }
        }, x);
    }

    private static double sigmoid(double v) {
        return 1.0 / (1.0 + Math.exp(-v));
    }

    /** Softmax of src[so .. so+n) into dst[do ..); max-subtracted, sum in double. */
    private static void softmaxRow(float[] src, int so, int n, float[] dst, int dOff) {
        float max = Float.NEGATIVE_INFINITY;
        for (int i = 0; i < n; i++) {
            max = Math.max(max, src[so + i]);
        }
        double sum = 0;
        for (int i = 0; i < n; i++) {
            double e = Math.exp(src[so + i] - max);
            dst[dOff + i] = (float) e;
            sum += e;
        }
        float inv = (float) (1.0 / sum);
        for (int i = 0; i < n; i++) {
            dst[dOff + i] *= inv;
        }
    }

    private static void axpy(float a, float[] x, int xo, float[] y, int yo, int n) {
        for (int i = 0; i < n; i++) {
            y[yo + i] += a * x[xo + i];
        }
    }

    private static void addInto(float[] dst, float[] src) {
        for (int i = 0; i < dst.length; i++) {
            dst[i] += src[i];
        }
    }

    private static String nameOf(Tensor t) {
        return t.name() == null ? "" : " (tensor '" + t.name() + "')";
    }

    private static void require(boolean ok, String op, String expected, Tensor... got) {
        if (!ok) {
            StringBuilder sb = new StringBuilder(op).append(": expected ").append(expected).append(", got");
            for (Tensor t : got) {
                sb.append(' ').append(t == null ? "null" : Arrays.toString(t.shape()) + nameOf(t));
            }
            throw new IllegalArgumentException(sb.toString());
        }
    }
}
