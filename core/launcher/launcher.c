/*
 * berth-launch: the small C part of berth's native runtime (DESIGN.md section 5).
 *
 * It holds no policy. berthd's isolators decide everything and write a launch plan; this program
 * carries it out between clone and exec, which Node cannot do (it is multi-threaded and cannot run
 * code between fork and exec). Its parent half then stays behind as the container's monitor.
 *
 * Usage: berth-launch PLANFILE        (status channel on fd 3 when it is open; see below)
 *
 * Plan format (line oriented, versioned). First line `berth-plan 1`. Every other line is
 * `KEY VALUE`, VALUE split into fields on TAB; in every field `\\` `\n` `\t` stand for backslash,
 * newline and tab. Keys (see core/launcher/plan.ts, the only writer):
 *   state-dir P | log P | log-max-size BYTES | log-max-files N | namespace pid|mount|uts|ipc|net|cgroup|user
 *   join TYPE\tPATH
 *   rootfs P | readonly-rootfs | mount DEST\tTYPE\tSOURCE\tOPT,OPT | device PATH\tc|b\tMAJ\tMIN\tMODE8\tUID\tGID
 *   symlink TARGET\tPATH | mask P | readonly P | hostname H | loopback-up | rlimit RES\tSOFT\tHARD (-1 = inf)
 *   caps HEX | no-new-privileges | uid N | gid N | group N | cwd P | arg A | env K=V | terminal
 *   console-size ROWS\tCOLS | stdin | stdin-once | oom-cgroup DIR
 *   seccomp HEX   (a classic-BPF filter, 16 hex digits per struct sock_filter in memory order)
 *   session-keyring NAME   (the child joins this session keyring, runc's `_ses.<container id>`)
 *
 * Status channel (fd 3, a socket or pipe pair from berthd), one line each:
 *   launcher -> berthd: `pid N` (child cloned, waiting), `started N` (exec done; N = final pid),
 *                       `error MESSAGE` (start failed; the monitor then exits)
 *   berthd -> launcher: `go` (attach done: continue), anything else or EOF: kill the child, exit.
 *
 * Monitor (parent half, double-forked into its own session, child subreaper):
 *   <state>/runtime.json  {"pid","monitorPid","pidStartTime","monitorStartTime","startedAt"} after exec
 *   <state>/exit          {"exitCode","signal","oomKilled","finishedAt","error"} written tmp + rename,
 *                         after the child exited and its output drained
 *   <log>                 Docker json-file: {"log":"line\n","stream":"stdout","time":"RFC3339Nano"}.
 *                         With log-max-size, an entry that would take the file past it rotates first,
 *                         as dockerd does: <log> -> <log>.1 -> ... -> <log>.(N-1), the oldest dropped;
 *                         with log-max-files 1 the file is truncated in place.
 *   <state>/attach.sock   SOCK_STREAM, exists while the container runs. Frames both ways are
 *                         [1 byte type][4 byte big-endian length][payload].
 *       client -> monitor: 0 stdin data, 1 close stdin, 2 resize (u16 rows, u16 cols BE),
 *                          3 signal (u32 BE signal number; sent through a pidfd)
 *       monitor -> client: 4 ready (empty: first on every accepted connection), or instead
 *                          5 refused (payload: why; the monitor already serves MAX_CLIENTS),
 *                          1 stdout, 2 stderr (with a terminal everything is 1),
 *                          3 exit (payload: the exit file's JSON), then the monitor closes.
 *       The container never waits for a client: a client with CLIENT_BACKLOG_MAX bytes not yet
 *       read misses output until it catches up (the log keeps everything).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/keyctl.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif
#ifndef OPEN_TREE_CLOEXEC
#define OPEN_TREE_CLOEXEC O_CLOEXEC
#endif
#ifndef MOVE_MOUNT_F_EMPTY_PATH
#define MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#endif
#ifndef MOVE_MOUNT_T_EMPTY_PATH
#define MOVE_MOUNT_T_EMPTY_PATH 0x00000040
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif
#ifndef PR_SET_CHILD_SUBREAPER
#define PR_SET_CHILD_SUBREAPER 36
#endif

#define STATUS_FD 3
#define MAX_CLIENTS 1024                /* attach connections per monitor; one more is refused */
#define CLIENT_BACKLOG_MAX (1u << 20)   /* unread output kept per attach client */
#define FRAME_EXIT 3
#define FRAME_READY 4
#define FRAME_REFUSED 5
#define CHUNK 4096
#define LINE_MAX_BYTES 16384 /* Docker splits log lines at 16 KiB too */

/* ---------------------------------------------------------------- plan */

struct mountspec { char *dest, *type, *src, *opts; int srcfd; };
struct devspec { char *path; char kind; unsigned maj, min, mode; uid_t uid; gid_t gid; };
struct linkspec { char *target, *path; };
struct rlimspec { int res; rlim_t soft, hard; };
struct joinspec { int nstype; char *path; };

#define LIST(T, name) T *name; int n_##name
struct plan {
  char *state_dir, *log_path, *rootfs, *hostname, *cwd, *oom_cgroup;
  long long log_max_size; /* bytes; 0: the log grows without rotation */
  int log_max_files;
  int clone_flags, new_cgroupns, new_userns, readonly_rootfs, loopback_up, nnp;
  int have_caps, terminal, open_stdin, stdin_once, rows, cols;
  uint64_t caps;
  uid_t uid;
  gid_t gid;
  LIST(gid_t, groups);
  LIST(struct joinspec, joins);
  LIST(struct mountspec, mounts);
  LIST(struct devspec, devices);
  LIST(struct linkspec, links);
  LIST(char *, masked);
  LIST(char *, ro_paths);
  LIST(struct rlimspec, rlimits);
  LIST(char *, args);
  LIST(char *, env);
  struct sock_filter *filter; /* seccomp: installed last before exec (see child_main) */
  int n_filter;
  char *session_keyring; /* joined in the child, so keys never reach berthd's or another container's */
  char *pid_namespace;   /* another container's pid namespace, for the child only (a pod's, pid=POD) */
};
static struct plan P;

