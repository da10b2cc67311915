/* The NBD server's insides, shared by its files:
 *   nbd_spec.c     the start spec
 *   nbd_server.c   start/stop, the event loop (accept, reads, timeouts,
 *                  closing), counters as JSON
 *   nbd_session.c  the protocol: handshake, options, requests
 *   nbd_out.c      reply queues, the caps on queued bytes, the sender thread
 *   nbd_store.c    the contents
 *
 * Threads: one event loop and one sender. The loop accepts, reads (with kernel
 * receive timestamps where rx_stamps asks for them), parses and runs every
 * request (so the store is touched by one thread and needs no lock) and
 * queues each reply with its deadline; the sender sends replies at their
 * deadlines (sleep, then spin the last FL_SPIN_NS). One sender for all
 * connections, not one each, so an idle connection costs no thread and
 * spinning costs at most one CPU; the loop sends a reply that is already due
 * itself (RTT 0, the greeting), saving a thread wake-up per reply. Every
 * send is non-blocking: a client that does not read blocks only its own
 * connection (its socket is watched for room). */
#ifndef FAULTLAB_NBD_SERVER_H
#define FAULTLAB_NBD_SERVER_H
#include "core/internal.h"
#include "server/nbd_store.h"

#define NBD_IN_BYTES    (64u << 10) /* a connection's input buffer: the largest option fits */
#define NBD_MAX_OPTION  (16u << 10) /* option data beyond this closes the connection */
#define NBD_MAX_OPTIONS 64u /* options in one handshake */
#define NBD_LATE_RING   65536u /* lateness samples kept for the p50 */

struct nbd_opts {
    char listen[64];
    int port;
    uint64_t region, seed, rtt_ns;
    char export_name[256];
    uint32_t max_conns;
    uint64_t queue_cap, total_cap, store_cap;
    uint64_t handshake_ns, idle_ns, payload_ns;
    int log_fd;
    int cpu; /* its threads pinned there; -1: unpinned */
    /* The kernel's receive stamp on every connection: by default only where a
     * deadline counts from it (rtt_ns > 0). At RTT 0 every reply is due at
     * once, and the stamp would only date the lateness counters, for a cost
     * in each round trip; rx_stamps=1 keeps it there (calibrate's wire). */
    int rx_stamps;
};
int nbd_opts_parse(const char *spec, struct nbd_opts *o, char *err, size_t errlen);

/* One reply (or several option replies) as it goes on the wire. */
struct nbd_item {
    struct nbd_item *next;
    uint64_t deadline; /* CLOCK_MONOTONIC ns; 0 = at once */
    uint64_t first_sent; /* when its first byte left (lateness) */
    size_t len, sent;
    bool timed; /* a reply to a request: its lateness is counted */
    uint8_t data[];
};

enum nbd_state { NBD_ST_FLAGS, NBD_ST_OPTS, NBD_ST_TRANS, NBD_ST_PAYLOAD, NBD_ST_DONE };

struct nbd_conn {
    int fd, slot;
    uint32_t gen;
    char peer[64];
    /* The loop's alone. */
    enum nbd_state state;
    bool no_zeroes;
    unsigned options;
    bool cause_counted; /* in closed_for_cause already (a violation, counted when found) */
    bool rd_eof; /* the client's end of stream read */
    uint64_t shut_ns; /* when the server sent its end of stream (0: not yet) */
    uint64_t accepted_ns, rx_ns; /* rx_ns: receive time of the bytes being parsed */
    uint8_t *in;
    size_t in_have, in_used;
    struct {
        uint8_t cookie[8];
        uint64_t off, left, len, started;
        uint32_t err;
    } pay; /* a WRITE's payload being received */
    /* Shared with the sender: under s->mu. */
    struct nbd_item *head, *tail;
    uint64_t queued; /* bytes queued or reserved for replies */
    int heap_idx; /* in the sender's heap (-1: not) */
    uint32_t events; /* epoll interest */
    bool sending, blocked, paused, draining, failed;
    _Atomic uint64_t last_active;
};

struct nbd_stats {
    _Atomic uint64_t requests, reads, writes, flushes, errors, bytes_read, bytes_written;
    _Atomic uint64_t accepted, refused, closed, closed_for_cause;
};

struct fl_nbd_server {
    struct nbd_opts o;
    int port, listen_fd, ep, wake_fd;
    pthread_t loop, sender;
    struct nbd_store store;
    struct nbd_stats st;
    _Atomic bool stopping;
    /* The loop's alone. */
    struct nbd_conn **conns;
    uint32_t nconns, gen;
    uint64_t accept_paused_until;
    /* Under mu. */
    pthread_mutex_t mu;
    pthread_cond_t send_cv, idle_cv; /* send_cv: the sender's; idle_cv: a send ended */
    struct nbd_conn **heap; /* connections with a sendable reply, by first deadline */
    uint32_t nheap, npaused;
    bool sender_stop, min_changed;
    uint64_t total_queued, max_total_queued, max_conn_queued, pauses;
    uint64_t sender_wakeups; /* the sender's cond waits that returned: each a context switch */
    uint64_t *late, nlate, late_max;
    _Atomic uint64_t next_deadline; /* the sender spins until this (an earlier reply shortens it) */
};

/* nbd_server.c */
void nbd_log(struct fl_nbd_server *s, const char *peer, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void nbd_wake_loop(struct fl_nbd_server *s);
void nbd_update_events(struct fl_nbd_server *s, struct nbd_conn *c); /* under mu */

/* nbd_session.c: parse and run what c->in holds. 0: go on (more input or
 * paused); 1: the client is done; -1: a violation (logged). After 1 or -1 the
 * connection ends once its queued replies are out. */
int nbd_session_greet(struct fl_nbd_server *s, struct nbd_conn *c);
int nbd_session_process(struct fl_nbd_server *s, struct nbd_conn *c);

/* nbd_out.c */
struct nbd_item *nbd_item_new(size_t len, uint64_t deadline, bool timed);
/* Reserve room for a reply of `need` bytes; false (and c paused, reading
 * stopped) when it would pass queue_cap or total_cap. */
bool nbd_out_reserve(struct fl_nbd_server *s, struct nbd_conn *c, uint64_t need);
void nbd_out_unreserve(struct fl_nbd_server *s, struct nbd_conn *c, uint64_t n);
/* Queue an item whose bytes were reserved (the caller hands it over). */
void nbd_out_queue(struct fl_nbd_server *s, struct nbd_conn *c, struct nbd_item *it);
/* From the loop after queueing: send what is due now, or tell the sender. */
void nbd_out_kick(struct fl_nbd_server *s, struct nbd_conn *c);
/* From the loop: c's socket has room again. */
void nbd_out_writable(struct fl_nbd_server *s, struct nbd_conn *c);
/* From the loop, closing c: wait for a send in progress, drop what is queued. */
void nbd_out_drop(struct fl_nbd_server *s, struct nbd_conn *c);
void *nbd_sender_main(void *arg);

/* fl_nbd_start serving `mem` (region bytes, read-only; WRITEs get EPERM)
 * instead of a store: a migrate source serving post-copy faults. mem must
 * outlive the server. */
fl_nbd_server *nbd_start_over(const char *spec, const uint8_t *mem, char *err, size_t errlen);
#endif
