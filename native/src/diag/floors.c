/* fl_floors: what each fault-handling mechanism costs on its own.
 *
 * Every floor runs THE SAME timed loop as the workloads (core/region.c access_loop):
 * for each page in order: t0 = fl_now(); memcpy(scratch, page, page_size);
 * t1 = fl_now(); sample t1 - t0; then (untimed) verify scratch. So a strategy's
 * per-access latency minus the matching floor is what the strategy itself adds.
 *
 * Floors (each p50/p99/mean/min/max/n in ns):
 *   timer            two back-to-back fl_now() calls: the clock's own cost
 *   memcpy           the copy alone, over populated memory (the prefilled source)
 *   anon_touch       first read of fresh private anonymous memory: the kernel maps
 *                    the shared zero page (no allocation, no zeroing)
 *   anon_touch_write first write (memcpy(page, scratch)) of fresh anonymous memory:
 *                    allocate + zero a page, the kernel-only analogue of UFFDIO_COPY
 *   uffd             MISSING-mode userfaultfd, one handler thread doing only
 *                    poll -> read one uffd_msg -> UFFDIO_COPY of 4 KiB from a
 *                    prefilled source buffer
 *   sigsegv          PROT_NONE region, SIGSEGV handler doing mprotect(page, RW) +
 *                    memcpy from the source (the classic, non-atomic install)
 *   sigsegv_prepopulated
 *                    what the sigsegv strategy does: a memfd mapped twice with
 *                    MAP_POPULATE (a writable fill view and the PROT_NONE view
 *                    the loop reads), both populated outside the timed loop;
 *                    the handler copies into the fill view and opens the page
 *                    with mprotect. No page is allocated inside the loop, as in
 *                    the strategy, whose set-up pays that (setup_ns). Without
 *                    it the strategy measured below the sigsegv floor: a floor
 *                    missing the step its strategy moved out of the fault.
 *
 * uffd, sigsegv and sigsegv_prepopulated also report setup_ns: mapping,
 * registration, handler thread and pre-population, none of it in the samples.
 *
 * fetch=tcp runs only those three, each handler fetching every page over the C
 * TCP floor pair (diag/tcp_floor.h: a 28-byte request, the page's bytes back
 * from a prefilled buffer, no NBD) instead of copying it from memory; its
 * server thread is pinned to server_cpu= (default unpinned). What composing
 * the two floors costs, as a remote fault composes them, with no faultlab code
 * in it: `faultlab targets remote` reports the strategies against it.
 *
 * Threads: the loop runs on a thread created here and pinned per cpus= (the
 * caller's thread is never pinned); the uffd handler thread is pinned per cpus=
 * too. same: both on CPU 0; split: loop on 0, handler on 1; free: unpinned.
 * All regions get MADV_NOHUGEPAGE so that every floor is a 4 KiB fault whatever
 * the THP setting. A floor that cannot run is reported as {"error": "..."} and
 * the others still run; fl_floors returns -1 only for a bad spec, no memory for
 * the source, a failed thread start or a too small output buffer.
 *
 * The SIGSEGV handler is process-wide while the sigsegv floor runs (a mutex
 * keeps two fl_floors calls from overlapping there); it chains to the previous
 * handler (Node's WebAssembly trap handler, for one) for any address outside its
 * region and the previous handler is restored afterwards.
 */
#include "core/internal.h"
#include "core/jbuf.h"
#include "core/uffd_open.h"
#include "diag/tcp_floor.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/userfaultfd.h>

#define FLOOR_ERR_LEN    200
#define FLOORS_MAX_PAGES (1ull << 24) /* 64 GiB of 4 KiB pages */

/* ---- results --------------------------------------------------------------- */
struct floor_res {
    const char *name;
    bool ran;
    char err[FLOOR_ERR_LEN];
    uint64_t n, p50, p99, min, max;
    double mean;
    uint64_t faults; /* faults served by the handler (uffd, sigsegv); 0 otherwise */
    long minflt; /* minor faults counted on the measuring thread */
    uint64_t bad_words; /* 8-byte words that did not verify */
    const char *note;
    uint64_t setup_ns; /* untimed preparation before the loop (0: not reported) */
};

