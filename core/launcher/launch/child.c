/* The child side: everything between clone and exec, in the order DESIGN.md section 5 gives. */
#include "launcher.h"

int err_fd = -1;

/* Tell the monitor why the start failed: `CODE MESSAGE`, with errno's text when it is set. */
static void fail_with(enum start_failure code, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));
static void fail_with(enum start_failure code, const char *fmt, ...) {
  char buf[1024];
  int saved = errno;
  int n = snprintf(buf, sizeof buf, "%d ", code);
  va_list ap;
  va_start(ap, fmt);
  n += vsnprintf(buf + n, sizeof buf - (size_t)n, fmt, ap);
  va_end(ap);
  if (n > 0 && saved && n < (int)sizeof buf - 4)
    snprintf(buf + n, sizeof buf - (size_t)n, ": %s", strerror(saved));
  if (write_all(err_fd, buf, strlen(buf)) < 0) { /* monitor gone */ }
  _exit(code);
}

/* A step before the exec failed. */
#define child_fail(...) fail_with(START_FAILED, __VA_ARGS__)

/* Why an execve failed, as docker tells the cases apart (moby's translateContainerdStartErr):
 * nothing there is 127, there but not runnable is 126. */
static enum start_failure exec_failure(int err) {
  if (err == ENOENT || err == ENOTDIR) return START_NOT_FOUND;
  if (err == EACCES || err == EISDIR) return START_NOT_EXECUTABLE;
  return START_FAILED;
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

void parse_mount_opts(char *opts, unsigned long *flags, unsigned long *prop, char *data, size_t size) {
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
__attribute__((noreturn)) static void exec_process(void) {
  const char *file = P.args[0];
  if (strchr(file, '/')) {
    execve(file, P.args, P.env);
    fail_with(exec_failure(errno), "exec: \"%s\"", file);
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
    else if (errno != ENOENT && errno != ENOTDIR) fail_with(exec_failure(errno), "exec: \"%s\"", full);
    if (!colon) break;
    p = colon + 1;
  }
  errno = 0;
  if (saw_eacces) fail_with(START_NOT_EXECUTABLE, "exec: \"%s\": permission denied", file);
  fail_with(START_NOT_FOUND, "exec: \"%s\": executable file not found in $PATH", file);
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
void child_main(int sync_rd, int pid_wr, int console_sock, int in_fd, int out_fd, int errs_fd) {
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
