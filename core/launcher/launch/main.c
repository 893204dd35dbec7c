/* berth-launch's entry: read the plan, double-fork into the monitor, clone the child, report. */
#include "launcher.h"

/* A shared bind (rshared, as CRI's PROPAGATION_BIDIRECTIONAL asks) joins the peer group of its
 * source's mount, as runc's and dockerd's do: mounts made below it in the container reach the
 * host, and the host's reach the container. Refused, as dockerd refuses it, when the source's mount
 * is not shared (nothing could propagate), and in a new user namespace: the kernel reduces shared
 * mounts it copies into a less privileged namespace to slaves so that such a namespace cannot
 * mount on the host, and a peer handed in here would undo that. */
static void check_shared_bind(const struct mountspec *m) {
  if (P.clone_flags & CLONE_NEWUSER)
    die("mount %s: shared propagation is not supported with a user namespace (its mounts must not reach the host): use rslave", m->dest);
  char point[PATH_MAX];
  int shared = on_shared_mount(m->src, point, sizeof point);
  if (shared < 0) die("mount %s: bind source %s: %s", m->dest, m->src, strerror(errno));
  if (!shared) die("mount %s: shared propagation: path %s is mounted on %s but it is not a shared mount", m->dest, m->src, point);
}

int main(int argc, char **argv) {
  if (argc == 3 && !strcmp(argv[1], "--print-plan")) {
    parse_plan(argv[2]);
    print_plan(stdout);
    return 0;
  }
  if (argc != 2 || argv[1][0] == '-') {
    fprintf(stderr, "usage: berth-launch PLANFILE  (status channel on fd 3)\n       berth-launch --print-plan PLANFILE\n");
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

  monitor_open_log();

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
    if (prop & MS_SHARED) check_shared_bind(&P.mounts[i]);
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
    if (r == sizeof real) pid = real;
  }
  close(pid_p[0]);
  int pty_fd = -1;
  if (P.terminal) {
    pty_fd = recv_fd(console[0]);
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
    /* `CODE MESSAGE`: berthd gets both (the code only when it says more than "failed"), the exit
     * file the message. */
    char *message;
    long code = strtol(errbuf, &message, 10);
    if (message == errbuf || *message != ' ') code = START_FAILED, message = errbuf;
    else message++;
    if (code != START_FAILED) status_line("reason %ld", code);
    status_line("error %s", message);
    unlink("attach.sock");
    write_exit(st, 0, -1, message);
    return 1;
  }
  char json[512], now[48];
  rfc3339nano(now, sizeof now);
  snprintf(json, sizeof json,
           "{\"pid\":%d,\"monitorPid\":%d,\"pidStartTime\":%llu,\"monitorStartTime\":%llu,\"startedAt\":\"%s\"}\n",
           (int)pid, (int)getpid(), proc_start_time(pid), proc_start_time(getpid()), now);
  /* Describes a live process: nothing to keep across a reboot, and the start waits for it. */
  if (write_atomic(P.state_dir, "runtime.json", json, 0) < 0) die("write runtime.json: %s", strerror(errno));
  status_line("started %d", (int)pid);
  if (status_fd >= 0) close(status_fd);
  status_fd = -1;
  dup2(devnull, 2);

  monitor_serve(pid, &mask, listen_fd, out_p[0], errs_p[0], in_p[1], pty_fd, oom_before);
}