enum { F_TIMER, F_MEMCPY, F_ANON, F_ANON_WRITE, F_UFFD, F_SIGSEGV, F_SIGSEGV_PREPOP, F_COUNT };

struct floors_run {
    enum fl_cpus cpus;
    uint64_t pages;
    size_t page;
    uint8_t *src; /* pages*page bytes of fl_fill(FLOORS_SEED, 0) */
    uint8_t *scratch;
    struct floor_res res[F_COUNT];
    const char *uffd_path;
    int workload_cpu, handler_cpu;
    bool fetch_tcp; /* fetch=tcp: the handler floors fetch each page over the C TCP floor pair */
    int server_cpu; /* that pair's server thread; -1: unpinned */
    int fetch_fd; /* connected to it while the handler floors run; -1 otherwise */
    int only; /* only=: the one floor to run (its index); -1: all */
    int rc;
    char err[FL_ERR_LEN];
};

#define FLOORS_SEED 1

static const char *const floor_names[F_COUNT] = {"timer", "memcpy",  "anon_touch",          "anon_touch_write",
                                                 "uffd",  "sigsegv", "sigsegv_prepopulated"};

/* floor_names[from..] as "a, b, c", for the messages that list them. */
static const char *names_from(int from, char *out, size_t len)
{
    struct fl_text t;
    fl_text_init(&t, out, len);
    for (int i = from; i < F_COUNT; i++) {
        fl_text_str(&t, i > from ? ", " : "");
        fl_text_str(&t, floor_names[i]);
    }
    return out;
}

static void res_error(struct floor_res *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void res_error(struct floor_res *f, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->err, sizeof f->err, fmt, ap);
    va_end(ap);
    f->ran = false;
}

/* Summarise samples into f (sorts them). */
static void summarise(struct floor_res *f, struct fl_samples *s, uint64_t sum)
{
    f->ran = true;
    f->n = s->n;
    f->mean = s->n ? (double)sum / (double)s->n : 0;
    f->p50 = fl_samples_quantile(s, 0.50);
    f->p99 = fl_samples_quantile(s, 0.99);
    f->min = fl_samples_quantile(s, 0.0);
    f->max = fl_samples_quantile(s, 1.0);
}

/* Count non-zero 8-byte words (expected contents of untouched anonymous memory). */
static uint64_t nonzero_words(const void *buf, size_t len)
{
    const uint64_t *w = buf;
    uint64_t bad = 0;
    for (size_t i = 0; i < len / 8; i++)
        bad += w[i] != 0;
    return bad;
}

/* ---- the measurement loop ---------------------------------------------------
 * Identical in shape to the workloads' access loop. expect_pattern: scratch must
 * equal fl_fill(FLOORS_SEED, offset); otherwise it must be all zero.
 * write_dir: copy scratch INTO the page instead (anon_touch_write only). */
static void measure_into(struct floors_run *fr, uint8_t *base, bool expect_pattern, bool write_dir, struct floor_res *f,
                         struct fl_samples *sp)
{
    struct fl_samples s = *sp;
    uint8_t *scratch = fr->scratch;
    const size_t page = fr->page;
    uint64_t sum = 0, bad = 0;
    long flt0 = fl_thread_minflt();
    for (uint64_t i = 0; i < fr->pages; i++) {
        uint8_t *p = base + i * page;
        uint64_t t0 = fl_now();
        if (write_dir)
            memcpy(p, scratch, page);
        else
            memcpy(scratch, p, page); /* the access: faults the page in if lazy */
        uint64_t t1 = fl_now();
        fl_samples_add(&s, t1 - t0);
        sum += t1 - t0;
        if (!write_dir) {
            uint64_t first_bad;
            bad += expect_pattern ? fl_verify(scratch, page, FLOORS_SEED, i * page, &first_bad) : nonzero_words(scratch, page);
        }
    }
    f->minflt = fl_thread_minflt() - flt0;
    f->bad_words = bad;
    *sp = s;
    summarise(f, sp, sum);
}

