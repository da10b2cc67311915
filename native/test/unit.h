/* The native tests' frame, in the shape of the kernel's
 * tools/testing/selftests/mm/uffd-unit-tests.c: each test binary declares a
 * table of named tests with what each requires, and ends in
 *
 *     return unit_main(argc, argv, tests, UNIT_COUNT(tests));
 *
 * `-l` lists the table, `-f NAME` runs the tests whose name contains NAME.
 * Output is TAP: a test's checks are indented diagnostics ("    ok - ..."),
 * each test is one line ("ok 3 - name", "not ok 3 - name",
 * "ok 3 - name # SKIP reason"), and a closing "# BINARY: N passed, N failed,
 * N skipped". test/native-runner.mjs counts those lines and also fails a
 * binary that exits non-zero, dies of a signal or prints a sanitizer report.
 *
 * A test passes only if it ran at least one check and none failed: a test
 * that checks nothing is a failure, and a feature this host refuses is a
 * SKIP with its reason, never a pass. */
#ifndef FAULTLAB_UNIT_H
#define FAULTLAB_UNIT_H
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* What a test needs of the host or the build; a test whose needs are not met
 * is skipped with the reason. */
enum unit_need {
    NEED_ROOT = 1 << 0, /* effective uid 0 (sysctls, privileged userfaultfd) */
    NEED_UFFD = 1 << 1, /* a userfaultfd can be opened (privileged or user-mode-only) */
    NEED_NO_SANITIZER = 1 << 2, /* the plain build: a sanitizer's shadow memory changes what is measured */
    NEED_NO_TSAN = 1 << 3, /* not under ThreadSanitizer */
};

struct unit_test {
    const char *name;
    unsigned needs;
    void (*fn)(void);
};
#define UNIT_COUNT(a) (sizeof(a) / sizeof *(a))

static int unit_checks_failed; /* in the running test */
static int unit_checks_run; /* in the running test */
static char unit_skip_reason[256];

/* One check inside a test: a diagnostic line, counted against its test. */
#define CHECK(cond, ...)                                                                                                                   \
    do {                                                                                                                                   \
        unit_checks_run++;                                                                                                                 \
        if (cond) {                                                                                                                        \
            printf("    ok - ");                                                                                                           \
        } else {                                                                                                                           \
            printf("    not ok - ");                                                                                                       \
            unit_checks_failed++;                                                                                                          \
        }                                                                                                                                  \
        printf(__VA_ARGS__);                                                                                                               \
        printf("\n");                                                                                                                      \
        fflush(stdout);                                                                                                                    \
    } while (0)

/* The running test cannot run here (a kernel feature absent, a build that
 * cannot measure it): say why, then return from the test. */
__attribute__((format(printf, 1, 2), unused)) static void unit_skip(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(unit_skip_reason, sizeof unit_skip_reason, fmt, ap);
    va_end(ap);
    for (char *p = unit_skip_reason; *p; p++)
        if (*p == '\n')
            *p = ' ';
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define UNIT_SANITIZER 1
#else
#define UNIT_SANITIZER 0
#endif

static const char *unit_unmet(unsigned needs)
{
    if ((needs & NEED_ROOT) && geteuid() != 0)
        return "needs root";
    if (needs & NEED_UFFD) {
        int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
        if (fd < 0)
            fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | 1 /* UFFD_USER_MODE_ONLY */);
        if (fd < 0)
            return "userfaultfd unavailable to this process";
        close(fd);
    }
    if ((needs & NEED_NO_SANITIZER) && UNIT_SANITIZER)
        return "not under a sanitizer (its shadow memory changes what this test measures; the plain build runs it)";
#if defined(__SANITIZE_THREAD__)
    if (needs & NEED_NO_TSAN)
        return "not under ThreadSanitizer (the plain and ASan builds run it)";
#endif
    return NULL;
}

static void unit_needs_text(unsigned needs, char *buf, size_t len)
{
    snprintf(buf, len, "%s%s%s%s", needs & NEED_ROOT ? " root" : "", needs & NEED_UFFD ? " uffd" : "",
             needs & NEED_NO_SANITIZER ? " plain-build" : "", needs & NEED_NO_TSAN ? " no-tsan" : "");
}

static const char *unit_base(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

__attribute__((unused)) static int unit_main(int argc, char **argv, const struct unit_test *tests, size_t n)
{
    const char *filter = NULL;
    const char *me = unit_base(argv[0]);
    int opt;
    while ((opt = getopt(argc, argv, "lf:h")) != -1) {
        if (opt == 'l') {
            for (size_t i = 0; i < n; i++) {
                char needs[96];
                unit_needs_text(tests[i].needs, needs, sizeof needs);
                printf("%s%s%s\n", tests[i].name, needs[0] ? "  needs:" : "", needs);
            }
            return 0;
        } else if (opt == 'f') {
            filter = optarg;
        } else {
            fprintf(stderr,
                    "usage: %s [-l] [-f NAME]\n  -l       list the tests and what each needs\n"
                    "  -f NAME  run only the tests whose name contains NAME\n",
                    me);
            return opt == 'h' ? 0 : 2;
        }
    }
    int passed = 0, failed = 0, skipped = 0, number = 0;
    for (size_t i = 0; i < n; i++) {
        if (filter && !strstr(tests[i].name, filter))
            continue;
        number++;
        const char *unmet = unit_unmet(tests[i].needs);
        if (unmet) {
            printf("ok %d - %s # SKIP %s\n", number, tests[i].name, unmet);
            skipped++;
            continue;
        }
        printf("# start %s\n", tests[i].name);
        fflush(stdout);
        unit_checks_failed = unit_checks_run = 0;
        unit_skip_reason[0] = 0;
        tests[i].fn();
        if (unit_checks_failed) {
            printf("not ok %d - %s (%d of %d checks failed)\n", number, tests[i].name, unit_checks_failed, unit_checks_run);
            failed++;
        } else if (unit_skip_reason[0]) {
            printf("ok %d - %s # SKIP %s\n", number, tests[i].name, unit_skip_reason);
            skipped++;
        } else if (unit_checks_run == 0) {
            printf("not ok %d - %s (it ran no check)\n", number, tests[i].name);
            failed++;
        } else {
            printf("ok %d - %s\n", number, tests[i].name);
            passed++;
        }
        fflush(stdout);
    }
    if (filter && number == 0) {
        fprintf(stderr, "%s: no test matches '%s' (-l lists them)\n", me, filter);
        return 2;
    }
    printf("1..%d\n# %s: %d passed, %d failed, %d skipped\n", number, me, passed, failed, skipped);
    return failed != 0;
}
#endif
