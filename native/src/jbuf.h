/* A bounded JSON text builder for the run results (region, push, migrate). */
#ifndef FAULTLAB_JBUF_H
#define FAULTLAB_JBUF_H
#include <stdarg.h>
#include <stdio.h>

struct fl_jbuf {
    char *p;
    size_t len, used;
};

__attribute__((format(printf, 2, 3), unused)) static void fl_jput(struct fl_jbuf *j, const char *fmt, ...)
{
    if (j->used >= j->len)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(j->p + j->used, j->len - j->used, fmt, ap);
    va_end(ap);
    if (n > 0)
        j->used += (size_t)n;
}

/* True when the text did not fit. */
__attribute__((unused)) static int fl_jfull(const struct fl_jbuf *j) { return j->used >= j->len; }
#endif
