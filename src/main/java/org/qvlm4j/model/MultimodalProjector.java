package org.qvlm4j.model;

import org.qvlm4j.io.config.Activation;

/**
 * LLaVA-1.5's two-layer MLP projector (HF LlavaMultiModalProjector): linear_2(act(linear_1(x))),
 * mapping vision features (F, Dv) into the language model's embedding space (F, D).
 */
public final class MultimodalProjector {
    final Linear linear1;
    final Linear linear2;
    private final Activation act;

    MultimodalProjector(LlavaWeights w, Activation act) {
        this.linear1 = w.linear("projector.linear_1");
        this.linear2 = w.linear("projector.linear_2");
        this.act = act;
    }

    /** (F, Dv) to (F, D). */
    public float[] forward(float[] features, int F, ActivationTap tap) {
        int D = linear1.outFeatures();
        float[] mid = new float[F * D]; // (F, D)
        linear1.forward(features, F, mid, tap);
        Ops.activate(act, mid, F * D);
        float[] out = new float[F * linear2.outFeatures()]; // (F, D)
        linear2.forward(mid, F, out, tap);
        return out;
    }
}
