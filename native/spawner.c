/*
 * The native spawner: the same job and the same answers as `src/spawner.ts` (see `src/spawner-protocol.ts`),
 * as a small C program. The orchestrator uses it when the build could compile it (`scripts/build.mjs` runs
 * `cc` when there is one) and falls back to the Node spawner otherwise.
 *
 * Why C: Node starts a process with fork(), which copies the page tables of the whole Node process and then
 * waits for the child's exec; with the three pipes and the stream objects Node sets up per child, that is
 * ~2-3 ms per stage process here, against ~0.3 ms for posix_spawn (a vfork) from a process of a few hundred
 * kB. On a chain of small stages that difference is most of the orchestrator's overhead over make. No npm
 * package offers a streaming posix_spawn without node-gyp and a compiler anyway.
 *
 * Requests come on stdin, framed because their strings may hold any byte but NUL: a decimal byte count and a
 * newline, then that many bytes of NUL-terminated fields:
 *   id, file, argc, argc args, cwd, envc, envc "NAME=value" entries, redirc, redirc (fd, r|w|a, path)
 * Answers go to stdout as the JSON lines of the protocol. Each stage process gets a new session (so its own
 * process group, like Node's `detached`), stdin from /dev/null, and pipes as stdout, stderr and fd 3, then the
 * request's redirections (files opened on fds 0-2 in order, relative to its cwd, as a shell would), and the pipes
 * lines (split at \n, \r\n or a lone \r, as node:readline does) are relayed. Once the process exited, what it
 * left in its group is killed, and `exited` goes out when all three pipes are closed. Writing answers blocks
 * while the orchestrator is behind, which stops the reading of the stages' pipes until it caught up.
 *
 * It exits when its stdin ends (or its stdout is gone), leaving running stages to the orchestrator, exactly
 * as the Node spawner does. Linux (glibc >= 2.29 for posix_spawn_file_actions_addchdir_np).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

/* A growable byte buffer. */
typedef struct {
  char *data;
  size_t len, cap;
} Buf;

static void buf_reserve(Buf *b, size_t extra) {
  if (b->len + extra <= b->cap) return;
  size_t cap = b->cap ? b->cap : 4096;
  while (cap < b->len + extra) cap *= 2;
  b->data = realloc(b->data, cap);
  if (!b->data) {
    perror("spawner: out of memory");
    exit(70);
  }
  b->cap = cap;
}

static void buf_add(Buf *b, const char *s, size_t n) {
  buf_reserve(b, n);
  memcpy(b->data + b->len, s, n);
  b->len += n;
}

static void buf_str(Buf *b, const char *s) { buf_add(b, s, strlen(s)); }

/* Write all of `b` to stdout, blocking; a closed stdout means the orchestrator is gone. */
static void flush_out(Buf *b) {
  size_t off = 0;
  while (off < b->len) {
    ssize_t n = write(1, b->data + off, b->len - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      _exit(0);
    }
    off += (size_t)n;
  }
  b->len = 0;
}

/* `s` as a JSON string. Bytes from 0x80 up pass as they are: the orchestrator decodes the stream as UTF-8. */
static void json_str(Buf *b, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  buf_reserve(b, n + 2);
  b->data[b->len++] = '"';
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') {
      char e[2] = {'\\', (char)c};
      buf_add(b, e, 2);
    } else if (c == '\n') {
      buf_add(b, "\\n", 2);
    } else if (c == '\t') {
      buf_add(b, "\\t", 2);
    } else if (c < 0x20) {
      char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
      buf_add(b, e, 6);
    } else {
      buf_reserve(b, 1);
      b->data[b->len++] = (char)c;
    }
  }
  buf_reserve(b, 1);
  b->data[b->len++] = '"';
}

static Buf out; /* the answers not yet written */

static void send_started(long id, pid_t pid) {
  char s[96];
  snprintf(s, sizeof s, "{\"t\":\"started\",\"id\":%ld,\"pid\":%d}\n", id, (int)pid);
  buf_str(&out, s);
}

static void send_line(long id, int fd, const char *line, size_t n) {
  char s[64];
  snprintf(s, sizeof s, "{\"t\":\"line\",\"id\":%ld,\"fd\":%d,\"line\":", id, fd);
  buf_str(&out, s);
  json_str(&out, line, n);
  buf_str(&out, "}\n");
}

