package org.qvlm4j.io.safetensors;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.qvlm4j.io.safetensors.RawFiles.concat;
import static org.qvlm4j.io.safetensors.RawFiles.le64;
import static org.qvlm4j.io.safetensors.RawFiles.leFloats;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qvlm4j.kernels.DType;

/**
 * Malformed files built byte by byte: each must fail with a {@link SafeTensorsException} whose
 * message names the file and the offending key or value; valid edge cases must open.
 */
class SafeTensorsValidationTest {
    private static final String ONE = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";

    @TempDir
    Path dir;

    private void assertRejected(Path file, String... parts) {
        SafeTensorsException e = assertThrows(SafeTensorsException.class, () -> SafeTensors.open(file).close());
        assertTrue(e.getMessage().contains(file.toString()), "file not named: " + e.getMessage());
        for (String p : parts) {
            assertTrue(e.getMessage().contains(p), "'" + p + "' not in: " + e.getMessage());
        }
    }

    private void assertRejected(String header, byte[] data, String... parts) {
        assertRejected(RawFiles.write(dir, "bad.safetensors", header, data), parts);
    }

    @Test
    void wellFormedControlCaseOpens() {
        Path p = RawFiles.write(dir, "ok.safetensors", ONE, leFloats(1.5f, -2f));
        try (SafeTensors st = SafeTensors.open(p)) {
            assertArrayEquals(new float[] {1.5f, -2f}, st.get("a").toFloatArray());
        }
    }

    @Test
    void validEdgeCasesOpen() {
        String header = "{\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]},"
                + "\"e\":{\"dtype\":\"BF16\",\"shape\":[3,0,2],\"data_offsets\":[4,4]},"
                + "\"r3\":{\"dtype\":\"I16\",\"shape\":[1,2,1],\"data_offsets\":[4,8]},"
                + "\"__metadata__\":{\"note\":\"ünïcode\"}}   ";
        byte[] data = concat(leFloats(3.25f), new byte[] {5, 0, (byte) 0xFF, (byte) 0xFF});
        try (SafeTensors st = SafeTensors.open(RawFiles.write(dir, "edge.safetensors", header, data))) {
            assertEquals(3.25, st.get("s").getDouble(0));
            assertEquals(0, st.get("e").numel());
            assertArrayEquals(new long[] {5, -1}, st.get("r3").toLongArray());
            assertEquals(DType.I16, st.get("r3").dtype());
            assertEquals("ünïcode", st.metadata().get("note"));
        }
    }

    @Test
    void fileShorterThanLengthPrefix() {
        assertRejected(RawFiles.write(dir, "tiny.safetensors", new byte[] {1, 0, 0}), "3 bytes");
    }

    @Test
    void truncatedInsideHeader() {
        byte[] full = RawFiles.file(ONE, leFloats(1, 2));
        assertRejected(RawFiles.write(dir, "cut.safetensors", Arrays.copyOf(full, 8 + 20)),
                "header length " + ONE.length(), "20 bytes");
    }

    @Test
    void truncatedInsideData() {
        byte[] full = RawFiles.file(ONE, leFloats(1, 2));
        assertRejected(RawFiles.write(dir, "cut.safetensors", Arrays.copyOf(full, full.length - 3)),
                "'a'", "[0, 8]", "5 bytes");
    }

    @Test
    void corruptedHeaderJson() {
        assertRejected(ONE.replace("\"shape\":[2]", "\"shape\":[2"), leFloats(1, 2), "not valid JSON");
        assertRejected(ONE.substring(0, ONE.length() - 1) + " ", leFloats(1, 2), "not valid JSON");
        assertRejected(ONE + "{}", leFloats(1, 2), "not valid JSON");
    }

    @Test
    void headerNotUtf8() {
        byte[] h = ONE.replace("\"a\"", "\"\u00e9\"").getBytes(StandardCharsets.ISO_8859_1);
        assertRejected(RawFiles.write(dir, "latin1.safetensors", concat(le64(h.length), h, leFloats(1, 2))),
                "UTF-8");
    }