static void measure(struct floors_run *fr, uint8_t *base, bool expect_pattern, bool write_dir, struct floor_res *f)
{
    struct fl_samples s;
    if (fl_samples_init(&s, fr->pages)) {
        res_error(f, "out of memory for %llu samples", (unsigned long long)fr->pages);
        return;
    }
    measure_into(fr, base, expect_pattern, write_dir, f, &s);
    fl_samples_free(&s);
}

static uint8_t *map_region(struct floors_run *fr, int prot, struct floor_res *f)
{
    size_t len = fr->pages * fr->page;
    void *m = mmap(NULL, len, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) {
        res_error(f, "mmap of %zu bytes failed: %s", len, strerror(errno));
        return NULL;
    }
    madvise(m, len, MADV_NOHUGEPAGE); /* 4 KiB faults whatever THP says */
    return m;
}

/* ---- timer, memcpy, anonymous memory ------------------------------------------- */
static void floor_timer(struct floors_run *fr, struct floor_res *f)
{
    struct fl_samples s;
    if (fl_samples_init(&s, fr->pages)) {
        res_error(f, "out of memory for samples");
        return;
    }
    uint64_t sum = 0;
    for (uint64_t i = 0; i < fr->pages; i++) {
        uint64_t t0 = fl_now();
        __asm__ volatile("" ::: "memory");
        uint64_t t1 = fl_now();
        fl_samples_add(&s, t1 - t0);
        sum += t1 - t0;
    }
    summarise(f, &s, sum);
    fl_samples_free(&s);
}

static void floor_memcpy(struct floors_run *fr, struct floor_res *f)
{
    measure(fr, fr->src, true, false, f);
}

static void floor_anon(struct floors_run *fr, struct floor_res *f, bool write_dir)
{
    uint8_t *m = map_region(fr, PROT_READ | PROT_WRITE, f);
    if (!m)
        return;
    measure(fr, m, false, write_dir, f);
    munmap(m, fr->pages * fr->page);
}

/* ---- userfaultfd ------------------------------------------------------------------ */
struct uffd_handler {
    int fd;
    int cpu;
    uintptr_t base;
    size_t len, page;
    const uint8_t *src;
    int fetch_fd; /* >= 0: fetch each page over TCP into buf instead */
    uint8_t *buf;
    uint64_t expect; /* faults to serve before exiting */
    uint64_t served;
    atomic_int stop;
    char err[FLOOR_ERR_LEN];
};

/* poll -> read one uffd_msg -> (fetch=tcp: one round trip) -> UFFDIO_COPY.
 * Nothing else on the fast path. */
static void *uffd_handler_main(void *arg)
{
    struct uffd_handler *h = arg;
    fl_pin_cpu(h->cpu);
    struct pollfd pfd = {.fd = h->fd, .events = POLLIN};
    while (h->served < h->expect && !atomic_load_explicit(&h->stop, memory_order_relaxed)) {
        int pr = poll(&pfd, 1, 100);
        if (pr < 0) {
            if (errno == EINTR)
                continue;
            fl_errf(h->err, sizeof h->err, "poll on userfaultfd: %s", strerror(errno));
            break;
        }
        if (pr == 0)
            continue;
        struct uffd_msg msg;
        ssize_t n = read(h->fd, &msg, sizeof msg);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                continue;
            fl_errf(h->err, sizeof h->err, "read from userfaultfd: %s", strerror(errno));
            break;
        }
        if (n != (ssize_t)sizeof msg) {
            fl_errf(h->err, sizeof h->err, "short read from userfaultfd (%zd bytes)", n);
            break;
        }
        if (msg.event != UFFD_EVENT_PAGEFAULT)
            continue;
        uintptr_t pg = (uintptr_t)msg.arg.pagefault.address & ~(uintptr_t)(h->page - 1);
        const uint8_t *from = h->src + (pg - h->base);
        if (h->fetch_fd >= 0) {
            if (tf_round_trip(h->fetch_fd, (pg - h->base) / h->page, h->buf, h->page)) {
                fl_errf(h->err, sizeof h->err, "fetch over TCP: %s", tf_strerror(errno));
                break;
            }
            from = h->buf;
        }
        struct uffdio_copy c = {.dst = pg, .src = (uintptr_t)from, .len = h->page, .mode = 0};
        int rc;
        while ((rc = ioctl(h->fd, UFFDIO_COPY, &c)) < 0 && errno == EAGAIN)
            c.copy = 0;
        if (rc < 0 && errno != EEXIST) {
            fl_errf(h->err, sizeof h->err, "UFFDIO_COPY at offset 0x%llx: %s", (unsigned long long)(pg - h->base), strerror(errno));
            break;
        }
        h->served++;
    }
    if (h->err[0]) {
        /* Unregistering wakes a faulting thread blocked on us; its access then
         * completes as an ordinary anonymous fault and fails verification. */
        struct uffdio_range r = {.start = h->base, .len = h->len};
        ioctl(h->fd, UFFDIO_UNREGISTER, &r);
    }
    return NULL;
}

