package org.qvlm4j.quant.calib;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.StandardOpenOption;
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
 * config.json and, for every {@code *.safetensors} file, its byte size, the SHA-256 of its header
 * (the 8-byte length and the JSON, which lists every tensor's name, dtype, shape and offsets) and
 * the SHA-256 of a data sample (the first and the last {@value #SAMPLE_BYTES} bytes after the
 * header), which tells apart checkpoints of one layout with different weights. The digest combines
 * them in file-name order. Leaves out the rest of the tensor bytes (hashing 14 GB per run is too
 * slow), so two checkpoints that differ only in the middle of a file compare equal.
 *
 * @param configSha256 hex SHA-256 of config.json
 * @param weights      file name to (size, header SHA-256, data-sample SHA-256), sorted by name
 * @param digest       hex SHA-256 over all of the above
 */
public record ModelFingerprint(String configSha256, Map<String, WeightFile> weights, String digest) {

    /** One safetensors file's size and header hash. */
    public record WeightFile(long bytes, String headerSha256, String sampleSha256) {
    }

    /** Bytes hashed at each end of a file's data block. */
    public static final int SAMPLE_BYTES = 1 << 20;

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
                weights.put(f.getFileName().toString(), read(f));
            }
            MessageDigest all = sha256();
            all.update(("config.json " + cfg + "\n").getBytes(StandardCharsets.UTF_8));
            weights.forEach((name, w) -> all.update((name + " " + w.bytes() + " " + w.headerSha256() + " "
                    + w.sampleSha256() + "\n")
                    .getBytes(StandardCharsets.UTF_8)));
            return new ModelFingerprint(cfg, weights, HexFormat.of().formatHex(all.digest()));
        } catch (IOException e) {
            throw new UncheckedIOException(modelDir + ": cannot fingerprint the model: " + e.getMessage(), e);
        }
    }

    /** As a JSON object {"digest", "config_sha256", "weights": {file: {"bytes", "header_sha256", "sample_sha256"}}}. */
    public ObjectNode toJson(ObjectMapper json) {
        ObjectNode o = json.createObjectNode();
        o.put("digest", digest);
        o.put("config_sha256", configSha256);
        ObjectNode w = o.putObject("weights");
        weights.forEach((name, f) -> w.putObject(name).put("bytes", f.bytes()).put("header_sha256", f.headerSha256())
                .put("sample_sha256", f.sampleSha256()));
        return o;
    }

    private static WeightFile read(Path f) throws IOException {
        long size = Files.size(f);
        try (FileChannel ch = FileChannel.open(f, StandardOpenOption.READ)) {
            ByteBuffer len = readAt(ch, 0, (int) Math.min(8, size));
            if (len.remaining() < 8) {
                throw new IllegalArgumentException(f + ": " + size + " bytes, shorter than the 8-byte safetensors header length");
            }
            long n = len.duplicate().order(ByteOrder.LITTLE_ENDIAN).getLong();
            if (n < 0 || n > Math.min(size - 8, Integer.MAX_VALUE)) {
                throw new IllegalArgumentException(f + ": header length " + n + " does not fit the file of " + size
                        + " bytes");
            }
            MessageDigest header = sha256();
            header.update(len);
            header.update(readAt(ch, 8, (int) n));
            long dataStart = 8 + n;
            long dataBytes = size - dataStart;
            MessageDigest sample = sha256();
            int head = (int) Math.min(dataBytes, SAMPLE_BYTES);
            sample.update(readAt(ch, dataStart, head));
            int tail = (int) Math.min(dataBytes, SAMPLE_BYTES);
            sample.update(readAt(ch, size - tail, tail));
            return new WeightFile(size, HexFormat.of().formatHex(header.digest()), HexFormat.of().formatHex(sample.digest()));
        }
    }

    private static ByteBuffer readAt(FileChannel ch, long pos, int n) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(n);
        while (b.hasRemaining()) {
            if (ch.read(b, pos + b.position()) < 0) {
                break;
            }
        }
        return b.flip();
    }

    private static MessageDigest sha256() {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