    @Test
    void absurdHeaderLengths() {
        byte[] h = ONE.getBytes(StandardCharsets.US_ASCII);
        assertRejected(RawFiles.write(dir, "huge.safetensors", concat(le64(1L << 62), h, leFloats(1, 2))),
                "4611686018427387904", "100000000");
        assertRejected(RawFiles.write(dir, "neg.safetensors", concat(le64(-1), h, leFloats(1, 2))),
                "18446744073709551615");
        assertRejected(RawFiles.write(dir, "long.safetensors", concat(le64(1000), h, leFloats(1, 2))),
                "header length 1000", String.valueOf(h.length + 8));
        assertRejected(RawFiles.write(dir, "zero.safetensors", concat(le64(0), h, leFloats(1, 2))),
                "header length 0");
    }

    @Test
    void headerMustBeAnObjectStartingWithBrace() {
        assertRejected("[1,2]", new byte[0], "'{'", "0x5b");
        assertRejected(" " + ONE, leFloats(1, 2), "'{'", "0x20");
        assertRejected("{\"a\":3}", new byte[0], "'a'", "object");
        assertRejected("{\"__metadata__\":{\"k\":1}}", new byte[0], "__metadata__.k", "string");
        assertRejected("{\"__metadata__\":[]}", new byte[0], "__metadata__", "object");
    }

    @Test
    void overlappingOffsets() {
        String h = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                + "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}";
        assertRejected(h, new byte[12], "'b'", "[4, 12]", "overlap", "8");
    }

    @Test
    void gapBetweenTensorsOrBeforeTheFirst() {
        String h = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                + "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]}}";
        assertRejected(h, new byte[20], "'b'", "starts at 12", "ends at 8", "gap");
        assertRejected("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", new byte[12],
                "'a'", "starts at 4", "gap");
    }

    @Test
    void trailingBytesAfterTheLastTensor() {
        assertRejected(ONE, new byte[9], "end at byte 8", "9 bytes");
    }

    @Test
    void offsetsPastTheEnd() {
        assertRejected(ONE, new byte[4], "'a'", "[0, 8]", "4 bytes");
        assertRejected("{\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[8,8]}}", new byte[4], "'a'", "[8, 8]");
        assertRejected("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,100000000000000000000000]}}",
                new byte[1], "'a'", "100000000000000000000000");
        assertRejected("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,0]}}", new byte[1], "'a'", "[1, 0]");
        assertRejected("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0]}}", new byte[1], "'a'", "data_offsets");
    }

    @Test
    void unknownDtype() {
        assertRejected(ONE.replace("F32", "F8_E9M9"), leFloats(1, 2), "'a'", "F8_E9M9");
        assertRejected(ONE.replace("\"F32\"", "4"), leFloats(1, 2), "'a'", "dtype");
    }

    @Test
    void shapeDisagreesWithByteLength() {
        assertRejected(ONE.replace("[2]", "[3]"), leFloats(1, 2), "'a'", "[3]", "12 bytes", "give 8");
        assertRejected(ONE.replace("F32", "F16"), leFloats(1, 2), "'a'", "F16", "4 bytes", "give 8");
    }

    @Test
    void negativeOrNonIntegerShape() {
        assertRejected(ONE.replace("[2]", "[-2]"), leFloats(1, 2), "'a'", "-2");
        assertRejected(ONE.replace("[2]", "[2.0]"), leFloats(1, 2), "'a'", "2.0");
        assertRejected(ONE.replace("[2]", "[\"2\"]"), leFloats(1, 2), "'a'", "\"2\"");
        assertRejected(ONE.replace("[2]", "2"), leFloats(1, 2), "'a'", "shape");
        assertRejected(ONE.replace("[2]", "[18446744073709551616]"), leFloats(1, 2), "'a'", "18446744073709551616");
    }

    @Test
    void shapeProductOverflows() {
        assertRejected(ONE.replace("[2]", "[4294967296,4294967296]"), leFloats(1, 2), "'a'", "overflows");
        assertRejected(ONE.replace("[2]", "[4611686018427387904]"), leFloats(1, 2), "'a'", "F32", "overflows");
    }

    @Test
    void duplicateKey() {
        String h = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                + "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}";
        assertRejected(h, new byte[16], "duplicate", "'a'");
        assertRejected(ONE.replace("\"shape\":[2]", "\"shape\":[2],\"shape\":[2]"), leFloats(1, 2), "duplicate", "'shape'");
    }
}
