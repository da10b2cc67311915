#ifndef FAULTLAB_UFFD_OPEN_H
#define FAULTLAB_UFFD_OPEN_H
#include <stddef.h>
#include <stdint.h>
#include <sys/ioctl.h>
/* Older headers than the kernel (6.1 headers here) may lack these. */
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(0xAA, 0x00)
#endif
#ifndef UFFD_FEATURE_MOVE /* Linux 6.8 */
#define UFFD_FEATURE_MOVE (1 << 16)
struct uffdio_move {
    uint64_t dst, src, len, mode;
    int64_t move; /* out: bytes moved, or -errno */
};
#define UFFDIO_MOVE _IOWR(0xAA, 0x05, struct uffdio_move)
#endif
/* Returns a non-blocking userfaultfd and how it was obtained, or -1 with a message
 * naming each path tried and the remedies. */
int fl_uffd_open(const char **how, char *err, size_t errlen);
/* UFFDIO_API handshake asking for features. */
int fl_uffd_api(int fd, uint64_t features, char *err, size_t errlen);
#endif
