package org.qvlm4j.io.config;

/**
 * The language-model half of a LLaVA config: the fields of transformers' {@code LlamaConfig} that
 * the forward pass reads. Defaults are LlamaConfig's (see {@link LlavaConfig#parse}).
 *
 * <p>Leaves out training-only fields (dropout, initializer range) and rope scaling variants other
 * than the default rotary embedding.
 *
 * @param eosTokenIds one or more end-of-sequence ids (HF allows an int or a list)
 */
public record LlamaTextConfig(
        int vocabSize,
        int hiddenSize,
        int intermediateSize,
        int numHiddenLayers,
        int numAttentionHeads,
        int numKeyValueHeads,
        int headDim,
        Activation hiddenAct,
        int maxPositionEmbeddings,
        double rmsNormEps,
        double ropeTheta,
        boolean attentionBias,
        boolean mlpBias,
        int bosTokenId,
        int[] eosTokenIds) {

    public LlamaTextConfig {
        eosTokenIds = eosTokenIds.clone();
    }

    @Override
    public int[] eosTokenIds() {
        return eosTokenIds.clone();
    }

    public boolean isEos(int token) {
        for (int e : eosTokenIds) {
            if (e == token) {
                return true;
            }
        }
        return false;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof LlamaTextConfig c && toString().equals(c.toString());
    }

    @Override
    public int hashCode() {
        return toString().hashCode();
    }

    @Override
    public String toString() {
        return "LlamaTextConfig[vocab=" + vocabSize + ", hidden=" + hiddenSize + ", intermediate=" + intermediateSize
                + ", layers=" + numHiddenLayers + ", heads=" + numAttentionHeads + ", kvHeads=" + numKeyValueHeads
                + ", headDim=" + headDim + ", act=" + hiddenAct + ", maxPos=" + maxPositionEmbeddings
                + ", rmsNormEps=" + rmsNormEps + ", ropeTheta=" + ropeTheta + ", attentionBias=" + attentionBias
                + ", mlpBias=" + mlpBias + ", bos=" + bosTokenId + ", eos=" + java.util.Arrays.toString(eosTokenIds)
                + "]";
    }
}