#define PUSH(list, value)                                                           \
  do {                                                                              \
    P.list = realloc(P.list, sizeof(*P.list) * (size_t)(P.n_##list + 2));          \
    if (!P.list) die("out of memory");                                              \
    P.list[P.n_##list++] = (value);                                                 \
  } while (0)

static int status_fd = -1;

static void status_line(const char *fmt, ...) {
  if (status_fd < 0) return;
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if (n > (int)sizeof buf - 2) n = sizeof buf - 2;
  for (int i = 0; i < n; i++) if (buf[i] == '\n') buf[i] = ' ';
  buf[n++] = '\n';
  if (write(status_fd, buf, (size_t)n) < 0) { /* berthd went away: nothing to tell */ }
}

static void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void die(const char *fmt, ...) {
  char buf[900];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  status_line("error %s", buf);
  fprintf(stderr, "berth-launch: %s\n", buf);
  exit(1);
}

/* Unescape one field in place: \\ \n \t. */
static char *unescape(char *s) {
  char *r = s, *w = s;
  while (*r) {
    if (*r == '\\' && r[1]) {
      r++;
      *w++ = *r == 'n' ? '\n' : *r == 't' ? '\t' : *r;
      r++;
    } else {
      *w++ = *r++;
    }
  }
  *w = 0;
  return s;
}

static int split_fields(char *value, char **fields, int max) {
  int n = 0;
  char *p = value;
  while (n < max) {
    fields[n++] = p;
    char *tab = strchr(p, '\t');
    if (!tab) break;
    *tab = 0;
    p = tab + 1;
  }
  for (int i = 0; i < n; i++) unescape(fields[i]);
  return n;
}

static long long num(const char *key, const char *s) {
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 0);
  if (errno || end == s || *end) die("plan: %s: not a number: %s", key, s);
  return v;
}

static int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* `seccomp HEX`: the bytes of a struct sock_filter array as they lie in memory. The kernel checks
 * the program itself when it is installed; this only checks that it is one. */
static void parse_seccomp(const char *hex, int lineno) {
  size_t len = strlen(hex);
  if (P.filter) die("seccomp: a second filter on line %d (the plan may hold one)", lineno);
  if (!len || len % (2 * sizeof(struct sock_filter)))
    die("seccomp: the filter on line %d is %zu hex digits, not a whole number of %zu-digit instructions",
        lineno, len, 2 * sizeof(struct sock_filter));
  if (len / (2 * sizeof(struct sock_filter)) > BPF_MAXINSNS)
    die("seccomp: the filter on line %d has more than %d instructions", lineno, BPF_MAXINSNS);
  unsigned char *bytes = malloc(len / 2);
  if (!bytes) die("out of memory");
  for (size_t i = 0; i < len; i += 2) {
    int hi = hex_digit(hex[i]), lo = hex_digit(hex[i + 1]);
    if (hi < 0 || lo < 0) die("seccomp: the filter on line %d is not hex (`%c` at digit %zu)", lineno, hi < 0 ? hex[i] : hex[i + 1], hi < 0 ? i : i + 1);
    bytes[i / 2] = (unsigned char)(hi << 4 | lo);
  }
  P.filter = (struct sock_filter *)bytes;
  P.n_filter = (int)(len / (2 * sizeof(struct sock_filter)));
}

static int ns_flag(const char *name) {
  if (!strcmp(name, "pid")) return CLONE_NEWPID;
  if (!strcmp(name, "mount") || !strcmp(name, "mnt")) return CLONE_NEWNS;
  if (!strcmp(name, "uts")) return CLONE_NEWUTS;
  if (!strcmp(name, "ipc")) return CLONE_NEWIPC;
  if (!strcmp(name, "net") || !strcmp(name, "network")) return CLONE_NEWNET;
  if (!strcmp(name, "cgroup")) return CLONE_NEWCGROUP;
  if (!strcmp(name, "user")) return CLONE_NEWUSER;
  return 0;
}

static void parse_plan(const char *file) {
  int fd = open(file, O_RDONLY | O_CLOEXEC);
  if (fd < 0) die("plan %s: %s", file, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) < 0 || st.st_size > (1 << 20)) die("plan %s: unreadable or larger than 1 MiB", file);
  char *buf = malloc((size_t)st.st_size + 1);
  if (!buf) die("out of memory");
  size_t got = 0;
  while (got < (size_t)st.st_size) {
    ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
    if (r <= 0) die("plan %s: read: %s", file, r < 0 ? strerror(errno) : "short");
    got += (size_t)r;
  }
  close(fd);
  buf[got] = 0;
  if (strlen(buf) != got) die("plan %s: contains a NUL byte", file);

  P.uid = 0;
  P.gid = 0;
  char *line = buf, *next;
  int lineno = 0;
  for (; line && *line; line = next) {
    next = strchr(line, '\n');
    if (next) *next++ = 0;
    lineno++;
    if (lineno == 1) {
      if (strcmp(line, "berth-plan 1")) die("plan %s: first line must be `berth-plan 1`, got `%.40s`", file, line);
      continue;
    }
    if (!*line) continue;
    char *key = line, *value = strchr(line, ' ');
    if (value) *value++ = 0; else value = key + strlen(key);
    char *f[8];
    int nf;
#define ONE() (nf = split_fields(value, f, 8), f[0])
    if (!strcmp(key, "state-dir")) P.state_dir = ONE();
    else if (!strcmp(key, "log")) P.log_path = ONE();
    else if (!strcmp(key, "log-max-size")) P.log_max_size = num(key, ONE());
    else if (!strcmp(key, "log-max-files")) P.log_max_files = (int)num(key, ONE());
    else if (!strcmp(key, "rootfs")) P.rootfs = ONE();
    else if (!strcmp(key, "hostname")) P.hostname = ONE();
    else if (!strcmp(key, "cwd")) P.cwd = ONE();
    else if (!strcmp(key, "oom-cgroup")) P.oom_cgroup = ONE();
    else if (!strcmp(key, "session-keyring")) P.session_keyring = ONE();
    else if (!strcmp(key, "pid-namespace")) P.pid_namespace = ONE();
    else if (!strcmp(key, "arg")) PUSH(args, ONE());
    else if (!strcmp(key, "env")) PUSH(env, ONE());
    else if (!strcmp(key, "mask")) PUSH(masked, ONE());
    else if (!strcmp(key, "readonly")) PUSH(ro_paths, ONE());
    else if (!strcmp(key, "readonly-rootfs")) P.readonly_rootfs = 1;
    else if (!strcmp(key, "loopback-up")) P.loopback_up = 1;
    else if (!strcmp(key, "no-new-privileges")) P.nnp = 1;
    else if (!strcmp(key, "terminal")) P.terminal = 1;
    else if (!strcmp(key, "stdin")) P.open_stdin = 1;
    else if (!strcmp(key, "stdin-once")) P.stdin_once = 1;
    else if (!strcmp(key, "uid")) P.uid = (uid_t)num(key, ONE());
    else if (!strcmp(key, "gid")) P.gid = (gid_t)num(key, ONE());
    else if (!strcmp(key, "group")) PUSH(groups, (gid_t)num(key, ONE()));
    else if (!strcmp(key, "caps")) {
      char *end;
      (void)ONE();
      errno = 0;
      P.caps = strtoull(f[0], &end, 16);
      if (errno || *end || end == f[0]) die("plan: caps: not a hex mask: %s", f[0]);
      P.have_caps = 1;
    } else if (!strcmp(key, "namespace")) {
      int flag = ns_flag(ONE());
      if (!flag) die("plan: unknown namespace %s", f[0]);
      if (flag == CLONE_NEWCGROUP) P.new_cgroupns = 1; /* unshared after attach (see child) */
      else P.clone_flags |= flag;
      if (flag == CLONE_NEWUSER) P.new_userns = 1;
    } else if (!strcmp(key, "join")) {
      nf = split_fields(value, f, 8);
      if (nf != 2) die("plan: join needs TYPE and PATH");
      int flag = ns_flag(f[0]);
      if (!flag) die("plan: unknown namespace %s", f[0]);
      PUSH(joins, ((struct joinspec){flag, f[1]}));
    } else if (!strcmp(key, "mount")) {
      nf = split_fields(value, f, 8);
      if (nf != 4) die("plan: mount needs DEST TYPE SOURCE OPTIONS (line %d)", lineno);
      PUSH(mounts, ((struct mountspec){f[0], f[1], f[2], f[3], -1}));
    } else if (!strcmp(key, "device")) {
      nf = split_fields(value, f, 8);
      if (nf != 7 || (f[1][0] != 'c' && f[1][0] != 'b')) die("plan: bad device line %d", lineno);
      PUSH(devices, ((struct devspec){f[0], f[1][0], (unsigned)num(key, f[2]), (unsigned)num(key, f[3]),
                                      (unsigned)strtoul(f[4], NULL, 8), (uid_t)num(key, f[5]),
                                      (gid_t)num(key, f[6])}));
    } else if (!strcmp(key, "symlink")) {
      nf = split_fields(value, f, 8);
      if (nf != 2) die("plan: symlink needs TARGET and PATH");
      PUSH(links, ((struct linkspec){f[0], f[1]}));
    } else if (!strcmp(key, "rlimit")) {
      nf = split_fields(value, f, 8);
      if (nf != 3) die("plan: rlimit needs RESOURCE SOFT HARD");
      long long s = num(key, f[1]), h = num(key, f[2]);
      PUSH(rlimits, ((struct rlimspec){(int)num(key, f[0]), s < 0 ? RLIM_INFINITY : (rlim_t)s,
                                       h < 0 ? RLIM_INFINITY : (rlim_t)h}));
    } else if (!strcmp(key, "seccomp")) {
      parse_seccomp(ONE(), lineno);
    } else if (!strcmp(key, "console-size")) {
      nf = split_fields(value, f, 8);
      if (nf != 2) die("plan: console-size needs ROWS COLS");
      P.rows = (int)num(key, f[0]);
      P.cols = (int)num(key, f[1]);
    } else die("plan %s: unknown key `%.40s` on line %d", file, key, lineno);
#undef ONE
  }
  if (lineno == 0) die("plan %s: empty", file);
  if (!P.state_dir || P.state_dir[0] != '/') die("plan: state-dir missing or not absolute");
  if (P.n_args == 0) die("plan: no arg (the process to run)");
  if (P.log_max_size < 0 || P.log_max_files < 0) die("plan: log-max-size and log-max-files must not be negative");
  if (!P.log_max_files) P.log_max_files = 1;
  if (!P.n_joins && (!P.rootfs || P.rootfs[0] != '/')) die("plan: rootfs missing or not absolute");
  if (!P.cwd) P.cwd = "/";
  if (P.cwd[0] != '/') die("plan: cwd %s is not absolute", P.cwd);
  if (P.args) P.args[P.n_args] = NULL;
  if (!P.env) PUSH(env, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  P.env[P.n_env] = NULL;
}

/* ---------------------------------------------------------------- small helpers */

static int write_all(int fd, const void *buf, size_t len) {
  const char *p = buf;
  while (len) {
    ssize_t w = write(fd, p, len);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += w;
    len -= (size_t)w;
  }
  return 0;
}

/* RFC 3339 with nanoseconds, trailing zeros trimmed like Go's RFC3339Nano. */
static void rfc3339nano(char *out, size_t size) {
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  size_t n = strftime(out, size, "%Y-%m-%dT%H:%M:%S", &tm);
  if (ts.tv_nsec) {
    char frac[16];
    snprintf(frac, sizeof frac, ".%09ld", ts.tv_nsec);
    size_t len = strlen(frac);
    while (frac[len - 1] == '0') frac[--len] = 0;
    snprintf(out + n, size - n, "%sZ", frac);
  } else {
    snprintf(out + n, size - n, "Z");
  }
}

/* Field 22 of /proc/PID/stat: the start time, so readers can tell a recycled pid. */
static unsigned long long proc_start_time(pid_t pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return 0;
  buf[n] = 0;
  char *p = strrchr(buf, ')');
  if (!p) return 0;
  p += 2; /* field 3 */
  for (int field = 3; field < 22 && p; field++) {
    p = strchr(p, ' ');
    if (p) p++;
  }
  return p ? strtoull(p, NULL, 10) : 0;
}

/* Write a file atomically: tmp + fsync + rename, so readers never see half of it. */
static int write_atomic(const char *dir, const char *name, const char *content) {
  char tmp[PATH_MAX], final[PATH_MAX];
  snprintf(tmp, sizeof tmp, "%s/.%s.tmp", dir, name);
  snprintf(final, sizeof final, "%s/%s", dir, name);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return -1;
  int rc = write_all(fd, content, strlen(content));
  if (fsync(fd) < 0) rc = -1;
  close(fd);
  if (rc == 0) rc = rename(tmp, final);
  return rc;
}

/* oom_kill counter of a memory cgroup: memory.events (v2) or memory.oom_control (v1). */
static long oom_kills(const char *dir) {
  if (!dir) return -1;
  const char *files[] = {"memory.events", "memory.oom_control"};
  for (int i = 0; i < 2; i++) {
    char path[PATH_MAX], buf[1024];
    snprintf(path, sizeof path, "%s/%s", dir, files[i]);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) continue;
    buf[n] = 0;
    char *p = strstr(buf, "oom_kill ");
    if (p) return strtol(p + 9, NULL, 10);
  }
  return -1;
}

/* ---------------------------------------------------------------- child side */

static int err_fd = -1;

static void child_fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void child_fail(const char *fmt, ...) {
  char buf[1024];
  int saved = errno;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n > 0 && saved && n < (int)sizeof buf - 4)
    snprintf(buf + n, sizeof buf - (size_t)n, ": %s", strerror(saved));
  if (write_all(err_fd, buf, strlen(buf)) < 0) { /* monitor gone */ }
  _exit(127);
}

