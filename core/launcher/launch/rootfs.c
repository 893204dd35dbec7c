/* The child's filesystem: the plan's mounts, devices and symlinks made inside the rootfs (every
 * path resolved in it), pivot_root, then the read-only and masked paths. */
#include "launcher.h"

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

void setup_rootfs(void) {
  /* Nothing we mount may propagate back to the host. A shared bind still does what it asks: the
   * monitor's open_tree clone of its source is a peer of the source's mount (see main.c). */
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
  int oldroot = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (oldroot < 0) child_fail("open /");
  if (chdir(P.rootfs) < 0) child_fail("chdir rootfs %s", P.rootfs);
  if (syscall(SYS_pivot_root, ".", ".") < 0) child_fail("pivot_root %s", P.rootfs);
  /* The old root now sits on top of the new one. "." is still the new root below it (mount(2)
   * does not cross mounts on "."), so go to the old root itself: make it and everything under it
   * a slave, so its detach cannot propagate unmounts to the host, then detach it. The new root's
   * own mounts keep their propagation (an rshared bind stays a peer of the host's mount). */
  if (fchdir(oldroot) < 0) child_fail("chdir old root");
  if (mount(NULL, ".", NULL, MS_SLAVE | MS_REC, NULL) < 0) child_fail("make old root slave");
  if (umount2(".", MNT_DETACH) < 0) child_fail("detach old root");
  close(oldroot);
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
