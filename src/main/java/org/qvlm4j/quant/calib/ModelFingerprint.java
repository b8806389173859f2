package org.qvlm4j.quant.calib;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;

/**
 * Identity of a model directory, cheap to compute for multi-GB checkpoints: the SHA-256 of
 * config.json and, for every {@code *.safetensors} file, its byte size and the SHA-256 of its
 * header (the 8-byte length and the JSON, which lists every tensor's name, dtype, shape and
 * offsets). The digest combines them in file-name order. Leaves out the tensor bytes themselves:
 * two checkpoints with the same layout and different values compare equal (re-saved weights of the
 * same model are rarely byte-identical anyway, and hashing 14 GB per run is too slow).
 *
 * @param configSha256 hex SHA-256 of config.json
 * @param weights      file name to (size, header SHA-256), sorted by name
 * @param digest       hex SHA-256 over all of the above
 */
public record ModelFingerprint(String configSha256, Map<String, WeightFile> weights, String digest) {

    /** One safetensors file's size and header hash. */
    public record WeightFile(long bytes, String headerSha256) {
    }

    public static ModelFingerprint of(Path modelDir) {
        Path config = modelDir.resolve("config.json");
        if (!Files.isRegularFile(config)) {
            throw new IllegalArgumentException(modelDir + ": no config.json; expected a LLaVA model directory");
        }
        try {
            String cfg = HexFormat.of().formatHex(sha256().digest(Files.readAllBytes(config)));
            Map<String, WeightFile> weights = new TreeMap<>();
            List<Path> files;
            try (Stream<Path> s = Files.list(modelDir)) {
                files = s.filter(p -> p.getFileName().toString().endsWith(".safetensors")).sorted().toList();
            }
            for (Path f : files) {
                weights.put(f.getFileName().toString(), new WeightFile(Files.size(f), headerHash(f)));
            }
            MessageDigest all = sha256();
            all.update(("config.json " + cfg + "\n").getBytes(StandardCharsets.UTF_8));
            weights.forEach((name, w) -> all.update((name + " " + w.bytes() + " " + w.headerSha256() + "\n")
                    .getBytes(StandardCharsets.UTF_8)));
            return new ModelFingerprint(cfg, weights, HexFormat.of().formatHex(all.digest()));
        } catch (IOException e) {
            throw new UncheckedIOException(modelDir + ": cannot fingerprint the model: " + e.getMessage(), e);
        }
    }

    /** As a JSON object {"digest", "config_sha256", "weights": {file: {"bytes", "header_sha256"}}}. */
    public ObjectNode toJson(ObjectMapper json) {
        ObjectNode o = json.createObjectNode();
        o.put("digest", digest);
        o.put("config_sha256", configSha256);
        ObjectNode w = o.putObject("weights");
        weights.forEach((name, f) -> w.putObject(name).put("bytes", f.bytes()).put("header_sha256", f.headerSha256()));
        return o;
    }

    private static String headerHash(Path f) throws IOException {
        long size = Files.size(f);
        try (InputStream in = Files.newInputStream(f)) {
            byte[] len = in.readNBytes(8);
            if (len.length < 8) {
                throw new IllegalArgumentException(f + ": " + size + " bytes, shorter than the 8-byte safetensors header length");
            }
            long n = ByteBuffer.wrap(len).order(ByteOrder.LITTLE_ENDIAN).getLong();
            if (n < 0 || n > Math.min(size - 8, Integer.MAX_VALUE)) {
                throw new IllegalArgumentException(f + ": header length " + n + " does not fit the file of " + size
                        + " bytes");
            }
            MessageDigest md = sha256();
            md.update(len);
            md.update(in.readNBytes((int) n));
            return HexFormat.of().formatHex(md.digest());
        }
    }

    private static MessageDigest sha256() {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