static int openat2_in_root(int rootfd, const char *path, int flags) {
  struct open_how how = {.flags = (uint64_t)(flags | O_CLOEXEC),
                         .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
  while (*path == '/') path++;
  if (!*path) path = ".";
  return (int)syscall(SYS_openat2, rootfd, path, &how, sizeof how);
}

/* Create PATH (a directory, or an empty file when !dir) inside the root, resolving every
 * component inside it (symlinks cannot lead out), and return an O_PATH fd to it. */
static int make_in_root(int rootfd, const char *path, int dir) {
  int fd = openat2_in_root(rootfd, path, O_PATH);
  if (fd >= 0) return fd;
  if (errno != ENOENT) return -1;
  char parent[PATH_MAX];
  snprintf(parent, sizeof parent, "%s", path);
  char *slash = strrchr(parent, '/');
  const char *base = path;
  if (slash) {
    *slash = 0;
    base = slash + 1;
  } else {
    parent[0] = 0;
  }
  if (!*base || !strcmp(base, "..") || !strcmp(base, ".")) {
    errno = EINVAL;
    return -1;
  }
  int pfd = make_in_root(rootfd, parent, 1);
  if (pfd < 0) return -1;
  /* O_PATH fds cannot be used with mkdirat; reopen the parent as a real directory. */
  char proc[64];
  snprintf(proc, sizeof proc, "/proc/self/fd/%d", pfd);
  int dfd = open(proc, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  close(pfd);
  if (dfd < 0) return -1;
  int rc;
  if (dir) {
    rc = mkdirat(dfd, base, 0755);
  } else {
    rc = openat(dfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (rc >= 0) close(rc), rc = 0;
  }
  if (rc < 0 && errno != EEXIST) {
    close(dfd);
    return -1;
  }
  close(dfd);
  return openat2_in_root(rootfd, path, O_PATH);
}

struct mflag { const char *name; int clear; unsigned long flag; };
static const struct mflag mount_flags[] = {
    {"ro", 0, MS_RDONLY},       {"rw", 1, MS_RDONLY},         {"nosuid", 0, MS_NOSUID},
    {"suid", 1, MS_NOSUID},     {"nodev", 0, MS_NODEV},       {"dev", 1, MS_NODEV},
    {"noexec", 0, MS_NOEXEC},   {"exec", 1, MS_NOEXEC},       {"sync", 0, MS_SYNCHRONOUS},
    {"noatime", 0, MS_NOATIME}, {"relatime", 0, MS_RELATIME}, {"strictatime", 0, MS_STRICTATIME},
    {"nodiratime", 0, MS_NODIRATIME}, {"bind", 0, MS_BIND},   {"rbind", 0, MS_BIND | MS_REC},
    {NULL, 0, 0}};
static const struct mflag prop_flags[] = {
    {"private", 0, MS_PRIVATE},   {"rprivate", 0, MS_PRIVATE | MS_REC}, {"slave", 0, MS_SLAVE},
    {"rslave", 0, MS_SLAVE | MS_REC}, {"shared", 0, MS_SHARED}, {"rshared", 0, MS_SHARED | MS_REC},
    {NULL, 0, 0}};

static void parse_mount_opts(char *opts, unsigned long *flags, unsigned long *prop, char *data, size_t size) {
  *flags = 0;
  *prop = 0;
  data[0] = 0;
  for (char *o = strtok(opts, ","); o; o = strtok(NULL, ",")) {
    int known = 0;
    for (const struct mflag *m = mount_flags; m->name; m++)
      if (!strcmp(o, m->name)) {
        if (m->clear) *flags &= ~m->flag; else *flags |= m->flag;
        known = 1;
      }
    for (const struct mflag *m = prop_flags; m->name; m++)
      if (!strcmp(o, m->name)) *prop |= m->flag, known = 1;
    if (!known) {
      size_t len = strlen(data);
      snprintf(data + len, size - len, "%s%s", len ? "," : "", o);
    }
  }
}

/* Flags a remount must keep: in a user namespace they are locked, and dropping them is EPERM. */
static unsigned long locked_flags(const char *path) {
  struct statvfs sv;
  unsigned long f = 0;
  if (statvfs(path, &sv) < 0) return 0;
  if (sv.f_flag & ST_NOSUID) f |= MS_NOSUID;
  if (sv.f_flag & ST_NODEV) f |= MS_NODEV;
  if (sv.f_flag & ST_NOEXEC) f |= MS_NOEXEC;
  if (sv.f_flag & ST_NOATIME) f |= MS_NOATIME;
  if (sv.f_flag & ST_NODIRATIME) f |= MS_NODIRATIME;
  if (sv.f_flag & ST_RELATIME) f |= MS_RELATIME;
  return f;
}

static void do_mounts(int rootfd) {
  for (int i = 0; i < P.n_mounts; i++) {
    struct mountspec *m = &P.mounts[i];
    unsigned long flags, prop;
    char data[4096], opts[4096];
    snprintf(opts, sizeof opts, "%s", m->opts);
    parse_mount_opts(opts, &flags, &prop, data, sizeof data);
    int bind = (flags & MS_BIND) != 0;
    int dir = 1;
    if (bind) {
      /* The monitor cloned the source into a detached mount (open_tree) as host root: in a
       * user namespace the child may not reach it by path (a 0700 state dir, say). */
      struct stat st;
      if (m->srcfd < 0 || fstat(m->srcfd, &st) < 0) child_fail("mount %s: bind source %s", m->dest, m->src);
      dir = S_ISDIR(st.st_mode);
    }
    int fd = make_in_root(rootfd, m->dest, dir);
    if (fd < 0) child_fail("mount %s: create the mount point in the rootfs", m->dest);
    char target[64];
    snprintf(target, sizeof target, "/proc/self/fd/%d", fd);
    if (bind) {
      if (syscall(SYS_move_mount, m->srcfd, "", fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
        child_fail("mount %s: bind %s", m->dest, m->src);
      close(m->srcfd);
    } else if (mount(m->src, target, m->type, flags, data[0] ? data : NULL) < 0) {
      child_fail("mount %s: %s (%s)", m->dest, m->type, data);
    }
    close(fd);
    if (!bind && !prop) continue;
    /* Reopen: the old fd points below the new mount, not at it. */
    fd = openat2_in_root(rootfd, m->dest, O_PATH);
    if (fd < 0) child_fail("mount %s: reopen", m->dest);
    snprintf(target, sizeof target, "/proc/self/fd/%d", fd);
    unsigned long extra = flags & ~(MS_BIND | MS_REC);
    if (bind && extra &&
        mount(NULL, target, NULL, MS_BIND | MS_REMOUNT | extra | locked_flags(target), NULL) < 0)
      child_fail("mount %s: remount with options %s", m->dest, m->opts);
    if (prop && mount(NULL, target, NULL, prop, NULL) < 0) child_fail("mount %s: propagation", m->dest);
    close(fd);
  }
}

static void do_devices(int rootfd) {
  for (int i = 0; i < P.n_devices; i++) {
    struct devspec *d = &P.devices[i];
    char parent[PATH_MAX];
    snprintf(parent, sizeof parent, "%s", d->path);
    char *slash = strrchr(parent, '/');
    if (!slash || !slash[1]) child_fail("device %s: bad path", d->path);
    *slash = 0;
    const char *base = slash + 1;
    int pfd = make_in_root(rootfd, parent[0] ? parent : "/", 1);
    if (pfd < 0) child_fail("device %s: parent directory", d->path);
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", pfd);
    int dfd = open(proc, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    close(pfd);
    if (dfd < 0) child_fail("device %s: open parent", d->path);
    mode_t type = d->kind == 'b' ? S_IFBLK : S_IFCHR;
    if (mknodat(dfd, base, type | (d->mode & 07777), makedev(d->maj, d->min)) == 0) {
      if (fchownat(dfd, base, d->uid, d->gid, AT_SYMLINK_NOFOLLOW) < 0) child_fail("device %s: chown", d->path);
    } else if (errno == EPERM) {
      /* In a user namespace mknod is refused: bind the host's node instead (what runc does). */
      int f = openat(dfd, base, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
      if (f < 0) child_fail("device %s: create bind target", d->path);
      snprintf(proc, sizeof proc, "/proc/self/fd/%d", f);
      if (mount(d->path, proc, NULL, MS_BIND, NULL) < 0) child_fail("device %s: bind from host", d->path);
      close(f);
    } else if (errno != EEXIST) {
      child_fail("device %s: mknod", d->path);
    }
    close(dfd);
  }
}

static void do_symlinks(int rootfd) {
  for (int i = 0; i < P.n_links; i++) {
    struct linkspec *l = &P.links[i];
    char parent[PATH_MAX];
    snprintf(parent, sizeof parent, "%s", l->path);
    char *slash = strrchr(parent, '/');
    if (!slash || !slash[1]) child_fail("symlink %s: bad path", l->path);
    *slash = 0;
    int pfd = make_in_root(rootfd, parent[0] ? parent : "/", 1);
    if (pfd < 0) child_fail("symlink %s: parent directory", l->path);
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", pfd);
    int dfd = open(proc, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    close(pfd);
    if (dfd < 0) child_fail("symlink %s: open parent", l->path);
    if (symlinkat(l->target, dfd, slash + 1) < 0 && errno != EEXIST) child_fail("symlink %s", l->path);
    close(dfd);
  }
}

static void refuse_symlink(int rootfd, const char *name) {
  struct stat st;
  if (fstatat(rootfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)) {
    errno = 0;
    child_fail("rootfs %s: /%s is a symlink; refusing to mount over it", P.rootfs, name);
  }
}

static void setup_rootfs(void) {
  /* Nothing we mount may propagate back to the host. */
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) child_fail("make / private");
  /* pivot_root needs the new root to be a mount point. */
  if (mount(P.rootfs, P.rootfs, NULL, MS_BIND | MS_REC, NULL) < 0) child_fail("bind rootfs %s", P.rootfs);
  int rootfd = open(P.rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0) child_fail("open rootfs %s", P.rootfs);
  refuse_symlink(rootfd, "proc");
  refuse_symlink(rootfd, "sys");
  do_mounts(rootfd);
  do_devices(rootfd);
  do_symlinks(rootfd);
  if (chdir(P.rootfs) < 0) child_fail("chdir rootfs %s", P.rootfs);
  if (syscall(SYS_pivot_root, ".", ".") < 0) child_fail("pivot_root %s", P.rootfs);
  /* The old root now sits on top of the new one; detach it, never letting it propagate. */
  if (mount(NULL, ".", NULL, MS_SLAVE | MS_REC, NULL) < 0) child_fail("make old root slave");
  if (umount2(".", MNT_DETACH) < 0) child_fail("detach old root");
  if (chdir("/") < 0) child_fail("chdir /");
  close(rootfd);

  for (int i = 0; i < P.n_ro_paths; i++) {
    const char *p = P.ro_paths[i];
    if (mount(p, p, NULL, MS_BIND | MS_REC, NULL) < 0) {
      if (errno == ENOENT) continue;
      child_fail("readonly path %s: bind", p);
    }
    if (mount(NULL, p, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | locked_flags(p), NULL) < 0)
      child_fail("readonly path %s: remount ro", p);
  }
  for (int i = 0; i < P.n_masked; i++) {
    const char *p = P.masked[i];
    struct stat st;
    if (lstat(p, &st) < 0) {
      if (errno == ENOENT) continue;
      child_fail("masked path %s", p);
    }
    int rc = S_ISDIR(st.st_mode) ? mount("tmpfs", p, "tmpfs", MS_RDONLY, "size=0k")
                                 : mount("/dev/null", p, NULL, MS_BIND, NULL);
    if (rc < 0 && errno != ENOENT) child_fail("masked path %s", p);
  }
  if (P.readonly_rootfs &&
      mount(NULL, "/", NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | locked_flags("/"), NULL) < 0)
    child_fail("remount rootfs read-only");
}

static void loopback_up(void) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) child_fail("loopback: socket");
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  snprintf(ifr.ifr_name, IFNAMSIZ, "lo");
  if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) child_fail("loopback: get flags");
  ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
  if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) child_fail("loopback: set up");
  close(s);
}

static int last_cap(void) {
  int fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
  char buf[16] = {0};
  if (fd >= 0) {
    if (read(fd, buf, sizeof buf - 1) < 0) buf[0] = 0;
    close(fd);
  }
  int n = atoi(buf);
  return n > 0 ? n : 40;
}

/* Send the pty master to the monitor over the console socket (SCM_RIGHTS). */
static void send_fd(int sock, int fd) {
  char byte = 'm';
  struct iovec iov = {&byte, 1};
  char ctl[CMSG_SPACE(sizeof(int))];
  memset(ctl, 0, sizeof ctl);
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof ctl};
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &fd, sizeof(int));
  if (sendmsg(sock, &msg, 0) < 0) child_fail("terminal: send master");
}

static void setup_terminal(int console_sock) {
  int master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (master < 0) child_fail("terminal: open /dev/ptmx");
  if (unlockpt(master) < 0) child_fail("terminal: unlockpt");
  char name[64];
  if (ptsname_r(master, name, sizeof name)) child_fail("terminal: ptsname");
  int slave = open(name, O_RDWR | O_NOCTTY);
  if (slave < 0) child_fail("terminal: open %s", name);
  if (P.rows > 0 && P.cols > 0) {
    struct winsize ws = {.ws_row = (unsigned short)P.rows, .ws_col = (unsigned short)P.cols};
    ioctl(slave, TIOCSWINSZ, &ws);
  }
  send_fd(console_sock, master);
  close(master);
  close(console_sock);
  if (setsid() < 0) child_fail("terminal: setsid");
  if (ioctl(slave, TIOCSCTTY, 0) < 0) child_fail("terminal: TIOCSCTTY");
  for (int i = 0; i < 3; i++)
    if (dup2(slave, i) < 0) child_fail("terminal: dup2");
  if (slave > 2) close(slave);
}

/* seccomp(SECCOMP_SET_MODE_FILTER, TSYNC) (prctl on kernels before 3.17). Where it goes is runc's
 * choice (libcontainer/standard_init_linux.go): with no_new_privs, as late as possible, right
 * before exec, so the fewest of our own syscalls run under the filter; without no_new_privs the
 * kernel asks for CAP_SYS_ADMIN, so before the capabilities are dropped, and the syscalls that
 * follow (capset, setresuid, chdir, close_range, execve ...) must be ones the filter allows. */
static void install_seccomp(void) {
  struct sock_fprog prog = {(unsigned short)P.n_filter, P.filter};
  long rc = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog);
  if (rc < 0 && errno == ENOSYS) rc = prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0);
  if (rc > 0) {
    errno = 0;
    child_fail("seccomp: thread %ld could not take the filter", rc);
  }
  if (rc < 0) child_fail("seccomp: install the filter (%d instructions)", P.n_filter);
}

