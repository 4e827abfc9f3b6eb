/* status.h - error codes and messages shared by every public function of the core.
 *
 * Convention: each public function returns a gpt2_err (GPT2_OK == 0 on success) and,
 * on failure, fills the caller's gpt2_error with the same code and a one-line,
 * human-readable message. The gpt2_error pointer may be NULL when the caller does not
 * want the message. Nothing in the core aborts on bad input.
 */
#ifndef GPT2_STATUS_H
#define GPT2_STATUS_H

#include <stddef.h>

typedef enum gpt2_err {
    GPT2_OK = 0,
    GPT2_ERR_IO,          /* a file could not be opened or read */
    GPT2_ERR_FORMAT,      /* malformed or truncated input (JSON, safetensors, UTF-8 ...) */
    GPT2_ERR_SHAPE,       /* a tensor has the wrong shape or dtype, or is missing */
    GPT2_ERR_UNSUPPORTED, /* well-formed but not supported (activation, dtype ...) */
    GPT2_ERR_NOMEM,       /* an allocation failed or the model would not fit */
    GPT2_ERR_ARG,         /* a caller passed an invalid argument */
    GPT2_ERR_RANGE,       /* a value is out of range (token id, context length ...) */
    GPT2_ERR_ABORTED      /* the caller asked to stop */
} gpt2_err;

#define GPT2_ERROR_MESSAGE_MAX 256

typedef struct gpt2_error {
    gpt2_err code;
    char message[GPT2_ERROR_MESSAGE_MAX];
} gpt2_error;

/* Records code and a printf-style message in err (if err is non-NULL); returns code. */
gpt2_err gpt2_fail(gpt2_error *err, gpt2_err code, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Prepends "context: " to err's message, keeping its code; returns the code. */
gpt2_err gpt2_error_prefix(gpt2_error *err, const char *context);

/* A short constant name for a code, e.g. "format error". */
const char *gpt2_err_name(gpt2_err code);

#endif
