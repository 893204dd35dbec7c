/* The container's json-file log, as dockerd writes it: one entry per line of output, escaped as Go's
 * JSON encoder escapes, rotated before an entry would take the file past log-max-size. */
#include "launcher.h"

static int log_fd = -1;

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

void log_entry(struct stream *s) {
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

void log_bytes(struct stream *s, const char *data, size_t n) {
  for (size_t i = 0; i < n; i++) {
    s->line[s->len++] = data[i];
    if (data[i] == '\n' || s->len == sizeof s->line) log_entry(s);
  }
}

/* The container's log: the plan's path or <state>/container.log, appended to (a restart keeps it). */
void monitor_open_log(void) {
  static char log_default[PATH_MAX]; /* P.log_path points here for the monitor's life */
  snprintf(log_default, sizeof log_default, "%s/container.log", P.state_dir);
  if (!P.log_path) P.log_path = log_default;
  log_fd = open(P.log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (log_fd < 0) die("log %s: %s", P.log_path, strerror(errno));
  struct stat log_st;
  if (fstat(log_fd, &log_st) == 0 && S_ISREG(log_st.st_mode)) log_size = log_st.st_size, log_rotatable = P.log_max_size > 0;
}
