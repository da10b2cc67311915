/* uffd with handler=process: the application maps and registers the region,
 * then sends the userfaultfd (and, for uffd_install=continue, the memfd) over a
 * Unix socket (SCM_RIGHTS) to a handler process, faultlab-handler, spawned from
 * the file beside the library. The handler process opens the source (so every
 * connection to the remote lives there), runs the handler threads and the
 * prefetch engine with uffd.c's code, and installs into the application's
 * address space through the uffd. As the thesis's set-up and Firecracker's
 * snapshot restore do.
 *
 * Over the socket (framed: type, length, payload): HELLO (config, base, fds) →
 * READY (empty, or why it cannot serve) ← ; FAIL (the handler's first
 * failure) ← whenever it happens; STOP → at the end of the run, answered by
 * STATS ← (counters, fetch and install samples, prefetch counts).
 *
 * A handler process that dies would leave a faulting thread blocked in the
 * kernel forever: the application watches the socket, and on its end fails
 * the run and unregisters the range, which wakes the blocked faults (they then
 * resolve as zero pages, which the failure flag keeps from being trusted). */
#ifndef FAULTLAB_UFFD_HANDLER_PROCESS_H
#define FAULTLAB_UFFD_HANDLER_PROCESS_H
#include "core/internal.h"

/* UFFDIO_MOVE takes both its source and destination in the mm that registered
 * the uffd: pages in the handler process's own memory cannot be moved in. */
#define FL_UFFD_HP_NO_MOVE                                                                                                                 \
    "uffd_install=move with handler=process: UFFDIO_MOVE moves pages within the application's own memory, not from the handler "           \
    "process's; use uffd_install=copy or continue"

struct fl_uffd_hp;

/* Application side. Spawn the handler process, hand it uffd (and memfd, -1:
 * none) and wait until it serves. 0, or -1 with err. */
int fl_uffd_hp_start(struct fl_region *r, int uffd, int memfd, struct fl_uffd_hp **out, char *err, size_t errlen);
/* After the workload: stop the handler process and take its statistics into
 * r->hstats[0] and r->pf_counts (or fail the run if it cannot answer). */
void fl_uffd_hp_collect(struct fl_region *r, struct fl_uffd_hp *hp);
/* CPU time so far of the whole handler process (FL_CPU_UNKNOWN once it is reaped). */
uint64_t fl_uffd_hp_cpu_ns(const struct fl_uffd_hp *hp);
/* End the handler process (killed if it does not exit in time) and free. NULL is fine. */
void fl_uffd_hp_destroy(struct fl_uffd_hp *hp);

/* Handler side (uffd.c): serve another process's registered uffd from r,
 * whose base is the application's address. */
int fl_uffd_adopt(struct fl_region *r, int uffd, int memfd, char *err, size_t errlen);
/* The handler process's main: serve the application at the other end of sock. */
int fl_uffd_handler_process_main(int sock);
#endif
