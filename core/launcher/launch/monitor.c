/* The monitor: the launcher's parent half. It feeds the container's log (log.c), serves attach
 * clients and writes the exit file. */
#include "launcher.h"

struct client {
  int fd;
  unsigned char hdr[5];
  int hdr_got;
  uint32_t remaining; /* payload bytes left of the current frame */
  unsigned char type;
  unsigned char ctl[4];
  int ctl_got;
  int stdin_user; /* sent stdin data or a close: only such a client's leaving closes a StdinOnce stdin */
  unsigned char *out; /* queued output frames: [out_off, out_len) not sent yet */
  size_t out_len, out_off, out_cap;
};

static struct client *clients; /* grows as clients come, up to MAX_CLIENTS */
static int n_clients, clients_cap;
static pid_t child_pid;
static int child_pidfd = -1;
static int stdin_wr = -1;         /* child's stdin (pipe write end or pty master) */
static unsigned char stdin_buf[CHUNK];
static size_t stdin_len;
static int stdin_close_pending;
static int pty_master = -1;

static struct stream streams[2];

static void forward_signal(int sig) {
  if (child_pid <= 0) return;
  if (child_pidfd >= 0 && syscall(SYS_pidfd_send_signal, child_pidfd, sig, NULL, 0) == 0) return;
  if (child_pidfd < 0) kill(child_pid, sig);
}

/* --- attach clients */

static void drop_client(int i) {
  close(clients[i].fd);
  free(clients[i].out);
  if (P.stdin_once && clients[i].stdin_user && stdin_wr >= 0 && pty_master < 0) stdin_close_pending = 1;
  clients[i] = clients[--n_clients];
}

static int client_flush(struct client *c) {
  while (c->out_off < c->out_len) {
    ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
    c->out_off += (size_t)w;
  }
  c->out_len = c->out_off = 0;
  return 0;
}

/* Queue a frame for one client; -1 when memory ran out (drop the client). Output that would take
 * a slow client's backlog past CLIENT_BACKLOG_MAX is left out for it: the container never waits
 * for a reader and the monitor never holds more, while the log keeps everything. */
static int client_frame(struct client *c, unsigned char type, const char *data, size_t n, int droppable) {
  size_t pending = c->out_len - c->out_off;
  if (droppable && pending + 5 + n > CLIENT_BACKLOG_MAX) return 0;
  if (c->out_len + 5 + n > c->out_cap && c->out_off) {
    memmove(c->out, c->out + c->out_off, pending);
    c->out_len = pending;
    c->out_off = 0;
  }
  if (c->out_len + 5 + n > c->out_cap) {
    size_t cap = c->out_cap ? c->out_cap : CHUNK;
    while (cap < c->out_len + 5 + n) cap *= 2;
    unsigned char *out = realloc(c->out, cap);
    if (!out) return -1;
    c->out = out;
    c->out_cap = cap;
  }
  unsigned char *h = c->out + c->out_len;
  h[0] = type;
  h[1] = (unsigned char)(n >> 24), h[2] = (unsigned char)(n >> 16), h[3] = (unsigned char)(n >> 8), h[4] = (unsigned char)n;
  if (n) memcpy(h + 5, data, n);
  c->out_len += 5 + n;
  return 0;
}

static void broadcast(unsigned char type, const char *data, size_t n) {
  for (int i = n_clients - 1; i >= 0; i--)
    if (client_frame(&clients[i], type, data, n, 1) < 0) drop_client(i);
}

/* Take every waiting connection: each gets READY, or REFUSED with the reason past MAX_CLIENTS. */
static void accept_clients(int listen_fd) {
  for (;;) {
    int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) return;
    if (n_clients == clients_cap && clients_cap < MAX_CLIENTS) {
      int cap = clients_cap ? clients_cap * 2 : 16;
      struct client *grown = realloc(clients, sizeof *clients * (size_t)cap);
      if (grown) clients = grown, clients_cap = cap;
    }
    if (n_clients == clients_cap) {
      unsigned char frame[128];
      int len = snprintf((char *)frame + 5, sizeof frame - 5, "the container already has %d attached clients, the most it serves", n_clients);
      frame[0] = FRAME_REFUSED;
      frame[1] = frame[2] = 0, frame[3] = (unsigned char)(len >> 8), frame[4] = (unsigned char)len;
      send(fd, frame, 5 + (size_t)len, MSG_NOSIGNAL | MSG_DONTWAIT);
      close(fd);
      continue;
    }
    clients[n_clients] = (struct client){.fd = fd};
    if (client_frame(&clients[n_clients], FRAME_READY, NULL, 0, 0) < 0) {
      close(fd);
      continue;
    }
    n_clients++;
  }
}

