// needle bench load generator: runs one syscall-heavy loop for a fixed time on N workers and
// prints the total operations per second. Built by bench/capture.sh with the system C compiler.
//
//   loadgen exec|open|getppid|connect|dns SECONDS WORKERS
//   loadgen rate SECONDS WORKERS CALLS_PER_SECOND
//
// exec:    fork + execve("/bin/true") + wait   (3 lifecycle events per op: fork, exec, exit)
// open:    open + read + close of /etc/hostname
// getppid: the cheapest syscall there is
// connect: TCP connect to a listener of our own on 127.0.0.1 + close (the listener accepts
//          and closes in a child process)
// dns:     a DNS query (A example.com) over a connected UDP socket to a responder of our own
//          on 127.0.0.153:53 that answers every query, + the answer received
// rate:    getppid at a fixed total rate, paced in 1 ms ticks (the saturation ramp: with
//          `capture --syscalls full` every call is one event)
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
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

static struct sockaddr_in tcp_addr, dns_addr;

static const unsigned char QUERY[] = {
    0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'c', 'o', 'm', 0, 0x00, 0x01, 0x00, 0x01};

/* Servers for the network loops, in child processes killed at the end. */
static pid_t start_servers(const char *mode) {
    if (strcmp(mode, "connect") == 0) {
        int l = socket(AF_INET, SOCK_STREAM, 0);
        int one = 1;
        setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        tcp_addr.sin_family = AF_INET;
        tcp_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        tcp_addr.sin_port = 0;
        if (bind(l, (struct sockaddr *)&tcp_addr, sizeof tcp_addr) || listen(l, 4096)) { perror("listen"); exit(1); }
        socklen_t len = sizeof tcp_addr;
        getsockname(l, (struct sockaddr *)&tcp_addr, &len);
        pid_t pid = fork();
        if (pid == 0) {
            for (;;) { int c = accept(l, NULL, NULL); if (c >= 0) close(c); }
        }
        close(l);
        return pid;
    }
    if (strcmp(mode, "dns") == 0) {
        int s = socket(AF_INET, SOCK_DGRAM, 0);
        dns_addr.sin_family = AF_INET;
        dns_addr.sin_addr.s_addr = inet_addr("127.0.0.153");
        dns_addr.sin_port = htons(53);
        if (bind(s, (struct sockaddr *)&dns_addr, sizeof dns_addr)) { perror("bind 127.0.0.153:53"); exit(1); }
        pid_t pid = fork();
        if (pid == 0) {
            unsigned char msg[512];
            for (;;) {
                struct sockaddr_in from;
                socklen_t fl = sizeof from;
                ssize_t n = recvfrom(s, msg, sizeof msg - 16, 0, (struct sockaddr *)&from, &fl);
                if (n < 12) continue;
                msg[2] = 0x81; msg[3] = 0x80; msg[7] = 1; /* QR, RA; one answer */
                static const unsigned char ans[] = {0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 9};
                memcpy(msg + n, ans, sizeof ans);
                sendto(s, msg, n + sizeof ans, 0, (struct sockaddr *)&from, fl);
            }
        }
        close(s);
        return pid;
    }
    return 0;
}

/* getppid at `per_second` calls per second: a batch every millisecond, then sleep until the
   next tick (a worker that falls behind does not sleep, so the rate is kept when it can be). */
static long run_rate(double secs, double per_second) {
    long ops = 0;
    double per_tick = per_second / 1000.0, owed = 0;
    struct timespec tick;
    clock_gettime(CLOCK_MONOTONIC, &tick);
    double end = now() + secs;
    while (now() < end) {
        owed += per_tick;
        for (; owed >= 1; owed -= 1) {
            getppid();
            ops++;
        }
        tick.tv_nsec += 1000000;
        if (tick.tv_nsec >= 1000000000) { tick.tv_sec++; tick.tv_nsec -= 1000000000; }
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &tick, NULL);
    }
    return ops;
}

