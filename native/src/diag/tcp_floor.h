/* The C TCP floor's server and round trip (tcp_floor.c), shared by
 * fl_tcp_floor (the network alone) and fl_floors fetch=tcp (the minimal fault
 * handlers fetching each page over it, floors.c). No NBD, no faultlab code. */
#ifndef FAULTLAB_TCP_FLOOR_H
#define FAULTLAB_TCP_FLOOR_H

#include <stddef.h>
#include <stdint.h>

#define TF_HEADER 28 /* bytes per request, as an NBD request header */

struct tf_server;

/* Listens on loopback and serves one connection from a thread pinned to cpu
 * (-1: unpinned): each 28-byte request is answered with `bytes` bytes of a
 * prefilled span of fl_fill(1, 0..span), reply number (request's index field
 * % (span / bytes)). span is a multiple of bytes. NULL with err on failure. */
struct tf_server *tf_server_start(uint64_t bytes, uint64_t span, int cpu, char *err, size_t errlen);
int tf_server_port(const struct tf_server *s);
/* Waits for the server to end (its client closed, or it never came) and frees
 * it: -1 with the server's error in err if it failed. */
int tf_server_stop(struct tf_server *s, char *err, size_t errlen);

/* What a failed round trip's errno means here: 0 is the server closing, EAGAIN
 * the socket timeouts running out. */
const char *tf_strerror(int e);

/* A loopback connection to port with the floor's socket options; -1 with err. */
int tf_connect(int port, char *err, size_t errlen);
/* One round trip: the request carrying index, then `bytes` bytes into buf.
 * 0, or -1 (errno set; 0 when the server closed). Async-signal-safe. */
int tf_round_trip(int fd, uint64_t index, void *buf, uint64_t bytes);
/* Its two halves, for requests in flight (answered in order). */
int tf_send_request(int fd, uint64_t index);
int tf_recv_reply(int fd, void *buf, uint64_t bytes);

#endif
