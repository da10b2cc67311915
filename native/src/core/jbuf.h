/* A bounded JSON text builder for every JSON result (runs, push, migrate,
 * doctor, floors). `used` keeps counting past `len`, so a caller whose buffer
 * was too small can say how many bytes the text needs. */
#ifndef FAULTLAB_JBUF_H
#define FAULTLAB_JBUF_H
#include <stdarg.h>
#include <stdio.h>

struct fl_jbuf {
    char *p;
    size_t len, used;
    char last; /* the text's last character, also once it no longer fits */
};

__attribute__((format(printf, 2, 3), unused)) static void fl_jput(struct fl_jbuf *j, const char *fmt, ...)
{
    size_t room = j->used < j->len ? j->len - j->used : 0;
    va_list ap, again;
    va_start(ap, fmt);
    va_copy(again, ap);
    int n = vsnprintf(room ? j->p + j->used : NULL, room, fmt, ap);
    va_end(ap);
    if (n > 0 && (size_t)n < room) {
        j->last = j->p[j->used + (size_t)n - 1];
    } else if (n > 0) {
        /* Did not fit: format it aside so that separators decided from `last`
         * stay the same and `used` counts the exact size. */
        char aside[256];
        j->last = (size_t)n < sizeof aside && vsnprintf(aside, sizeof aside, fmt, again) == n ? aside[n - 1] : 0;
    }
    va_end(again);
    if (n > 0)
        j->used += (size_t)n;
}

/* A JSON string literal (with quotes); control characters escaped. */
__attribute__((unused)) static void fl_jstr(struct fl_jbuf *j, const char *s)
{
    fl_jput(j, "\"");
    for (const unsigned char *c = (const unsigned char *)(s ? s : ""); *c; c++) {
        if (*c == '"' || *c == '\\')
            fl_jput(j, "\\%c", *c);
        else if (*c == '\n')
            fl_jput(j, "\\n");
        else if (*c == '\t')
            fl_jput(j, "\\t");
        else if (*c < 0x20 || *c == 0x7f)
            fl_jput(j, "\\u%04x", *c);
        else
            fl_jput(j, "%c", *c);
    }
    fl_jput(j, "\"");
}

/* True when the text did not fit (used then says how many bytes it needs, without the NUL). */
__attribute__((unused)) static int fl_jfull(const struct fl_jbuf *j)
{
    return j->used >= j->len;
}
#endif
