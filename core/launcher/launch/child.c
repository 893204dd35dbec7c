/* The child side: everything between clone and exec, in the order DESIGN.md section 5 gives. */
#include "launcher.h"

int err_fd = -1;

void fail_with(enum start_failure code, const char *fmt, ...) {
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

/* Why an execve failed, as docker tells the cases apart (moby's translateContainerdStartErr):
 * nothing there is 127, there but not runnable is 126. */
static enum start_failure exec_failure(int err) {
  if (err == ENOENT || err == ENOTDIR) return START_NOT_FOUND;
  if (err == EACCES || err == EISDIR) return START_NOT_EXECUTABLE;
  return START_FAILED;
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
  /* glibc's own signals (32 up to SIGRTMIN), which signal() refuses, arrive ignored from posix_spawn. */
  struct {
    void *handler;
    unsigned long flags;
    void *restorer;
    unsigned long mask;
  } dfl = {SIG_DFL, 0, NULL, 0};
  for (int s = 32; s < SIGRTMIN; s++) syscall(SYS_rt_sigaction, s, &dfl, NULL, sizeof dfl.mask);
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