static void close_stdin(void) {
  if (stdin_wr >= 0 && pty_master < 0) close(stdin_wr);
  if (pty_master < 0) stdin_wr = -1;
  stdin_close_pending = 0;
}

static void client_control(struct client *c) {
  uint32_t v = ((uint32_t)c->ctl[0] << 24) | ((uint32_t)c->ctl[1] << 16) | ((uint32_t)c->ctl[2] << 8) | c->ctl[3];
  if (c->type == 2 && pty_master >= 0) {
    struct winsize ws = {.ws_row = (unsigned short)(v >> 16), .ws_col = (unsigned short)(v & 0xffff)};
    ioctl(pty_master, TIOCSWINSZ, &ws);
  } else if (c->type == 3 && v > 0 && v < NSIG) {
    forward_signal((int)v);
  }
}

/* Read what one client sent: 1 when something was read, 0 when nothing is there, -1 when it is gone. */
static int client_read(struct client *c) {
  unsigned char buf[CHUNK];
  size_t room = sizeof stdin_buf - stdin_len;
  if (room == 0) return 0;
  ssize_t n = recv(c->fd, buf, room < sizeof buf ? room : sizeof buf, MSG_DONTWAIT);
  if (n == 0) return -1;
  if (n < 0) return errno == EAGAIN || errno == EINTR ? 0 : -1;
  for (ssize_t i = 0; i < n;) {
    if (c->hdr_got < 5) {
      c->hdr[c->hdr_got++] = buf[i++];
      if (c->hdr_got == 5) {
        c->type = c->hdr[0];
        c->remaining = ((uint32_t)c->hdr[1] << 24) | ((uint32_t)c->hdr[2] << 16) | ((uint32_t)c->hdr[3] << 8) | c->hdr[4];
        c->ctl_got = 0;
        if (c->type <= 1) c->stdin_user = 1;
        if (c->type == 1) stdin_close_pending = 1;
        if (c->type > 3 || (c->type >= 2 && c->remaining != 4)) return -1; /* protocol error */
        if (c->remaining == 0) c->hdr_got = 0;
      }
      continue;
    }
    size_t take = (size_t)(n - i) < c->remaining ? (size_t)(n - i) : c->remaining;
    if (c->type == 0) {
      if (stdin_wr >= 0 && !stdin_close_pending) memcpy(stdin_buf + stdin_len, buf + i, take), stdin_len += take;
    } else if (c->type >= 2) {
      for (size_t k = 0; k < take; k++) c->ctl[c->ctl_got++] = buf[i + k];
      if (c->ctl_got == 4) client_control(c);
    }
    i += (ssize_t)take;
    c->remaining -= (uint32_t)take;
    if (c->remaining == 0) c->hdr_got = 0;
  }
  return 1;
}

/* A client whose socket cannot be written to any more: what it sent before it closed still
 * counts (a one-shot `kill` client sends its SIGNAL frame and closes before READY reaches it). */
static void drop_unwritable_client(int i) {
  while (client_read(&clients[i]) > 0) {}
  drop_client(i);
}

int listen_attach(void) {
  /* Bound relative to the state dir (the monitor's cwd) so long state paths fit sun_path. */
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (s < 0) die("attach socket: %s", strerror(errno));
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  snprintf(addr.sun_path, sizeof addr.sun_path, "attach.sock");
  unlink("attach.sock");
  mode_t old = umask(077);
  if (bind(s, (struct sockaddr *)&addr, sizeof addr) < 0) die("attach socket: bind: %s", strerror(errno));
  umask(old);
  if (listen(s, SOMAXCONN) < 0) die("attach socket: listen: %s", strerror(errno));
  return s;
}

int recv_fd(int sock) {
  char byte;
  struct iovec iov = {&byte, 1};
  char ctl[CMSG_SPACE(sizeof(int))];
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof ctl};
  ssize_t n;
  do n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC); while (n < 0 && errno == EINTR);
  if (n <= 0) return -1;
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  if (!c || c->cmsg_type != SCM_RIGHTS) return -1;
  int fd;
  memcpy(&fd, CMSG_DATA(c), sizeof fd);
  return fd;
}

