package org.qvlm4j.model;

/**
 * Observer (and optional rewriter) of named activations during a forward pass: calibration
 * statistics, fake quantizers and debugging dumps hook in here without the model knowing them.
 *
 * <p><b>Site names.</b> Every site is {@code <module>.<point>}:
 * <ul>
 *   <li>Linear layers: {@code <linear>.in} (its input, (T, K)) and {@code <linear>.out} (its
 *       output after bias, (T, N)), where {@code <linear>} is one of
 *       {@code vision.layers.<i>.self_attn.{q,k,v,out}_proj}, {@code vision.layers.<i>.mlp.fc{1,2}},
 *       {@code vision.embeddings.patch_embedding} (input = flattened patches (P, C*p*p)),
 *       {@code projector.linear_{1,2}},
 *       {@code llm.layers.<i>.self_attn.{q,k,v,o}_proj}, {@code llm.layers.<i>.mlp.{gate,up,down}_proj}
 *       and {@code lm_head}.</li>
 *   <li>Transformer layers: {@code vision.layers.<i>.in}/{@code .out} (the residual stream
 *       entering/leaving CLIP encoder layer i, (P+1, Dv)) and {@code llm.layers.<i>.in}/{@code .out}
 *       (LLaMA decoder layer i, (T, D)).</li>
 * </ul>
 * Layer indices start at 0 and match the checkpoint's {@code layers.<i>}. In a decode step T is
 * the number of new tokens (1), so per-token statistics see every position exactly once.
 *
 * <p><b>Rewriting.</b> {@code data} holds rows * cols valid floats (it may be longer); a tap may
 * change them in place and the model continues with the changed values. A linear's {@code .in}
 * is a private copy for that linear, so rewriting {@code q_proj.in} does not change what
 * {@code k_proj} sees. With no tap registered (null) the model does no extra work.
 */
@FunctionalInterface
public interface ActivationTap {
    void onActivation(String site, float[] data, int rows, int cols);
}
