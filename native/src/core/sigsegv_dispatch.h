#ifndef FAULTLAB_SIGSEGV_DISPATCH_H
#define FAULTLAB_SIGSEGV_DISPATCH_H
#include <stddef.h>
#include <stdint.h>
/* Called inside the signal handler for a fault in an owned range: must be
 * async-signal-safe and must make the access succeed when it returns (or
 * leave via siglongjmp). */
typedef void (*fl_fault_fn)(void *arg, uintptr_t addr);
/* Route SIGSEGV for [start, start+len) to fn (installs the handler on first use). */
int fl_sigsegv_own(void *start, uint64_t len, fl_fault_fn fn, void *arg, char *err, size_t errlen);
/* Stop routing; the last owner gives SIGSEGV back to the previous handler. */
void fl_sigsegv_disown(void *start);
#endif