static void floor_uffd(struct floors_run *fr, struct floor_res *f)
{
    char err[FLOOR_ERR_LEN];
    const char *how = NULL;
    int fd = fl_uffd_open(&how, err, sizeof err); /* the same paths the strategies try */
    if (fd < 0) {
        res_error(f, "%s", err);
        return;
    }
    fr->uffd_path = how;
    uint64_t t_setup = fl_now();
    struct uffdio_api api = {.api = UFFD_API, .features = 0};
    if (ioctl(fd, UFFDIO_API, &api)) {
        res_error(f, "UFFDIO_API: %s", strerror(errno));
        close(fd);
        return;
    }
    uint8_t *m = map_region(fr, PROT_READ | PROT_WRITE, f);
    if (!m) {
        close(fd);
        return;
    }
    size_t len = fr->pages * fr->page;
    struct uffdio_register reg = {.range = {.start = (uintptr_t)m, .len = len}, .mode = UFFDIO_REGISTER_MODE_MISSING};
    if (ioctl(fd, UFFDIO_REGISTER, &reg)) {
        res_error(f, "UFFDIO_REGISTER (missing): %s", strerror(errno));
        munmap(m, len);
        close(fd);
        return;
    }
    struct uffd_handler h = {.fd = fd,
                             .cpu = fr->handler_cpu,
                             .base = (uintptr_t)m,
                             .len = len,
                             .page = fr->page,
                             .src = fr->src,
                             .fetch_fd = fr->fetch_fd,
                             .buf = fr->scratch + fr->page, /* the second scratch page */
                             .expect = fr->pages};
    atomic_init(&h.stop, 0);
    pthread_t th;
    int e = pthread_create(&th, NULL, uffd_handler_main, &h);
    if (e) {
        res_error(f, "cannot start the handler thread: %s", strerror(e));
    } else {
        uint64_t setup = fl_now() - t_setup;
        measure(fr, m, true, false, f);
        f->setup_ns = setup;
        atomic_store(&h.stop, 1);
        pthread_join(th, NULL);
        f->faults = h.served;
        if (h.err[0])
            res_error(f, "handler: %s", h.err);
    }
    struct uffdio_range r = {.start = (uintptr_t)m, .len = len};
    ioctl(fd, UFFDIO_UNREGISTER, &r);
    munmap(m, len);
    close(fd);
}

/* ---- SIGSEGV + mprotect ------------------------------------------------------------ */
static pthread_mutex_t sg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    /* len 0: no region owned. Atomics, as the handler may run on any thread
     * (another thread's fault is chained): base is set before len, and len
     * cleared first (base is left as it was, so no pair reads as owned). */
    _Atomic uintptr_t base, len;
    const uint8_t *src;
    uint8_t *fill; /* sigsegv_prepopulated: the writable view of the memfd; NULL: copy into the page */
    size_t page;
    int fetch_fd; /* >= 0: fetch each page over TCP instead of copying from src */
    struct sigaction old;
    sigjmp_buf abort_jmp;
    const char *volatile fail_what;
    volatile sig_atomic_t fail_errno;
    volatile uint64_t faults;
} sg;

