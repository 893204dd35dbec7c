/*
 * berth-init: the minimal init that `berth run --init` puts at pid 1 of a container (Docker's
 * docker-init / tini role). It runs the command as its child, forwards the signals a container
 * receives to it, reaps every orphan that re-parents to pid 1, and exits with the child's status
 * (128 + N when signal N ended it). Bind-mounted read-only at /dev/init; no policy, no libraries.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
  int first = 1;
  if (first < argc && strcmp(argv[first], "--") == 0) first++;
  if (first >= argc) {
    fprintf(stderr, "berth-init: usage: berth-init [--] COMMAND [ARG...]\n");
    return 2;
  }
  sigset_t all, old;
  sigfillset(&all);
  sigprocmask(SIG_BLOCK, &all, &old);
  pid_t child = fork();
  if (child < 0) {
    fprintf(stderr, "berth-init: fork: %s\n", strerror(errno));
    return 1;
  }
  if (child == 0) {
    sigprocmask(SIG_SETMASK, &old, NULL);
    setpgid(0, 0);
    execvp(argv[first], argv + first);
    fprintf(stderr, "berth-init: exec %s: %s\n", argv[first], strerror(errno));
    _exit(errno == ENOENT ? 127 : 126);
  }
  for (;;) {
    siginfo_t si;
    struct timespec tick = {1, 0};
    int sig = sigtimedwait(&all, &si, &tick);
    if (sig > 0 && sig != SIGCHLD) kill(child, sig);
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
      if (pid == child) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    if (pid < 0 && errno == ECHILD) return 1;
  }
}
