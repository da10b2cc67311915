/* Minimal TAP-style reporting for the native tests: "ok - name" / "not ok - name". */
#ifndef FAULTLAB_TAP_H
#define FAULTLAB_TAP_H
#include <stdio.h>
static int tap_failed;
#define CHECK(cond, ...)                                                                  \
    do {                                                                                  \
        if (cond) {                                                                       \
            printf("ok - ");                                                              \
        } else {                                                                          \
            printf("not ok - ");                                                          \
            tap_failed++;                                                                 \
        }                                                                                 \
        printf(__VA_ARGS__);                                                              \
        printf("\n");                                                                     \
        fflush(stdout);                                                                   \
    } while (0)
#endif