static void sg_chain(int sig, siginfo_t *si, void *uc)
{
    if (sg.old.sa_flags & SA_SIGINFO) {
        if (sg.old.sa_sigaction) {
            sg.old.sa_sigaction(sig, si, uc);
            return;
        }
    } else if (sg.old.sa_handler != SIG_DFL && sg.old.sa_handler != SIG_IGN) {
        sg.old.sa_handler(sig);
        return;
    }
    /* Default action: put it back and return; the access faults again and the
     * kernel applies the default (core dump) as if we had never been here. */
    sigaction(SIGSEGV, &sg.old, NULL);
}

/* Leaves the measuring loop (sg_measure) with what failed. */
static void sg_abort(const char *what, int saved_errno)
{
    sg.fail_what = what;
    sg.fail_errno = errno;
    errno = saved_errno;
    siglongjmp(sg.abort_jmp, 1);
}

/* The page at off of the region into dst: from the source, or fetched. */
static void sg_land(uint8_t *dst, uintptr_t off, int saved_errno)
{
    if (sg.fetch_fd < 0)
        memcpy(dst, sg.src + off, sg.page);
    else if (tf_round_trip(sg.fetch_fd, off / sg.page, dst, sg.page))
        sg_abort("fetch over TCP", saved_errno);
}

static void sg_handler(int sig, siginfo_t *si, void *uc)
{
    uintptr_t a = (uintptr_t)si->si_addr;
    uintptr_t len = atomic_load(&sg.len), base = atomic_load(&sg.base);
    if (a - base >= len) {
        sg_chain(sig, si, uc);
        return;
    }
    /* Only the measuring thread touches the region, so this is it. */
    int saved = errno;
    uintptr_t pg = a & ~(uintptr_t)(sg.page - 1);
    if (sg.fill) /* as the strategy: fill the hidden view, then open the page */
        sg_land(sg.fill + (pg - base), pg - base, saved);
    if (mprotect((void *)pg, sg.page, PROT_READ | PROT_WRITE))
        sg_abort("mprotect", saved);
    if (!sg.fill)
        sg_land((uint8_t *)pg, pg - base, saved);
    sg.faults++;
    errno = saved;
}

/* Kept out of line so that nothing live in the caller is clobbered by siglongjmp. */
static __attribute__((noinline)) int sg_measure(struct floors_run *fr, uint8_t *m, struct floor_res *f, struct fl_samples *s)
{
    if (sigsetjmp(sg.abort_jmp, 1))
        return -1;
    measure_into(fr, m, true, false, f, s);
    return 0;
}

/* The sigsegv strategy's set-up (strategies/sigsegv.c): a memfd, a writable
 * fill view and the region's view, both MAP_POPULATE, the region's view then
 * PROT_NONE (its page-table entries stay, so opening a page takes no second
 * fault). Returns the region's view; *fill the other; *memfd to close. */
static uint8_t *map_prepopulated(struct floors_run *fr, struct floor_res *f, uint8_t **fill, int *memfd)
{
    size_t len = fr->pages * fr->page;
    *fill = NULL;
    *memfd = memfd_create("faultlab-floor", MFD_CLOEXEC);
    if (*memfd < 0 || ftruncate(*memfd, (off_t)len)) {
        res_error(f, "memfd of %zu bytes: %s", len, strerror(errno));
        return NULL;
    }
    void *fv = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, *memfd, 0);
    void *v = fv == MAP_FAILED ? MAP_FAILED : mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, *memfd, 0);
    if (v == MAP_FAILED || mprotect(v, len, PROT_NONE)) {
        res_error(f, "mapping the memfd twice: %s", strerror(errno));
        if (fv != MAP_FAILED)
            munmap(fv, len);
        if (v != MAP_FAILED)
            munmap(v, len);
        return NULL;
    }
    madvise(fv, len, MADV_NOHUGEPAGE);
    madvise(v, len, MADV_NOHUGEPAGE);
    *fill = fv;
    return v;
}

