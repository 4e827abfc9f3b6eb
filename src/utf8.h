/* utf8.h - strict UTF-8 decoding and validation helpers (RFC 3629 / Unicode ch. 3).
 *
 * Well-formed UTF-8 excludes overlong forms, encoded surrogates (U+D800..DFFF) and
 * values above U+10FFFF. For ill-formed input these helpers report the "maximal subpart"
 * (Unicode 3.9, the rule the WHATWG Encoding standard's TextDecoder follows): the longest
 * prefix that could still begin a well-formed character, at least one byte. Each maximal
 * subpart is replaced by exactly one U+FFFD.
 */
#ifndef GPT2_UTF8_H
#define GPT2_UTF8_H

#include <stddef.h>
#include <stdint.h>

typedef enum utf8_result {
    UTF8_OK,         /* a complete, well-formed character */
    UTF8_INCOMPLETE, /* all available bytes are a well-formed prefix; more are needed */
    UTF8_INVALID     /* ill-formed; *n = length of the maximal subpart (1..3) */
} utf8_result;

/* Examines the character starting at s[0] (len >= 1 bytes available).
 * UTF8_OK: *n = its length (1..4), *cp = its code point.
 * UTF8_INCOMPLETE: *n = len (< the character's length), *cp = 0.
 * UTF8_INVALID: *n = maximal subpart length, *cp = 0xFFFD. */
utf8_result utf8_next(const uint8_t *s, size_t len, size_t *n, uint32_t *cp);

/* Returns len if s[0..len) is well-formed UTF-8, else the byte offset of the first
 * character that is ill-formed or truncated. */
size_t utf8_validate(const uint8_t *s, size_t len);

/* Writes the UTF-8 encoding of cp (<= 0x10FFFF, not a surrogate) to out; returns 1..4,
 * or 0 (nothing written) if cp is not a Unicode scalar value. */
size_t utf8_encode(uint32_t cp, uint8_t out[4]);

#endif
