/* utf8.c - strict UTF-8 helpers (see utf8.h). */
#include "utf8.h"

/* Well-formed byte sequences (Unicode Table 3-7). The lead byte fixes the length and the
 * allowed range of the SECOND byte; every later byte is 80..BF:
 *   00..7F                      1 byte
 *   C2..DF  80..BF              2 bytes
 *   E0      A0..BF  80..BF      3 bytes (A0: no overlongs)
 *   E1..EC  80..BF  80..BF
 *   ED      80..9F  80..BF      (9F: no surrogates)
 *   EE..EF  80..BF  80..BF
 *   F0      90..BF  80..BF x2   4 bytes (90: no overlongs)
 *   F1..F3  80..BF  80..BF x2
 *   F4      80..8F  80..BF x2   (8F: nothing above U+10FFFF)
 * C0, C1, F5..FF and 80..BF can never start a character. */
utf8_result utf8_next(const uint8_t *s, size_t len, size_t *n, uint32_t *cp) {
    uint8_t b0 = s[0];
    size_t need;
    uint8_t lo = 0x80, hi = 0xBF;
    uint32_t value;
    if (b0 < 0x80) {
        *n = 1;
        *cp = b0;
        return UTF8_OK;
    } else if (b0 >= 0xC2 && b0 <= 0xDF) {
        need = 2;
        value = b0 & 0x1Fu;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
        need = 3;
        value = b0 & 0x0Fu;
        if (b0 == 0xE0) lo = 0xA0;
        if (b0 == 0xED) hi = 0x9F;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        need = 4;
        value = b0 & 0x07u;
        if (b0 == 0xF0) lo = 0x90;
        if (b0 == 0xF4) hi = 0x8F;
    } else {
        *n = 1;
        *cp = 0xFFFD;
        return UTF8_INVALID;
    }
    for (size_t i = 1; i < need; i++) {
        if (i >= len) {
            *n = len;
            *cp = 0;
            return UTF8_INCOMPLETE;
        }
        uint8_t b = s[i];
        if (b < lo || b > hi) {
            *n = i; /* the bytes before this one are the maximal subpart */
            *cp = 0xFFFD;
            return UTF8_INVALID;
        }
        value = (value << 6) | (b & 0x3Fu);
        lo = 0x80;
        hi = 0xBF;
    }
    *n = need;
    *cp = value;
    return UTF8_OK;
}

size_t utf8_validate(const uint8_t *s, size_t len) {
    size_t i = 0;
    while (i < len) {
        if (s[i] < 0x80) { /* ASCII fast path */
            i++;
            continue;
        }
        size_t n;
        uint32_t cp;
        if (utf8_next(s + i, len - i, &n, &cp) != UTF8_OK) return i;
        i += n;
    }
    return len;
}

size_t utf8_encode(uint32_t cp, uint8_t out[4]) {
    if (cp < 0x80) {
        out[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (uint8_t)(0xC0 | (cp >> 6));
        out[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp >= 0xD800 && cp <= 0xDFFF) return 0;
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xE0 | (cp >> 12));
        out[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    if (cp <= 0x10FFFF) {
        out[0] = (uint8_t)(0xF0 | (cp >> 18));
        out[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
        out[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        out[3] = (uint8_t)(0x80 | (cp & 0x3F));
        return 4;
    }
    return 0;
}
