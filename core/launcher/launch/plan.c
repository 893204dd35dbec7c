/* The launch plan reader: the line format documented in launcher.h, checked strictly. */
#include "launcher.h"

struct plan P;

#define PUSH(list, value)                                                           \
  do {                                                                              \
    P.list = realloc(P.list, sizeof(*P.list) * (size_t)(P.n_##list + 2));          \
    if (!P.list) die("out of memory");                                              \
    P.list[P.n_##list++] = (value);                                                 \
  } while (0)

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

void parse_plan(const char *file) {
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

/* ---------------------------------------------------------------- --print-plan */

static void json_string(FILE *out, const char *s) {
  if (!s) {
    fputs("null", out);
    return;
  }
  fputc('"', out);
  for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
    if (*c == '"' || *c == '\\') fprintf(out, "\\%c", *c);
    else if (*c < 0x20) fprintf(out, "\\u%04x", *c);
    else fputc(*c, out);
  }
  fputc('"', out);
}

static void json_strings(FILE *out, const char *key, char **list, int n) {
  fprintf(out, ",\"%s\":[", key);
  for (int i = 0; i < n; i++) {
    if (i) fputc(',', out);
    json_string(out, list[i]);
  }
  fputc(']', out);
}

static const char *ns_name(int flag) {
  switch (flag) {
    case CLONE_NEWPID: return "pid";
    case CLONE_NEWNS: return "mount";
    case CLONE_NEWUTS: return "uts";
    case CLONE_NEWIPC: return "ipc";
    case CLONE_NEWNET: return "net";
    case CLONE_NEWCGROUP: return "cgroup";
    case CLONE_NEWUSER: return "user";
  }
  return "?";
}

/* The plan as this program understood it, as one JSON object: what the tests compare with the
 * LaunchPlan core/launcher/plan.ts serialised, so the writer and this reader cannot drift apart. */
void print_plan(FILE *out) {
  static const int order[] = {CLONE_NEWPID, CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWNET, CLONE_NEWUSER};
  fputs("{\"stateDir\":", out);
  json_string(out, P.state_dir);
  fputs(",\"log\":", out);
  json_string(out, P.log_path);
  fprintf(out, ",\"logMaxSize\":%lld,\"logMaxFiles\":%d", P.log_max_size, P.log_max_files);
  fputs(",\"namespaces\":[", out);
  int first = 1;
  for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
    if (P.clone_flags & order[i]) fprintf(out, "%s\"%s\"", first ? "" : ",", ns_name(order[i])), first = 0;
  if (P.new_cgroupns) fprintf(out, "%s\"cgroup\"", first ? "" : ",");
  fputs("],\"joins\":[", out);
  for (int i = 0; i < P.n_joins; i++) {
    fprintf(out, "%s{\"type\":\"%s\",\"path\":", i ? "," : "", ns_name(P.joins[i].nstype));
    json_string(out, P.joins[i].path);
    fputc('}', out);
  }
  fputs("],\"rootfs\":", out);
  json_string(out, P.rootfs);
  fprintf(out, ",\"readonlyRootfs\":%s,\"mounts\":[", P.readonly_rootfs ? "true" : "false");
  for (int i = 0; i < P.n_mounts; i++) {
    struct mountspec *m = &P.mounts[i];
    const char *fields[] = {m->dest, m->type, m->src, m->opts};
    fputs(i ? ",[" : "[", out);
    for (int f = 0; f < 4; f++) {
      if (f) fputc(',', out);
      json_string(out, fields[f]);
    }
    fputc(']', out);
  }
  fputs("],\"devices\":[", out);
  for (int i = 0; i < P.n_devices; i++) {
    struct devspec *d = &P.devices[i];
    fprintf(out, "%s{\"path\":", i ? "," : "");
    json_string(out, d->path);
    fprintf(out, ",\"type\":\"%c\",\"major\":%u,\"minor\":%u,\"fileMode\":%u,\"uid\":%u,\"gid\":%u}",
            d->kind, d->maj, d->min, d->mode, (unsigned)d->uid, (unsigned)d->gid);
  }
  fputs("],\"symlinks\":[", out);
  for (int i = 0; i < P.n_links; i++) {
    fputs(i ? ",[" : "[", out);
    json_string(out, P.links[i].target);
    fputc(',', out);
    json_string(out, P.links[i].path);
    fputc(']', out);
  }
  fputc(']', out);
  json_strings(out, "maskedPaths", P.masked, P.n_masked);
  json_strings(out, "readonlyPaths", P.ro_paths, P.n_ro_paths);
  fputs(",\"hostname\":", out);
  json_string(out, P.hostname);
  fprintf(out, ",\"loopbackUp\":%s,\"rlimits\":[", P.loopback_up ? "true" : "false");
  for (int i = 0; i < P.n_rlimits; i++) {
    struct rlimspec *r = &P.rlimits[i];
    fprintf(out, "%s[%d,%lld,%lld]", i ? "," : "", r->res, r->soft == RLIM_INFINITY ? -1LL : (long long)r->soft,
            r->hard == RLIM_INFINITY ? -1LL : (long long)r->hard);
  }
  fprintf(out, "],\"caps\":\"%llx\",\"noNewPrivileges\":%s,\"seccompInstructions\":%d,\"oomCgroup\":",
          (unsigned long long)P.caps, P.nnp ? "true" : "false", P.n_filter);
  json_string(out, P.oom_cgroup);
  fputs(",\"sessionKeyring\":", out);
  json_string(out, P.session_keyring);
  fputs(",\"pidNamespace\":", out);
  json_string(out, P.pid_namespace);
  fprintf(out, ",\"uid\":%u,\"gid\":%u,\"groups\":[", (unsigned)P.uid, (unsigned)P.gid);
  for (int i = 0; i < P.n_groups; i++) fprintf(out, "%s%u", i ? "," : "", (unsigned)P.groups[i]);
  fputs("],\"cwd\":", out);
  json_string(out, P.cwd);
  json_strings(out, "args", P.args, P.n_args);
  json_strings(out, "env", P.env, P.n_env);
  fprintf(out, ",\"terminal\":%s,\"consoleSize\":[%d,%d],\"openStdin\":%s,\"stdinOnce\":%s}\n",
          P.terminal ? "true" : "false", P.rows, P.cols, P.open_stdin ? "true" : "false", P.stdin_once ? "true" : "false");
}