static void floor_sigsegv(struct floors_run *fr, struct floor_res *f, bool prepopulated)
{
    struct fl_samples s; /* allocated here: an abort jumps out of the loop */
    if (fl_samples_init(&s, fr->pages)) {
        res_error(f, "out of memory for %llu samples", (unsigned long long)fr->pages);
        return;
    }
    uint64_t t_setup = fl_now();
    uint8_t *fill = NULL;
    int memfd = -1;
    uint8_t *m = prepopulated ? map_prepopulated(fr, f, &fill, &memfd) : map_region(fr, PROT_NONE, f);
    if (!m) {
        if (memfd >= 0)
            close(memfd);
        fl_samples_free(&s);
        return;
    }
    size_t len = fr->pages * fr->page;
    pthread_mutex_lock(&sg_lock);
    atomic_store(&sg.base, (uintptr_t)m);
    sg.fill = fill;
    sg.src = fr->src;
    sg.page = fr->page;
    sg.fetch_fd = fr->fetch_fd;
    sg.fail_errno = 0;
    sg.faults = 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = sg_handler;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigset_t segv;
    sigemptyset(&segv);
    sigaddset(&segv, SIGSEGV);
    pthread_sigmask(SIG_UNBLOCK, &segv, NULL); /* a blocked SIGSEGV would kill us */
    if (sigaction(SIGSEGV, &sa, &sg.old)) {
        res_error(f, "sigaction(SIGSEGV): %s", strerror(errno));
    } else {
        atomic_store(&sg.len, len); /* own the region only once the handler and old are in place */
        uint64_t setup = fl_now() - t_setup;
        int rc = sg_measure(fr, m, f, &s);
        f->setup_ns = setup;
        atomic_store(&sg.len, 0);
        sigaction(SIGSEGV, &sg.old, NULL);
        f->faults = sg.faults;
        if (rc)
            res_error(f, "%s in the SIGSEGV handler failed: %s%s", sg.fail_what,
                      sg.fetch_fd >= 0 ? tf_strerror(sg.fail_errno) : strerror(sg.fail_errno),
                      sg.fail_errno == ENOMEM ? " (vm.max_map_count reached?)" : "");
    }
    sg.fill = NULL;
    pthread_mutex_unlock(&sg_lock);
    munmap(m, len);
    if (fill)
        munmap(fill, len);
    if (memfd >= 0)
        close(memfd);
    fl_samples_free(&s);
}

/* ---- the measuring thread ----------------------------------------------------------- */
/* Whether floor i runs (only= picks one). */
static bool wanted(const struct floors_run *fr, int i)
{
    return fr->only < 0 || fr->only == i;
}

static void handler_floors(struct floors_run *fr)
{
    for (int i = F_UFFD; i <= F_SIGSEGV_PREPOP; i++) {
        if (!wanted(fr, i))
            continue;
        if (i == F_UFFD)
            floor_uffd(fr, &fr->res[i]);
        else
            floor_sigsegv(fr, &fr->res[i], i == F_SIGSEGV_PREPOP);
        /* A fetch that failed may leave the stream out of step (a late or
         * half-read reply): the floors after it fail on a closed connection,
         * never on bytes meant for another page. */
        if (fr->fetch_fd >= 0 && fr->res[i].err[0])
            shutdown(fr->fetch_fd, SHUT_RDWR);
    }
}

static void *floors_main(void *arg)
{
    struct floors_run *fr = arg;
    fl_pin_cpu(fr->workload_cpu);
    memset(fr->scratch, 0, 2 * fr->page); /* fault the scratch (and uffd's fetch buffer) in before timing */
    if (!fr->fetch_tcp) {
        if (wanted(fr, F_TIMER))
            floor_timer(fr, &fr->res[F_TIMER]);
        if (wanted(fr, F_MEMCPY))
            floor_memcpy(fr, &fr->res[F_MEMCPY]);
        if (wanted(fr, F_ANON))
            floor_anon(fr, &fr->res[F_ANON], false);
        if (wanted(fr, F_ANON_WRITE))
            floor_anon(fr, &fr->res[F_ANON_WRITE], true);
        handler_floors(fr);
        return NULL;
    }
    char err[FL_ERR_LEN] = "", server_err[FL_ERR_LEN];
    struct tf_server *server = tf_server_start(fr->page, fr->pages * fr->page, fr->server_cpu, err, sizeof err);
    if (server) {
        if ((fr->fetch_fd = tf_connect(tf_server_port(server), err, sizeof err)) >= 0) {
            handler_floors(fr);
            close(fr->fetch_fd); /* the server sees the end of stream and returns */
            fr->fetch_fd = -1;
        }
        if (tf_server_stop(server, server_err, sizeof server_err) && !err[0])
            memcpy(err, server_err, sizeof err);
    }
    for (int i = F_UFFD; i <= F_SIGSEGV_PREPOP && err[0]; i++) /* no server, or a failed one: each floor that needed it fails */
        if (wanted(fr, i) && !fr->res[i].err[0])
            res_error(&fr->res[i], "%s", err);
    return NULL;
}

