package org.qvlm4j.train;

import org.qvlm4j.data.ScienceQaProblem;

/**
 * Turns a ScienceQA problem into a {@link TrainingExample}. The prompt text the model is trained
 * on must be exactly the one the evaluation feeds it, so the conversion is a replaceable strategy:
 * {@link QcmExampleEncoder} is the built-in one, and an evaluation's own prompt builder can be
 * plugged in instead.
 */
@FunctionalInterface
public interface ExampleEncoder {
    TrainingExample encode(ScienceQaProblem problem);
}
