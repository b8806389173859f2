package org.qvlm4j.io.image;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The two JPEG header facts that decide how Pillow maps a 4-component JPEG to RGB: the number of
 * components in the frame header (SOFn) and the colour transform of an Adobe APP14 segment
 * (0 = none/CMYK, 1 = YCbCr, 2 = YCCK). Only the marker segments before the first scan are read.
 */
record JpegHeader(int components, int adobeTransform) {

    /** Transform value when there is no Adobe segment. */
    static final int NO_ADOBE = -1;
    static final int ADOBE_YCCK = 2;

    private static final int MAX_HEADER_BYTES = 1 << 20;

    /** The header of file, or null when file is not a JPEG or its header cannot be walked. */
    static JpegHeader read(Path file) throws IOException {
        try (InputStream in = Files.newInputStream(file)) {
            byte[] head = in.readNBytes(MAX_HEADER_BYTES);
            return parse(head);
        }
    }

    static JpegHeader parse(byte[] b) {
        if (b.length < 4 || (b[0] & 0xFF) != 0xFF || (b[1] & 0xFF) != 0xD8) {
            return null;
        }
        int pos = 2;
        int components = 0;
        int transform = NO_ADOBE;
        while (pos + 4 <= b.length) {
            if ((b[pos] & 0xFF) != 0xFF) {
                return null;
            }
            int marker = b[pos + 1] & 0xFF;
            if (marker == 0xFF) {
                pos++; // fill byte
                continue;
            }
            if (marker == 0xD8 || (marker >= 0xD0 && marker <= 0xD7) || marker == 0x01) {
                pos += 2;
                continue;
            }
            int len = ((b[pos + 2] & 0xFF) << 8) | (b[pos + 3] & 0xFF);
            int body = pos + 4;
            if (len < 2 || body + len - 2 > b.length) {
                return components > 0 ? new JpegHeader(components, transform) : null;
            }
            boolean sof = marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
            if (sof && len >= 8) {
                components = b[body + 5] & 0xFF;
            } else if (marker == 0xEE && len >= 14 && b[body] == 'A' && b[body + 1] == 'd' && b[body + 2] == 'o'
                    && b[body + 3] == 'b' && b[body + 4] == 'e') {
                transform = b[body + 11] & 0xFF;
            } else if (marker == 0xDA || marker == 0xD9) {
                break;
            }
            pos = body + len - 2;
        }
        return components > 0 ? new JpegHeader(components, transform) : null;
    }
}
