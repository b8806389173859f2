package org.qvlm4j.train.optim;

/**
 * Learning rate with linear warm-up and cosine decay to a floor, as HF transformers'
 * {@code get_cosine_with_min_lr_schedule_with_warmup} (one half cosine):
 * <pre>
 *   step &lt; warmup:  lr = peak * step / warmup
 *   otherwise:       p = min(1, (step - warmup) / max(1, total - warmup))
 *                    lr = peak * (minRatio + (1 - minRatio) * 0.5 * (1 + cos(pi * p)))
 * </pre>
 * Steps count from 0 (the update about to be applied). Step 0 of a warm-up has lr 0 as in HF; at
 * {@code step == warmup} the rate is the peak, and at {@code step >= total} it stays at
 * {@code peak * minRatio} (HF would continue the cosine past the end).
 */
public record CosineSchedule(double peakLr, int warmupSteps, int totalSteps, double minLrRatio) {

    public CosineSchedule {
        if (!(peakLr >= 0) || Double.isInfinite(peakLr)) {
            throw new IllegalArgumentException("peakLr must be finite and >= 0, got " + peakLr);
        }
        if (warmupSteps < 0 || totalSteps < warmupSteps) {
            throw new IllegalArgumentException("need 0 <= warmupSteps <= totalSteps, got warmupSteps="
                    + warmupSteps + " totalSteps=" + totalSteps);
        }
        if (!(minLrRatio >= 0 && minLrRatio <= 1)) {
            throw new IllegalArgumentException("minLrRatio must lie in [0, 1], got " + minLrRatio);
        }
    }

    /** The learning rate for update number {@code step} (0-based). */
    public double lr(int step) {
        if (step < 0) {
            throw new IllegalArgumentException("step must be >= 0, got " + step);
        }
        if (step < warmupSteps) {
            return peakLr * step / warmupSteps;
        }
        double progress = Math.min(1.0, (double) (step - warmupSteps) / Math.max(1, totalSteps - warmupSteps));
        double cosine = 0.5 * (1.0 + Math.cos(Math.PI * progress));
        return peakLr * (minLrRatio + (1.0 - minLrRatio) * cosine);
    }
}