/* ---- JSON ------------------------------------------------------------------------------ */
static void jw_floor(struct fl_jbuf *w, const struct floor_res *f, bool first)
{
    fl_jput(w, "%s\"%s\":{", first ? "" : ",", f->name);
    if (!f->ran) {
        fl_jput(w, "\"error\":");
        fl_jstr(w, f->err[0] ? f->err : "did not run");
        fl_jput(w, "}");
        return;
    }
    fl_jput(w, "\"p50_ns\":%llu,\"p99_ns\":%llu,\"mean_ns\":%.1f,\"min_ns\":%llu,\"max_ns\":%llu,\"n\":%llu", (unsigned long long)f->p50,
            (unsigned long long)f->p99, f->mean, (unsigned long long)f->min, (unsigned long long)f->max, (unsigned long long)f->n);
    if (f->faults)
        fl_jput(w, ",\"faults\":%llu", (unsigned long long)f->faults);
    if (f->name && strcmp(f->name, "timer"))
        fl_jput(w, ",\"minflt\":%ld,\"verified\":%s", f->minflt, f->bad_words ? "false" : "true");
    if (f->bad_words)
        fl_jput(w, ",\"bad_words\":%llu", (unsigned long long)f->bad_words);
    if (f->setup_ns)
        fl_jput(w, ",\"setup_ns\":%llu", (unsigned long long)f->setup_ns);
    if (f->note) {
        fl_jput(w, ",\"note\":");
        fl_jstr(w, f->note);
    }
    fl_jput(w, "}");
}

/* ---- spec ---------------------------------------------------------------------------------- */
/* One key of a floors spec. */
static int floors_key(const char *k, const char *v, void *ctx, char *err, size_t errlen)
{
    struct floors_run *fr = ctx;
    if (!strcmp(k, "pages")) {
        uint64_t n;
        if (fl_parse_u64(v, 1, FLOORS_MAX_PAGES, &n)) {
            fl_errf(err, errlen, "floors spec: pages must be 1..%llu, got '%s'", (unsigned long long)FLOORS_MAX_PAGES, v);
            return -1;
        }
        fr->pages = n;
    } else if (!strcmp(k, "cpus")) {
        return fl_parse_cpus_key("floors spec", v, &fr->cpus, err, errlen);
    } else if (!strcmp(k, "fetch")) {
        if (strcmp(v, "local") && strcmp(v, "tcp")) {
            fl_errf(err, errlen, "floors spec: fetch must be local or tcp, got '%s'", v);
            return -1;
        }
        fr->fetch_tcp = !strcmp(v, "tcp");
    } else if (!strcmp(k, "server_cpu")) {
        return fl_parse_cpu_key("floors spec", k, v, &fr->server_cpu, err, errlen);
    } else if (!strcmp(k, "only")) {
        for (fr->only = 0; fr->only < F_COUNT && strcmp(v, floor_names[fr->only]); fr->only++)
            ;
        if (fr->only == F_COUNT) {
            char names[160];
            fl_errf(err, errlen, "floors spec: only must name a floor (%s), got '%s'", names_from(0, names, sizeof names), v);
            return -1;
        }
    } else {
        fl_errf(err, errlen, "floors spec: unknown key '%s' (keys: pages, cpus, fetch, server_cpu, only)", k);
        return -1;
    }
    return 0;
}

