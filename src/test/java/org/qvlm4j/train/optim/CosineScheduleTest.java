package org.qvlm4j.train.optim;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** {@link CosineSchedule} at warm-up start and end, the cosine midpoint and the end. */
class CosineScheduleTest {
    static final double TOL = 1e-15;

    private final CosineSchedule s = new CosineSchedule(1e-3, 10, 110, 0.1);

    @Test
    void warmUpIsLinearFromZero() {
        assertEquals(0.0, s.lr(0), TOL);
        assertEquals(5e-4, s.lr(5), TOL);
        assertEquals(9e-4, s.lr(9), TOL);
        assertEquals(1e-3, s.lr(10), TOL);
    }

    @Test
    void cosineMidpointAndFloor() {
        // Step 60 is half-way through the 100 decay steps: cos(pi/2) = 0, so 0.1 + 0.9 * 0.5 of the peak.
        assertEquals(1e-3 * 0.55, s.lr(60), TOL);
        // A quarter of the way: 0.5 * (1 + cos(pi/4)).
        assertEquals(1e-3 * (0.1 + 0.9 * 0.5 * (1 + Math.sqrt(0.5))), s.lr(35), TOL);
        assertEquals(1e-4, s.lr(110), TOL);
        assertEquals(1e-4, s.lr(500), TOL);
        for (int step = 10; step < 110; step++) {
            assertTrue(s.lr(step + 1) <= s.lr(step), "non-increasing after warm-up at step " + step);
        }
    }

    @Test
    void noWarmUpStartsAtPeak() {
        CosineSchedule n = new CosineSchedule(2.0, 0, 4, 0.0);
        assertEquals(2.0, n.lr(0), TOL);
        assertEquals(1.0, n.lr(2), TOL);
        assertEquals(0.0, n.lr(4), TOL);
    }

    @Test
    void rejectsBadArguments() {
        assertThrows(IllegalArgumentException.class, () -> new CosineSchedule(1e-3, 20, 10, 0));
        assertThrows(IllegalArgumentException.class, () -> new CosineSchedule(1e-3, 0, 10, 1.5));
        assertThrows(IllegalArgumentException.class, () -> s.lr(-1));
    }
}
