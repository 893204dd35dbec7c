/*
 * berth-launch: the small C part of berth's native runtime (DESIGN.md section 5).
 *
 * It holds no policy. berthd's isolators decide everything and write a launch plan; this program
 * carries it out between clone and exec, which Node cannot do (it is multi-threaded and cannot run
 * code between fork and exec). Its parent half then stays behind as the container's monitor.
 *
 * Usage: berth-launch PLANFILE        (status channel on fd 3 when it is open; see below)
 *        berth-launch --print-plan PLANFILE   (parse only; print the plan as JSON, for tests)
 *
 * Sources: launcher.h (this contract, the plan struct), plan.c (the plan reader), child.c (between
 * clone and exec) and rootfs.c (its mounts and pivot_root), monitor.c (the parent half: attach
 * clients, exit) and log.c (its json-file log), util.c, main.c.
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
 *   pid-namespace PATH     (the monitor enters it just before the clone: the child is born there)
 *
 * Status channel (fd 3, a socket or pipe pair from berthd), one line each:
 *   launcher -> berthd: `pid N` (child cloned, waiting), `started N` (exec done; N = final pid),
 *                       `error MESSAGE` (start failed; the monitor then exits), just before it
 *                       `reason CODE` when the command itself cannot run, CODE as docker run's
 *                       exit code: 127 it was not found, 126 it cannot be run (permission, a
 *                       directory). Any other failure has no reason line (docker run's 125).
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
#ifndef BERTH_LAUNCHER_H
#define BERTH_LAUNCHER_H

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
#ifndef STATX_MNT_ID
#define STATX_MNT_ID 0x00001000U
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

/* ---------------------------------------------------------------- plan (plan.c) */

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
extern struct plan P;

/* plan.c */
void parse_plan(const char *file);
void print_plan(FILE *out);

/* util.c: the status channel to berthd (fd 3), and small I/O helpers */
extern int status_fd;
void status_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
int write_all(int fd, const void *buf, size_t len);
void rfc3339nano(char *out, size_t size);
unsigned long long proc_start_time(pid_t pid);
int write_atomic(const char *dir, const char *name, const char *content, int durable);
long oom_kills(const char *dir);
int read_line(int fd, char *buf, size_t size);
int on_shared_mount(const char *path, char *point, size_t size);

/* child.c: runs in the cloned child, never returns */
/* Why a start failed (the CODE of the status channel's `reason` line). */
enum start_failure { START_FAILED = 125, START_NOT_EXECUTABLE = 126, START_NOT_FOUND = 127 };
/* The child's error pipe: close-on-exec, so EOF there means the exec worked. What the child writes
 * there is `CODE MESSAGE`. */
extern int err_fd;
/* Tell the monitor why the start failed (`CODE MESSAGE`, with errno's text when it is set), exit. */
void fail_with(enum start_failure code, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));
/* A step before the exec failed. */
#define child_fail(...) fail_with(START_FAILED, __VA_ARGS__)
void child_main(int sync_rd, int pid_wr, int console_sock, int in_fd, int out_fd, int errs_fd) __attribute__((noreturn));

/* rootfs.c: the child's filesystem, from the plan */
void parse_mount_opts(char *opts, unsigned long *flags, unsigned long *prop, char *data, size_t size);
void setup_rootfs(void);

/* log.c: the container's json-file log. A stream is one of the container's outputs, with the
 * line it has not logged yet. */
struct stream {
  int fd;
  const char *name;
  unsigned char id;
  char line[LINE_MAX_BYTES];
  size_t len;
};
void monitor_open_log(void);
void log_bytes(struct stream *s, const char *data, size_t n);
void log_entry(struct stream *s); /* the pending line, if any, as one entry */

/* monitor.c: the parent half, after the child is cloned */
int listen_attach(void);
int recv_fd(int sock);
void write_exit(int status, int have_status, long oom_before, const char *error);
void monitor_serve(pid_t pid, const sigset_t *mask, int listen_fd, int out_fd, int errs_fd, int in_wr, int pty_fd, long oom_before) __attribute__((noreturn));

#endif
