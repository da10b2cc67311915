/* Config parsing, clocks, CPU pinning and message helpers. */
#include "core/internal.h"

#include <errno.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

uint64_t fl_ts_ns(struct timespec t)
{
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

uint64_t fl_clock_ns(clockid_t clk)
{
    struct timespec t;
    clock_gettime(clk, &t);
    return fl_ts_ns(t);
}

uint64_t fl_now(void)
{
    return fl_clock_ns(CLOCK_MONOTONIC);
}

uint64_t fl_thread_cpu_ns(void)
{
    return fl_clock_ns(CLOCK_THREAD_CPUTIME_ID);
}

uint64_t fl_thread_cpu_ns_of(pthread_t t)
{
    clockid_t c;
    struct timespec ts;
    return pthread_getcpuclockid(t, &c) || clock_gettime(c, &ts) ? FL_CPU_UNKNOWN : fl_ts_ns(ts);
}

uint64_t fl_process_cpu_ns_of(pid_t pid)
{
    clockid_t c;
    struct timespec ts;
    return clock_getcpuclockid(pid, &c) || clock_gettime(c, &ts) ? FL_CPU_UNKNOWN : fl_ts_ns(ts);
}

uint64_t fl_cpu_add(uint64_t a, uint64_t b)
{
    return a == FL_CPU_UNKNOWN || b == FL_CPU_UNKNOWN ? FL_CPU_UNKNOWN : a + b;
}

uint64_t fl_now_ns(void)
{
    return fl_now();
}

long fl_thread_minflt(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_THREAD, &ru) ? 0 : ru.ru_minflt;
}

