// A load client and echo server for the data-path benchmarks, in C so that the client's own cost
// does not dominate what it measures (the Node client tops out at 2-4k connections/s).
//
//   wl-bench server PORT              echo whatever arrives, many connections at once (epoll)
//   wl-bench crr HOST PORT SECONDS    new connection + one request/response, again and again
//   wl-bench rr HOST PORT SECONDS     request/response on one established connection
//
// One connection at a time, messages of 16 bytes (as the sockperf runs of bench/datapath.ts). crr
// times connect() through the reply and ends each connection with a reset (SO_LINGER 0): no
// TIME_WAIT piles up on either side, which would slow the later connect()s of another path. The
// client prints one JSON line: {"mode","count","seconds","perSecond","p50Us","p99Us"}, and exits 1
// on the first failed connect, send or receive (a path that drops connections is broken, not slow).
// Built by scripts/setup.mjs into build/bench/wl-bench.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MESSAGE 16

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what) {
  fprintf(stderr, "wl-bench: %s: %s\n", what, strerror(errno));
  exit(1);
}

/** Latency samples in ns, grown as needed. */
struct samples {
  uint64_t *ns;
  size_t count, capacity;
};

static void record(struct samples *s, uint64_t ns) {
  if (s->count == s->capacity) {
    s->capacity = s->capacity ? s->capacity * 2 : 65536;
    s->ns = realloc(s->ns, s->capacity * sizeof *s->ns);
    if (s->ns == NULL) die("realloc");
  }
  s->ns[s->count++] = ns;
}

static int by_value(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static void report(const char *mode, struct samples *s, double seconds) {
  if (s->count == 0) {
    fprintf(stderr, "wl-bench: no %s sample in %.1f s\n", mode, seconds);
    exit(1);
  }
  qsort(s->ns, s->count, sizeof *s->ns, by_value);
  double p50 = s->ns[s->count * 50 / 100] / 1e3, p99 = s->ns[s->count * 99 / 100] / 1e3;
  printf("{\"mode\":\"%s\",\"count\":%zu,\"seconds\":%.3f,\"perSecond\":%.1f,\"p50Us\":%.2f,\"p99Us\":%.2f}\n", mode, s->count, seconds,
         s->count / seconds, p50, p99);
}

/** Sends MESSAGE bytes and reads MESSAGE bytes back; 0 on success. */
static int exchange(int fd) {
  char buf[MESSAGE];
  memset(buf, 'x', sizeof buf);
  if (send(fd, buf, sizeof buf, MSG_NOSIGNAL) != (ssize_t)sizeof buf) return -1;
  size_t got = 0;
  while (got < sizeof buf) {
    ssize_t n = recv(fd, buf + got, sizeof buf - got, 0);
    if (n <= 0) {
      if (n == 0) errno = ECONNRESET;
      return -1;
    }
    got += (size_t)n;
  }
  return 0;
}

static int connect_to(const struct sockaddr_in *to) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) die("socket");
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(fd, (const struct sockaddr *)to, sizeof *to) != 0) die("connect");
  return fd;
}

static void run_crr(const struct sockaddr_in *to, double seconds) {
  struct samples s = {0};
  uint64_t start = now_ns(), end = start + (uint64_t)(seconds * 1e9), t;
  struct linger reset = {.l_onoff = 1, .l_linger = 0};
  while ((t = now_ns()) < end) {
    int fd = connect_to(to);
    if (exchange(fd) != 0) die("crr exchange");
    record(&s, now_ns() - t);
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
    close(fd);
  }
  report("crr", &s, (now_ns() - start) / 1e9);
}

static void run_rr(const struct sockaddr_in *to, double seconds) {
  struct samples s = {0};
  int fd = connect_to(to);
  uint64_t start = now_ns(), end = start + (uint64_t)(seconds * 1e9), t;
  while ((t = now_ns()) < end) {
    if (exchange(fd) != 0) die("rr exchange");
    record(&s, now_ns() - t);
  }
  close(fd);
  report("rr", &s, (now_ns() - start) / 1e9);
}

static void run_server(uint16_t port) {
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (lfd < 0) die("socket");
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_ANY)};
  if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) != 0) die("bind");
  if (listen(lfd, 4096) != 0) die("listen");
  int ep = epoll_create1(0);
  if (ep < 0) die("epoll_create1");
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
  if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) != 0) die("epoll_ctl");
  struct epoll_event events[256];
  char buf[4096];
  for (;;) {
    int n = epoll_wait(ep, events, 256, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("epoll_wait");
    }
    for (int i = 0; i < n; i++) {
      int fd = events[i].data.fd;
      if (fd == lfd) {
        int c;
        while ((c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
          setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          struct epoll_event cev = {.events = EPOLLIN, .data.fd = c};
          if (epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev) != 0) close(c);
        }
        continue;
      }
      ssize_t got = recv(fd, buf, sizeof buf, 0);
      if (got > 0) {
        // Messages are small and one at a time: a short send means a broken peer, not a full buffer.
        if (send(fd, buf, (size_t)got, MSG_NOSIGNAL) == got) continue;
      } else if (got < 0 && (errno == EAGAIN || errno == EINTR)) {
        continue;
      }
      close(fd);  // EOF, reset or error; closing also removes it from the epoll set
    }
  }
}

static uint16_t parse_port(const char *text) {
  char *end;
  long port = strtol(text, &end, 10);
  if (*end != '\0' || port < 1 || port > 65535) {
    fprintf(stderr, "wl-bench: bad port %s\n", text);
    exit(2);
  }
  return (uint16_t)port;
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "server") == 0) {
    run_server(parse_port(argv[2]));
    return 0;
  }
  if (argc == 5 && (strcmp(argv[1], "crr") == 0 || strcmp(argv[1], "rr") == 0)) {
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(parse_port(argv[3]))};
    double seconds = strtod(argv[4], NULL);
    if (inet_pton(AF_INET, argv[2], &to.sin_addr) != 1 || !(seconds > 0)) {
      fprintf(stderr, "wl-bench: bad address %s or duration %s\n", argv[2], argv[4]);
      return 2;
    }
    if (argv[1][0] == 'c') run_crr(&to, seconds);
    else run_rr(&to, seconds);
    return 0;
  }
  fprintf(stderr, "usage: wl-bench server PORT | wl-bench crr|rr HOST PORT SECONDS\n");
  return 2;
}
