/*
 * berth-pause: the process that holds a pod sandbox's namespaces (the role of Kubernetes' pause
 * image). It sleeps until SIGTERM/SIGINT/SIGHUP ends it, and reaps whatever re-parents to it (it
 * is pid 1 when the pod shares one pid namespace). Bind-free and static: the sandbox's rootfs is
 * this one file.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <sys/wait.h>

int main(void) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  sigaddset(&set, SIGCHLD);
  sigprocmask(SIG_BLOCK, &set, NULL);
  for (;;) {
    int sig = sigwaitinfo(&set, NULL);
    if (sig == SIGCHLD) {
      while (waitpid(-1, NULL, WNOHANG) > 0) {}
    } else if (sig > 0) {
      return 0;
    }
  }
}