static void drop_privileges(void) {
  struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2];
  memset(data, 0, sizeof data);
  if (syscall(SYS_capget, &hdr, data) < 0) child_fail("capget");
  uint64_t have = ((uint64_t)data[1].permitted << 32) | data[0].permitted;
  uint64_t keep = P.have_caps ? P.caps & have : have;

  int last = last_cap();
  for (int cap = 0; cap <= last; cap++)
    if (!(keep & (1ULL << cap)) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
      child_fail("drop capability %d from the bounding set", cap);

  if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0) child_fail("keepcaps");
  if (setgroups((size_t)P.n_groups, P.groups) < 0) child_fail("setgroups");
  if (setresgid(P.gid, P.gid, P.gid) < 0) child_fail("setgid %u", (unsigned)P.gid);
  if (setresuid(P.uid, P.uid, P.uid) < 0) child_fail("setuid %u", (unsigned)P.uid);
  prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);

  /* Docker's shape: effective = permitted = the kept set, inheritable and ambient empty
   * (so a non-root process loses them at exec, as with Docker). */
  memset(data, 0, sizeof data);
  data[0].effective = data[0].permitted = (uint32_t)keep;
  data[1].effective = data[1].permitted = (uint32_t)(keep >> 32);
  if (syscall(SYS_capset, &hdr, data) < 0) child_fail("capset");
  prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
  if (P.nnp && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) child_fail("no_new_privs");
}

