/* Native tests of uffd's handler process (handler=process): it serves every
 * install mode that can work across processes from the local and the remote
 * source, with and without prefetch, and verifies; its statistics reach the
 * JSON; what cannot work is refused with its reason; a handler process killed
 * mid-run fails the run promptly instead of hanging the application, and no
 * handler process outlives its region. */
#include "../include/faultlab.h"
#include "unit.h"

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "proc_count.h"
#include "run_json.h"
#include "test_server.h"

static uint64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

/* Our children named faultlab-handler (comm is cut to 15 characters): their
 * count, and the first one's pid in *pid. */
static int handler_children(pid_t *pid)
{
    int n = 0;
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char path[320], list[4096];
        snprintf(path, sizeof path, "/proc/self/task/%s/children", e->d_name);
        FILE *f = fopen(path, "re");
        if (!f)
            continue;
        size_t k = fread(list, 1, sizeof list - 1, f);
        fclose(f);
        list[k] = 0;
        for (char *tok = strtok(list, " \n"); tok; tok = strtok(NULL, " \n")) {
            char comm[64] = "";
            snprintf(path, sizeof path, "/proc/%s/comm", tok);
            FILE *c = fopen(path, "re");
            if (c && fgets(comm, sizeof comm, c) && !strncmp(comm, "faultlab-handle", 15)) {
                if (!n && pid)
                    *pid = (pid_t)atoi(tok);
                n++;
            }
            if (c)
                fclose(c);
        }
    }
    if (d)
        closedir(d);
    return n;
}

static char remote[128];
static struct tsrv server;
static int server_up;

static const char *remote_spec(void)
{
    if (!server_up && !ts_start(&server, 8 << 20, 1, 0))
        server_up = 1;
    snprintf(remote, sizeof remote, "source=tcp host=127.0.0.1 port=%d", server.port);
    return server_up ? remote : "source=tcp port=1";
}

static void serves_and_verifies(void)
{
    const char *installs[] = {"copy", "continue"};
    for (int src = 0; src < 2; src++)
        for (int i = 0; i < 2; i++) {
            char spec[256];
            snprintf(spec, sizeof spec, "strategy=uffd handler=process uffd_install=%s region=4MiB chunk=4KiB %s", installs[i],
                     src ? remote_spec() : "source=local");
            const char *src_name = src ? "tcp" : "local";
            int rc = run(spec, "workload=read-seq");
            CHECK(rc == 0 && jtrue(out, "verified") && jnum(out, "faults") == 1024 && jnum(out, "bytes_fetched") == 4 << 20,
                  "%s, %s: read-seq verifies, one fault a chunk counted in the handler process (%s)", installs[i], src_name,
                  rc ? out : "ran");
            CHECK(strstr(out, "\"handler\":\"process\"") && jnum(out, "fetch_ns_p50") > 0 && jnum(out, "install_ns_p50") > 0 &&
                      jnum(out, "fault_ns_p50") > 0,
                  "%s, %s: the JSON says handler process, with the handler's fetch and install times and the application's fault times",
                  installs[i], src_name);
            rc = run(spec, "workload=read-random seed=3");
            CHECK(rc == 0 && jtrue(out, "verified"), "%s, %s: read-random verifies (%s)", installs[i], src_name, rc ? out : "ran");
        }
    int rc = run("strategy=uffd handler=process region=4MiB handler_threads=2 cpus=free", "workload=read-seq app_threads=2");
    CHECK(rc == 0 && jtrue(out, "verified") && jnum(out, "faults") + jnum(out, "duplicate_faults") >= 1024,
          "two handler threads in the process, two application threads: verifies (%s)", rc ? out : "ran");
}

static void prefetch_in_the_handler(void)
{
    const char *policies[] = {"ahead:8", "adaptive", "background", "criu"};
    for (int src = 0; src < 2; src++)
        for (size_t i = 0; i < 4; i++) {
            char spec[256];
            snprintf(spec, sizeof spec, "strategy=uffd handler=process region=4MiB chunk=16KiB prefetch=%s depth=8 %s", policies[i],
                     src ? remote_spec() : "source=local");
            int rc = run(spec, "workload=read-seq");
            CHECK(rc == 0 && jtrue(out, "verified") && jnum(out, "prefetched") > 0 && jnum(out, "prefetch_requests") > 0,
                  "prefetch=%s, %s: verifies, and the engine's counts come back from the handler process (prefetched %lld; %s)",
                  policies[i], src ? "tcp" : "local", jnum(out, "prefetched"), rc ? out : "ran");
        }
}

static void refusals(void)
{
    static const struct {
        const char *spec, *run, *want;
    } cases[] = {
        {"strategy=uffd handler=process uffd_install=move region=1MiB", NULL,
         "UFFDIO_MOVE moves pages within the application's own memory"},
        {"strategy=sigsegv handler=process region=1MiB", NULL, "signal handler, which runs on the faulting thread"},
        {"strategy=memory handler=process region=1MiB", NULL, "handler=process is for uffd"},
        {"strategy=uffd handler=fork region=1MiB", NULL, "bad value for 'handler'"},
        {"strategy=uffd handler=process region=1MiB prefetch=background", "workload=read-seq wait_fill=1", "use handler=thread"},
        {"strategy=uffd handler=process region=1MiB source=tcp port=1", NULL, "cannot connect"},
    };
    for (size_t i = 0; i < UNIT_COUNT(cases); i++) {
        int rc = run(cases[i].spec, cases[i].run ? cases[i].run : "workload=read-seq");
        CHECK(rc != 0 && strstr(out, cases[i].want) && !strchr(out, '\n'), "%s%s%s: refused in one line (%s)", cases[i].spec,
              cases[i].run ? " / " : "", cases[i].run ? cases[i].run : "", out);
    }
    CHECK(handler_children(NULL) == 0, "no handler process is left behind by the refusals");
}

