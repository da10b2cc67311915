/* Baseline `disk`: mmap of a file holding the contents (the thesis mapped a temp
 * file). The file is written at create, so its pages sit in the page cache and
 * each first access is a minor fault that maps a cached page. */
#include "core/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int disk_create(struct fl_region *r, char *err, size_t errlen)
{
    char path[300];
    snprintf(path, sizeof path, "%s/faultlab-disk-XXXXXX", r->cfg.disk_dir);
    int fd = mkstemp(path);
    if (fd < 0) {
        fl_errf(err, errlen, "cannot create a file in %s: %s", r->cfg.disk_dir, strerror(errno));
        return -1;
    }
    unlink(path); /* the mapping keeps it alive; nothing is left behind */
    const uint64_t step = 1 << 20;
    uint8_t *buf = malloc(step);
    int rc = -1;
    if (!buf) {
        fl_errf(err, errlen, "out of memory");
        goto out;
    }
    for (uint64_t off = 0; off < r->cfg.region_bytes; off += step) {
        uint64_t n = r->cfg.region_bytes - off < step ? r->cfg.region_bytes - off : step;
        fl_fill(buf, n, r->cfg.seed, off);
        if (pwrite(fd, buf, n, (off_t)off) != (ssize_t)n) {
            fl_errf(err, errlen, "writing the disk file in %s: %s", r->cfg.disk_dir, strerror(errno));
            goto out;
        }
    }
    void *p = mmap(NULL, r->cfg.region_bytes, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        fl_errf(err, errlen, "mmap of the disk file: %s", strerror(errno));
        goto out;
    }
    r->base = p;
    rc = 0;
out:
    free(buf);
    close(fd);
    return rc;
}

static void disk_destroy(struct fl_region *r)
{
    if (r->base)
        munmap(r->base, r->cfg.region_bytes);
    r->base = NULL;
}

const struct fl_strategy_ops fl_strategy_disk = {
    .name = "disk",
    .create = disk_create,
    .destroy = disk_destroy,
};
