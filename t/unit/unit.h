/*
 * A small assertion helper for the C unit tests. Every check counts as
 * passed or failed, and a failure prints its file, line and message to
 * stderr. UNIT_REPORT() prints "N passed, M failed" as the last line.
 */

#ifndef UNIT_H
#define UNIT_H

#include <stdio.h>
#include <string.h>


static int  unit_passed;
static int  unit_failed;


/* The message after cond is a printf format with its arguments. */
#define UNIT_CHECK(cond, ...)                                                 \
    do {                                                                      \
        if (cond) {                                                           \
            unit_passed++;                                                    \
                                                                              \
        } else {                                                              \
            unit_failed++;                                                    \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);              \
            fprintf(stderr, __VA_ARGS__);                                     \
            fputc('\n', stderr);                                              \
        }                                                                     \
    } while (0)


#define UNIT_CHECK_STR(got, expected, name)                                   \
    UNIT_CHECK(strcmp((got), (expected)) == 0,                                \
               "%s: got \"%s\", expected \"%s\"", (name), (got), (expected))


/* Prints the totals and evaluates to the exit status: 0 when all passed. */
#define UNIT_REPORT()                                                         \
    (printf("%d passed, %d failed\n", unit_passed, unit_failed),              \
     unit_failed != 0)

#endif /* UNIT_H */