static void send_failed(long id, const char *file, int err) {
  char s[64];
  snprintf(s, sizeof s, "{\"t\":\"failed\",\"id\":%ld,\"message\":", id);
  buf_str(&out, s);
  /* Node's wording: "spawn /bin/sh ENOENT" */
  const char *name = strerrorname_np(err);
  Buf m = {0};
  buf_str(&m, "spawn ");
  buf_str(&m, file);
  buf_str(&m, " ");
  buf_str(&m, name ? name : strerror(err));
  json_str(&out, m.data, m.len);
  free(m.data);
  buf_str(&out, "}\n");
}

static void send_exited(long id, int status) {
  char s[128];
  if (WIFSIGNALED(status)) {
    const char *abbrev = sigabbrev_np(WTERMSIG(status));
    if (abbrev)
      snprintf(s, sizeof s, "{\"t\":\"exited\",\"id\":%ld,\"code\":null,\"signal\":\"SIG%s\"}\n", id, abbrev);
    else
      snprintf(s, sizeof s, "{\"t\":\"exited\",\"id\":%ld,\"code\":null,\"signal\":\"SIG%d\"}\n", id,
               WTERMSIG(status));
  } else {
    snprintf(s, sizeof s, "{\"t\":\"exited\",\"id\":%ld,\"code\":%d,\"signal\":null}\n", id, WEXITSTATUS(status));
  }
  buf_str(&out, s);
}

/* One pipe of a stage: its read end and the part of a line read so far. */
typedef struct {
  int fd; /* -1 once closed */
  Buf rest;
  int after_cr; /* the last chunk ended with \r: a \n starting the next one belongs to it */
} Pipe;

typedef struct {
  long id;
  pid_t pid;
  int exited, status;
  Pipe pipes[3]; /* fds 1, 2, 3 of the stage */
} Child;

static Child **children;
static size_t nchildren, capchildren;

/* Relay the complete lines of `chunk`; keep the rest for the next one. */
static void split_lines(Child *c, int k, const char *chunk, size_t n) {
  Pipe *p = &c->pipes[k];
  size_t start = 0, i = 0;
  if (p->after_cr && n > 0 && chunk[0] == '\n') start = i = 1;
  p->after_cr = 0;
  for (; i < n; i++) {
    char ch = chunk[i];
    if (ch != '\n' && ch != '\r') continue;
    if (p->rest.len) {
      buf_add(&p->rest, chunk + start, i - start);
      send_line(c->id, k + 1, p->rest.data, p->rest.len);
      p->rest.len = 0;
    } else {
      send_line(c->id, k + 1, chunk + start, i - start);
    }
    if (ch == '\r') {
      if (i + 1 == n) p->after_cr = 1;
      else if (chunk[i + 1] == '\n') i++;
    }
    start = i + 1;
  }
  if (start < n) buf_add(&p->rest, chunk + start, n - start);
}

static void close_pipe(Child *c, int k) {
  Pipe *p = &c->pipes[k];
  if (p->rest.len) send_line(c->id, k + 1, p->rest.data, p->rest.len);
  free(p->rest.data);
  p->rest = (Buf){0};
  close(p->fd);
  p->fd = -1;
}

/* Send `exited` and forget the child once it exited and its pipes are closed. */
static void settle(size_t at) {
  Child *c = children[at];
  if (!c->exited) return;
  for (int k = 0; k < 3; k++)
    if (c->pipes[k].fd >= 0) return;
  send_exited(c->id, c->status);
  free(c);
  children[at] = children[--nchildren];
}

/* The value of NAME in a request's environment, or NULL. */
static const char *env_get(char **envp, const char *name) {
  size_t n = strlen(name);
  for (char **e = envp; *e; e++)
    if (strncmp(*e, name, n) == 0 && (*e)[n] == '=') return *e + n + 1;
  return NULL;
}

/* Resolve a program name without a slash on the request's PATH, as Node does (execvp with the child's env). */
static char *resolve_program(const char *file, char **envp) {
  if (strchr(file, '/')) return strdup(file);
  const char *path = env_get(envp, "PATH");
  if (!path) path = "/usr/local/bin:/usr/bin:/bin";
  for (const char *p = path;; ) {
    const char *colon = strchr(p, ':');
    size_t len = colon ? (size_t)(colon - p) : strlen(p);
    Buf b = {0};
    buf_add(&b, len ? p : ".", len ? len : 1);
    buf_str(&b, "/");
    buf_str(&b, file);
    buf_add(&b, "", 1);
    if (access(b.data, X_OK) == 0) return b.data;
    free(b.data);
    if (!colon) break;
    p = colon + 1;
  }
  return strdup(file);
}