static const char *env_get(const char *name) {
  size_t len = strlen(name);
  for (int i = 0; i < P.n_env; i++)
    if (!strncmp(P.env[i], name, len) && P.env[i][len] == '=') return P.env[i] + len + 1;
  return NULL;
}

/* PATH lookup inside the container with the plan's own PATH, then execve. */
static void exec_process(void) {
  const char *file = P.args[0];
  if (strchr(file, '/')) {
    execve(file, P.args, P.env);
    child_fail("exec: \"%s\"", file);
  }
  const char *path = env_get("PATH");
  if (!path) path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  int saw_eacces = 0;
  const char *p = path;
  while (1) {
    const char *colon = strchr(p, ':');
    size_t len = colon ? (size_t)(colon - p) : strlen(p);
    char full[PATH_MAX];
    snprintf(full, sizeof full, "%.*s/%s", (int)len, len ? p : ".", file);
    execve(full, P.args, P.env);
    if (errno == EACCES) saw_eacces = 1;
    else if (errno != ENOENT && errno != ENOTDIR) child_fail("exec: \"%s\"", full);
    if (!colon) break;
    p = colon + 1;
  }
  errno = saw_eacces ? EACCES : 0;
  if (saw_eacces) child_fail("exec: \"%s\": permission denied", file);
  child_fail("exec: \"%s\": executable file not found in $PATH", file);
}

