/* uffd's handler process (handler=process): the application's side (spawn,
 * hand over the uffd, watch, collect) and the handler's side (serve, report).
 * The protocol and why the application watches the socket:
 * uffd_handler_process.h. */
#include "strategies/uffd_handler_process.h"
#include "prefetch/prefetch.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define HP_VERSION 1
#define HP_FD      3 /* the socket's number in the handler process */

enum hp_type { HP_HELLO = 1, HP_READY, HP_FAIL, HP_STOP, HP_STATS };

struct hp_frame {
    uint32_t type, len;
};

/* Both ends run the same build (faultlab-handler is linked from the library's
 * objects), so the config travels as it is; size and version catch a mismatch. */
struct hp_hello {
    uint32_t version, config_size;
    uint64_t base;
    struct fl_config cfg;
};

struct hp_stats {
    uint64_t faults, duplicates, bytes_fetched, inflight_waits, trigger_faults;
    uint64_t nfetch, ninstall; /* samples that follow: fetch_ns, then install_ns */
    struct fl_pf_counts pf;
};

static int send_all(int fd, const void *buf, size_t n)
{
    const uint8_t *p = buf;
    while (n) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Receive n bytes; timeout_ms < 0: no limit. -1 on end, error or timeout (errno ETIMEDOUT). */
static int recv_all(int fd, void *buf, size_t n, int timeout_ms)
{
    uint8_t *p = buf;
    uint64_t deadline = timeout_ms < 0 ? 0 : fl_now() + (uint64_t)timeout_ms * 1000000ull;
    while (n) {
        int wait = -1;
        if (deadline) {
            uint64_t now = fl_now();
            if (now >= deadline) {
                errno = ETIMEDOUT;
                return -1;
            }
            wait = (int)((deadline - now) / 1000000ull) + 1;
        }
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        int pr = poll(&pf, 1, wait);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr < 0)
            return -1;
        if (!pr)
            continue; /* the deadline check above ends it */
        ssize_t k = recv(fd, p, n, 0);
        if (k < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (k <= 0) {
            if (!k)
                errno = EPIPE;
            return -1;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static int send_frame(int fd, uint32_t type, const void *payload, uint32_t len)
{
    struct hp_frame f = {.type = type, .len = len};
    return send_all(fd, &f, sizeof f) || (len && send_all(fd, payload, len)) ? -1 : 0;
}

/* A text payload (READY's error, FAIL's message), NUL-ended, into dst of FL_ERR_LEN bytes. */
static int recv_text(int fd, uint32_t len, char *dst, int timeout_ms)
{
    if (len >= FL_ERR_LEN || recv_all(fd, dst, len, timeout_ms))
        return -1;
    dst[len] = 0;
    return 0;
}

/* ---- the application's side -------------------------------------------------- */

struct fl_uffd_hp {
    struct fl_region *r;
    int uffd, sock;
    pid_t pid;
    bool reaped;
    int status;
    pthread_t watcher;
    bool watching;
    atomic_bool closing; /* the socket ends on purpose (destroy, or a STOP that went unanswered) */
    bool got_stats;
    struct fl_pf_counts pf;
};

/* faultlab-handler beside the file this code was loaded from (libfaultlab.so,
 * or a test binary linked from the same objects). */
static int handler_path(char *out, size_t len)
{
    Dl_info di;
    char self[PATH_MAX];
    if (!dladdr((void *)fl_uffd_hp_start, &di) || !di.dli_fname || !realpath(di.dli_fname, self)) {
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n <= 0)
            return -1;
        self[n] = 0;
    }
    char *slash = strrchr(self, '/');
    if (!slash)
        return -1;
    *slash = 0;
    return snprintf(out, len, "%s/faultlab-handler", self) >= (int)len ? -1 : 0;
}

/* Wait up to ms for the handler process to be reaped; true once it is. */
static bool reap(struct fl_uffd_hp *hp, int ms)
{
    for (int i = 0; !hp->reaped; i++) {
        pid_t p = waitpid(hp->pid, &hp->status, WNOHANG);
        if (p == hp->pid || (p < 0 && errno == ECHILD)) {
            hp->reaped = true;
            if (p < 0)
                hp->status = -1; /* reaped by someone else: unknown */
            break;
        }
        if (i >= ms)
            break;
        usleep(1000);
    }
    return hp->reaped;
}

static void describe_end(struct fl_uffd_hp *hp, char *dst, size_t len)
{
    if (!reap(hp, 1000))
        snprintf(dst, len, "closed its socket");
    else if (hp->status >= 0 && WIFSIGNALED(hp->status))
        snprintf(dst, len, "was killed by signal %d (%s)", WTERMSIG(hp->status), strsignal(WTERMSIG(hp->status)));
    else if (hp->status >= 0 && WIFEXITED(hp->status))
        snprintf(dst, len, "exited with status %d", WEXITSTATUS(hp->status));
    else
        snprintf(dst, len, "ended");
}

/* STATS into r->hstats[0] (samples past its capacity are dropped) and hp->pf. */
static int recv_stats(struct fl_uffd_hp *hp, uint32_t len)
{
    struct fl_region *r = hp->r;
    struct hp_stats st;
    const int t = r->cfg.fetch_timeout_ms + 5000;
    if (len < sizeof st || recv_all(hp->sock, &st, sizeof st, t) || len != sizeof st + (st.nfetch + st.ninstall) * sizeof(uint64_t))
        return -1;
    struct fl_handler_stats *h = &r->hstats[0];
    h->faults = st.faults;
    h->duplicates = st.duplicates;
    h->bytes_fetched = st.bytes_fetched;
    h->inflight_waits = st.inflight_waits;
    h->trigger_faults = st.trigger_faults;
    for (int which = 0; which < 2; which++) {
        struct fl_samples *s = which ? &h->install_ns : &h->fetch_ns;
        for (uint64_t i = 0, n = which ? st.ninstall : st.nfetch; i < n; i++) {
            uint64_t v;
            if (recv_all(hp->sock, &v, sizeof v, t))
                return -1;
            fl_samples_add(s, v);
        }
    }
    hp->pf = st.pf;
    return 0;
}

/* Reads the handler's frames until STATS; on the socket's end before that,
 * fails the run and releases the region's blocked faults. */
static void *watch_main(void *arg)
{
    struct fl_uffd_hp *hp = arg;
    struct fl_region *r = hp->r;
    for (;;) {
        struct hp_frame f;
        if (recv_all(hp->sock, &f, sizeof f, -1))
            break;
        if (f.type == HP_FAIL) {
            char msg[FL_ERR_LEN];
            if (recv_text(hp->sock, f.len, msg, r->cfg.fetch_timeout_ms))
                break;
            fl_region_fail(r, msg);
            continue;
        }
        if (f.type == HP_STATS && !recv_stats(hp, f.len))
            hp->got_stats = true;
        break;
    }
    if (hp->got_stats || atomic_load(&hp->closing))
        return NULL;
    /* The handler process is gone (or speaks nonsense): fail first, then
     * unregister, so that the woken faults find the run failed. */
    char how[96], msg[FL_ERR_LEN];
    describe_end(hp, how, sizeof how);
    snprintf(msg, sizeof msg,
             "uffd: the handler process (pid %d) %s during the run; its faults were released as zero pages, so the run is not verified",
             (int)hp->pid, how);
    fl_region_fail(r, msg);
    /* Unregistering wakes the blocked faults of a MISSING registration only;
     * MINOR ones (uffd_install=continue) need the wake as well. */
    struct uffdio_range all = {.start = (uint64_t)(uintptr_t)r->base, .len = r->cfg.region_bytes};
    if (ioctl(hp->uffd, UFFDIO_UNREGISTER, &all) | ioctl(hp->uffd, UFFDIO_WAKE, &all)) { /* the run failed already: nothing more to do */
    }
    return NULL;
}

int fl_uffd_hp_start(struct fl_region *r, int uffd, int memfd, struct fl_uffd_hp **out, char *err, size_t errlen)
{
    char path[PATH_MAX];
    if (handler_path(path, sizeof path) || access(path, X_OK)) {
        fl_errf(
            err, errlen,
            "handler=process: cannot find the handler executable faultlab-handler beside the library (%s): build it with make -C native",
            path);
        return -1;
    }
    struct fl_uffd_hp *hp = calloc(1, sizeof *hp);
    int sv[2];
    if (!hp || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) {
        fl_errf(err, errlen, "handler=process: %s", hp ? strerror(errno) : "out of memory");
        free(hp);
        return -1;
    }
    hp->r = r;
    hp->uffd = uffd;
    hp->sock = sv[0];
    /* posix_spawn, not fork: the application may be multi-threaded (Node), and
     * only an exec'd process starts clean. The child gets the socket as fd 3
     * and no other descriptor. */
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, sv[1], HP_FD);
    posix_spawn_file_actions_addclosefrom_np(&fa, HP_FD + 1);
    char fdarg[] = "3";
    char *argv[] = {path, fdarg, NULL};
    int e = posix_spawn(&hp->pid, path, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(sv[1]);
    if (e) {
        fl_errf(err, errlen, "handler=process: cannot start %s: %s", path, strerror(e));
        close(sv[0]);
        free(hp);
        return -1;
    }
    *out = hp; /* from here fl_uffd_hp_destroy ends the process */
    struct hp_hello hello = {
        .version = HP_VERSION, .config_size = sizeof(struct fl_config), .base = (uint64_t)(uintptr_t)r->base, .cfg = r->cfg};
    int fds[2] = {uffd, memfd};
    int nfds = memfd >= 0 ? 2 : 1;
    char ctl[CMSG_SPACE(sizeof fds)];
    memset(ctl, 0, sizeof ctl);
    struct hp_frame f = {.type = HP_HELLO, .len = sizeof hello};
    struct iovec iov[2] = {{.iov_base = &f, .iov_len = sizeof f}, {.iov_base = &hello, .iov_len = sizeof hello}};
    struct msghdr m = {.msg_iov = iov, .msg_iovlen = 2, .msg_control = ctl, .msg_controllen = CMSG_SPACE(nfds * sizeof(int))};
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
    memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
    ssize_t k = sendmsg(hp->sock, &m, MSG_NOSIGNAL);
    if (k != (ssize_t)(sizeof f + sizeof hello)) { /* a stream socket takes the whole small message, or none */
        fl_errf(err, errlen, "handler=process: cannot send the uffd to the handler process: %s", k < 0 ? strerror(errno) : "short send");
        return -1;
    }
    /* Its set-up connects to the source (each connect bounded by the fetch timeout). */
    const int ready_ms = 10000 + 2 * r->cfg.fetch_timeout_ms;
    char why[FL_ERR_LEN];
    if (recv_all(hp->sock, &f, sizeof f, ready_ms) || f.type != HP_READY || recv_text(hp->sock, f.len, why, ready_ms)) {
        char how[96];
        if (errno == ETIMEDOUT)
            snprintf(how, sizeof how, "was not ready within %d ms", ready_ms);
        else
            describe_end(hp, how, sizeof how);
        fl_errf(err, errlen, "handler=process: the handler process (pid %d) %s", (int)hp->pid, how);
        return -1;
    }
    if (why[0]) {
        fl_errf(err, errlen, "%s", why);
        return -1;
    }
    e = pthread_create(&hp->watcher, NULL, watch_main, hp);
    if (e) {
        fl_errf(err, errlen, "handler=process: cannot start the watcher thread: %s", strerror(e));
        return -1;
    }
    hp->watching = true;
    /* Last: the region frees these only once it exists, so nothing after them may fail. */
    if (fl_samples_init(&r->hstats[0].fetch_ns, r->nchunks) || fl_samples_init(&r->hstats[0].install_ns, r->nchunks)) {
        fl_samples_free(&r->hstats[0].fetch_ns);
        fl_samples_free(&r->hstats[0].install_ns);
        fl_errf(err, errlen, "out of memory for statistics");
        return -1;
    }
    return 0;
}

uint64_t fl_uffd_hp_cpu_ns(const struct fl_uffd_hp *hp)
{
    return fl_process_cpu_ns_of(hp->pid); /* not hp->reaped: the watcher thread writes it */
}

void fl_uffd_hp_collect(struct fl_region *r, struct fl_uffd_hp *hp)
{
    if (!hp->watching)
        return;
    if (send_frame(hp->sock, HP_STOP, NULL, 0)) { /* gone already: the watcher says so */
    }
    /* The handler stops its engine and threads, each bounded by the fetch timeout. */
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += r->cfg.fetch_timeout_ms / 1000 + 10;
    if (pthread_timedjoin_np(hp->watcher, NULL, &dl)) {
        atomic_store(&hp->closing, true);
        char msg[FL_ERR_LEN];
        snprintf(msg, sizeof msg, "uffd: the handler process (pid %d) did not report its statistics within %d s of the run's end",
                 (int)hp->pid, r->cfg.fetch_timeout_ms / 1000 + 10);
        fl_region_fail(r, msg);
        kill(hp->pid, SIGKILL);
        pthread_join(hp->watcher, NULL);
    }
    hp->watching = false;
    if (hp->got_stats) {
        r->pf_counts = &hp->pf;
        if (r->nhstats < 1)
            r->nhstats = 1;
    }
}

void fl_uffd_hp_destroy(struct fl_uffd_hp *hp)
{
    if (!hp)
        return;
    atomic_store(&hp->closing, true);
    shutdown(hp->sock, SHUT_RDWR); /* the handler process sees the end and exits; the watcher, if any, too */
    if (hp->watching)
        pthread_join(hp->watcher, NULL);
    close(hp->sock);
    if (!reap(hp, 3000)) {
        kill(hp->pid, SIGKILL);
        reap(hp, 3000);
    }
    hp->r->pf_counts = NULL;
    free(hp);
}

/* ---- the handler's side ------------------------------------------------------- */

static int hp_sock = -1;

/* r->on_fail: pass the failure on (async-signal-safe: one send of a stack buffer). */
static void forward_fail(struct fl_region *r)
{
    struct {
        struct hp_frame f;
        char msg[FL_ERR_LEN];
    } out;
    size_t n = strnlen(r->fail_msg, sizeof out.msg - 1);
    out.f.type = HP_FAIL;
    out.f.len = (uint32_t)n;
    memcpy(out.msg, r->fail_msg, n);
    if (send_all(hp_sock, &out, sizeof out.f + n)) { /* the application is gone: nothing to tell */
    }
}

static int send_stats(int sock, struct fl_region *r)
{
    struct hp_stats st = {0};
    for (int i = 0; i < r->nhstats; i++) {
        struct fl_handler_stats *h = &r->hstats[i];
        st.faults += h->faults;
        st.duplicates += h->duplicates;
        st.bytes_fetched += h->bytes_fetched;
        st.inflight_waits += h->inflight_waits;
        st.trigger_faults += h->trigger_faults;
        st.nfetch += h->fetch_ns.n;
        st.ninstall += h->install_ns.n;
    }
    fl_pf_counts(r->pf, &st.pf);
    uint64_t len = sizeof st + (st.nfetch + st.ninstall) * sizeof(uint64_t);
    if (len > UINT32_MAX)
        return -1;
    struct hp_frame f = {.type = HP_STATS, .len = (uint32_t)len};
    if (send_all(sock, &f, sizeof f) || send_all(sock, &st, sizeof st))
        return -1;
    for (int which = 0; which < 2; which++)
        for (int i = 0; i < r->nhstats; i++) {
            struct fl_samples *s = which ? &r->hstats[i].install_ns : &r->hstats[i].fetch_ns;
            if (s->n && send_all(sock, s->v, s->n * sizeof *s->v))
                return -1;
        }
    return 0;
}

/* HELLO and its descriptors. */
static int recv_hello(int sock, struct hp_hello *hello, int *uffd, int *memfd)
{
    struct hp_frame f;
    char ctl[CMSG_SPACE(2 * sizeof(int))];
    struct iovec iov[2] = {{.iov_base = &f, .iov_len = sizeof f}, {.iov_base = hello, .iov_len = sizeof *hello}};
    struct msghdr m = {.msg_iov = iov, .msg_iovlen = 2, .msg_control = ctl, .msg_controllen = sizeof ctl};
    ssize_t k = recvmsg(sock, &m, MSG_CMSG_CLOEXEC | MSG_WAITALL);
    *uffd = *memfd = -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            int fds[2] = {-1, -1};
            size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            memcpy(fds, CMSG_DATA(c), (n > 2 ? 2 : n) * sizeof(int));
            *uffd = fds[0];
            *memfd = fds[1];
        }
    return k == (ssize_t)(sizeof f + sizeof *hello) && f.type == HP_HELLO && f.len == sizeof *hello && hello->version == HP_VERSION &&
                   hello->config_size == sizeof(struct fl_config) && *uffd >= 0
               ? 0
               : -1;
}

int fl_uffd_handler_process_main(int sock)
{
    struct hp_hello hello;
    int uffd, memfd;
    if (recv_hello(sock, &hello, &uffd, &memfd)) {
        fprintf(stderr, "faultlab-handler: no valid HELLO with a uffd on fd %d (it is started by libfaultlab with handler=process)\n",
                sock);
        return 2;
    }
    char err[FL_ERR_LEN] = "";
    struct fl_region *r = aligned_alloc(_Alignof(struct fl_region), sizeof *r);
    if (!r) {
        send_frame(sock, HP_READY, "handler process: out of memory", 30);
        return 1;
    }
    memset(r, 0, sizeof *r);
    r->cfg = hello.cfg;
    r->ops = &fl_strategy_uffd;
    r->page_bytes = (uint64_t)sysconf(_SC_PAGESIZE);
    r->nchunks = r->cfg.region_bytes / r->cfg.chunk_bytes;
    r->base = (uint8_t *)(uintptr_t)hello.base;
    hp_sock = sock;
    r->on_fail = forward_fail;
    r->source =
        !strcmp(r->cfg.source, "tcp") ? fl_source_tcp_create(&r->cfg, err, sizeof err) : fl_source_local_create(&r->cfg, err, sizeof err);
    int rc = !r->source || fl_uffd_adopt(r, uffd, memfd, err, sizeof err) ? 1 : 0; /* adopt owns the fds, also on failure */
    if (!r->source) {
        close(uffd);
        if (memfd >= 0)
            close(memfd);
    }
    if (send_frame(sock, HP_READY, err, rc ? (uint32_t)strlen(err) : 0) || rc)
        goto out;
    /* Serve until STOP (the run is over) or the socket's end (the application is gone). */
    struct hp_frame f;
    rc = recv_all(sock, &f, sizeof f, -1) || f.type != HP_STOP;
    fl_strategy_uffd.quiesce(r);
    if (!rc && send_stats(sock, r))
        rc = 1;
out:
    if (r->strategy_state)
        fl_strategy_uffd.destroy(r);
    for (int i = 0; i < FL_MAX_HANDLERS; i++) {
        fl_samples_free(&r->hstats[i].fetch_ns);
        fl_samples_free(&r->hstats[i].install_ns);
    }
    if (r->source)
        r->source->ops->destroy(r->source);
    free(r);
    return rc;
}
