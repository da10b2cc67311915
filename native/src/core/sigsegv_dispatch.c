/* One process-wide SIGSEGV handler shared by every region of the signal-based
 * strategies. It finds the region owning the fault address in a lock-free
 * table and calls that region's fault function; every other address goes to
 * the handler that was installed before ours (Node's WebAssembly trap handler,
 * or the default action, which kills the process as it should). */
#include "core/internal.h"
#include "core/sigsegv_dispatch.h"

#include <string.h>

#define MAX_OWNERS 64

struct owner {
    _Atomic(uintptr_t) start;
    uintptr_t end;
    fl_fault_fn fn;
    void *arg;
};

static struct owner owners[MAX_OWNERS];
static struct sigaction previous;
static pthread_mutex_t install_lock = PTHREAD_MUTEX_INITIALIZER;
static int installed_count;

static void chain(int sig, siginfo_t *info, void *uctx)
{
    if (previous.sa_flags & SA_SIGINFO) {
        previous.sa_sigaction(sig, info, uctx);
    } else if (previous.sa_handler == SIG_DFL || previous.sa_handler == SIG_IGN) {
        /* Restore the default and return: the access faults again and the
         * kernel delivers the default action (a crash, with a core). */
        sigaction(SIGSEGV, &previous, NULL);
    } else {
        previous.sa_handler(sig);
    }
}

static void on_sigsegv(int sig, siginfo_t *info, void *uctx)
{
    uintptr_t addr = (uintptr_t)info->si_addr;
    for (int i = 0; i < MAX_OWNERS; i++) {
        uintptr_t start = atomic_load_explicit(&owners[i].start, memory_order_acquire);
        if (start && addr >= start && addr < owners[i].end) {
            owners[i].fn(owners[i].arg, addr);
            return;
        }
    }
    chain(sig, info, uctx);
}

int fl_sigsegv_own(void *start, uint64_t len, fl_fault_fn fn, void *arg, char *err, size_t errlen)
{
    pthread_mutex_lock(&install_lock);
    int slot = -1;
    for (int i = 0; i < MAX_OWNERS && slot < 0; i++)
        if (!atomic_load(&owners[i].start))
            slot = i;
    if (slot < 0) {
        pthread_mutex_unlock(&install_lock);
        fl_errf(err, errlen, "too many signal-handled regions at once (max %d)", MAX_OWNERS);
        return -1;
    }
    if (installed_count++ == 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = on_sigsegv;
        sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
        sigemptyset(&sa.sa_mask);
        if (sigaction(SIGSEGV, &sa, &previous)) {
            installed_count--;
            pthread_mutex_unlock(&install_lock);
            fl_errf(err, errlen, "sigaction(SIGSEGV) failed");
            return -1;
        }
    }
    owners[slot].end = (uintptr_t)start + len;
    owners[slot].fn = fn;
    owners[slot].arg = arg;
    atomic_store_explicit(&owners[slot].start, (uintptr_t)start, memory_order_release);
    pthread_mutex_unlock(&install_lock);
    return 0;
}

void fl_sigsegv_disown(void *start)
{
    pthread_mutex_lock(&install_lock);
    for (int i = 0; i < MAX_OWNERS; i++) {
        if (atomic_load(&owners[i].start) == (uintptr_t)start) {
            atomic_store(&owners[i].start, 0);
            if (--installed_count == 0) {
                /* Give SIGSEGV back only if nobody replaced us meanwhile. */
                struct sigaction cur;
                sigaction(SIGSEGV, NULL, &cur);
                if ((cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == on_sigsegv)
                    sigaction(SIGSEGV, &previous, NULL);
            }
            break;
        }
    }
    pthread_mutex_unlock(&install_lock);
}