static void join_namespaces(void) {
  /* Open every namespace first (/proc changes once the mount namespace is joined), then join:
   * user first (it grants the rights for the rest), mount last. */
  static const int order[] = {CLONE_NEWUSER, CLONE_NEWIPC, CLONE_NEWUTS, CLONE_NEWNET,
                              CLONE_NEWPID,  CLONE_NEWCGROUP, CLONE_NEWNS};
  int fds[16];
  for (int i = 0; i < P.n_joins; i++) {
    fds[i] = open(P.joins[i].path, O_RDONLY | O_CLOEXEC);
    if (fds[i] < 0) child_fail("join namespace %s", P.joins[i].path);
  }
  for (size_t o = 0; o < sizeof order / sizeof order[0]; o++)
    for (int i = 0; i < P.n_joins; i++)
      if (P.joins[i].nstype == order[o]) {
        if (setns(fds[i], order[o]) < 0) child_fail("setns %s", P.joins[i].path);
        close(fds[i]);
      }
}

/* runc's keyring step (libcontainer/standard_init_linux.go): join (or create) the named session
 * keyring, so the container does not share berthd's; a new one gets search permission for its
 * owner (`other` with a user namespace, whose root is not the owner's uid outside), so exec
 * sessions can join it too. Kernels without keyrings answer ENOSYS: nothing to separate then. */
static void join_session_keyring(void) {
  long id = syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, P.session_keyring);
  if (id < 0 && errno == ENOSYS) return;
  if (id < 0) child_fail("join session keyring %s", P.session_keyring);
  if (P.n_joins) return; /* an exec session joins the container's keyring as it is */
  char desc[256];
  long n = syscall(SYS_keyctl, KEYCTL_DESCRIBE, id, desc, sizeof desc - 1);
  if (n < 0) child_fail("describe session keyring %s", P.session_keyring);
  desc[n < (long)sizeof desc ? n : (long)sizeof desc - 1] = 0;
  /* "type;uid;gid;perm;description", perm in hex */
  char *perm = strchr(desc, ';');
  if (perm) perm = strchr(perm + 1, ';');
  if (perm) perm = strchr(perm + 1, ';');
  if (!perm) child_fail("session keyring %s: unexpected description", P.session_keyring);
  unsigned long bits = strtoul(perm + 1, NULL, 16) | (P.new_userns ? 0x8 /* KEY_OTH_SEARCH */ : 0x80000 /* KEY_USR_SEARCH */);
  if (syscall(SYS_keyctl, KEYCTL_SETPERM, id, bits) < 0) child_fail("set permissions of session keyring %s", P.session_keyring);
}

/* Runs in the cloned child; never returns. */
static void child_main(int sync_rd, int pid_wr, int console_sock, int in_fd, int out_fd, int errs_fd) {
  sigset_t none;
  sigemptyset(&none);
  for (int s = 1; s < NSIG; s++) signal(s, SIG_DFL);
  sigprocmask(SIG_SETMASK, &none, NULL);
  prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0); /* until exec: die with a monitor that dies early */
  umask(0);

  if (!P.terminal) {
    if (dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(errs_fd, 2) < 0) child_fail("stdio");
  }
  char go;
  if (read(sync_rd, &go, 1) != 1) _exit(1); /* berthd said no */
  close(sync_rd);

  if (P.n_joins) {
    join_namespaces();
    /* A joined pid namespace applies to children only: fork, hand the monitor the real pid. */
    pid_t pid = fork();
    if (pid < 0) child_fail("fork after setns");
    if (pid > 0) {
      if (write_all(pid_wr, &pid, sizeof pid) < 0) _exit(1);
      _exit(0);
    }
    close(pid_wr);
    /* Joining the mount namespace set our root to its root: nothing to mount or pivot. */
  } else {
    close(pid_wr);
    if (P.new_userns && (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0))
      child_fail("become root in the user namespace (were uid/gid maps written?)");
    /* After attach, so the cgroup namespace's root is the container's own cgroup. */
    if (P.new_cgroupns && unshare(CLONE_NEWCGROUP) < 0) child_fail("unshare cgroup namespace");
    if (P.clone_flags & CLONE_NEWNS) setup_rootfs();
    else if (P.rootfs && (chroot(P.rootfs) < 0 || chdir("/") < 0)) child_fail("chroot %s", P.rootfs);
  }
  if (P.session_keyring) join_session_keyring(); /* before seccomp, which refuses keyctl */
  if (P.hostname && sethostname(P.hostname, strlen(P.hostname)) < 0) child_fail("sethostname %s", P.hostname);
  if (P.loopback_up) loopback_up();
  if (P.terminal) setup_terminal(console_sock);
  for (int i = 0; i < P.n_rlimits; i++) {
    struct rlimit rl = {P.rlimits[i].soft, P.rlimits[i].hard};
    if (setrlimit(P.rlimits[i].res, &rl) < 0) child_fail("setrlimit %d", P.rlimits[i].res);
  }
  if (P.filter && !P.nnp) install_seccomp(); /* needs CAP_SYS_ADMIN: before it is dropped */
  drop_privileges();
  if (chdir(P.cwd) < 0) child_fail("cwd %s", P.cwd);
  struct stat st;
  if (stat(".", &st) < 0 || !S_ISDIR(st.st_mode)) child_fail("cwd %s is not a directory", P.cwd);
  umask(022);
  /* Nothing but stdio crosses exec. The error pipe is close-on-exec: EOF there means success. */
  if (syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
    for (int fd = 3; fd < 1024; fd++)
      if (fd != err_fd) fcntl(fd, F_SETFD, FD_CLOEXEC);
  }
  prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0);
  if (P.filter && P.nnp) install_seccomp(); /* the last step: nothing but execve runs under it */
  exec_process();
}