static void sleep_until(clockid_t clk, uint64_t deadline)
{
    struct timespec ts = {.tv_sec = (time_t)(deadline / 1000000000ull), .tv_nsec = (long)(deadline % 1000000000ull)};
    while (clock_nanosleep(clk, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

void fl_sleep_until_ns(uint64_t deadline)
{
    sleep_until(CLOCK_MONOTONIC, deadline);
}

/* A sleep alone wakes late by a scheduler's whim: sleep until FL_SPIN_NS
 * before the deadline, then spin. Async-signal-safe. */
void fl_wait_precise(clockid_t clk, uint64_t deadline)
{
    if (deadline > fl_clock_ns(clk) + FL_SPIN_NS)
        sleep_until(clk, deadline - FL_SPIN_NS);
    while (fl_clock_ns(clk) < deadline)
        ;
}

void fl_errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* snprintf is not async-signal-safe; this is. */
void fl_sigsafe_msg(char *dst, size_t len, const char *prefix, uint64_t off, const char *cause)
{
    size_t n = 0;
    for (const char *p = prefix; *p && n + 1 < len; p++)
        dst[n++] = *p;
    const char *hex = "0123456789abcdef";
    char tmp[19] = "0x";
    int digits = 0;
    for (int shift = 60; shift >= 0; shift -= 4) {
        int d = (int)((off >> shift) & 0xf);
        if (d || digits || shift == 0)
            tmp[2 + digits++] = hex[d];
    }
    tmp[2 + digits] = 0;
    for (const char *p = tmp; *p && n + 1 < len; p++)
        dst[n++] = *p;
    for (const char *p = ": "; *p && n + 1 < len; p++)
        dst[n++] = *p;
    for (const char *p = cause; *p && n + 1 < len; p++)
        dst[n++] = *p;
    dst[n] = 0;
}

void fl_text_init(struct fl_text *t, char *dst, size_t cap)
{
    t->p = dst;
    t->cap = cap;
    t->n = 0;
    if (dst && cap)
        dst[0] = 0;
}

void fl_text_str(struct fl_text *t, const char *s)
{
    if (!t->p || !t->cap)
        return;
    while (*s && t->n + 1 < t->cap)
        t->p[t->n++] = *s++;
    t->p[t->n] = 0;
}

void fl_text_u64(struct fl_text *t, uint64_t v)
{
    char tmp[21];
    int i = 20;
    tmp[20] = 0;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    fl_text_str(t, tmp + i);
}

int fl_pin_cpu(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    if (cpu < 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        for (long i = 0; i < n && i < CPU_SETSIZE; i++)
            CPU_SET(i, &set);
    } else {
        CPU_SET(cpu, &set);
    }
    return pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

int fl_thread_start_on(pthread_t *t, int cpu, void *(*fn)(void *), void *arg)
{
    pthread_attr_t ta;
    pthread_attr_init(&ta);
    if (cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        pthread_attr_setaffinity_np(&ta, sizeof set, &set);
    }
    int e = pthread_create(t, &ta, fn, arg);
    pthread_attr_destroy(&ta);
    return e;
}

/* The CPUs this process may run on: the affinity it was started with (the
 * main thread's, which faultlab never pins), or every online CPU if that
 * cannot be read. */
static void process_cpus(cpu_set_t *set)
{
    if (!sched_getaffinity(getpid(), sizeof *set, set))
        return;
    CPU_ZERO(set);
    for (long c = 0, n = sysconf(_SC_NPROCESSORS_ONLN); c < n && c < CPU_SETSIZE; c++)
        CPU_SET(c, set);
}

/* The k-th CPU (from 0) this process may run on, or -1 when it has fewer. */
static int nth_allowed_cpu(int k)
{
    cpu_set_t s;
    process_cpus(&s);
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &s) && k-- == 0)
            return c;
    return -1;
}

/* same: everything on the first CPU the process may run on (CPU 0 unless it
 * was started on others, e.g. under taskset); split: the handler side on the
 * second. */
int fl_cpu_for(enum fl_cpus c, bool handler)
{
    switch (c) {
    case FL_CPUS_SAME:
        return nth_allowed_cpu(0);
    case FL_CPUS_SPLIT: {
        int second = handler ? nth_allowed_cpu(1) : -1;
        return second >= 0 ? second : nth_allowed_cpu(0);
    }
    default:
        return -1;
    }
}

const char *fl_cpus_name(enum fl_cpus c)
{
    return c == FL_CPUS_SAME ? "same" : c == FL_CPUS_SPLIT ? "split" : "free";
}

int fl_parse_cpus_key(const char *what, const char *v, enum fl_cpus *out, char *err, size_t errlen)
{
    static const enum fl_cpus all[] = {FL_CPUS_SAME, FL_CPUS_SPLIT, FL_CPUS_FREE};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (!strcmp(v, fl_cpus_name(all[i]))) {
            *out = all[i];
            return 0;
        }
    fl_errf(err, errlen, "%s: cpus must be same, split or free, got '%s'", what, v);
    return -1;
}

/* A CPU set as "0-3,6", marked when cut to fit len. */
static void format_cpus(const cpu_set_t *set, char *list, size_t len)
{
    struct fl_text t;
    fl_text_init(&t, list, len);
    bool any = false;
    for (int c = 0; c < CPU_SETSIZE; c++) {
        if (!CPU_ISSET(c, set) || (c > 0 && CPU_ISSET(c - 1, set)))
            continue; /* not in the set, or inside a run already written */
        if (len - t.n < 16) { /* room for one more run ("1022-1023,") and the mark */
            fl_text_str(&t, ",...");
            break;
        }
        int last = c;
        while (last + 1 < CPU_SETSIZE && CPU_ISSET(last + 1, set))
            last++;
        fl_text_str(&t, any ? "," : "");
        fl_text_u64(&t, (uint64_t)c);
        if (last > c) {
            fl_text_str(&t, "-");
            fl_text_u64(&t, (uint64_t)last);
        }
        any = true;
    }
}

int fl_parse_cpu_key(const char *what, const char *key, const char *v, int *out, char *err, size_t errlen)
{
    cpu_set_t set;
    process_cpus(&set);
    uint64_t c;
    if (fl_parse_u64(v, 0, CPU_SETSIZE - 1, &c) || !CPU_ISSET((int)c, &set)) {
        char list[256];
        format_cpus(&set, list, sizeof list);
        fl_errf(err, errlen, "%s: %s must be a CPU this process may run on (%s), got '%s'", what, key, list, v);
        return -1;
    }
    *out = (int)c;
    return 0;
}

const char *fl_handler_name(enum fl_handler_kind h)
{
    return h == FL_HANDLER_PROCESS ? "process" : "thread";
}

const char *fl_uffd_install_name(enum fl_uffd_install i)
{
    return i == FL_INSTALL_CONTINUE ? "continue" : i == FL_INSTALL_MOVE ? "move" : "copy";
}

/* Sizes: plain bytes or with KiB/MiB/GiB (also K/M/G). */
static int parse_size(const char *v, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno || end == v || v[0] == '-')
        return -1;
    uint64_t mul = 1;
    if (!*end)
        mul = 1;
    else if (!strcmp(end, "KiB") || !strcmp(end, "K"))
        mul = 1ull << 10;
    else if (!strcmp(end, "MiB") || !strcmp(end, "M"))
        mul = 1ull << 20;
    else if (!strcmp(end, "GiB") || !strcmp(end, "G"))
        mul = 1ull << 30;
    else
        return -1;
    if (n > UINT64_MAX / mul)
        return -1;
    *out = n * mul;
    return 0;
}

static int parse_int(const char *v, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < min || n > max)
        return -1;
    *out = n;
    return 0;
}