static sigset_t default_mask;

/* A redirection of the request: file descriptor `fd` opened on `path` ('r'ead, 'w'rite, 'a'ppend). */
typedef struct {
  int fd;
  char mode;
  const char *path;
} Redirect;

/* Start one request (its fields parsed from a frame). */
static void start(long id, const char *file, char **argv, const char *cwd, char **envp, const Redirect *redirs,
                  long nredirs) {
  int fds[3][2];
  for (int k = 0; k < 3; k++) {
    if (pipe2(fds[k], O_CLOEXEC) != 0) {
      int err = errno;
      for (int j = 0; j < k; j++) close(fds[j][0]), close(fds[j][1]);
      send_failed(id, file, err);
      return;
    }
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  for (int k = 0; k < 3; k++) posix_spawn_file_actions_adddup2(&fa, fds[k][1], k + 1);
  posix_spawn_file_actions_addchdir_np(&fa, cwd);
  /* After the chdir, so relative paths are the stage's; the shell's flags and mode for < > >>. */
  for (long i = 0; i < nredirs; i++) {
    int flags = redirs[i].mode == 'r'   ? O_RDONLY
                : redirs[i].mode == 'a' ? O_WRONLY | O_CREAT | O_APPEND
                                        : O_WRONLY | O_CREAT | O_TRUNC;
    posix_spawn_file_actions_addopen(&fa, redirs[i].fd, redirs[i].path, flags, 0666);
  }
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  /* A new session: its own process group, no controlling terminal. Signals back to their defaults and none
   * blocked, whatever this process does with them. */
  sigset_t all;
  sigfillset(&all);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setsigmask(&attr, &default_mask);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  char *program = resolve_program(file, envp);
  pid_t pid;
  int err = posix_spawn(&pid, program, &fa, &attr, argv, envp);
  free(program);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  for (int k = 0; k < 3; k++) close(fds[k][1]);
  if (err != 0) {
    for (int k = 0; k < 3; k++) close(fds[k][0]);
    send_failed(id, file, err);
    return;
  }
  Child *c = calloc(1, sizeof *c);
  if (!c) {
    perror("spawner: out of memory");
    exit(70);
  }
  c->id = id;
  c->pid = pid;
  for (int k = 0; k < 3; k++) c->pipes[k].fd = fds[k][0];
  if (nchildren == capchildren) {
    capchildren = capchildren ? capchildren * 2 : 16;
    children = realloc(children, capchildren * sizeof *children);
    if (!children) {
      perror("spawner: out of memory");
      exit(70);
    }
  }
  children[nchildren++] = c;
  send_started(id, pid);
}

/* Parse one frame's fields and start it; a malformed frame is a bug in the orchestrator: stop. */
static void handle_frame(char *data, size_t n) {
  char *fields[4096 + 8];
  size_t count = 0;
  char *p = data, *end = data + n;
  char **heap = NULL;
  char **f = fields;
  size_t cap = sizeof fields / sizeof *fields;
  while (p < end) {
    char *nul = memchr(p, '\0', (size_t)(end - p));
    if (!nul) break;
    if (count == cap) {
      cap *= 2;
      char **g = malloc(cap * sizeof *g);
      if (!g) exit(70);
      memcpy(g, f, count * sizeof *g);
      free(heap);
      heap = f = g;
    }
    f[count++] = p;
    p = nul + 1;
  }
  size_t at = 0;
#define NEXT() (at < count ? f[at++] : NULL)
  const char *id = NEXT(), *file = NEXT(), *argc_s = NEXT();
  if (!id || !file || !argc_s) goto bad;
  long argc = strtol(argc_s, NULL, 10);
  if (argc < 0 || (size_t)argc > count - at) goto bad;
  /* argv[0] is the file, as Node's spawn(file, args) gives it */
  char **argv = calloc((size_t)argc + 2, sizeof *argv);
  argv[0] = (char *)file;
  for (long i = 0; i < argc; i++) argv[i + 1] = NEXT();
  const char *cwd = NEXT(), *envc_s = NEXT();
  if (!cwd || !envc_s) goto bad;
  long envc = strtol(envc_s, NULL, 10);
  if (envc < 0 || (size_t)envc > count - at) goto bad;
  char **envp = calloc((size_t)envc + 1, sizeof *envp);
  for (long i = 0; i < envc; i++) envp[i] = NEXT();
  const char *redirc_s = NEXT();
  if (!redirc_s) goto bad;
  long redirc = strtol(redirc_s, NULL, 10);
  if (redirc < 0 || (size_t)redirc * 3 > count - at) goto bad;
  Redirect *redirs = calloc((size_t)redirc + 1, sizeof *redirs);
  for (long i = 0; i < redirc; i++) {
    const char *fd_s = NEXT(), *mode = NEXT(), *path = NEXT();
    long fd = strtol(fd_s, NULL, 10);
    if (fd < 0 || fd > 2 || (mode[0] != 'r' && mode[0] != 'w' && mode[0] != 'a')) goto bad;
    redirs[i] = (Redirect){.fd = (int)fd, .mode = mode[0], .path = path};
  }
  start(strtol(id, NULL, 10), file, argv, cwd, envp, redirs, redirc);
  free(redirs);
  free(argv);
  free(envp);
  free(heap);
  return;
bad:
  fprintf(stderr, "spawner: malformed request\n");
  exit(65);
#undef NEXT
}

/* Take every complete frame off the front of `in`. */
static void handle_input(Buf *in) {
  size_t off = 0;
  for (;;) {
    char *nl = memchr(in->data + off, '\n', in->len - off);
    if (!nl) break;
    size_t size = strtoul(in->data + off, NULL, 10);
    size_t body = (size_t)(nl - in->data) + 1;
    if (in->len - body < size) break;
    handle_frame(in->data + body, size);
    off = body + size;
  }
  memmove(in->data, in->data + off, in->len - off);
  in->len -= off;
}

int main(void) {
  /* Keep fd 3 taken, so no pipe of ours is ever fd 3 itself (a dup2 onto itself would keep it close-on-exec). */
  while (1) {
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fd >= 3) break;
  }
  signal(SIGPIPE, SIG_IGN);
  sigemptyset(&default_mask);
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_BLOCK, &chld, NULL);
  int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) {
    perror("spawner: signalfd");
    return 71;
  }
  fcntl(0, F_SETFD, FD_CLOEXEC);
  fcntl(1, F_SETFD, FD_CLOEXEC);
  Buf in = {0};
  struct pollfd *pfds = NULL;
  size_t pcap = 0;
  static char chunk[65536];
  for (;;) {
    flush_out(&out);
    size_t need = 2 + nchildren * 3;
    if (need > pcap) {
      pcap = need * 2;
      pfds = realloc(pfds, pcap * sizeof *pfds);
      if (!pfds) exit(70);
    }
    size_t n = 0;
    pfds[n++] = (struct pollfd){.fd = 0, .events = POLLIN};
    pfds[n++] = (struct pollfd){.fd = sfd, .events = POLLIN};
    for (size_t i = 0; i < nchildren; i++)
      for (int k = 0; k < 3; k++)
        pfds[n++] = (struct pollfd){.fd = children[i]->pipes[k].fd, .events = POLLIN};
    if (poll(pfds, n, -1) < 0) {
      if (errno == EINTR) continue;
      perror("spawner: poll");
      return 71;
    }
    /* The stages' output first: what a process wrote comes before its exit. */
    for (size_t i = 0, at = 2; i < nchildren; i++) {
      Child *c = children[i];
      for (int k = 0; k < 3; k++, at++) {
        if (c->pipes[k].fd < 0 || !(pfds[at].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        ssize_t got = read(c->pipes[k].fd, chunk, sizeof chunk);
        if (got > 0) split_lines(c, k, chunk, (size_t)got);
        else if (got == 0 || (errno != EINTR && errno != EAGAIN)) close_pipe(c, k);
      }
    }
    if (pfds[1].revents & POLLIN) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof si) == sizeof si) {
      }
      int status;
      pid_t pid;
      while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (size_t i = 0; i < nchildren; i++) {
          if (children[i]->pid != pid) continue;
          children[i]->exited = 1;
          children[i]->status = status;
          /* What the stage left in the background would outlive it and hold its pipes open. */
          kill(-pid, SIGKILL);
          break;
        }
      }
    }
    for (size_t i = nchildren; i-- > 0;) settle(i);
    if (pfds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      buf_reserve(&in, sizeof chunk);
      ssize_t got = read(0, in.data + in.len, sizeof chunk);
      if (got == 0 || (got < 0 && errno != EINTR && errno != EAGAIN)) {
        flush_out(&out);
        return 0; /* the orchestrator closed our stdin, or died */
      }
      if (got > 0) {
        in.len += (size_t)got;
        handle_input(&in);
      }
    }
  }
}
