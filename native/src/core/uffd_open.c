/* Opening a userfaultfd the way the caller's privileges allow: the syscall
 * (root, or vm.unprivileged_userfaultfd=1), then UFFD_USER_MODE_ONLY (user-space
 * faults only; unprivileged on 5.11+), then /dev/userfaultfd (6.1+, by file mode). */
#include "core/internal.h"
#include "core/uffd_open.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

int fl_uffd_open(const char **how, char *err, size_t errlen)
{
    int flags = O_CLOEXEC | O_NONBLOCK;
    int fd = (int)syscall(SYS_userfaultfd, flags);
    int e1 = errno;
    if (fd >= 0) {
        *how = "syscall";
        return fd;
    }
    fd = (int)syscall(SYS_userfaultfd, flags | UFFD_USER_MODE_ONLY);
    int e2 = errno;
    if (fd >= 0) {
        *how = "user-mode-only";
        return fd;
    }
    int e3;
    int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
    if (dev >= 0) {
        fd = ioctl(dev, USERFAULTFD_IOC_NEW, flags);
        e3 = errno;
        close(dev);
        if (fd >= 0) {
            *how = "dev-userfaultfd";
            return fd;
        }
    } else {
        e3 = errno;
    }
    *how = "none";
    fl_errf(err, errlen,
            "userfaultfd unavailable: syscall: %s; user-mode-only: %s; /dev/userfaultfd: %s "
            "(remedies: run as root, or sysctl vm.unprivileged_userfaultfd=1, or grant access to /dev/userfaultfd; "
            "see README Troubleshooting)",
            strerror(e1), strerror(e2), strerror(e3));
    return -1;
}

int fl_uffd_api(int fd, uint64_t features, char *err, size_t errlen)
{
    struct uffdio_api api = {.api = UFFD_API, .features = features};
    if (ioctl(fd, UFFDIO_API, &api)) {
        fl_errf(err, errlen, "UFFDIO_API (features 0x%llx) failed: %s", (unsigned long long)features, strerror(errno));
        return -1;
    }
    return 0;
}
