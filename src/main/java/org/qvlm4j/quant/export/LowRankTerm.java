package org.qvlm4j.quant.export;

import org.ejml.data.DMatrixRMaj;
import org.ejml.dense.row.SingularOps_DDRM;
import org.ejml.dense.row.factory.DecompositionFactory_DDRM;
import org.ejml.interfaces.decomposition.SingularValueDecomposition_F64;
import org.qvlm4j.kernels.PackedMatrix;
import org.qvlm4j.quant.QuantSpec;
import org.qvlm4j.quant.Quantizer;

/**
 * Splits a weight image W' = Q + L, where Q is the round-to-nearest image of the pre-quantization
 * weight under the plan's spec and L a low-rank correction (ZeroQuant-V2's LoRC, Yao et al. 2023),
 * into Q's packed codes and two factors U (N, r), V (r, K) with U V ≈ W' − Q, for the runtime's
 * y = Q x + U (V x). The packed part stays exactly on the grid; the whole residual goes to the
 * factors, the truncated SVD of W' − Q (EJML, in double) with U = U_r Σ_r and V = V_rᵀ.
 *
 * <p>The rank is read off the residual: singular values above {@value #RANK_REL_TOL} of the largest
 * (the image was rounded to float after the correction was added, which leaves a noise floor
 * many orders below any genuine singular value); a residual of full rank is not a low-rank term.
 * The factors are kept in F32: BF16's 8-bit mantissa would move the correction by about 0.4% of its
 * size, far more than the float rounding the runtime and the in-memory model otherwise differ by,
 * for r(N + K) values against N K codes (about 3% of an INT4 4096x4096 weight at r = 8).
 * Left out: quantized factors (the paper's 8-bit LoRC variant), grids other than RTN of the plan's spec.
 */
final class LowRankTerm {
    /** Singular values of W' − Q at or below this fraction of the largest are float rounding noise. */
    static final double RANK_REL_TOL = 1e-4;
    /** Largest accepted max |Q + U V − W'| relative to max |W'|. */
    static final double RECONSTRUCTION_REL_TOL = 1e-5;

    /** The packed grid part, the factors U (N, r) and V (r, K) row-major, and the reconstruction's max deviation. */
    record Split(PackedMatrix packed, float[] u, float[] v, int rank, double maxDeviation) {
    }

    private LowRankTerm() {
    }

    /**
     * The split of image (N, K), whose grid part is RTN of original (N, K) under spec; an error
     * naming what when the grid part is not packable or the residual is not of low rank.
     */
    static Split split(String what, float[] image, float[] original, int n, int k, QuantSpec spec) {
        float[] grid = original.clone(); // (N, K)
        Quantizer.of(spec).fakeQuantize(grid, n, k);
        PackedMatrix packed = PackedWeights.pack(what + " (grid part)", grid, original, n, k, spec);
        DMatrixRMaj e = new DMatrixRMaj(n, k); // (N, K)
        double maxImage = 0;
        for (int i = 0; i < n * k; i++) {
            e.data[i] = (double) image[i] - grid[i];
            maxImage = Math.max(maxImage, Math.abs(image[i]));
        }
        SingularValueDecomposition_F64<DMatrixRMaj> svd = DecompositionFactory_DDRM.svd(n, k, true, true, true);
        if (!svd.decompose(e)) {
            throw new IllegalArgumentException(what + ": SVD of the (" + n + ", " + k + ") residual failed");
        }
        DMatrixRMaj u = svd.getU(null, false); // (N, m)
        DMatrixRMaj sigma = svd.getW(null); // (m, m)
        DMatrixRMaj v = svd.getV(null, false); // (K, m)
        SingularOps_DDRM.descendingOrder(u, false, sigma, v, false);
        int m = Math.min(n, k);
        double top = sigma.get(0, 0);
        int rank = 0;
        while (rank < m && sigma.get(rank, rank) > RANK_REL_TOL * top) {
            rank++;
        }
        if (top == 0 || rank == m) {
            throw new IllegalArgumentException(what + ": the weight minus its " + spec + " grid image has rank " + rank
                    + " of " + m + " (singular values above " + RANK_REL_TOL + " of the largest); expected a low-rank "
                    + "term below " + m);
        }
        float[] uf = new float[n * rank]; // (N, r)
        float[] vf = new float[rank * k]; // (r, K)
        for (int r = 0; r < n; r++) {
            for (int t = 0; t < rank; t++) {
                uf[r * rank + t] = (float) (u.get(r, t) * sigma.get(t, t));
            }
        }
        for (int t = 0; t < rank; t++) {
            for (int c = 0; c < k; c++) {
                vf[t * k + c] = (float) v.get(c, t);
            }
        }
        double dev = 0;
        for (int r = 0; r < n; r++) {
            for (int c = 0; c < k; c++) {
                double acc = grid[r * k + c];
                for (int t = 0; t < rank; t++) {
                    acc += (double) uf[r * rank + t] * vf[t * k + c];
                }
                dev = Math.max(dev, Math.abs(acc - image[r * k + c]));
            }
        }
        if (dev > RECONSTRUCTION_REL_TOL * maxImage) {
            throw new IllegalArgumentException(what + ": grid part plus rank-" + rank + " factors deviates from the "
                    + "weight by " + dev + " (max |w| " + maxImage + "), above " + RECONSTRUCTION_REL_TOL + " relative");
        }
        return new Split(packed, uf, vf, rank, dev);
    }
}
