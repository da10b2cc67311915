/* server/delay_io.c on real loopback sockets: receive timestamps, answers never
 * before their deadline and in order, finish and detach with answers pending,
 * no descriptor or thread left behind. Each test opens its own hub and
 * connection, so it runs alone (-f), and closes them to check for leaks. */
#define _GNU_SOURCE
#include "../src/core/internal.h"
#include "unit.h"
#include "proc_count.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* A connected loopback pair: *client and *server. */
static int tcp_pair(int *client, int *server)
{
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 1) || getsockname(l, (struct sockaddr *)&a, &al))
        return -1;
    *client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (*client < 0 || connect(*client, (struct sockaddr *)&a, sizeof a))
        return -1;
    *server = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    close(l);
    setsockopt(*client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(*server, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return *server < 0 ? -1 : 0;
}

/* The next record (and its DATA bytes into data, at most cap), waiting up to 2 s. */
static int next_record(int fd, struct fl_dio_record *r, uint8_t *data, size_t cap)
{
    uint8_t *p = (uint8_t *)r;
    size_t need = sizeof *r, got = 0;
    for (int phase = 0; phase < 2; phase++) {
        while (got < need) {
            struct pollfd pf = {.fd = fd, .events = POLLIN};
            if (poll(&pf, 1, 2000) != 1)
                return -1;
            ssize_t k = read(fd, p + got, need - got);
            if (k <= 0)
                return -1;
            got += (size_t)k;
        }
        if (r->kind != FL_DIO_DATA || r->len == 0)
            return 0;
        if (r->len > cap)
            return -1;
        p = data;
        need = r->len;
        got = 0;
    }
    return 0;
}

static ssize_t read_exact(int fd, uint8_t *buf, size_t len, int timeout_ms)
{
    size_t got = 0;
    while (got < len) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (poll(&pf, 1, timeout_ms) != 1)
            break;
        ssize_t k = read(fd, buf + got, len - got);
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    return (ssize_t)got;
}

/* One hub with one attached loopback connection; the counts before the hub
 * opened are the baseline of the leak check in fx_close. */
struct fx {
    fl_dio_hub *h;
    fl_dio_conn *c;
    int notify, cli;
    uint32_t id;
    long fds0, threads0;
};

static void fx_release(struct fx *f)
{
    if (f->c)
        fl_dio_detach(f->c);
    if (f->cli >= 0)
        close(f->cli);
    if (f->h)
        fl_dio_close(f->h);
    if (f->notify >= 0)
        close(f->notify);
    f->c = NULL, f->h = NULL, f->cli = f->notify = -1;
}

/* 0 when the hub and the connection are ready (on failure a check failed). */
static int fx_open(struct fx *f)
{
    char err[256] = "";
    int srv = -1;
    *f = (struct fx){.notify = -1, .cli = -1};
    f->fds0 = settled_count("/proc/self/fd", -1), f->threads0 = settled_count("/proc/self/task", -1);
    f->h = fl_dio_open(&f->notify, err, sizeof err);
    CHECK(f->h && f->notify >= 0, "delay_io: a hub opens (%s)", err);
    if (!f->h)
        return -1;
    int pair = tcp_pair(&f->cli, &srv);
    CHECK(pair == 0, "delay_io: a loopback connection");
    if (pair == 0)
        f->c = fl_dio_attach(f->h, srv, &f->id, err, sizeof err);
    CHECK(f->c && f->id > 0, "delay_io: attach takes the server's socket (%s)", err);
    if (srv >= 0)
        close(srv); /* the hub reads its own dup */
    if (!f->c) {
        fx_release(f);
        return -1;
    }
    return 0;
}

/* Detach (if the test did not), close the hub: nothing of it may remain. */
static void fx_close(struct fx *f)
{
    fx_release(f);
    long fds1 = settled_count("/proc/self/fd", f->fds0), threads1 = settled_count("/proc/self/task", f->threads0);
    CHECK(fds1 == f->fds0 && threads1 == f->threads0, "delay_io: no descriptor or thread is left (fds %ld -> %ld, threads %ld -> %ld)",
          f->fds0, fds1, f->threads0, threads1);
}

static uint8_t body[1 << 20]; /* an answer body, kept alive until sent or detached */
static uint8_t got[(1 << 20) + 3];

/* A request: its DATA record carries its bytes and a kernel receive time
 * between the send and now. */
static void data_record_has_bytes_and_receive_time(void)
{
    struct fx f;
    if (fx_open(&f))
        return;
    uint64_t before = fl_now();
    ssize_t wk = write(f.cli, "request!", 8);
    struct fl_dio_record r;
    uint8_t data[64];
    int rc = next_record(f.notify, &r, data, sizeof data);
    uint64_t after = fl_now();
    CHECK(wk == 8 && rc == 0 && r.kind == FL_DIO_DATA && r.id == f.id && r.len == 8 && !memcmp(data, "request!", 8),
          "delay_io: the bytes arrive as one DATA record for the connection");
    CHECK(r.ts_ns > before && r.ts_ns <= after, "delay_io: the receive time lies between the send and the record (%lld us after the send)",
          (long long)(r.ts_ns - before) / 1000);
    fx_close(&f);
}

/* Three answers, due 30, 30 and 32 ms from now: never early, in order,
 * bodies not copied. The margin lets all three be queued before the first
 * deadline even under ThreadSanitizer on a loaded machine (3 ms did not). */
static void answers_in_order_never_early(void)
{
    struct fx f;
    if (fx_open(&f))
        return;
    fl_dio_conn *c = f.c;
    memset(body, 'b', sizeof body);
    uint64_t d1 = fl_now() + 30000000, d2 = d1 + 2000000;
    int64_t s0 = fl_dio_send(c, d1, (const uint8_t *)"A", 1, NULL, 0);
    int64_t s1 = fl_dio_send(c, d1, (const uint8_t *)"B", 1, body, sizeof body);
    int64_t s2 = fl_dio_send(c, d2, (const uint8_t *)"C", 1, NULL, 0);
    uint64_t queued = fl_now();
    CHECK(s0 == 0 && s1 == 1 && s2 == 2, "delay_io: answers get sequence numbers in order");
    CHECK(fl_dio_send(c, d1, (const uint8_t *)"x", 0, NULL, 0) == -EINVAL && fl_dio_send(c, d1, body, 257, NULL, 0) == -EINVAL,
          "delay_io: an empty or over-long head is refused");
    ssize_t n1 = read_exact(f.cli, got, 2 + sizeof body, 2000);
    uint64_t t1 = fl_now();
    CHECK(n1 == 2 + (ssize_t)sizeof body && got[0] == 'A' && got[1] == 'B' && got[2] == 'b' && got[1 + sizeof body] == 'b' && t1 >= d1,
          "delay_io: the first two answers arrive together, not before their deadline (%lld us after it)", (long long)(t1 - d1) / 1000);
    ssize_t n2 = read_exact(f.cli, got, 1, 2000);
    uint64_t t2 = fl_now();
    CHECK(n2 == 1 && got[0] == 'C' && t2 >= d2, "delay_io: the third arrives at its own deadline (%lld us after it)",
          (long long)(t2 - d2) / 1000);
    /* The sender records a send once its sendmsg returns, which can be after
     * the client has read the bytes (seen under ThreadSanitizer): wait for it. */
    uint64_t sent_ns[4] = {0}, sent = 0;
    for (uint64_t give_up = fl_now() + 2000000000ull; (sent = fl_dio_sent(c, 0, sent_ns, 4)) < 3 && fl_now() < give_up;)
        usleep(1000);
    if (queued >= d1) /* A may have left alone: "together" is not this test's to judge then */
        printf("# delay_io: queued %lld us after the first deadline: A and B sending together not checked\n",
               (long long)(queued - d1) / 1000);
    CHECK(sent == 3 && sent_ns[0] >= d1 && (sent_ns[1] == sent_ns[0] || queued >= d1) && sent_ns[2] >= d2 && sent_ns[2] < t2,
          "delay_io: fl_dio_sent counts 3 and each send began at or after its deadline (sent %llu; us after deadline %lld %lld %lld; last "
          "%lld us before read)",
          (unsigned long long)sent, (long long)(sent_ns[0] - d1) / 1000, (long long)(sent_ns[1] - d1) / 1000,
          (long long)(sent_ns[2] - d2) / 1000, (long long)(t2 - sent_ns[2]) / 1000);
    fx_close(&f);
}

/* The client half-closes: EOF; finish sends what is queued, ends our side, then DONE. */
static void half_close_then_finish_sends_queued_then_done(void)
{
    struct fx f;
    if (fx_open(&f))
        return;
    struct fl_dio_record r;
    uint8_t data[64];
    fl_dio_send(f.c, fl_now() + 2000000, (const uint8_t *)"D", 1, NULL, 0);
    shutdown(f.cli, SHUT_WR);
    int rc = next_record(f.notify, &r, data, sizeof data);
    CHECK(rc == 0 && r.kind == FL_DIO_EOF && r.id == f.id, "delay_io: a half-close arrives as EOF");
    fl_dio_finish(f.c);
    CHECK(fl_dio_send(f.c, fl_now(), (const uint8_t *)"E", 1, NULL, 0) == -EPIPE, "delay_io: after finish, answers are refused");
    ssize_t n1 = read_exact(f.cli, got, 2, 2000);
    CHECK(n1 == 1 && got[0] == 'D', "delay_io: the queued answer goes out, then the server's end (read %zd)", n1);
    rc = next_record(f.notify, &r, data, sizeof data);
    CHECK(rc == 0 && r.kind == FL_DIO_DONE && r.id == f.id && r.err == 0, "delay_io: then a DONE record without error");
    fx_close(&f);
}

/* Detach with an answer 10 s away: returns at once, nothing is sent. */
static void detach_with_pending_answer_returns_at_once(void)
{
    struct fx f;
    if (fx_open(&f))
        return;
    fl_dio_send(f.c, fl_now() + 10000000000ull, (const uint8_t *)"Z", 1, body, sizeof body);
    uint64_t t0 = fl_now();
    fl_dio_detach(f.c);
    f.c = NULL;
    CHECK(fl_now() - t0 < 500000000ull && read_exact(f.cli, got, 1, 200) == 0,
          "delay_io: detach with a pending answer returns at once and sends nothing");
    fx_close(&f);
}

/* A client that resets: an ERROR or EOF record, then the connection is gone. */
static void reset_client_is_reported(void)
{
    struct fx f;
    if (fx_open(&f))
        return;
    struct fl_dio_record r;
    uint8_t data[64];
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(f.cli, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(f.cli);
    f.cli = -1;
    int rc = next_record(f.notify, &r, data, sizeof data);
    CHECK(rc == 0 && (r.kind == FL_DIO_ERROR || r.kind == FL_DIO_EOF) && r.id == f.id,
          "delay_io: a reset client is reported (kind %u, errno %u)", r.kind, r.err);
    fx_close(&f);
}

static void *nothing(void *arg)
{
    return arg;
}

static const struct unit_test tests[] = {
    {"data-record-has-bytes-and-receive-time", 0, data_record_has_bytes_and_receive_time},
    {"answers-in-order-never-early", 0, answers_in_order_never_early},
    {"half-close-then-finish-sends-queued-then-done", 0, half_close_then_finish_sends_queued_then_done},
    {"detach-with-pending-answer-returns-at-once", 0, detach_with_pending_answer_returns_at_once},
    {"reset-client-is-reported", 0, reset_client_is_reported},
};

int main(int argc, char **argv)
{
    /* ThreadSanitizer starts a helper thread at the first pthread_create:
     * start one first, so every test's baseline holds it. */
    pthread_t t;
    if (!pthread_create(&t, NULL, nothing, NULL))
        pthread_join(t, NULL);
    return unit_main(argc, argv, tests, UNIT_COUNT(tests));
}
