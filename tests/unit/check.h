/* check.h - the unit tests' tiny assertion kit.
 *
 * CHECK(cond, fmt, ...) records a failure (with file:line and a message) and continues;
 * CHECK_OK(call_returning_gpt2_err) expects GPT2_OK and prints the core's message if not;
 * CHECK_FAILS(call, code, err) expects that code and a non-empty message.
 * check_summary(name) prints "name: N passed, N failed" and returns the process exit code.
 * The counters are per test executable (each test is its own process).
 */
#ifndef GPT2_TEST_CHECK_H
#define GPT2_TEST_CHECK_H

#include <stdio.h>
#include <string.h>

#include "status.h"

static int check_passed_;
static int check_failed_;

#define CHECK(cond, ...)                                                        \
    do {                                                                        \
        if (cond) {                                                             \
            check_passed_++;                                                    \
        } else {                                                                \
            check_failed_++;                                                    \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);     \
            fprintf(stderr, __VA_ARGS__);                                       \
            fputc('\n', stderr);                                                \
        }                                                                       \
    } while (0)

#define CHECK_OK(call, errp)                                                    \
    do {                                                                        \
        gpt2_err check_rc_ = (call);                                            \
        CHECK(check_rc_ == GPT2_OK, "%s -> %s: %s", #call,                      \
              gpt2_err_name(check_rc_), (errp)->message);                       \
    } while (0)

/* Expects call to fail with code and leave a non-empty message in *errp. */
#define CHECK_FAILS(call, code, errp)                                           \
    do {                                                                        \
        (errp)->message[0] = '\0';                                              \
        gpt2_err check_rc_ = (call);                                            \
        CHECK(check_rc_ == (code) && (errp)->message[0] != '\0',               \
              "%s -> %s (want %s): '%s'", #call, gpt2_err_name(check_rc_),      \
              gpt2_err_name(code), (errp)->message);                            \
    } while (0)

static inline int check_summary(const char *name) {
    printf("%s: %d passed, %d failed\n", name, check_passed_, check_failed_);
    return check_failed_ ? 1 : 0;
}

#endif
