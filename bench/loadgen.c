// needle bench load generator: runs one syscall-heavy loop for a fixed time on N workers and
// prints the total operations per second. Built by bench/capture.sh with the system C compiler.
//
//   loadgen exec|open|getppid SECONDS WORKERS
//
// exec:    fork + execve("/bin/true") + wait   (3 lifecycle events per op: fork, exec, exit)
// open:    open + read + close of /etc/hostname
// getppid: the cheapest syscall there is
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static long run(const char *mode, double secs) {
    long ops = 0;
    char buf[64];
    double end = now() + secs;
    while (now() < end) {
        for (int i = 0; i < 64; i++) {
            if (strcmp(mode, "exec") == 0) {
                pid_t pid = fork();
                if (pid == 0) {
                    execl("/bin/true", "true", (char *)NULL);
                    _exit(127);
                }
                int st;
                waitpid(pid, &st, 0);
                i += 63; /* exec is slow: check the clock every op */
            } else if (strcmp(mode, "open") == 0) {
                int fd = open("/etc/hostname", O_RDONLY);
                if (fd >= 0) {
                    if (read(fd, buf, sizeof buf) < 0) { /* ignore */ }
                    close(fd);
                }
            } else {
                getppid();
            }
            ops++;
        }
    }
    return ops;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s exec|open|getppid SECONDS WORKERS\n", argv[0]);
        return 2;
    }
    const char *mode = argv[1];
    double secs = atof(argv[2]);
    int workers = atoi(argv[3]);
    if (secs <= 0 || secs > 600 || workers < 1 || workers > 64) {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }
    long *shared = mmap(NULL, sizeof(long) * workers, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shared == MAP_FAILED) return 1;
    double start = now();
    for (int w = 0; w < workers; w++) {
        if (fork() == 0) {
            shared[w] = run(mode, secs);
            _exit(0);
        }
    }
    for (int w = 0; w < workers; w++) wait(NULL);
    double elapsed = now() - start;
    long total = 0;
    for (int w = 0; w < workers; w++) total += shared[w];
    printf("%s ops=%ld secs=%.3f rate=%.1f\n", mode, total, elapsed, total / elapsed);
    return 0;
}