/* ---------------------------------------------------------------- monitor */

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
static int log_fd = -1;
static int stdin_wr = -1;         /* child's stdin (pipe write end or pty master) */
static unsigned char stdin_buf[CHUNK];
static size_t stdin_len;
static int stdin_close_pending;
static int pty_master = -1;

struct stream {
  int fd;
  const char *name;
  unsigned char id;
  char line[LINE_MAX_BYTES];
  size_t len;
};
static struct stream streams[2];

static void forward_signal(int sig) {
  if (child_pid <= 0) return;
  if (child_pidfd >= 0 && syscall(SYS_pidfd_send_signal, child_pidfd, sig, NULL, 0) == 0) return;
  if (child_pidfd < 0) kill(child_pid, sig);
}

/* --- json-file log */

/* One whole entry: every line byte escapes to at most 6 bytes, plus the stream and time. */
static char logbuf[LINE_MAX_BYTES * 6 + 128];
static size_t loglen;
static long long log_size;   /* bytes in the current log file */
static int log_rotatable;    /* a regular file (not /dev/null) and a max size to keep it under */

static void log_put(const char *s, size_t n) {
  memcpy(logbuf + loglen, s, n);
  loglen += n;
}

/* dockerd's json-file rotation: the current file becomes .1, .1 becomes .2 ..., the oldest goes;
 * with one file it is truncated in place. On failure the log goes on in the file it has. */
static void log_rotate(void) {
  if (P.log_max_files <= 1) {
    if (ftruncate(log_fd, 0) == 0) log_size = 0;
    return;
  }
  char from[PATH_MAX], to[PATH_MAX];
  for (int i = P.log_max_files - 1; i > 1; i--) {
    snprintf(from, sizeof from, "%s.%d", P.log_path, i - 1);
    snprintf(to, sizeof to, "%s.%d", P.log_path, i);
    if (rename(from, to) < 0 && errno != ENOENT) return;
  }
  snprintf(to, sizeof to, "%s.1", P.log_path);
  if (rename(P.log_path, to) < 0) return;
  int fd = open(P.log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) return;
  close(log_fd);
  log_fd = fd;
  log_size = 0;
}

static void log_write_entry(void) {
  if (log_rotatable && log_size > 0 && log_size + (long long)loglen > P.log_max_size) log_rotate();
  if (write_all(log_fd, logbuf, loglen) == 0) log_size += (long long)loglen;
  loglen = 0;
}

