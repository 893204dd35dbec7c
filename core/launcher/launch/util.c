/* The status channel to berthd and small I/O helpers shared by the child and the monitor. */
#include "launcher.h"

int status_fd = -1;

void status_line(const char *fmt, ...) {
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

void die(const char *fmt, ...) {
  char buf[900];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  status_line("error %s", buf);
  fprintf(stderr, "berth-launch: %s\n", buf);
  exit(1);
}

int write_all(int fd, const void *buf, size_t len) {
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
void rfc3339nano(char *out, size_t size) {
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
unsigned long long proc_start_time(pid_t pid) {
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

/* Write a file atomically: tmp + rename, so readers never see half of it; `durable` fsyncs the
 * data first, for what must outlive a power loss. */
int write_atomic(const char *dir, const char *name, const char *content, int durable) {
  char tmp[PATH_MAX], final[PATH_MAX];
  snprintf(tmp, sizeof tmp, "%s/.%s.tmp", dir, name);
  snprintf(final, sizeof final, "%s/%s", dir, name);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return -1;
  int rc = write_all(fd, content, strlen(content));
  if (durable && fsync(fd) < 0) rc = -1;
  close(fd);
  if (rc == 0) rc = rename(tmp, final);
  return rc;
}

/* oom_kill counter of a memory cgroup: memory.events (v2) or memory.oom_control (v1). */
long oom_kills(const char *dir) {
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

int read_line(int fd, char *buf, size_t size) {
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

/* Whether PATH is on a mount with shared propagation (a `shared:N` tag in /proc/self/mountinfo):
 * 1 or 0, with that mount's mount point (mountinfo's escapes kept) in POINT; -1 when it cannot
 * tell (errno set). */
int on_shared_mount(const char *path, char *point, size_t size) {
  struct statx stx;
  if (statx(AT_FDCWD, path, 0, STATX_MNT_ID, &stx) < 0) return -1;
  if (!(stx.stx_mask & STATX_MNT_ID)) return errno = ENOSYS, -1;
  FILE *f = fopen("/proc/self/mountinfo", "re");
  if (!f) return -1;
  char *line = NULL;
  size_t cap = 0;
  int found = -1;
  while (found < 0 && getline(&line, &cap, f) > 0) {
    unsigned long long id;
    char mp[PATH_MAX];
    if (sscanf(line, "%llu %*u %*s %*s %4095s", &id, mp) != 2 || id != stx.stx_mnt_id) continue;
    snprintf(point, size, "%s", mp);
    /* The optional fields come before " - "; paths are escaped (no spaces), so " shared:" is one. */
    char *sep = strstr(line, " - ");
    if (sep) *sep = 0;
    found = strstr(line, " shared:") != NULL;
  }
  free(line);
  fclose(f);
  if (found < 0) errno = ENOENT;
  return found;
}