void write_exit(int status, int have_status, long oom_before, const char *error) {
  char json[2048], now[48], sig[24] = "null";
  int code = 0;
  if (have_status) {
    if (WIFEXITED(status)) code = WEXITSTATUS(status);
    else if (WIFSIGNALED(status)) {
      code = 128 + WTERMSIG(status);
      const char *abbrev = sigabbrev_np(WTERMSIG(status));
      if (abbrev) snprintf(sig, sizeof sig, "\"SIG%s\"", abbrev);
      else snprintf(sig, sizeof sig, "\"%d\"", WTERMSIG(status));
    }
  } else code = 127;
  long oom_after = oom_kills(P.oom_cgroup);
  int oom = oom_before >= 0 && oom_after > oom_before;
  rfc3339nano(now, sizeof now);
  char err[1024] = "null";
  if (error) {
    size_t w = 0;
    err[w++] = '"';
    for (const char *p = error; *p && w < sizeof err - 8; p++) {
      if (*p == '"' || *p == '\\') err[w++] = '\\', err[w++] = *p;
      else if ((unsigned char)*p < 0x20) err[w++] = ' ';
      else err[w++] = *p;
    }
    err[w++] = '"';
    err[w] = 0;
  }
  snprintf(json, sizeof json, "{\"exitCode\":%d,\"signal\":%s,\"oomKilled\":%s,\"finishedAt\":\"%s\",\"error\":%s}\n",
           code, sig, oom ? "true" : "false", now, err);
  if (write_atomic(P.state_dir, "exit", json, 1) < 0) fprintf(stderr, "berth-launch: write exit: %s\n", strerror(errno));
  /* Last words to every client, flushed together for up to a second; slow ones are let go. */
  for (int i = n_clients - 1; i >= 0; i--)
    if (client_frame(&clients[i], FRAME_EXIT, json, strlen(json), 0) < 0 || client_flush(&clients[i]) < 0) drop_client(i);
  struct pollfd *pf = calloc((size_t)n_clients + 1, sizeof *pf);
  for (int round = 0; pf && round < 50; round++) {
    int np = 0;
    for (int i = 0; i < n_clients; i++)
      if (clients[i].out_len) pf[np++] = (struct pollfd){clients[i].fd, POLLOUT, 0};
    if (!np) break;
    poll(pf, (nfds_t)np, 20);
    for (int i = n_clients - 1; i >= 0; i--)
      if (clients[i].out_len && client_flush(&clients[i]) < 0) drop_client(i);
  }
  free(pf);
}

/* The monitor's life once the container runs: its output to the log and the attach clients,
 * clients' stdin to it, signals forwarded; when it exits and its output drained, the exit file. */
