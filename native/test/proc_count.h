/* What the test process holds: entries of /proc/self/fd or /proc/self/task. */
#ifndef FAULTLAB_PROC_COUNT_H
#define FAULTLAB_PROC_COUNT_H
#include <dirent.h>
#include <time.h>

__attribute__((unused)) static long count_dir(const char *path)
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

/* A thread that pthread_join has returned for may still be listed in
 * /proc/self/task for a moment (the kernel wakes the joiner before the thread
 * is reaped): counts are read once they stop moving, and the leak check waits
 * up to 2 s for them to come back to the baseline. */
__attribute__((unused)) static long settled_count(const char *dir, long want)
{
    long n = count_dir(dir);
    for (int i = 0; i < 200 && (want >= 0 ? n != want : 1); i++) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
        long again = count_dir(dir);
        if (want < 0 && again == n)
            break;
        n = again;
    }
    return n;
}
#endif