int fl_parse_u64(const char *v, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno || end == v || *end || v[0] == '-' || n < min || n > max)
        return -1;
    *out = n;
    return 0;
}

int fl_spec_each(const char *spec, const char *what, fl_spec_fn each, void *ctx, char *err, size_t errlen)
{
    char buf[1024];
    if (!spec)
        spec = "";
    if (strlen(spec) >= sizeof buf) {
        fl_errf(err, errlen, "%s too long", what);
        return -1;
    }
    strcpy(buf, spec);
    char *save = NULL;
    for (char *tok = strtok_r(buf, " \t\n", &save); tok; tok = strtok_r(NULL, " \t\n", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq) {
            fl_errf(err, errlen, "%s: expected key=value, got '%s'", what, tok);
            return -1;
        }
        *eq = 0;
        if (each(tok, eq + 1, ctx, err, errlen))
            return -1;
    }
    return 0;
}

int fl_spec_pass(char *rest, size_t restlen, const char *key, const char *value, char *err, size_t errlen)
{
    size_t used = strlen(rest);
    int n = snprintf(rest + used, restlen - used, "%s=%s ", key, value);
    if (n < 0 || (size_t)n >= restlen - used) {
        fl_errf(err, errlen, "spec too long");
        return -1;
    }
    return 0;
}

/* One key of a region spec. */
static int config_key(const char *k, const char *v, void *ctx, char *err, size_t errlen)
{
    struct fl_config *c = ctx;
    long n;
    uint64_t u;
    if (!strcmp(k, "strategy") && strlen(v) < sizeof c->strategy) {
        strcpy(c->strategy, v);
    } else if (!strcmp(k, "source") && strlen(v) < sizeof c->source) {
        strcpy(c->source, v);
    } else if (!strcmp(k, "host") && strlen(v) < sizeof c->host) {
        strcpy(c->host, v);
    } else if (!strcmp(k, "disk_dir") && strlen(v) < sizeof c->disk_dir) {
        strcpy(c->disk_dir, v);
    } else if (!strcmp(k, "port") && !parse_int(v, 1, 65535, &n)) {
        c->port = (int)n;
    } else if (!strcmp(k, "region") && !parse_size(v, &u)) {
        c->region_bytes = u;
    } else if (!strcmp(k, "chunk") && !parse_size(v, &u)) {
        c->chunk_bytes = u;
    } else if (!strcmp(k, "seed") && !parse_size(v, &u)) {
        c->seed = u;
    } else if (!strcmp(k, "handler_threads") && !parse_int(v, 1, FL_MAX_HANDLERS, &n)) {
        c->handler_threads = (int)n;
    } else if (!strcmp(k, "fetch_timeout_ms") && !parse_int(v, 1, 3600000, &n)) {
        c->fetch_timeout_ms = (int)n;
    } else if (!strcmp(k, "corrupt") && !parse_size(v, &u) && u <= INT64_MAX) {
        c->corrupt_offset = (int64_t)u;
    } else if (!strcmp(k, "prefetch") && strlen(v) < sizeof c->prefetch) {
        strcpy(c->prefetch, v); /* checked by the policy at region create */
    } else if (!strcmp(k, "depth") && !parse_int(v, 1, 1024, &n)) {
        c->depth = (int)n;
    } else if (!strcmp(k, "pf_conns") && !parse_int(v, 1, 8, &n)) {
        c->pf_conns = (int)n;
    } else if (!strcmp(k, "vma_span") && (!strcmp(v, "auto") || !parse_int(v, 1, 1 << 20, &n))) {
        c->vma_span = !strcmp(v, "auto") ? 0 : (int)n;
    } else if (!strcmp(k, "uffd_install") && (!strcmp(v, "copy") || !strcmp(v, "continue") || !strcmp(v, "move"))) {
        c->uffd_install = !strcmp(v, "copy") ? FL_INSTALL_COPY : !strcmp(v, "continue") ? FL_INSTALL_CONTINUE : FL_INSTALL_MOVE;
    } else if (!strcmp(k, "handler") && (!strcmp(v, "thread") || !strcmp(v, "process"))) {
        c->handler = !strcmp(v, "thread") ? FL_HANDLER_THREAD : FL_HANDLER_PROCESS;
    } else if (!strcmp(k, "huge") && (!strcmp(v, "none") || !strcmp(v, "thp") || !strcmp(v, "hugetlb"))) {
        strcpy(c->huge, v);
    } else if (!strcmp(k, "client_rtt_us") && !parse_size(v, &u) && u <= 10000000) {
        c->client_rtt_ns = u * 1000;
    } else if (!strcmp(k, "resident_limit") && !parse_size(v, &u)) {
        c->resident_limit = u;
    } else if (!strcmp(k, "evict") && (!strcmp(v, "fifo") || !strcmp(v, "clock"))) {
        strcpy(c->evict, v);
    } else if (!strcmp(k, "export") && strlen(v) < sizeof c->export_name) {
        strcpy(c->export_name, v);
    } else if (!strcmp(k, "cpus") && (!strcmp(v, "same") || !strcmp(v, "split") || !strcmp(v, "free"))) {
        c->cpus = !strcmp(v, "same") ? FL_CPUS_SAME : !strcmp(v, "split") ? FL_CPUS_SPLIT : FL_CPUS_FREE;
    } else {
        fl_errf(err, errlen, "bad value for '%s': '%s'", k, v);
        return -1;
    }
    return 0;
}