void monitor_serve(pid_t pid, const sigset_t *mask, int listen_fd, int out_fd, int errs_fd, int in_wr, int pty_fd, long oom_before) {
  child_pid = pid;
  child_pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
  if (child_pidfd >= 0) fcntl(child_pidfd, F_SETFD, FD_CLOEXEC);
  int sfd = signalfd(-1, mask, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) exit(1);
  if (P.terminal) {
    streams[0] = (struct stream){.fd = pty_fd, .name = "stdout", .id = 1};
    streams[1] = (struct stream){.fd = -1, .name = "stderr", .id = 2};
    stdin_wr = dup(pty_fd);
    if (stdin_wr >= 0) fcntl(stdin_wr, F_SETFD, FD_CLOEXEC);
    pty_master = stdin_wr; /* writes and resizes go to this fd */
  } else {
    streams[0] = (struct stream){.fd = out_fd, .name = "stdout", .id = 1};
    streams[1] = (struct stream){.fd = errs_fd, .name = "stderr", .id = 2};
    stdin_wr = in_wr;
    if (stdin_wr >= 0) fcntl(stdin_wr, F_SETFL, O_NONBLOCK);
  }

  int exited = 0, exit_status = 0;
  struct timespec exit_at = {0, 0};
  static struct pollfd pfd[5 + MAX_CLIENTS];
  for (;;) {
    if (stdin_close_pending && stdin_len == 0) close_stdin();
    int outputs_open = (streams[0].fd >= 0) + (streams[1].fd >= 0);
    if (exited) {
      struct timespec nowts;
      clock_gettime(CLOCK_MONOTONIC, &nowts);
      long ms = (nowts.tv_sec - exit_at.tv_sec) * 1000 + (nowts.tv_nsec - exit_at.tv_nsec) / 1000000;
      /* Done once output drained; a leftover holder of the pipes gets a second, no more. */
      if (!outputs_open || ms > 1000) break;
    }
    int np = 0;
    pfd[np++] = (struct pollfd){sfd, POLLIN, 0};
    pfd[np++] = (struct pollfd){listen_fd, POLLIN, 0};
    pfd[np++] = (struct pollfd){streams[0].fd, POLLIN, 0};
    pfd[np++] = (struct pollfd){streams[1].fd, POLLIN, 0};
    int stdin_idx = -1;
    if (stdin_len && stdin_wr >= 0 && pty_master < 0) stdin_idx = np, pfd[np++] = (struct pollfd){stdin_wr, POLLOUT, 0};
    int first_client = np;
    for (int i = 0; i < n_clients; i++) {
      short ev = (short)((stdin_len < sizeof stdin_buf ? POLLIN : 0) | (clients[i].out_len ? POLLOUT : 0));
      pfd[np++] = (struct pollfd){clients[i].fd, ev, 0};
    }
    int rc = poll(pfd, (nfds_t)np, exited ? 100 : -1);
    if (rc < 0 && errno != EINTR) break;
    if (rc <= 0) continue;

    if (pfd[0].revents & POLLIN) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof si) == sizeof si) {
        if (si.ssi_signo != SIGCHLD) {
          forward_signal((int)si.ssi_signo);
          continue;
        }
        int st;
        pid_t r;
        while ((r = waitpid(-1, &st, WNOHANG)) > 0) /* we are a subreaper: reap orphans too */
          if (r == child_pid) {
            exited = 1;
            exit_status = st;
            clock_gettime(CLOCK_MONOTONIC, &exit_at);
          }
      }
    }
    if (pfd[1].revents & POLLIN) accept_clients(listen_fd);
    for (int s = 0; s < 2; s++) {
      if (!(pfd[2 + s].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buf[CHUNK];
      ssize_t n = read(streams[s].fd, buf, sizeof buf);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (n <= 0) { /* EOF (or EIO from a pty whose slave closed) */
        log_entry(&streams[s]);
        if (streams[s].fd != pty_master) close(streams[s].fd);
        streams[s].fd = -1;
        continue;
      }
      log_bytes(&streams[s], buf, (size_t)n);
      broadcast(streams[s].id, buf, (size_t)n);
    }
    if (stdin_idx >= 0 && (pfd[stdin_idx].revents & (POLLOUT | POLLERR | POLLHUP))) {
      ssize_t w = write(stdin_wr, stdin_buf, stdin_len);
      if (w > 0) memmove(stdin_buf, stdin_buf + w, stdin_len - (size_t)w), stdin_len -= (size_t)w;
      else if (w < 0 && errno != EAGAIN && errno != EINTR) stdin_len = 0, close_stdin();
    }
    for (int i = n_clients - 1; i >= 0; i--) {
      if (first_client + i >= np) continue; /* accepted in this round */
      short re = pfd[first_client + i].revents;
      if ((re & POLLOUT) && client_flush(&clients[i]) < 0) { drop_unwritable_client(i); continue; }
      if ((re & (POLLIN | POLLHUP | POLLERR)) && client_read(&clients[i]) < 0) { drop_client(i); continue; }
    }
    if (pty_master >= 0 && stdin_len) { /* the pty master is never full in practice: write through */
      ssize_t w = write(pty_master, stdin_buf, stdin_len);
      if (w > 0) memmove(stdin_buf, stdin_buf + w, stdin_len - (size_t)w), stdin_len -= (size_t)w;
      else if (w < 0 && errno != EAGAIN) stdin_len = 0;
    }
    for (int i = n_clients - 1; i >= 0; i--)
      if (clients[i].out_len && client_flush(&clients[i]) < 0) drop_unwritable_client(i);
  }
  log_entry(&streams[0]);
  log_entry(&streams[1]);
  unlink("attach.sock");
  write_exit(exit_status, 1, oom_before, NULL);
  exit(0);
}
