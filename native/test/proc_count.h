/* What the test process holds: entries of /proc/self/fd or /proc/self/task. */
#ifndef FAULTLAB_PROC_COUNT_H
#define FAULTLAB_PROC_COUNT_H
#include <dirent.h>

static long count_dir(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return -1;
    long n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n; /* /proc/self/fd includes the DIR's own fd: the same in every count */
}
#endif