struct killer {
    int after_ms;
    pid_t killed;
    uint64_t at_ms;
};

static void *kill_main(void *arg)
{
    struct killer *k = arg;
    usleep((useconds_t)k->after_ms * 1000);
    pid_t pid = 0;
    if (handler_children(&pid) == 1 && !kill(pid, SIGKILL)) {
        k->killed = pid;
        k->at_ms = now_ms();
    }
    return NULL;
}

/* Each READ answered 2 ms late: 2048 faults take seconds, so the kill lands mid-run. */
static void killed_handler_fails_the_run(void)
{
    struct tsrv slow;
    if (ts_start(&slow, 8 << 20, 1, 2)) {
        unit_skip("cannot start a test server");
        return;
    }
    const char *installs[] = {"copy", "continue"};
    for (int i = 0; i < 2; i++) {
        char spec[256], err[512];
        snprintf(
            spec, sizeof spec,
            "strategy=uffd handler=process uffd_install=%s region=8MiB chunk=4KiB fetch_timeout_ms=5000 source=tcp host=127.0.0.1 port=%d",
            installs[i], slow.port);
        fl_region *r = fl_region_create(spec, err, sizeof err);
        CHECK(r != NULL, "%s: created (%s)", installs[i], r ? "ok" : err);
        if (!r)
            continue;
        struct killer k = {.after_ms = 300};
        pthread_t t;
        pthread_create(&t, NULL, kill_main, &k);
        int rc = fl_run(r, "workload=read-seq", out, sizeof out);
        uint64_t end = now_ms();
        pthread_join(t, NULL);
        CHECK(k.killed > 0, "%s: the handler process (pid %d) was killed mid-run", installs[i], (int)k.killed);
        CHECK(rc == -1 && strstr(out, "handler process") && strstr(out, "killed by signal 9") && strstr(out, "not verified") &&
                  !strchr(out, '\n'),
              "%s: the run fails with one line naming the dead handler (%s)", installs[i], out);
        CHECK(k.killed > 0 && end - k.at_ms < 2000, "%s: ... within 2 s of the kill, under the 5 s fetch timeout (%llu ms)", installs[i],
              (unsigned long long)(end - k.at_ms));
        fl_region_destroy(r);
    }
    ts_stop(&slow);
    CHECK(handler_children(NULL) == 0, "the killed handler processes were reaped");
}

/* A fetch that fails in the handler process (an NBD error on one READ) fails
 * the run with the handler's own message, forwarded over the socket. */
static void handler_failure_forwarded(void)
{
    struct tsrv s;
    struct ts_opts o = {.region = 8 << 20, .seed = 1, .fail_error = 5 /* NBD_EIO */, .fail_off = 4 << 20};
    if (ts_start_with(&s, &o)) {
        unit_skip("cannot start a test server");
        return;
    }
    char spec[256];
    snprintf(spec, sizeof spec, "strategy=uffd handler=process region=8MiB source=tcp host=127.0.0.1 port=%d", s.port);
    int rc = run(spec, "workload=read-seq");
    CHECK(rc == -1 && strstr(out, "fetch failed at offset 0x400000") && !strstr(out, "handler process"),
          "the handler's fetch failure is the run's message (%s)", out);
    ts_stop(&s);
}

static void no_handler_outlives_its_region(void)
{
    char err[512];
    long fds = settled_count("/proc/self/fd", -1), threads = settled_count("/proc/self/task", -1);
    fl_region *r = fl_region_create("strategy=uffd handler=process region=1MiB", err, sizeof err);
    CHECK(r != NULL && handler_children(NULL) == 1, "a region with handler=process has one handler process (%s)", r ? "ok" : err);
    fl_region_destroy(r); /* never run */
    CHECK(handler_children(NULL) == 0, "destroying the region without a run ends and reaps it");
    int rc = run("strategy=uffd handler=process region=1MiB", "workload=first-chunk");
    CHECK(rc == 0 && jtrue(out, "verified") && handler_children(NULL) == 0, "after a run, none is left either (%s)", rc ? out : "ran");
    rc = run("strategy=uffd handler=process region=1MiB source=tcp port=1", "workload=first-chunk");
    CHECK(rc != 0 && handler_children(NULL) == 0, "nor after a handler process that could not start serving (%s)", out);
    long fds_after = settled_count("/proc/self/fd", fds), threads_after = settled_count("/proc/self/task", threads);
    CHECK(fds_after == fds && threads_after == threads, "fds (%ld, then %ld) and threads (%ld, then %ld) back where they started", fds,
          fds_after, threads, threads_after);
}

static const struct unit_test tests[] = {
    {"serves-and-verifies", NEED_UFFD, serves_and_verifies},
    {"prefetch-in-the-handler", NEED_UFFD, prefetch_in_the_handler},
    {"refusals", NEED_UFFD, refusals},
    {"killed-handler-fails-the-run", NEED_UFFD, killed_handler_fails_the_run},
    {"handler-failure-forwarded", NEED_UFFD, handler_failure_forwarded},
    {"no-handler-outlives-its-region", NEED_UFFD, no_handler_outlives_its_region},
};

int main(int argc, char **argv)
{
    int rc = unit_main(argc, argv, tests, UNIT_COUNT(tests));
    if (server_up)
        ts_stop(&server);
    return rc;
}
