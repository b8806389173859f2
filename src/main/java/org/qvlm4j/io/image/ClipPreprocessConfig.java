package org.qvlm4j.io.image;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

/**
 * The settings of HF's {@code CLIPImageProcessor}, read from a {@code preprocessor_config.json}.
 *
 * <p>Keys read: do_resize, size ({"shortest_edge": n}, {"height": h, "width": w} or an int, which
 * HF reads as shortest_edge), resample (a PIL code, see {@link PillowFilter}), do_center_crop,
 * crop_size ({"height", "width"} or an int for a square), do_rescale, rescale_factor, do_normalize,
 * image_mean, image_std (3 numbers, or one number for all channels), do_convert_rgb. Other keys
 * (processor_class, image_processor_type, ...) are ignored. A key that is absent or null takes the
 * CLIPImageProcessor class default (shortest edge 224, crop 224); a missing file gives the
 * llava-1.5 settings ({@link #llava15()}). do_convert_rgb is recorded only: decoded images are
 * always RGB. The arrays are copied in and out; record equality compares them by reference.
 *
 * @param resizeShortestEdge the short side after resizing, or 0 when {@code resizeHeight} and
 *     {@code resizeWidth} give an exact size
 */
public record ClipPreprocessConfig(
        boolean doResize,
        int resizeShortestEdge,
        int resizeHeight,
        int resizeWidth,
        PillowFilter resample,
        boolean doCenterCrop,
        int cropHeight,
        int cropWidth,
        boolean doRescale,
        double rescaleFactor,
        boolean doNormalize,
        double[] imageMean,
        double[] imageStd,
        boolean doConvertRgb) {

    /** OpenAI CLIP's per-channel mean (OPENAI_CLIP_MEAN in transformers). */
    public static final double[] CLIP_MEAN = {0.48145466, 0.4578275, 0.40821073};
    /** OpenAI CLIP's per-channel standard deviation (OPENAI_CLIP_STD in transformers). */
    public static final double[] CLIP_STD = {0.26862954, 0.26130258, 0.27577711};
    /** The file name HF uses inside a model directory. */
    public static final String FILE_NAME = "preprocessor_config.json";

    private static final int HF_DEFAULT_SIZE = 224;
    private static final int LLAVA15_SIZE = 336;
    private static final double DEFAULT_RESCALE = 1.0 / 255;
    private static final ObjectMapper JSON = new ObjectMapper();

    public ClipPreprocessConfig {
        if (doResize) {
            boolean edge = resizeShortestEdge > 0 && resizeHeight == 0 && resizeWidth == 0;
            boolean exact = resizeShortestEdge == 0 && resizeHeight > 0 && resizeWidth > 0;
            if (!edge && !exact) {
                throw new IllegalArgumentException("resize needs a positive shortest edge or a positive height and width, got "
                        + "shortest_edge " + resizeShortestEdge + ", height " + resizeHeight + ", width " + resizeWidth);
            }
        }
        if (doCenterCrop && (cropHeight <= 0 || cropWidth <= 0)) {
            throw new IllegalArgumentException("crop size must be positive, got " + cropHeight + "x" + cropWidth);
        }
        if (resample == null) {
            throw new IllegalArgumentException("resample filter must be given");
        }
        if (imageMean == null || imageMean.length != 3 || imageStd == null || imageStd.length != 3) {
            throw new IllegalArgumentException("image_mean and image_std need 3 values, got "
                    + Arrays.toString(imageMean) + " and " + Arrays.toString(imageStd));
        }
        for (double s : imageStd) {
            if (!(s != 0.0) || !Double.isFinite(s)) {
                throw new IllegalArgumentException("image_std values must be finite and non-zero, got " + Arrays.toString(imageStd));
            }
        }
        imageMean = imageMean.clone();
        imageStd = imageStd.clone();
    }

    /** llava-1.5's CLIP ViT-L/14-336 preprocessing: shortest edge 336, bicubic, center crop 336, CLIP mean/std. */
    public static ClipPreprocessConfig llava15() {
        return new ClipPreprocessConfig(true, LLAVA15_SIZE, 0, 0, PillowFilter.BICUBIC, true, LLAVA15_SIZE, LLAVA15_SIZE,
                true, DEFAULT_RESCALE, true, CLIP_MEAN, CLIP_STD, true);
    }

    /** The config in modelDir's preprocessor_config.json, or {@link #llava15()} when there is none. */
    public static ClipPreprocessConfig forModelDir(Path modelDir) {
        Path file = modelDir.resolve(FILE_NAME);
        return Files.exists(file) ? load(file) : llava15();
    }

    /** Parses one preprocessor_config.json; errors name the file, the key, the expected and the actual value. */
    public static ClipPreprocessConfig load(Path file) {
        JsonNode root;
        try {
            root = JSON.readTree(Files.readString(file));
        } catch (IOException e) {
            throw new IllegalArgumentException(file + ": cannot read as JSON: " + e.getMessage(), e);
        }
        if (root == null || !root.isObject()) {
            throw new IllegalArgumentException(file + ": expected a JSON object, got "
                    + (root == null ? "nothing" : root.getNodeType()));
        }
        Parser p = new Parser(file, root);
        boolean doResize = p.bool("do_resize", true);
        int edge = 0;
        int rh = 0;
        int rw = 0;
        JsonNode size = p.node("size");
        if (size == null) {
            edge = HF_DEFAULT_SIZE;
        } else if (size.isIntegralNumber()) {
            edge = p.positiveInt("size", size);
        } else if (size.isObject() && size.has("shortest_edge") && !size.has("height") && !size.has("width")) {
            edge = p.positiveInt("size.shortest_edge", size.get("shortest_edge"));
        } else if (size.isObject() && size.has("height") && size.has("width") && !size.has("shortest_edge")) {
            rh = p.positiveInt("size.height", size.get("height"));
            rw = p.positiveInt("size.width", size.get("width"));
        } else {
            throw p.error("size", "an int, {\"shortest_edge\": n} or {\"height\": h, \"width\": w}", size);
        }
        JsonNode rs = p.node("resample");
        PillowFilter resample = PillowFilter.BICUBIC;
        if (rs != null) {
            if (!rs.isIntegralNumber()) {
                throw p.error("resample", "an integer PIL resampling code", rs);
            }
            try {
                resample = PillowFilter.fromPilCode(rs.asInt());
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException(file + ": key 'resample': " + e.getMessage(), e);
            }
        }
        boolean doCrop = p.bool("do_center_crop", true);
        int ch;
        int cw;
        JsonNode crop = p.node("crop_size");
        if (crop == null) {
            ch = cw = HF_DEFAULT_SIZE;
        } else if (crop.isIntegralNumber()) {
            ch = cw = p.positiveInt("crop_size", crop);
        } else if (crop.isObject() && crop.has("height") && crop.has("width")) {
            ch = p.positiveInt("crop_size.height", crop.get("height"));
            cw = p.positiveInt("crop_size.width", crop.get("width"));
        } else {
            throw p.error("crop_size", "an int or {\"height\": h, \"width\": w}", crop);
        }
        boolean doRescale = p.bool("do_rescale", true);
        double factor = p.number("rescale_factor", DEFAULT_RESCALE);
        if (!(factor > 0) || !Double.isFinite(factor)) {
            throw p.error("rescale_factor", "a positive finite number", p.node("rescale_factor"));
        }
        boolean doNormalize = p.bool("do_normalize", true);
        double[] mean = p.triple("image_mean", CLIP_MEAN);
        double[] std = p.triple("image_std", CLIP_STD);
        for (double s : std) {
            if (s == 0.0) {
                throw p.error("image_std", "non-zero values", p.node("image_std"));
            }
        }
        boolean doConvertRgb = p.bool("do_convert_rgb", true);
        return new ClipPreprocessConfig(doResize, edge, rh, rw, resample, doCrop, ch, cw, doRescale, factor,
                doNormalize, mean, std, doConvertRgb);
    }

    @Override
    public double[] imageMean() {
        return imageMean.clone();
    }

    @Override
    public double[] imageStd() {
        return imageStd.clone();
    }

    @Override
    public String toString() {
        return "ClipPreprocessConfig[doResize=" + doResize + ", size="
                + (resizeShortestEdge > 0 ? "shortest_edge " + resizeShortestEdge : resizeHeight + "x" + resizeWidth)
                + ", resample=" + resample + ", doCenterCrop=" + doCenterCrop + ", crop=" + cropHeight + "x" + cropWidth
                + ", doRescale=" + doRescale + ", rescaleFactor=" + rescaleFactor + ", doNormalize=" + doNormalize
                + ", mean=" + Arrays.toString(imageMean) + ", std=" + Arrays.toString(imageStd) + "]";
    }

    /** Typed access to the JSON keys with errors that name file, key, expectation and value. */
    private record Parser(Path file, JsonNode root) {

        JsonNode node(String key) {
            JsonNode n = root.get(key);
            return n == null || n.isNull() ? null : n;
        }

        IllegalArgumentException error(String key, String expected, JsonNode actual) {
            return new IllegalArgumentException(file + ": key '" + key + "' must be " + expected + ", got " + actual);
        }

        boolean bool(String key, boolean dflt) {
            JsonNode n = node(key);
            if (n == null) {
                return dflt;
            }
            if (!n.isBoolean()) {
                throw error(key, "true or false", n);
            }
            return n.asBoolean();
        }

        double number(String key, double dflt) {
            JsonNode n = node(key);
            if (n == null) {
                return dflt;
            }
            if (!n.isNumber()) {
                throw error(key, "a number", n);
            }
            return n.asDouble();
        }

        int positiveInt(String key, JsonNode n) {
            if (n == null || !n.isIntegralNumber() || !n.canConvertToInt() || n.asInt() <= 0) {
                throw error(key, "a positive integer", n);
            }
            return n.asInt();
        }

        double[] triple(String key, double[] dflt) {
            JsonNode n = node(key);
            if (n == null) {
                return dflt.clone();
            }
            if (n.isNumber()) {
                return new double[] {n.asDouble(), n.asDouble(), n.asDouble()};
            }
            if (!n.isArray() || n.size() != 3) {
                throw error(key, "3 numbers (one per RGB channel) or one number", n);
            }
            double[] v = new double[3];
            for (int i = 0; i < 3; i++) {
                if (!n.get(i).isNumber() || !Double.isFinite(n.get(i).asDouble())) {
                    throw error(key, "3 finite numbers", n);
                }
                v[i] = n.get(i).asDouble();
            }
            return v;
        }
    }
    /**
     * The {@code preprocessor_config.json} text of a CLIPImageProcessor for a square model input:
     * shortest edge = crop = size, bicubic, rescale 1/255, CLIP mean and std (what a model trained
     * here ships, and what tests write beside random models).
     */
    public static String squareJson(int size) {
        ObjectNode c = JSON.createObjectNode();
        c.putObject("crop_size").put("height", size).put("width", size);
        c.put("do_center_crop", true);
        c.put("do_convert_rgb", true);
        c.put("do_normalize", true);
        c.put("do_rescale", true);
        c.put("do_resize", true);
        ArrayNode mean = c.putArray("image_mean");
        for (double v : CLIP_MEAN) {
            mean.add(v);
        }
        ArrayNode std = c.putArray("image_std");
        for (double v : CLIP_STD) {
            std.add(v);
        }
        c.put("image_processor_type", "CLIPImageProcessor");
        c.put("processor_class", "LlavaProcessor");
        c.put("resample", 3);
        c.put("rescale_factor", 1.0 / 255);
        c.putObject("size").put("shortest_edge", size);
        try {
            return JSON.writerWithDefaultPrettyPrinter().writeValueAsString(c) + "\n";
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

}
