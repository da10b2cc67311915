/* faultlab-handler: uffd's handler process (handler=process). libfaultlab
 * spawns it from beside itself with a Unix socket as the one argument's fd and
 * sends it the userfaultfd to serve (src/strategies/uffd_handler_process.h).
 * Linked from the library's objects, so both ends share one build. */
#include "strategies/uffd_handler_process.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    char *end;
    long fd = argc == 2 ? strtol(argv[1], &end, 10) : -1;
    if (argc != 2 || *end || fd < 0 || fd > 1 << 20) {
        fprintf(stderr, "usage: faultlab-handler FD (started by libfaultlab with handler=process, FD its socket)\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN); /* an application gone mid-send is an error return, not a death */
    return fl_uffd_handler_process_main((int)fd);
}
