package org.qvlm4j.cli;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.concurrent.Callable;
import org.qvlm4j.io.safetensors.SafeTensors;
import org.qvlm4j.io.safetensors.SafeTensorsWriter;
import org.qvlm4j.io.safetensors.TensorEntry;
import org.qvlm4j.kernels.DType;
import org.qvlm4j.model.LlavaModel;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

/**
 * {@code qvlm4j logits}: one forward pass over given token ids and pixel values, written as F32
 * {@code logits} (T, V). The parity hook for comparing with transformers: feed it the same
 * {@code input_ids} and {@code pixel_values} as HF's forward.
 */
@Command(name = "logits", mixinStandardHelpOptions = true,
        description = "Run one forward pass and write the logits (T, V) as F32 to a safetensors file.")
final class LogitsCommand implements Callable<Integer> {

    @Option(names = "--model", required = true, paramLabel = "DIR", description = "Model directory.")
    Path modelDir;

    @Option(names = "--input-ids", required = true, split = ",", paramLabel = "ID",
            description = "Comma-separated token ids, image tokens included (e.g. 1,0,0,...).")
    int[] inputIds;

    @Option(names = "--pixel-values", paramLabel = "FILE.safetensors",
            description = "Pixel values (1, 3, H, W) or (3, H, W), already preprocessed. Required when the ids hold image tokens.")
    Path pixelValues;

    @Option(names = "--tensor", defaultValue = "pixel_values", paramLabel = "NAME",
            description = "Tensor name inside --pixel-values (default: ${DEFAULT-VALUE}).")
    String tensorName;

    @Option(names = "--out", required = true, paramLabel = "OUT.safetensors", description = "Output file (written atomically).")
    Path out;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() {
        try (LlavaModel model = LlavaModel.load(modelDir)) {
            float[] pixels = null;
            if (pixelValues != null) {
                pixels = readPixels(pixelValues, tensorName, model.config().visionConfig().imageSize());
            }
            float[] logits = model.forward(inputIds, pixels); // (T, V)
            int vocab = model.config().textConfig().vocabSize();
            new SafeTensorsWriter()
                    .metadata("format", "pt")
                    .addFloats("logits", DType.F32, new long[] {inputIds.length, vocab}, logits)
                    .write(out);
            PrintWriter o = spec.commandLine().getOut();
            o.printf("wrote logits (%d, %d) to %s%n", inputIds.length, vocab, out);
            o.flush();
        }
        return 0;
    }

    static float[] readPixels(Path file, String name, int imageSize) {
        try (SafeTensors st = SafeTensors.open(file)) {
            if (!st.contains(name)) {
                throw new IllegalArgumentException(file + ": no tensor '" + name + "' (has " + st.names() + ")");
            }
            TensorEntry e = st.get(name);
            long[] s = e.shape();
            long[] want = {3, imageSize, imageSize};
            long[] got = s.length == 4 && s[0] == 1 ? Arrays.copyOfRange(s, 1, 4) : s;
            if (!Arrays.equals(got, want)) {
                throw new IllegalArgumentException(file + ": tensor '" + name + "' expected shape (1, 3, " + imageSize
                        + ", " + imageSize + ") or (3, " + imageSize + ", " + imageSize + "), got " + Arrays.toString(s));
            }
            if (!e.dtype().isFloating()) {
                throw new IllegalArgumentException(file + ": tensor '" + name + "' expected a float dtype, got " + e.dtype());
            }
            return e.toFloatArray();
        }
    }
}
