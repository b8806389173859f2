package org.qvlm4j.io.text;

import java.util.ArrayList;
import java.util.List;

/**
 * Places image features in a token sequence.
 *
 * <p>Primary path (llava-hf): {@code <image>} is an added special token (id 32000 in
 * llava-1.5-*-hf, {@code image_token_index} in config.json). The prompt is tokenized once, holding
 * one placeholder id per image, and {@link #expand} repeats each placeholder as many times as the
 * vision tower yields features, exactly like {@code LlavaProcessor}, which repeats the
 * {@code <image>} string before tokenizing (the same ids, because the tokenizer keeps added
 * tokens whole and an empty text segment between two of them produces no pieces). The model
 * then writes feature k of the image into the k-th placeholder position.
 *
 * <p>Secondary path (original LLaVA, {@code tokenizer_image_token} in {@code llava/mm_utils.py}):
 * the tokenizer has no {@code <image>} token; the prompt is split on the string, each chunk is
 * tokenized on its own, and {@link #LLAVA_IMAGE_TOKEN_INDEX} (-200) is inserted between chunks.
 * {@link #tokenizeSplitting} reproduces that; {@link #expand} accepts -200 as the placeholder too.
 * With a legacy llama tokenizer.json (Prepend normalizer: every text segment gets a leading ▁) both
 * paths give the same ids up to the placeholder value. With the newer Metaspace layout
 * ({@code prepend_scheme: "first"}) text right after an added {@code <image>} gets no ▁, while the
 * splitting path still adds one per chunk, as LLaVA's legacy slow tokenizer did.
 */
public final class ImageTokens {
    /** {@code IMAGE_TOKEN_INDEX} of the original LLaVA code: a negative id no embedding row has. */
    public static final long LLAVA_IMAGE_TOKEN_INDEX = -200;
    /** HF {@code vision_feature_select_strategy} that drops the CLS feature. */
    public static final String STRATEGY_DEFAULT = "default";
    /** HF {@code vision_feature_select_strategy} that keeps the CLS feature. */
    public static final String STRATEGY_FULL = "full";

    private ImageTokens() {
    }

    /**
     * Features one image contributes: (imageSize / patchSize)^2 patches, plus CLS for "full"
     * (336 / 14 with "default": 576).
     */
    public static int featuresPerImage(int imageSize, int patchSize, String selectStrategy) {
        if (patchSize <= 0 || imageSize <= 0 || imageSize % patchSize != 0) {
            throw new IllegalArgumentException("image_size " + imageSize + " must be a positive multiple of patch_size "
                    + patchSize);
        }
        int side = imageSize / patchSize;
        return switch (selectStrategy) {
            case STRATEGY_DEFAULT -> side * side;
            case STRATEGY_FULL -> side * side + 1;
            default -> throw new IllegalArgumentException("vision_feature_select_strategy must be '" + STRATEGY_DEFAULT
                    + "' or '" + STRATEGY_FULL + "', found '" + selectStrategy + "'");
        };
    }

    /** How many times {@code placeholderId} occurs in {@code ids}. */
    public static int count(long[] ids, long placeholderId) {
        int n = 0;
        for (long id : ids) {
            if (id == placeholderId) {
                n++;
            }
        }
        return n;
    }

    /**
     * The model input ids: {@code promptIds} with each of its {@code numImages} placeholders
     * repeated {@code featuresPerImage} times.
     *
     * @throws IllegalArgumentException if the prompt holds a different number of placeholders
     */
    public static long[] expand(long[] promptIds, long placeholderId, int numImages, int featuresPerImage) {
        if (numImages < 0 || featuresPerImage <= 0) {
            throw new IllegalArgumentException("need numImages >= 0 and featuresPerImage > 0, found " + numImages
                    + " and " + featuresPerImage);
        }
        int found = count(promptIds, placeholderId);
        if (found != numImages) {
            throw new IllegalArgumentException("prompt has " + found + " image placeholder(s) (id " + placeholderId
                    + ") but " + numImages + " image(s) were given; expected exactly one placeholder per image"
                    + (found == 0 ? " (did the prompt template include <image>?)" : ""));
        }
        long[] out = new long[promptIds.length + numImages * (featuresPerImage - 1)]; // (T + images * (F - 1))
        int j = 0;
        for (long id : promptIds) {
            if (id == placeholderId) {
                for (int k = 0; k < featuresPerImage; k++) {
                    out[j++] = placeholderId;
                }
            } else {
                out[j++] = id;
            }
        }
        assert j == out.length;
        return out;
    }

    /**
     * Original LLaVA tokenization: BOS (if the tokenizer adds one), then the chunks between
     * {@code <image>} strings, each tokenized separately without special tokens, joined by
     * {@code imageTokenIndex} (normally {@link #LLAVA_IMAGE_TOKEN_INDEX}).
     */
    public static long[] tokenizeSplitting(LlavaTokenizer tokenizer, String prompt, long imageTokenIndex) {
        List<long[]> parts = new ArrayList<>();
        int total = 0;
        int start = 0;
        while (true) {
            int at = prompt.indexOf(PromptTemplate.IMAGE_PLACEHOLDER, start);
            String chunk = at < 0 ? prompt.substring(start) : prompt.substring(start, at);
            long[] ids = tokenizer.encode(chunk, false);
            parts.add(ids);
            total += ids.length;
            if (at < 0) {
                break;
            }
            parts.add(new long[] {imageTokenIndex});
            total++;
            start = at + PromptTemplate.IMAGE_PLACEHOLDER.length();
        }
        boolean bos = tokenizer.addsBos();
        long[] out = new long[total + (bos ? 1 : 0)];
        int j = 0;
        if (bos) {
            out[j++] = tokenizer.bosId();
        }
        for (long[] p : parts) {
            System.arraycopy(p, 0, out, j, p.length);
            j += p.length;
        }
        return out;
    }
}