static int parse_spec(const char *spec, struct floors_run *fr, char *err, size_t errlen)
{
    fr->pages = 16384;
    fr->cpus = FL_CPUS_SAME;
    fr->server_cpu = -1;
    fr->fetch_fd = -1;
    fr->only = -1;
    if (fl_spec_each(spec, "floors spec", floors_key, fr, err, errlen))
        return -1;
    if (fr->fetch_tcp && fr->only >= 0 && fr->only < F_UFFD) {
        char names[160];
        fl_errf(err, errlen, "floors spec: fetch=tcp runs the handler floors only (%s), not %s", names_from(F_UFFD, names, sizeof names),
                floor_names[fr->only]);
        return -1;
    }
    if (fr->server_cpu >= 0 && !fr->fetch_tcp) {
        fl_errf(err, errlen, "floors spec: server_cpu places the server of fetch=tcp; there is none with fetch=local");
        return -1;
    }
    return 0;
}

int fl_floors(const char *spec, char *out, size_t outlen)
{
    if (!out || outlen == 0)
        return -1;
    struct floors_run *fr = calloc(1, sizeof *fr);
    if (!fr) {
        fl_errf(out, outlen, "fl_floors: out of memory");
        return -1;
    }
    int rc = -1;
    if (parse_spec(spec, fr, out, outlen))
        goto done;
    fr->page = (size_t)sysconf(_SC_PAGESIZE);
    fr->workload_cpu = fl_cpu_for(fr->cpus, false);
    fr->handler_cpu = fl_cpu_for(fr->cpus, true);
    for (int i = 0; i < F_COUNT; i++)
        fr->res[i].name = floor_names[i];
    fr->res[F_ANON].note = "read fault: maps the shared zero page";
    fr->res[F_ANON_WRITE].note = "write fault: memcpy(page, scratch), allocates and zeroes a page";
    fr->res[F_SIGSEGV_PREPOP].note = "as the sigsegv strategy: memfd and page tables populated before the loop (setup_ns)";

    size_t len = fr->pages * fr->page;
    void *src = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    fr->scratch = aligned_alloc(64, 2 * fr->page);
    if (src == MAP_FAILED || !fr->scratch) {
        fl_errf(out, outlen, "fl_floors: no memory for a %zu-byte source buffer", len);
        if (src != MAP_FAILED)
            munmap(src, len);
        goto done;
    }
    madvise(src, len, MADV_NOHUGEPAGE);
    fr->src = src;
    fl_fill(fr->src, len, FLOORS_SEED, 0);

    pthread_t th;
    int e = pthread_create(&th, NULL, floors_main, fr);
    if (e) {
        fl_errf(out, outlen, "fl_floors: cannot start the measuring thread: %s", strerror(e));
    } else {
        pthread_join(th, NULL);
        struct fl_jbuf w = {.p = out, .len = outlen};
        fl_jput(&w, "{\"cpus\":\"%s\",\"pages\":%llu,\"page_bytes\":%zu,\"workload_cpu\":%d,\"handler_cpu\":%d,", fl_cpus_name(fr->cpus),
                (unsigned long long)fr->pages, fr->page, fr->workload_cpu, fr->handler_cpu);
        fl_jput(&w, "\"fetch\":\"%s\",", fr->fetch_tcp ? "tcp" : "local");
        if (fr->fetch_tcp)
            fl_jput(&w, "\"server_cpu\":%d,", fr->server_cpu);
        if (fr->only >= 0)
            fl_jput(&w, "\"only\":\"%s\",", floor_names[fr->only]);
        fl_jput(&w, "\"clock\":\"CLOCK_MONOTONIC\",\"uffd_path\":");
        if (fr->uffd_path)
            fl_jstr(&w, fr->uffd_path);
        else
            fl_jput(&w, "null");
        fl_jput(&w, ",\"floors\":{");
        bool first = true;
        for (int i = fr->fetch_tcp ? F_UFFD : 0; i < F_COUNT; i++) /* fetch=tcp runs the handler floors only */
            if (wanted(fr, i)) {
                jw_floor(&w, &fr->res[i], first);
                first = false;
            }
        fl_jput(&w, "}}");
        if (w.used >= w.len)
            fl_errf(out, outlen, "fl_floors: output buffer too small (%zu bytes, need %zu)", outlen, w.used + 1);
        else
            rc = 0;
    }
    munmap(fr->src, len);
done:
    free(fr->scratch);
    free(fr);
    return rc;
}
