package org.qvlm4j.quant;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * QLoRA NormalFloat4 (Dettmers et al. 2023) as bitsandbytes stores it
 * ({@code functional.quantize_4bit(quant_type="nf4")}), the weight format of the official Q-VLM
 * code (qvlm-method.md §2.2).
 *
 * <p><b>Blocks.</b> The weight is flattened row-major and cut into blocks of {@code blockSize}
 * (64) values, the last block possibly partial; each block keeps absmax = max |w| in fp32.
 * <b>Encoding</b> normalizes w · (1 / absmax) (a multiply by the reciprocal, as the CUDA kernel
 * does) and picks the code of the nearest of the 16 {@link #LEVELS}, deciding with the fixed
 * midpoints {@link #THRESHOLDS} of bitsandbytes' {@code dQuantizeNF4} with strict "&gt;": a value
 * exactly on a midpoint takes the lower code. <b>Decoding</b> is LEVELS[code] · absmax. An all-zero
 * block (absmax 0) encodes to code 7 (level 0.0) here; bitsandbytes multiplies by 1/0 and gets a
 * NaN that its tree sends to code 0, which also decodes to 0 (−1 · 0), so the weights agree.
 *
 * <p><b>Double quantization</b> (bitsandbytes {@code compress_statistics=True}): offset =
 * mean(absmax); the centred absmax − offset are quantized blockwise with block
 * {@code doubleQuantBlock} (256) to 8-bit codes of bitsandbytes' signed dynamic map
 * ({@code create_dynamic_map(signed=True, max_exponent_bits=7)}, built by {@link #dynamicMap}),
 * each block keeping its own fp32 absmax; decoded absmax = map[code] · absmax2 + offset. NF4
 * codes are chosen with the exact absmax (as bitsandbytes does: it quantizes the weight first,
 * then the statistics), and decoding uses the double-quantized one. The dynamic map is computed
 * here in double and rounded to float, so an entry may differ from torch's float32 linspace by an
 * ulp; the offset is the mean summed in double (torch sums float32 pairwise). Nearest-entry
 * search follows bitsandbytes' {@code dQuantize}: bisection from entry 127, then the midpoint to
 * the neighbour decides, ties staying on the bisection's entry.
 *
 * <p>Left out: FP4, packing two codes per byte (the kernels' {@code QuantFormat} does that),
 * fp16/bf16 storage of absmax.
 */
public final class Nf4Quantizer implements Quantizer {
    /** Code 0..15 → level, bitsandbytes {@code dDequantizeNF4} (float32 literals). */
    public static final float[] LEVELS = {
        -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
        -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
        0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
        0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f,
    };

    /**
     * Decision midpoints of bitsandbytes {@code dQuantizeNF4}: code = number of thresholds t with
     * x &gt; t. THRESHOLDS[i] separates code i from code i + 1.
     */
    public static final float[] THRESHOLDS = {
        -0.8480964004993439f, -0.6106329262256622f, -0.4599952697753906f, -0.33967943489551544f,
        -0.23460740596055984f, -0.13791173323988914f, -0.045525018125772476f, 0.03979014977812767f,
        0.1202552504837513f, 0.2035212516784668f, 0.2920137718319893f, 0.3893125355243683f,
        0.5016634166240692f, 0.6427869200706482f, 0.8614784181118011f,
    };

    /** Code of level 0.0, used for all-zero blocks. */
    public static final int ZERO_CODE = 7;

    private static final float[] DYNAMIC_MAP = dynamicMap();

    private final QuantSpec spec;

    public Nf4Quantizer(QuantSpec spec) {
        if (spec.format() != QuantSpec.Format.NF4) {
            throw new IllegalArgumentException("Nf4Quantizer needs an NF4 spec, got " + spec);
        }
        this.spec = spec;
    }

    @Override
    public QuantSpec spec() {
        return spec;
    }

    /** Double-quantized block statistics: 8-bit dynamic-map codes, one absmax per block2, and the offset. */
    public record DoubleQuant(byte[] codes, float[] absmax2, float offset, int blockSize) {
    }

    /**
     * A quantized weight: one NF4 code (0..15) per element, row-major, and either the fp32 absmax
     * per block or its double quantization (absmax is then null).
     */
    public record Nf4Tensor(int rows, int cols, int blockSize, byte[] codes, float[] absmax, DoubleQuant doubleQuant) {
        public int blocks() {
            return (codes.length + blockSize - 1) / blockSize;
        }
    }

    /** NF4 code of a normalized value, bitsandbytes' decision midpoints with strict "&gt;". */
    public static int encode(float normalized) {
        int code = 0;
        while (code < THRESHOLDS.length && normalized > THRESHOLDS[code]) {
            code++;
        }
        return code;
    }

    public Nf4Tensor quantize(float[] w, int rows, int cols) {
        UniformQuantizer.checkShape(w, rows, cols);
        int n = rows * cols;
        int bs = spec.groupSize();
        int blocks = (n + bs - 1) / bs;
        float[] absmax = new float[blocks];
        byte[] codes = new byte[n];
        for (int b = 0; b < blocks; b++) {
            int from = b * bs;
            int to = Math.min(n, from + bs);
            float m = 0f;
            for (int i = from; i < to; i++) {
                m = Math.max(m, Math.abs(w[i]));
            }
            absmax[b] = m;
            float inv = 1f / m;
            for (int i = from; i < to; i++) {
                codes[i] = (byte) (m == 0f ? ZERO_CODE : encode(w[i] * inv));
            }
        }
        if (spec.doubleQuantBlock() > 0) {
            return new Nf4Tensor(rows, cols, bs, codes, null, doubleQuantize(absmax, spec.doubleQuantBlock()));
        }
        return new Nf4Tensor(rows, cols, bs, codes, absmax, null);
    }

    /** The per-block absmax a decoder uses: stored, or decoded from the double quantization. */
    public static float[] blockAbsmax(Nf4Tensor q) {
        return q.absmax() != null ? q.absmax().clone() : dequantizeDouble(q.doubleQuant(), q.blocks());
    }

    public float[] dequantize(Nf4Tensor q) {
        float[] absmax = blockAbsmax(q);
        float[] out = new float[q.codes().length];
        for (int i = 0; i < out.length; i++) {
            out[i] = LEVELS[q.codes()[i]] * absmax[i / q.blockSize()];
        }
        return out;
    }

    @Override
    public void fakeQuantize(float[] x, int rows, int cols) {
        float[] y = dequantize(quantize(x, rows, cols));
        System.arraycopy(y, 0, x, 0, y.length);
    }

    /** bitsandbytes' nested statistics quantization: offset = mean, then 8-bit dynamic blockwise. */
    public static DoubleQuant doubleQuantize(float[] absmax, int block2) {
        double sum = 0;
        for (float a : absmax) {
            sum += a;
        }
        float offset = (float) (sum / absmax.length);
        int n = absmax.length;
        int blocks = (n + block2 - 1) / block2;
        float[] absmax2 = new float[blocks];
        byte[] codes = new byte[n];
        for (int b = 0; b < blocks; b++) {
            int from = b * block2;
            int to = Math.min(n, from + block2);
            float m = 0f;
            for (int i = from; i < to; i++) {
                m = Math.max(m, Math.abs(absmax[i] - offset));
            }
            absmax2[b] = m;
            float inv = 1f / m;
            for (int i = from; i < to; i++) {
                codes[i] = (byte) (m == 0f ? dynamicZeroCode() : nearestDynamic((absmax[i] - offset) * inv));
            }
        }
        return new DoubleQuant(codes, absmax2, offset, block2);
    }

    /** Decoded absmax values: map[code] · absmax2[block] + offset. */
    public static float[] dequantizeDouble(DoubleQuant dq, int n) {
        float[] out = new float[n];
        for (int i = 0; i < n; i++) {
            out[i] = DYNAMIC_MAP[dq.codes()[i] & 0xFF] * dq.absmax2()[i / dq.blockSize()] + dq.offset();
        }
        return out;
    }

    /** The 256 sorted entries of bitsandbytes' signed dynamic 8-bit map (a copy). */
    public static float[] dynamicMapEntries() {
        return DYNAMIC_MAP.clone();
    }

    /**
     * bitsandbytes {@code create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8)}: for
     * exponent i = 0..6, the 2^i midpoints of linspace(0.1, 1, 2^i + 1) scaled by 10^(i − 6), with
     * both signs, plus 0 and 1, sorted (254 + 2 = 256 entries).
     */
    static float[] dynamicMap() {
        int maxExponentBits = 7;
        List<Double> data = new ArrayList<>();
        for (int i = 0; i < maxExponentBits; i++) {
            int fractionItems = (1 << i) + 1;
            double scale = Math.pow(10, -(maxExponentBits - 1) + i);
            for (int j = 0; j + 1 < fractionItems; j++) {
                double b0 = 0.1 + 0.9 * j / (fractionItems - 1);
                double b1 = 0.1 + 0.9 * (j + 1) / (fractionItems - 1);
                double mean = (b0 + b1) / 2;
                data.add(scale * mean);
                data.add(-scale * mean);
            }
        }
        data.add(0.0);
        data.add(1.0);
        Collections.sort(data);
        float[] map = new float[data.size()];
        for (int i = 0; i < map.length; i++) {
            map[i] = (float) (double) data.get(i);
        }
        return map;
    }

    private static int dynamicZeroCode() {
        for (int i = 0; i < DYNAMIC_MAP.length; i++) {
            if (DYNAMIC_MAP[i] == 0f) {
                return i;
            }
        }
        throw new AssertionError("dynamic map has no 0");
    }

    /** Nearest map entry, bitsandbytes' bisection: 7 halving steps from entry 127, then a midpoint test. */
    static int nearestDynamic(float x) {
        float[] code = DYNAMIC_MAP;
        int pivot = 127;
        int upperPivot = 255;
        int lowerPivot = 0;
        float lower = -1f;
        float upper = 1f;
        float val = code[pivot];
        for (int step = 64; step > 0; step >>= 1) {
            if (x > val) {
                lowerPivot = pivot;
                lower = val;
                pivot += step;
            } else {
                upperPivot = pivot;
                upper = val;
                pivot -= step;
            }
            val = code[pivot];
        }
        if (upperPivot == 255) {
            upper = code[upperPivot];
        }
        if (lowerPivot == 0) {
            lower = code[lowerPivot];
        }
        if (x > val) {
            return x > (upper + val) * 0.5f ? upperPivot : pivot;
        }
        return x < (lower + val) * 0.5f ? lowerPivot : pivot;
    }
}
