/*
 * sandbox-start: the first process of a one-shot local sandbox, which becomes the program.
 *
 * It does what three programs did before it (perl, prlimit(1) and setpriv(1)), each of which
 * cost a one-shot run milliseconds of start-up (dynamic loading, page faults): built static,
 * it starts in a fraction of that. Linux only; embedded in the release binary and written out
 * once per build (start.ts), then bound into the sandbox read-only.
 *
 *   sandbox-start [--user NAME] [--drop-capabilities] [--listen PORT HANDOVER --bridge N ARGV...]
 *                 [--nproc N] [--as BYTES] -- PROGRAM [ARGS...]
 *
 * In that order:
 *  --user NAME  (as root) becomes NAME of the sandbox's /etc/passwd: its uid and gid, no
 *               supplementary groups, no capabilities (bounding, inheritable, ambient), no new
 *               privileges. By name: the sandbox's /etc/passwd is ours, and one that lacks the
 *               entry (its maker died before writing it) stops the program from starting.
 *  --drop-capabilities  the same without a uid change (uid 0 of a user namespace).
 *  --listen PORT HANDOVER  listens on the sandbox's 127.0.0.1:PORT and hands that listener over
 *               to the `sandboxes` process running the sandbox (listeners.ts's takeListener):
 *               connects to its unix socket HANDOVER (waiting for it, a millisecond at a time,
 *               up to 5 s, while it is not there or not listening yet), sends the listener's
 *               descriptor number and a newline, and reads one byte. "1": that process took a
 *               copy (pidfd_getfd) and its proxy accepts from the sandbox's loopback, so nothing
 *               of ours stays inside. "0" (no copy could be made): a waiter is left behind,
 *               a child of the sandbox's pid 1 (CLONE_PARENT, or a double fork) so that the
 *               program never sees a child it did not start, which waits for the first
 *               connection and only then becomes the bridge (the N words after --bridge, then the
 *               program's pid; the listener on its stdin), and ends with the program. No answer,
 *               or another: exit 125, the program never starts.
 *  --nproc, --as  RLIMIT_NPROC and RLIMIT_AS, soft and hard.
 * Any failure: one line on stderr and exit 125 (126 or 127 when the program cannot be run, as a
 * shell says), before the program starts.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void fail(const char *what, int code) {
  if (code) fprintf(stderr, "sandboxes: %s: %s\n", what, strerror(code));
  else fprintf(stderr, "sandboxes: %s\n", what);
  exit(125);
}

static void usage(void) {
  fail("sandbox-start: bad arguments (it is started by sandboxes, not by hand)", 0);
}

static unsigned long long number(const char *text) {
  char *end;
  errno = 0;
  unsigned long long value = strtoull(text, &end, 10);
  if (errno || end == text || *end) usage();
  return value;
}

/* uid and gid of `name` in /etc/passwd ("name:x:uid:gid:..."), or fail. */
static void lookup(const char *name, uid_t *uid, gid_t *gid) {
  FILE *passwd = fopen("/etc/passwd", "re");
  if (!passwd) fail("cannot read the sandbox's /etc/passwd", errno);
  char line[4096];
  size_t length = strlen(name);
  while (fgets(line, sizeof line, passwd)) {
    if (strncmp(line, name, length) || line[length] != ':') continue;
    char *fields[4] = {0};
    char *cursor = line;
    for (int i = 0; i < 4 && cursor; i++) fields[i] = strsep(&cursor, ":");
    if (!fields[3]) break;
    *uid = (uid_t)number(fields[2]);
    *gid = (gid_t)number(fields[3]);
    fclose(passwd);
    return;
  }
  fclose(passwd);
  fprintf(stderr, "sandboxes: the sandbox's /etc/passwd has no user %s\n", name);
  exit(125);
}

static void drop_capabilities(void) {
  /* Every capability out of the bounding set (which needs CAP_SETPCAP: before any uid change). */
  for (int cap = 0; prctl(PR_CAPBSET_READ, cap, 0, 0, 0) >= 0; cap++)
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) && errno != EINVAL) fail("cannot drop the sandbox's capabilities", errno);
}

static void clear_capabilities(void) {
  struct __user_cap_header_struct header = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
  struct __user_cap_data_struct data[2];
  memset(data, 0, sizeof data);
  if (syscall(SYS_capset, &header, data)) fail("cannot drop the sandbox's capabilities", errno);
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) && errno != EINVAL) fail("cannot drop the sandbox's capabilities", errno);
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) fail("cannot drop the sandbox's capabilities", errno);
}

static void become(const char *name) {
  uid_t uid;
  gid_t gid;
  lookup(name, &uid, &gid);
  drop_capabilities();
  if (setgroups(0, NULL) || setresgid(gid, gid, gid) || setresuid(uid, uid, uid)) fail("cannot become the sandbox's user", errno);
  clear_capabilities();
}

