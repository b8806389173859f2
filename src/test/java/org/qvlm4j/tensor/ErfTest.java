package org.qvlm4j.tensor;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

/** {@link Erf#erf} against tabulated values (Abramowitz and Stegun table 7.1, extended precision). */
class ErfTest {
    static final double TOL = 1e-14;

    @Test
    void tabulatedValuesOnBothBranches() {
        assertEquals(0.0, Erf.erf(0.0), TOL);
        assertEquals(0.1124629160182849, Erf.erf(0.1), TOL);
        assertEquals(0.5204998778130465, Erf.erf(0.5), TOL);
        assertEquals(0.8427007929497149, Erf.erf(1.0), TOL);
        assertEquals(0.9953222650189527, Erf.erf(2.0), TOL);
        assertEquals(0.9995930479825550, Erf.erf(2.5), TOL);
        assertEquals(0.9999779095030014, Erf.erf(3.0), TOL);
        assertEquals(0.9999999845827421, Erf.erf(4.0), TOL);
        assertEquals(-0.8427007929497149, Erf.erf(-1.0), TOL);
        assertEquals(1.0, Erf.erf(10.0), TOL);
    }

    @Test
    void continuousAcrossTheBranchPoint() {
        double below = Erf.erf(Math.nextDown(2.5));
        double above = Erf.erf(2.5);
        assertEquals(above, below, 1e-15);
    }
}
