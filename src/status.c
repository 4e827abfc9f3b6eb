/* status.c - error reporting helpers (see status.h). */
#include "status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

gpt2_err gpt2_fail(gpt2_error *err, gpt2_err code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

gpt2_err gpt2_error_prefix(gpt2_error *err, const char *context) {
    if (!err) return GPT2_ERR_ARG;
    char old[GPT2_ERROR_MESSAGE_MAX];
    memcpy(old, err->message, sizeof old);
    old[sizeof old - 1] = '\0';
    /* Truncation of a long message is acceptable; compose by hand so the compiler
     * does not warn about it. */
    size_t n = strlen(context);
    if (n > sizeof err->message - 3) n = sizeof err->message - 3;
    memcpy(err->message, context, n);
    err->message[n] = ':';
    err->message[n + 1] = ' ';
    size_t room = sizeof err->message - (n + 2) - 1;
    size_t m = strlen(old);
    if (m > room) m = room;
    memcpy(err->message + n + 2, old, m);
    err->message[n + 2 + m] = '\0';
    return err->code;
}

const char *gpt2_err_name(gpt2_err code) {
    switch (code) {
    case GPT2_OK: return "ok";
    case GPT2_ERR_IO: return "I/O error";
    case GPT2_ERR_FORMAT: return "format error";
    case GPT2_ERR_SHAPE: return "shape error";
    case GPT2_ERR_UNSUPPORTED: return "unsupported";
    case GPT2_ERR_NOMEM: return "out of memory";
    case GPT2_ERR_ARG: return "invalid argument";
    case GPT2_ERR_RANGE: return "out of range";
    case GPT2_ERR_ABORTED: return "aborted";
    }
    return "unknown error";
}