/* The waiter: the first connection, then the bridge (argv, then the program's pid). */
static void wait_then_bridge(int listener, char **bridge, int words, pid_t program) {
  int null = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null < 0 || dup2(listener, 0) < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0) _exit(1);
  if (listener != 0) close(listener);
  struct pollfd ready = { .fd = 0, .events = POLLIN };
  /* A check each second that the program lives: should the sandbox's pid 1 miss its
   * parent-death signal, the sandbox would otherwise last for ever waiting for this process. */
  while (poll(&ready, 1, 1000) <= 0)
    if (kill(program, 0) && errno == ESRCH) _exit(0);
  char pid[24];
  snprintf(pid, sizeof pid, "%d", (int)program);
  char *argv[words + 2];
  for (int i = 0; i < words; i++) argv[i] = bridge[i];
  argv[words] = pid;
  argv[words + 1] = NULL;
  execv(argv[0], argv);
  _exit(1);
}

static void hand_over(int port, const char *handover, char **bridge, int words) {
  int listener = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in address = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
  char what[160];
  snprintf(what, sizeof what, "cannot listen on 127.0.0.1:%d for the egress proxy", port);
  if (listener < 0 || bind(listener, (struct sockaddr *)&address, sizeof address) || listen(listener, 4096)) fail(what, errno);
  snprintf(what, sizeof what, "cannot reach the egress proxy at %s", handover);
  int peer = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un unix_address = { .sun_family = AF_UNIX };
  if (peer < 0 || strlen(handover) >= sizeof unix_address.sun_path) fail(what, peer < 0 ? errno : ENAMETOOLONG);
  strcpy(unix_address.sun_path, handover);
  for (int tries = 0; connect(peer, (struct sockaddr *)&unix_address, sizeof unix_address); tries++) {
    if ((errno != ENOENT && errno != ECONNREFUSED) || tries >= 5000) fail(what, errno);
    struct timespec millisecond = { 0, 1000000 };
    nanosleep(&millisecond, NULL);
  }
  char line[16];
  int length = snprintf(line, sizeof line, "%d\n", listener);
  /* MSG_NOSIGNAL: a side that went away is this line and 125, not SIGPIPE. */
  if (send(peer, line, length, MSG_NOSIGNAL) != length) fail(what, errno);
  char answer;
  if (read(peer, &answer, 1) != 1 || (answer != '0' && answer != '1')) fail("no answer from the egress proxy", 0);
  close(peer);
  if (answer == '0') {
    pid_t program = getpid();
    /* The raw clone(2): glibc's fork() has no CLONE_PARENT. The child only execs or ends. */
    long child = syscall(SYS_clone, CLONE_PARENT | SIGCHLD, 0, 0, 0, 0);
    if (child == 0) wait_then_bridge(listener, bridge, words, program);
    if (child < 0) {
      /* Refused (the sandbox's pid 1 itself, say): a child that forks the waiter and ends. */
      pid_t middle = fork();
      if (middle < 0) fail("cannot start the egress bridge", errno);
      if (middle == 0) {
        pid_t waiter = fork();
        if (waiter == 0) wait_then_bridge(listener, bridge, words, program);
        _exit(waiter < 0);
      }
      waitpid(middle, NULL, 0);
    }
  }
  close(listener);
}

static void limit(int resource, const char *value) {
  struct rlimit both = { .rlim_cur = number(value), .rlim_max = number(value) };
  if (setrlimit(resource, &both)) fail("cannot set the sandbox's limits", errno);
}

int main(int argc, char **argv) {
  int i = 1;
  const char *user = NULL, *nproc = NULL, *as = NULL, *handover = NULL;
  int drop = 0, port = 0, words = 0;
  char **bridge = NULL;
  for (; i < argc && strcmp(argv[i], "--"); i++) {
    if (!strcmp(argv[i], "--user") && i + 1 < argc) user = argv[++i];
    else if (!strcmp(argv[i], "--drop-capabilities")) drop = 1;
    else if (!strcmp(argv[i], "--listen") && i + 2 < argc) port = (int)number(argv[++i]), handover = argv[++i];
    else if (!strcmp(argv[i], "--bridge") && i + 1 < argc) {
      words = (int)number(argv[++i]);
      if (words < 1 || words > argc - i - 1) usage();
      bridge = argv + i + 1;
      i += words;
    } else if (!strcmp(argv[i], "--nproc") && i + 1 < argc) nproc = argv[++i];
    else if (!strcmp(argv[i], "--as") && i + 1 < argc) as = argv[++i];
    else usage();
  }
  if (i + 1 >= argc || (handover && !bridge) || port > 65535) usage();
  char **program = argv + i + 1;
  if (user) become(user);
  else if (drop) {
    drop_capabilities();
    clear_capabilities();
  }
  if (handover) hand_over(port, handover, bridge, words);
  if (nproc) limit(RLIMIT_NPROC, nproc);
  if (as) limit(RLIMIT_AS, as);
  execvp(program[0], program);
  int error = errno;
  fprintf(stderr, "sandboxes: cannot run %s: %s\n", program[0], strerror(error));
  return error == ENOENT ? 127 : 126;
}