enum mode { EXEC, OPEN, CONNECT, DNS, GETPPID };

/* The mode is decoded once: the loop body is the syscalls and nothing else (string compares
   per call would pad the baseline and flatter every ratio, most of all getppid's). */
static enum mode decode(const char *mode) {
    if (strcmp(mode, "exec") == 0) return EXEC;
    if (strcmp(mode, "open") == 0) return OPEN;
    if (strcmp(mode, "connect") == 0) return CONNECT;
    if (strcmp(mode, "dns") == 0) return DNS;
    return GETPPID;
}

static long run(const char *name, double secs) {
    const enum mode mode = decode(name);
    long ops = 0;
    char buf[64];
    double end = now() + secs;
    while (now() < end) {
        for (int i = 0; i < 64; i++) {
            switch (mode) {
            case EXEC: {
                pid_t pid = fork();
                if (pid == 0) {
                    execl("/bin/true", "true", (char *)NULL);
                    _exit(127);
                }
                int st;
                waitpid(pid, &st, 0);
                i += 63; /* exec is slow: check the clock every op */
                break;
            }
            case OPEN: {
                int fd = open("/etc/hostname", O_RDONLY);
                if (fd >= 0) {
                    if (read(fd, buf, sizeof buf) < 0) { /* ignore */ }
                    close(fd);
                }
                break;
            }
            case CONNECT: {
                int c = socket(AF_INET, SOCK_STREAM, 0);
                /* Close with RST (linger 0): no TIME_WAIT, so the ephemeral ports never run out
                   and every mode sees the same connect path. Failed connects are not counted. */
                struct linger lg = {1, 0};
                setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
                if (connect(c, (struct sockaddr *)&tcp_addr, sizeof tcp_addr) != 0) ops--;
                close(c);
                break;
            }
            case DNS: {
                int c = socket(AF_INET, SOCK_DGRAM, 0);
                unsigned char answer[512];
                struct timeval tv = {1, 0};
                setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
                if (connect(c, (struct sockaddr *)&dns_addr, sizeof dns_addr) == 0 &&
                    send(c, QUERY, sizeof QUERY, 0) > 0) {
                    if (recv(c, answer, sizeof answer, 0) < 0) { /* timed out: not counted */ ops--; }
                }
                close(c);
                break;
            }
            case GETPPID:
                getppid();
                break;
            }
            ops++;
        }
    }
    return ops;
}

int main(int argc, char **argv) {
    int rate_mode = argc == 5 && strcmp(argv[1], "rate") == 0;
    if (argc != 4 && !rate_mode) {
        fprintf(stderr, "usage: %s exec|open|getppid|connect|dns SECONDS WORKERS\n"
                        "       %s rate SECONDS WORKERS CALLS_PER_SECOND\n", argv[0], argv[0]);
        return 2;
    }
    const char *mode = argv[1];
    double secs = atof(argv[2]);
    int workers = atoi(argv[3]);
    double per_second = rate_mode ? atof(argv[4]) : 0;
    if (secs <= 0 || secs > 600 || workers < 1 || workers > 64 || (rate_mode && (per_second <= 0 || per_second > 1e9))) {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }
    long *shared = mmap(NULL, sizeof(long) * workers, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shared == MAP_FAILED) return 1;
    pid_t server = start_servers(mode);
    double start = now();
    for (int w = 0; w < workers; w++) {
        if (fork() == 0) {
            shared[w] = rate_mode ? run_rate(secs, per_second / workers) : run(mode, secs);
            _exit(0);
        }
    }
    for (int w = 0; w < workers; w++) waitpid(-1, NULL, 0) ;
    double elapsed = now() - start;
    if (server > 0) { kill(server, SIGKILL); waitpid(server, NULL, 0); }
    long total = 0;
    for (int w = 0; w < workers; w++) total += shared[w];
    printf("%s ops=%ld secs=%.3f rate=%.1f\n", mode, total, elapsed, total / elapsed);
    return 0;
}
