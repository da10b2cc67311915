#ifndef FAULTLAB_UFFD_OPEN_H
#define FAULTLAB_UFFD_OPEN_H
#include <stddef.h>
#include <stdint.h>
/* Returns a non-blocking userfaultfd and how it was obtained, or -1 with a message
 * naming each path tried and the remedies. */
int fl_uffd_open(const char **how, char *err, size_t errlen);
/* UFFDIO_API handshake asking for features. */
int fl_uffd_api(int fd, uint64_t features, char *err, size_t errlen);
#endif