int fl_config_parse(const char *spec, struct fl_config *cfg, char *err, size_t errlen)
{
    memset(cfg, 0, sizeof *cfg);
    strcpy(cfg->strategy, "uffd");
    strcpy(cfg->source, "local");
    strcpy(cfg->host, "127.0.0.1");
    strcpy(cfg->disk_dir, "/tmp");
    cfg->region_bytes = 64ull << 20;
    cfg->chunk_bytes = 4096;
    cfg->seed = 1;
    cfg->handler_threads = 1;
    cfg->cpus = FL_CPUS_SAME;
    cfg->fetch_timeout_ms = 5000;
    cfg->corrupt_offset = -1;
    strcpy(cfg->prefetch, "none");
    cfg->depth = 16;
    cfg->vma_span = 1;
    strcpy(cfg->huge, "none");
    strcpy(cfg->evict, "fifo");

    if (fl_spec_each(spec, "spec", config_key, cfg, err, errlen))
        return -1;
    long page = sysconf(_SC_PAGESIZE);
    if (cfg->chunk_bytes == 0 || cfg->chunk_bytes % (uint64_t)page) {
        fl_errf(err, errlen, "chunk %llu bytes is not a multiple of the page size (%ld bytes)", (unsigned long long)cfg->chunk_bytes, page);
        return -1;
    }
    if (cfg->region_bytes == 0) {
        fl_errf(err, errlen, "region of 0 bytes: give a size such as 64MiB");
        return -1;
    }
    if (cfg->region_bytes % cfg->chunk_bytes) {
        fl_errf(err, errlen, "region %llu bytes is not a multiple of the chunk (%llu bytes)", (unsigned long long)cfg->region_bytes,
                (unsigned long long)cfg->chunk_bytes);
        return -1;
    }
    if (cfg->resident_limit && strcmp(cfg->strategy, "uffd") && strcmp(cfg->strategy, "sigsegv")) {
        fl_errf(err, errlen, "resident_limit is for uffd and sigsegv (the strategies that fetch on faults), not %s", cfg->strategy);
        return -1;
    }
    if (cfg->resident_limit && cfg->handler == FL_HANDLER_PROCESS) {
        /* Eviction drops pages with MADV_DONTNEED in the application's mm, which
         * a handler process cannot do (process_madvise refuses MADV_DONTNEED). */
        fl_errf(err, errlen, "resident_limit needs handler=thread: eviction drops pages in the application's own address space");
        return -1;
    }
    if (cfg->corrupt_offset >= 0 && (uint64_t)cfg->corrupt_offset >= cfg->region_bytes) {
        fl_errf(err, errlen, "corrupt offset outside the region");
        return -1;
    }
    return 0;
}

int fl_touch(uintptr_t addr)
{
    return *(volatile const uint8_t *)addr;
}

/* The kernel's receive time of what recvmsg returned, on CLOCK_MONOTONIC; without a stamp, now, which is never early.
 * The stamp is CLOCK_REALTIME. The offset between the clocks is read as
 * REALTIME minus the monotonic time read just after it: a preemption between
 * the two reads then makes the converted stamp late, never early (against a
 * monotonic read taken before, it made a reply leave early by the length of
 * the preemption). The tighter of at most two tries is kept. */
uint64_t fl_rx_time(struct msghdr *m)
{
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(m); cm; cm = CMSG_NXTHDR(m, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_TIMESTAMPNS)
            continue;
        struct timespec ts;
        memcpy(&ts, CMSG_DATA(cm), sizeof ts);
        uint64_t offset = 0, gap = UINT64_MAX, now = 0;
        for (int i = 0; i < 2 && gap > 2000; i++) { /* a second try only after a slow first (each read may be a system call) */
            uint64_t before = fl_now(), real = fl_clock_ns(CLOCK_REALTIME), after = fl_now();
            if (after - before < gap) {
                gap = after - before;
                offset = real - after;
                now = after;
            }
        }
        uint64_t at = fl_ts_ns(ts) - offset;
        return at < now ? at : now;
    }
    return fl_now();
}
