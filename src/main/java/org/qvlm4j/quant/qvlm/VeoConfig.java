package org.qvlm4j.quant.qvlm;

/**
 * The named settings of visual encoder optimisation (Q-VLM §3.3, Eq. 8-10;
 * {@link VisualEncoderOptimizer}). The paper gives none of eta, lambda1, lambda2 or the learning
 * rate; it gives 64 calibration pairs, batch 8 and 10 epochs, which are the defaults here.
 *
 * @param eta     weight of the final LLM hidden state's relative error against the vision tower's
 *                in L_err (Eq. 9); the paper only says a "medium" value works best
 * @param lambda1 weight of the Jacobian-weighted conditional entropy L_ent (Eq. 10)
 * @param lambda2 weight of the discretisation error L_err (Eq. 10)
 * @param lr      peak AdamW learning rate of the clipping factors (dimensionless: a step of lr moves a
 *                bound by about lr times its calibrated value); cosine-decayed to 0 over the run
 * @param epochs  passes over the calibration samples
 * @param batch   samples per update (gradients averaged)
 * @param samples calibration samples drawn from the train split (problems with an image)
 * @param seed    sample selection and per-epoch order
 * @param bits    the entropy grid has M = 2^bits levels (Eq. 5), normally the activation bit width
 */
public record VeoConfig(double eta, double lambda1, double lambda2, double lr, int epochs, int batch, int samples,
                        long seed, int bits) {
    public static final double DEFAULT_ETA = 1.0;
    /** The official code's stand-in constant for the entropy coefficient ({@code entropyweight = 0.01}). */
    public static final double DEFAULT_LAMBDA1 = 0.01;
    public static final double DEFAULT_LAMBDA2 = 1.0;
    public static final double DEFAULT_LR = 1e-2;
    public static final int DEFAULT_EPOCHS = 10;
    public static final int DEFAULT_BATCH = 8;
    public static final int DEFAULT_SAMPLES = 64;
    public static final long DEFAULT_SEED = 0;
    public static final int DEFAULT_BITS = 4;
    /** Grid bit widths the entropy accepts: the uniform quantizer's range. */
    public static final int MIN_BITS = 2;
    public static final int MAX_BITS = 8;

    public VeoConfig {
        require(eta >= 0 && Double.isFinite(eta), "eta", "a finite value >= 0", eta);
        require(lambda1 >= 0 && Double.isFinite(lambda1), "lambda1", "a finite value >= 0", lambda1);
        require(lambda2 >= 0 && Double.isFinite(lambda2), "lambda2", "a finite value >= 0", lambda2);
        require(lr > 0 && Double.isFinite(lr), "lr", "a finite value > 0", lr);
        require(epochs >= 1, "epochs", ">= 1", epochs);
        require(batch >= 1, "batch", ">= 1", batch);
        require(samples >= 1, "samples", ">= 1", samples);
        require(bits >= MIN_BITS && bits <= MAX_BITS, "bits", MIN_BITS + ".." + MAX_BITS, bits);
    }

    /** The defaults above. */
    public static VeoConfig defaults() {
        return new VeoConfig(DEFAULT_ETA, DEFAULT_LAMBDA1, DEFAULT_LAMBDA2, DEFAULT_LR, DEFAULT_EPOCHS, DEFAULT_BATCH,
                DEFAULT_SAMPLES, DEFAULT_SEED, DEFAULT_BITS);
    }

    public VeoConfig withEpochs(int e) {
        return new VeoConfig(eta, lambda1, lambda2, lr, e, batch, samples, seed, bits);
    }

    public VeoConfig withBatch(int b) {
        return new VeoConfig(eta, lambda1, lambda2, lr, epochs, b, samples, seed, bits);
    }

    public VeoConfig withSamples(int n) {
        return new VeoConfig(eta, lambda1, lambda2, lr, epochs, batch, n, seed, bits);
    }

    public VeoConfig withSeed(long s) {
        return new VeoConfig(eta, lambda1, lambda2, lr, epochs, batch, samples, s, bits);
    }

    public VeoConfig withLr(double r) {
        return new VeoConfig(eta, lambda1, lambda2, r, epochs, batch, samples, seed, bits);
    }

    public VeoConfig withBits(int b) {
        return new VeoConfig(eta, lambda1, lambda2, lr, epochs, batch, samples, seed, b);
    }

    /** The loss weights eta, lambda1, lambda2 replaced. */
    public VeoConfig withWeights(double newEta, double newLambda1, double newLambda2) {
        return new VeoConfig(newEta, newLambda1, newLambda2, lr, epochs, batch, samples, seed, bits);
    }

    private static void require(boolean ok, String key, String expected, Object actual) {
        if (!ok) {
            throw new IllegalArgumentException("VEO config: key " + key + " expected " + expected + ", got " + actual);
        }
    }
}