/* Length of a valid UTF-8 sequence at p (0 if invalid), like Go's encoder accepts. */
static int utf8_len(const unsigned char *p, size_t n) {
  unsigned c = p[0];
  int len;
  unsigned min;
  if (c < 0x80) return 1;
  if ((c & 0xe0) == 0xc0) len = 2, min = 0x80;
  else if ((c & 0xf0) == 0xe0) len = 3, min = 0x800;
  else if ((c & 0xf8) == 0xf0) len = 4, min = 0x10000;
  else return 0;
  if ((size_t)len > n) return 0;
  unsigned cp = c & (0x7f >> len);
  for (int i = 1; i < len; i++) {
    if ((p[i] & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (p[i] & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  return len;
}

static void log_entry(struct stream *s) {
  if (!s->len || log_fd < 0) return;
  static const char hex[] = "0123456789abcdef";
  log_put("{\"log\":\"", 8);
  const unsigned char *p = (const unsigned char *)s->line;
  size_t i = 0;
  while (i < s->len) {
    unsigned char c = p[i];
    char esc[8];
    if (c == '"' || c == '\\') esc[0] = '\\', esc[1] = (char)c, log_put(esc, 2), i++;
    else if (c == '\n') log_put("\\n", 2), i++;
    else if (c == '\r') log_put("\\r", 2), i++;
    else if (c == '\t') log_put("\\t", 2), i++;
    else if (c < 0x20 || c == '<' || c == '>' || c == '&') {
      /* Go's encoder also escapes <, > and & this way; match it byte for byte. */
      memcpy(esc, "\\u00", 4);
      esc[4] = hex[c >> 4];
      esc[5] = hex[c & 15];
      log_put(esc, 6);
      i++;
    } else {
      int n = utf8_len(p + i, s->len - i);
      if (n == 0) log_put("\\ufffd", 6), i++;
      else log_put((const char *)p + i, (size_t)n), i += (size_t)n;
    }
  }
  char tail[96];
  char now[48];
  rfc3339nano(now, sizeof now);
  int n = snprintf(tail, sizeof tail, "\",\"stream\":\"%s\",\"time\":\"%s\"}\n", s->name, now);
  log_put(tail, (size_t)n);
  log_write_entry();
  s->len = 0;
}

static void log_bytes(struct stream *s, const char *data, size_t n) {
  for (size_t i = 0; i < n; i++) {
    s->line[s->len++] = data[i];
    if (data[i] == '\n' || s->len == sizeof s->line) log_entry(s);
  }
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

static int listen_attach(void) {
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

static int recv_fd(int sock) {
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

static void write_exit(int status, int have_status, long oom_before, const char *error) {
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
  if (write_atomic(P.state_dir, "exit", json) < 0) fprintf(stderr, "berth-launch: write exit: %s\n", strerror(errno));
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

static int read_line(int fd, char *buf, size_t size) {
  size_t n = 0;
  while (n < size - 1) {
    ssize_t r = read(fd, buf + n, 1);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    if (buf[n] == '\n') break;
    n++;
  }
  buf[n] = 0;
  return (int)n;
}

int main(int argc, char **argv) {
  if (argc != 2 || argv[1][0] == '-') {
    fprintf(stderr, "usage: berth-launch PLANFILE  (status channel on fd 3)\n");
    return 2;
  }
  if (fcntl(STATUS_FD, F_GETFD) >= 0) {
    status_fd = STATUS_FD;
    fcntl(status_fd, F_SETFD, FD_CLOEXEC);
  }
  parse_plan(argv[1]);

  /* Double fork: the monitor is nobody's child but init's (or a subreaper's), in its own session,
   * so it outlives berthd and is not berthd's to reap. */
  pid_t first = fork();
  if (first < 0) die("fork: %s", strerror(errno));
  if (first > 0) _exit(0);
  setsid();
  if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0) die("subreaper: %s", strerror(errno));
  signal(SIGPIPE, SIG_IGN);
  if (chdir(P.state_dir) < 0) die("state dir %s: %s", P.state_dir, strerror(errno));
  int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (devnull < 0) die("/dev/null: %s", strerror(errno));
  dup2(devnull, 0);
  dup2(devnull, 1);
  /* stderr stays as berthd gave it until start is reported, then goes to /dev/null */

  char log_default[PATH_MAX];
  snprintf(log_default, sizeof log_default, "%s/container.log", P.state_dir);
  if (!P.log_path) P.log_path = log_default;
  log_fd = open(P.log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (log_fd < 0) die("log %s: %s", P.log_path, strerror(errno));
  struct stat log_st;
  if (fstat(log_fd, &log_st) == 0 && S_ISREG(log_st.st_mode)) log_size = log_st.st_size, log_rotatable = P.log_max_size > 0;

  int sync_p[2], err_p[2], pid_p[2], out_p[2] = {-1, -1}, errs_p[2] = {-1, -1}, in_p[2] = {-1, -1};
  int console[2] = {-1, -1};
  if (pipe2(sync_p, O_CLOEXEC) || pipe2(err_p, O_CLOEXEC) || pipe2(pid_p, O_CLOEXEC)) die("pipe: %s", strerror(errno));
  if (P.terminal) {
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, console)) die("socketpair: %s", strerror(errno));
  } else {
    if (pipe2(out_p, O_CLOEXEC) || pipe2(errs_p, O_CLOEXEC)) die("pipe: %s", strerror(errno));
    if (P.open_stdin) {
      if (pipe2(in_p, O_CLOEXEC)) die("pipe: %s", strerror(errno));
    } else {
      in_p[0] = devnull;
    }
  }
  for (int i = 0; i < P.n_mounts; i++) {
    char opts[4096], data[4096];
    unsigned long flags, prop;
    snprintf(opts, sizeof opts, "%s", P.mounts[i].opts);
    parse_mount_opts(opts, &flags, &prop, data, sizeof data);
    if (!(flags & MS_BIND)) continue;
    P.mounts[i].srcfd = (int)syscall(SYS_open_tree, AT_FDCWD, P.mounts[i].src,
                                     OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (flags & MS_REC ? AT_RECURSIVE : 0));
    if (P.mounts[i].srcfd < 0) die("mount %s: bind source %s: %s", P.mounts[i].dest, P.mounts[i].src, strerror(errno));
  }
  int listen_fd = listen_attach();
  long oom_before = oom_kills(P.oom_cgroup);

  sigset_t mask;
  sigemptyset(&mask);
  int forwarded[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH};
  for (size_t i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++) sigaddset(&mask, forwarded[i]);
  sigaddset(&mask, SIGCHLD);
  sigprocmask(SIG_BLOCK, &mask, NULL);

  err_fd = err_p[1];
  /* setns of a pid namespace applies to children only: the monitor stays in its own, and clone
   * returns the child's pid as the host sees it. */
  if (P.pid_namespace) {
    int ns = open(P.pid_namespace, O_RDONLY | O_CLOEXEC);
    if (ns < 0 || setns(ns, CLONE_NEWPID) < 0) die("pid namespace %s: %s", P.pid_namespace, strerror(errno));
    close(ns);
  }
  /* SIGCHLD in the flags: the monitor reaps it like a forked child. Raw clone: no stack needed. */
  pid_t pid = (pid_t)syscall(SYS_clone, (unsigned long)(P.n_joins ? 0 : P.clone_flags) | SIGCHLD, 0, 0, 0, 0);
  if (pid < 0) die("clone (namespaces 0x%x): %s", P.clone_flags, strerror(errno));
  if (pid == 0) {
    close(sync_p[1]);
    close(err_p[0]);
    close(pid_p[0]);
    close(listen_fd);
    if (console[0] >= 0) close(console[0]);
    child_main(sync_p[0], pid_p[1], console[1], in_p[0], out_p[1], errs_p[1]);
  }
  close(sync_p[0]);
  close(err_p[1]);
  close(pid_p[1]);
  if (console[1] >= 0) close(console[1]);
  if (out_p[1] >= 0) close(out_p[1]);
  if (errs_p[1] >= 0) close(errs_p[1]);
  if (in_p[0] >= 0 && in_p[0] != devnull) close(in_p[0]);
  child_pid = pid;
  /* Room for MAX_CLIENTS attach connections; the child was cloned with the limits it was given. */
  struct rlimit nofile;
  if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
    nofile.rlim_cur = nofile.rlim_max;
    setrlimit(RLIMIT_NOFILE, &nofile);
  }

  /* Wait for berthd's go-ahead: it attaches the waiting child (cgroups, id maps) meanwhile. */
  status_line("pid %d", (int)pid);
  char line[64];
  if (status_fd >= 0) {
    read_line(status_fd, line, sizeof line);
    if (strcmp(line, "go")) {
      kill(pid, SIGKILL);
      waitpid(pid, NULL, 0);
      unlink("attach.sock");
      fprintf(stderr, "berth-launch: no go-ahead from berthd (got `%s`)\n", line);
      return 1;
    }
  }
  if (write_all(sync_p[1], "g", 1) < 0) { /* child died: the error pipe tells why */ }
  close(sync_p[1]);

  if (P.n_joins) {
    /* The child forked once more after setns; adopt the grandchild (we are its subreaper). */
    pid_t real;
    ssize_t r = read(pid_p[0], &real, sizeof real);
    int st;
    waitpid(pid, &st, 0);
    if (r == sizeof real) child_pid = pid = real;
  }
  close(pid_p[0]);
  if (P.terminal) {
    pty_master = recv_fd(console[0]);
    close(console[0]);
  }
  /* The error pipe closes on exec; anything written to it is why the start failed. */
  char errbuf[1024];
  size_t errlen = 0;
  for (;;) {
    ssize_t r = read(err_p[0], errbuf + errlen, sizeof errbuf - 1 - errlen);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    errlen += (size_t)r;
    if (errlen == sizeof errbuf - 1) break;
  }
  errbuf[errlen] = 0;
  close(err_p[0]);
  if (errlen) {
    int st = 0;
    waitpid(pid, &st, 0);
    status_line("error %s", errbuf);
    unlink("attach.sock");
    write_exit(st, 0, -1, errbuf);
    return 1;
  }
  child_pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
  if (child_pidfd >= 0) fcntl(child_pidfd, F_SETFD, FD_CLOEXEC);

  char json[512], now[48];
  rfc3339nano(now, sizeof now);
  snprintf(json, sizeof json,
           "{\"pid\":%d,\"monitorPid\":%d,\"pidStartTime\":%llu,\"monitorStartTime\":%llu,\"startedAt\":\"%s\"}\n",
           (int)pid, (int)getpid(), proc_start_time(pid), proc_start_time(getpid()), now);
  if (write_atomic(P.state_dir, "runtime.json", json) < 0) die("write runtime.json: %s", strerror(errno));
  status_line("started %d", (int)pid);
  if (status_fd >= 0) close(status_fd);
  status_fd = -1;
  dup2(devnull, 2);

  int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) return 1;
  if (P.terminal) {
    streams[0] = (struct stream){.fd = pty_master, .name = "stdout", .id = 1};
    streams[1] = (struct stream){.fd = -1, .name = "stderr", .id = 2};
    stdin_wr = dup(pty_master);
    if (stdin_wr >= 0) fcntl(stdin_wr, F_SETFD, FD_CLOEXEC);
    pty_master = stdin_wr; /* writes and resizes go to this fd */
  } else {
    streams[0] = (struct stream){.fd = out_p[0], .name = "stdout", .id = 1};
    streams[1] = (struct stream){.fd = errs_p[0], .name = "stderr", .id = 2};
    stdin_wr = in_p[1];
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
  return 0;
}
