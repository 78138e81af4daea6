/*
 * sandbox-start: the first process of a one-shot local sandbox, and of each command entered into
 * a kept one, which becomes the program.
 *
 * It does what several programs did before it (perl, prlimit(1) and setpriv(1); with util-linux,
 * unshare(1) and a shell script that forked mount(8), mkdir(1) and ln(1) some forty times; for a
 * kept sandbox's commands, nsenter(1) and setsid(1)), each
 * of which cost a one-shot run milliseconds of start-up (dynamic loading, page faults): built
 * static, it starts in a fraction of that. Linux only; embedded in the release binary and written
 * out once per build (start.ts), then bound into the sandbox read-only.
 *
 *   sandbox-start [NAMESPACES AND ROOT [--as-init] | ENTERING] [--user NAME] [--drop-capabilities]
 *                 [--listen PORT HANDOVER --bridge N ARGV...] [--nproc N] [--as BYTES]
 *                 -- PROGRAM [ARGS...]
 *
 * NAMESPACES AND ROOT, for the util-linux mechanism (bubblewrap makes them itself), in the
 * place of `setpriv --pdeathsig KILL unshare --fork --kill-child ... sh -c SCRIPT`:
 *  --die-with-parent  SIGKILL when the process that started this one dies.
 *  --cgroup FILE      writes this process's pid to FILE (a cgroup.procs) first, so that nothing
 *                     of the sandbox runs outside its cgroups. Repeatable.
 *  --unshare-user     a user namespace too, in which the caller's uid and gid are 0.
 *  --unshare-net      a network namespace too; its loopback is brought up.
 *  --root DIR         new mount, pid, ipc and uts namespaces (mounts private to them); a child
 *                     there is the sandbox's pid 1, killed when this process dies, and this one
 *                     waits for it and ends as it does (SIGINT and SIGTERM blocked meanwhile, as
 *                     unshare(1) does). Pid 1 makes the root under DIR with the operations below,
 *                     in their order (INSIDE is a path in the sandbox), names the host "sandbox",
 *                     chroots into DIR, and starts what follows as its child, which it waits
 *                     for, reaping orphans meanwhile, and ends with its exit status (128 + the
 *                     signal that killed it, as a shell says); with --as-init, pid 1 itself
 *                     becomes what follows (a kept sandbox's holder). A mount point that is missing is
 *                     made (a directory, or an empty file for a file), with its parents.
 *    --tmpfs INSIDE MODE NAME  a tmpfs (the first one at "/", DIR itself).
 *    --ro-bind HOST INSIDE     a recursive bind, remounted read-only (keeping the flags the
 *                              mount has, e.g. nosuid, which a user namespace may not clear).
 *    --ro-bind-tree HOST INSIDE  the same, and each mount below it too (where the host has
 *                              mounts below HOST), as bubblewrap's --ro-bind.
 *    --bind HOST INSIDE        a bind, writable.
 *    --devpts INSIDE           a devpts of the sandbox's own (newinstance), whose ptmx any user
 *                              may open (a terminal for `script`, python's pty, tmux), as
 *                              bubblewrap's --dev.
 *    --chmod MODE INSIDE       MODE (octal) for what is at INSIDE.
 *    --symlink TARGET INSIDE, --dir INSIDE, --proc INSIDE
 *
 * ENTERING a kept sandbox (its holder, the sandbox's pid 1), in the place of nsenter(1):
 *  --enter PID        joins PID's mount, pid, ipc and uts namespaces (with --enter-user its user
 *                     namespace first, with --enter-net its network namespace), its root and its
 *                     directory; a child goes on (a pid namespace is a child's), and this process
 *                     waits for it and ends as it does (stopped with it, as nsenter does).
 *  --new-session      the child leads a session of its own (not for a terminal's program).
 *  --terminal         (standard input is a terminal) the child gets a terminal of the sandbox's
 *                     own, from its /dev/ptmx, as `docker exec -t` does: it leads a session with
 *                     that terminal, which has the outer one's modes and size and belongs to the
 *                     sandbox's user, so that `tty`, `ps` and whatever looks its terminal up find
 *                     it (the outer one's /dev/pts/N is not in the sandbox). This process then
 *                     relays between the two (the outer one raw), passes size changes on, and
 *                     ends as the child does. Without a /dev/ptmx (a sandbox kept by an older
 *                     version) the child has the outer terminal, as without --terminal.
 *  (--cgroup as above: the cgroups are joined first, on the host's paths.)
 *
 * Then, in the process that becomes the program, in that order:
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
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
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
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
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

/* Whether the program's 0, 1 and 2 are a terminal of the sandbox's own (--terminal). */
static int own_terminal;

static void become(const char *name) {
  uid_t uid;
  gid_t gid;
  lookup(name, &uid, &gid);
  /* Its user's, as a login's terminal is (mesg(1), write(1) and ssh check this). */
  if (own_terminal && fchown(0, uid, gid)) fail("cannot give the terminal to the sandbox's user", errno);
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

/* One operation that makes the sandbox's root (--tmpfs, --ro-bind, ...), its words in argv. */
struct root_op {
  const char *kind;
  char **words;
};

/* DIR/INSIDE ("/" is DIR itself), or fail. */
static void inside(char *path, size_t size, const char *root, const char *in) {
  if (in[0] != '/' || snprintf(path, size, "%s%s", root, strcmp(in, "/") ? in : "") >= (int)size) usage();
}

/* mkdir -p: each missing directory of `path`, 0755 (make_root's umask). */
static void make_dirs(const char *path) {
  char partial[4096];
  size_t length = strlen(path);
  if (length >= sizeof partial) fail("a path in the sandbox is too long", ENAMETOOLONG);
  for (size_t i = 1; i <= length; i++) {
    if (path[i] != '/' && path[i] != '\0') continue;
    memcpy(partial, path, i);
    partial[i] = '\0';
    if (mkdir(partial, 0777) && errno != EEXIST) {
      char what[4200];
      snprintf(what, sizeof what, "cannot make %s in the sandbox", partial);
      fail(what, errno);
    }
  }
}

/* The mount point for `source` at `target`: a directory for a directory, else an empty file. */
static void mount_point(const char *source, const char *target) {
  struct stat stats;
  char what[4200];
  snprintf(what, sizeof what, "cannot bind %s into the sandbox", source);
  if (stat(source, &stats)) fail(what, errno);
  if (S_ISDIR(stats.st_mode)) return make_dirs(target);
  /* Already there (/etc/passwd, in the bound /etc), perhaps read-only. */
  if (!access(target, F_OK)) return;
  char parent[4096];
  snprintf(parent, sizeof parent, "%s", target);
  char *slash = strrchr(parent, '/');
  if (slash && slash != parent) {
    *slash = '\0';
    make_dirs(parent);
  }
  int file = open(target, O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
  if (file < 0) fail(what, errno);
  close(file);
}

/* The flags of the mount at `path` that a remount must keep (a user namespace may not clear them). */
static unsigned long kept_flags(const char *path) {
  struct statvfs stats;
  if (statvfs(path, &stats)) return 0;
  unsigned long flags = 0;
  if (stats.f_flag & ST_NOSUID) flags |= MS_NOSUID;
  if (stats.f_flag & ST_NODEV) flags |= MS_NODEV;
  if (stats.f_flag & ST_NOEXEC) flags |= MS_NOEXEC;
  if (stats.f_flag & ST_NOATIME) flags |= MS_NOATIME;
  if (stats.f_flag & ST_NODIRATIME) flags |= MS_NODIRATIME;
#ifdef ST_RELATIME
  if (stats.f_flag & ST_RELATIME) flags |= MS_RELATIME;
#endif
  return flags;
}

/* A line of /proc/self/mountinfo: the mount's id, its parent's, and its mount point. */
struct mount_entry {
  int id, parent, below;
  char *point;
};

/* The calling process's mount table, in mountinfo's order (the newest mount last); its count. */
static size_t read_mounts(struct mount_entry **out) {
  FILE *table = fopen("/proc/self/mountinfo", "re");
  if (!table) fail("cannot read the sandbox's mounts", errno);
  struct mount_entry *mounts = NULL;
  size_t count = 0, size = 0;
  char *line = NULL;
  while (getline(&line, &size, table) > 0) {
    struct mount_entry entry = { 0 };
    char escaped[4096], point[4096];
    if (sscanf(line, "%d %d %*s %*s %4095s", &entry.id, &entry.parent, escaped) != 3) continue;
    /* The mount point, with space, tab, newline and backslash as \ooo. */
    size_t n = 0;
    for (const char *c = escaped; *c; c++) {
      if (c[0] == '\\' && c[1] >= '0' && c[1] <= '3' && c[2] >= '0' && c[2] <= '7' && c[3] >= '0' && c[3] <= '7') {
        point[n++] = (char)((c[1] - '0') * 64 + (c[2] - '0') * 8 + (c[3] - '0'));
        c += 3;
      } else point[n++] = *c;
    }
    point[n] = '\0';
    if (!(mounts = realloc(mounts, (count + 1) * sizeof *mounts)) || !(entry.point = strdup(point))) fail("cannot read the sandbox's mounts", ENOMEM);
    mounts[count++] = entry;
  }
  free(line);
  fclose(table);
  *out = mounts;
  return count;
}

/*
 * Remounts read-only each mount below `top`, the recursive bind just made there, as bubblewrap
 * does: its descendants in the mount tree (by mountinfo's parent ids), not whatever mount point
 * lies below the path, which may be an earlier mount that this one now covers.
 */
static void readonly_below(const char *top) {
  struct mount_entry *mounts;
  size_t count = read_mounts(&mounts);
  int top_id = -1;
  /* mountinfo's paths have no symbolic links (a state directory under one: /home -> var/home). */
  char real[4096];
  if (!realpath(top, real)) fail("cannot make the sandbox's root", errno);
  /* The last mount at `top` is the one on top: the bind just made. */
  for (size_t i = 0; i < count; i++)
    if (!strcmp(mounts[i].point, real)) top_id = mounts[i].id;
  if (top_id < 0) fail("cannot find a read-only bind among the sandbox's mounts", ENOENT);
  /* Its descendants, to a fixed point (a child may be listed before its parent). */
  for (int grew = 1; grew;) {
    grew = 0;
    for (size_t i = 0; i < count; i++) {
      if (mounts[i].below) continue;
      int parent_below = mounts[i].parent == top_id;
      for (size_t j = 0; j < count && !parent_below; j++) parent_below = mounts[j].below && mounts[j].id == mounts[i].parent;
      if (parent_below) mounts[i].below = grew = 1;
    }
  }
  for (size_t i = 0; i < count; i++) {
    /* One that cannot be read cannot be reached either (bubblewrap skips those too). */
    if (mounts[i].below && mount(NULL, mounts[i].point, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | kept_flags(mounts[i].point), NULL) && errno != EACCES) {
      char what[4200];
      snprintf(what, sizeof what, "cannot make %s read-only in the sandbox", mounts[i].point);
      fail(what, errno);
    }
    free(mounts[i].point);
  }
  free(mounts);
}

static void make_root(const char *root, struct root_op *ops, int count) {
  char target[4096], what[4200];
  /*
   * What it makes, the sandbox's user must pass through (a toolchain's parents, /run/sandboxes):
   * a caller's umask of 077, usual for root on a hardened host, would leave them 0700 and root's.
   * The program gets the caller's umask back.
   */
  mode_t caller_umask = umask(022);
  for (int i = 0; i < count; i++) {
    const char *kind = ops[i].kind;
    char **words = ops[i].words;
    int failed = 0;
    if (!strcmp(kind, "--tmpfs")) {
      inside(target, sizeof target, root, words[0]);
      char options[64];
      snprintf(options, sizeof options, "mode=%s", words[1]);
      make_dirs(target);
      failed = mount(words[2], target, "tmpfs", MS_NOSUID | MS_NODEV, options);
    } else if (!strcmp(kind, "--ro-bind") || !strcmp(kind, "--ro-bind-tree") || !strcmp(kind, "--bind")) {
      int readonly = strcmp(kind, "--bind");
      inside(target, sizeof target, root, words[1]);
      mount_point(words[0], target);
      failed = mount(words[0], target, NULL, MS_BIND | (readonly ? MS_REC : 0), NULL);
      if (!failed && readonly) failed = mount(NULL, target, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | kept_flags(target), NULL);
      if (!failed && !strcmp(kind, "--ro-bind-tree")) readonly_below(target);
    } else if (!strcmp(kind, "--symlink")) {
      inside(target, sizeof target, root, words[1]);
      failed = symlink(words[0], target);
    } else if (!strcmp(kind, "--dir")) {
      inside(target, sizeof target, root, words[0]);
      make_dirs(target);
    } else if (!strcmp(kind, "--chmod")) {
      inside(target, sizeof target, root, words[1]);
      failed = chmod(target, (mode_t)strtoul(words[0], NULL, 8));
    } else if (!strcmp(kind, "--devpts")) {
      inside(target, sizeof target, root, words[0]);
      make_dirs(target);
      failed = mount("devpts", target, "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=620");
    } else {
      inside(target, sizeof target, root, words[0]);
      make_dirs(target);
      failed = mount("proc", target, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    }
    if (failed) {
      snprintf(what, sizeof what, "cannot make the sandbox's root (%s %s)", kind, words[0]);
      fail(what, errno);
    }
  }
  umask(caller_umask);
}

/* The loopback of a new network namespace starts down (bubblewrap brings it up too). */
static void loopback_up(void) {
  struct ifreq request;
  memset(&request, 0, sizeof request);
  strcpy(request.ifr_name, "lo");
  int control = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (control < 0 || ioctl(control, SIOCGIFFLAGS, &request)) fail("cannot bring the sandbox's loopback up", errno);
  request.ifr_flags |= IFF_UP;
  if (ioctl(control, SIOCSIFFLAGS, &request)) fail("cannot bring the sandbox's loopback up", errno);
  close(control);
}

static void write_file(const char *path, const char *text) {
  int file = open(path, O_WRONLY | O_CLOEXEC);
  if (file < 0 && errno == ENOENT && strstr(path, "setgroups")) return; /* before Linux 3.19 */
  if (file < 0 || write(file, text, strlen(text)) != (ssize_t)strlen(text)) {
    char what[160];
    snprintf(what, sizeof what, "cannot write %s", path);
    fail(what, errno);
  }
  close(file);
}

/*
 * Waits for `child` and ends as it does: its exit status, or killed by its signal (unblocked
 * first: the parent of pid 1 blocks SIGINT and SIGTERM). Stopped (a terminal's ^Z): so is this
 * process, and both go on together, as with nsenter(1).
 */
static void exit_as(int status);

static void end_as(pid_t child) {
  int status;
  for (;;) {
    pid_t ended = waitpid(child, &status, WUNTRACED);
    if (ended < 0 && errno == EINTR) continue;
    if (ended < 0) fail("cannot wait for the sandbox", errno);
    if (!WIFSTOPPED(status)) break;
    kill(getpid(), SIGSTOP);
    kill(child, SIGCONT);
  }
  exit_as(status);
}

/* Ends as a child that ended with `status` did (see end_as). */
static void exit_as(int status) {
  if (WIFEXITED(status)) exit(WEXITSTATUS(status));
  sigset_t killed;
  sigemptyset(&killed);
  sigaddset(&killed, WTERMSIG(status));
  signal(WTERMSIG(status), SIG_DFL);
  sigprocmask(SIG_UNBLOCK, &killed, NULL);
  kill(getpid(), WTERMSIG(status));
  exit(128 + WTERMSIG(status));
}

/*
 * The namespaces (see --root), then the sandbox's pid 1, which makes the root and returns in its
 * child, the program's process. This process and pid 1 never return: they wait and end as
 * their child ends.
 */
static void enter_sandbox(const char *root, struct root_op *ops, int count, int user, int network, int as_init) {
  uid_t uid = getuid();
  gid_t gid = getgid();
  int flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | (network ? CLONE_NEWNET : 0) | (user ? CLONE_NEWUSER : 0);
  if (unshare(flags)) fail("cannot make the sandbox's namespaces", errno);
  if (user) {
    char map[64];
    write_file("/proc/self/setgroups", "deny");
    snprintf(map, sizeof map, "0 %u 1", (unsigned)uid);
    write_file("/proc/self/uid_map", map);
    snprintf(map, sizeof map, "0 %u 1", (unsigned)gid);
    write_file("/proc/self/gid_map", map);
  }
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL)) fail("cannot make the sandbox's mounts private", errno);
  sigset_t blocked, before;
  sigemptyset(&blocked);
  sigaddset(&blocked, SIGINT);
  sigaddset(&blocked, SIGTERM);
  sigprocmask(SIG_BLOCK, &blocked, &before);
  pid_t first = fork();
  if (first < 0) fail("cannot start the sandbox", errno);
  if (first > 0) end_as(first);
  sigprocmask(SIG_SETMASK, &before, NULL);
  /*
   * A session of its own, as bwrap's --new-session: the caller's terminal is then the controlling
   * terminal of nothing inside, so no program can push input into it (TIOCSTI, where the kernel
   * still allows that: typed into the caller's shell once the run ends) or take it over. Ctrl-C
   * reaches `sandboxes`, which stops the sandbox.
   */
  if (setsid() < 0) fail("cannot start the sandbox", errno);
  /* pid 1: dies with this process's parent (here), and stays root so that the signal stays. */
  if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0)) fail("cannot start the sandbox", errno);
  make_root(root, ops, count);
  sethostname("sandbox", strlen("sandbox"));
  if (network) loopback_up();
  if (chroot(root) || chdir("/")) fail("cannot enter the sandbox's root", errno);
  if (as_init) return;
  pid_t program = fork();
  if (program < 0) fail("cannot start the program", errno);
  if (program == 0) return;
  for (;;) {
    int status;
    pid_t ended = waitpid(-1, &status, 0);
    if (ended == program) exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    if (ended < 0 && errno != EINTR) exit(125);
  }
}

static void limit(int resource, const char *value) {
  struct rlimit both = { .rlim_cur = number(value), .rlim_max = number(value) };
  if (setrlimit(resource, &both)) fail("cannot set the sandbox's limits", errno);
}

/* nsenter -t PID [--user --preserve-credentials] --mount --pid --ipc --uts --root --wd [--net]. */
static void write_all(int fd, const char *data, size_t length) {
  while (length > 0) {
    ssize_t written = write(fd, data, length);
    if (written < 0 && errno == EINTR) continue;
    if (written <= 0) return; /* the outer terminal is gone: what is left has no reader */
    data += written;
    length -= (size_t)written;
  }
}

/*
 * --terminal's relay, in the entering process: the outer terminal (0 and 1) raw, its input to
 * `master`, the master's output to it, its size changes to the master, until `child` ends; then
 * what the master still holds, and the outer terminal's modes back. `signals` reads SIGCHLD and
 * SIGWINCH (blocked since before the fork).
 */
static void relay(int master, pid_t child, int signals) {
  struct termios modes, raw;
  int restore = !tcgetattr(0, &modes);
  if (restore) {
    raw = modes;
    cfmakeraw(&raw);
    tcsetattr(0, TCSANOW, &raw);
  }
  /* Never blocked writing input while the program waits for its output to be read (a paste). */
  fcntl(master, F_SETFL, O_NONBLOCK);
  char input[4096], output[16384];
  size_t pending = 0, sent = 0;
  int status = 0, reading = 1, writing = 1;
  for (;;) {
    struct pollfd ready[3] = {
      { .fd = reading && !pending ? 0 : -1, .events = POLLIN },
      { .fd = writing ? master : -1, .events = POLLIN | (pending ? POLLOUT : 0) },
      { .fd = signals, .events = POLLIN },
    };
    if (poll(ready, 3, -1) < 0) {
      if (errno == EINTR) continue;
      fail("cannot relay the terminal", errno);
    }
    if (ready[2].revents & POLLIN) {
      struct signalfd_siginfo info;
      if (read(signals, &info, sizeof info) == sizeof info && info.ssi_signo == SIGWINCH) {
        struct winsize size;
        if (!ioctl(0, TIOCGWINSZ, &size)) ioctl(master, TIOCSWINSZ, &size);
      } else if (waitpid(child, &status, WNOHANG) == child) break;
    }
    if (ready[1].revents & POLLIN) {
      ssize_t got = read(master, output, sizeof output);
      if (got > 0) write_all(1, output, (size_t)got);
      else if (got < 0 && errno != EINTR && errno != EAGAIN) writing = 0; /* EIO: no one has it open */
    } else if (ready[1].revents & (POLLHUP | POLLERR)) writing = 0;
    if ((ready[1].revents & POLLOUT) && pending) {
      ssize_t put = write(master, input + sent, pending - sent);
      if (put > 0 && (sent += (size_t)put) == pending) pending = sent = 0;
    }
    if (ready[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t got = read(0, input, sizeof input);
      if (got > 0) pending = (size_t)got, sent = 0;
      else if (got == 0 || errno != EINTR) {
        /* The outer terminal closed: the sandbox's terminal hangs up as it would. */
        reading = 0;
        kill(child, SIGHUP);
      }
    }
  }
  /* What the program wrote last (a process it left behind may still write: not waited for). */
  for (ssize_t got; (got = read(master, output, sizeof output)) > 0;) write_all(1, output, (size_t)got);
  if (restore) tcsetattr(0, TCSANOW, &modes);
  exit_as(status);
}

static void enter(const char *target, int user, int network, int new_session, int terminal) {
  static const char *kinds[] = { "user", "ipc", "uts", "net", "pid", "mnt" };
  int fds[6], root, wd;
  char path[64];
  for (int k = 0; k < 6; k++) {
    fds[k] = -1;
    if ((k == 0 && !user) || (k == 3 && !network)) continue;
    snprintf(path, sizeof path, "/proc/%s/ns/%s", target, kinds[k]);
    if ((fds[k] = open(path, O_RDONLY | O_CLOEXEC)) < 0) fail("cannot enter the sandbox (is it running?)", errno);
  }
  snprintf(path, sizeof path, "/proc/%s/root", target);
  root = open(path, O_RDONLY | O_CLOEXEC);
  snprintf(path, sizeof path, "/proc/%s/cwd", target);
  wd = open(path, O_RDONLY | O_CLOEXEC);
  if (root < 0 || wd < 0) fail("cannot enter the sandbox (is it running?)", errno);
  for (int k = 0; k < 6; k++)
    if (fds[k] >= 0 && (setns(fds[k], 0) || close(fds[k]))) fail("cannot enter the sandbox's namespaces", errno);
  if (fchdir(root) || chroot(".") || fchdir(wd)) fail("cannot enter the sandbox's root", errno);
  close(root);
  close(wd);
  signal(SIGCHLD, SIG_DFL);
  int master = terminal && isatty(0) ? open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC) : -1;
  int number = 0, unlock = 0, signals = -1;
  struct termios modes;
  struct winsize size;
  sigset_t relayed, before;
  if (master >= 0) {
    if (ioctl(master, TIOCSPTLCK, &unlock) || ioctl(master, TIOCGPTN, &number)) fail("cannot make the sandbox's terminal", errno);
    sigemptyset(&relayed);
    sigaddset(&relayed, SIGCHLD);
    sigaddset(&relayed, SIGWINCH);
    sigprocmask(SIG_BLOCK, &relayed, &before);
    if ((signals = signalfd(-1, &relayed, SFD_CLOEXEC)) < 0) fail("cannot make the sandbox's terminal", errno);
    if (tcgetattr(0, &modes) || ioctl(0, TIOCGWINSZ, &size)) fail("cannot read the terminal's modes", errno);
  }
  pid_t child = fork();
  if (child < 0) fail("cannot start the sandbox's command", errno);
  if (child > 0 && master >= 0) relay(master, child, signals);
  if (child > 0) end_as(child);
  if (master >= 0) {
    /* A session led by the program, with the new terminal as its controlling terminal. */
    char path[64];
    snprintf(path, sizeof path, "/dev/pts/%d", number);
    int slave;
    if (setsid() < 0 || (slave = open(path, O_RDWR)) < 0 || ioctl(slave, TIOCSCTTY, 0) || tcsetattr(slave, TCSANOW, &modes) || ioctl(slave, TIOCSWINSZ, &size))
      fail("cannot open the sandbox's terminal", errno);
    if (dup2(slave, 0) < 0 || dup2(slave, 1) < 0 || dup2(slave, 2) < 0) fail("cannot open the sandbox's terminal", errno);
    if (slave > 2) close(slave);
    close(signals);
    sigprocmask(SIG_SETMASK, &before, NULL);
    own_terminal = 1;
  } else if (new_session && setsid() < 0) fail("cannot start the sandbox's command", errno);
}

/* Each root operation's number of words. */
static int root_op_words(const char *flag) {
  if (!strcmp(flag, "--tmpfs")) return 3;
  if (!strcmp(flag, "--ro-bind") || !strcmp(flag, "--ro-bind-tree") || !strcmp(flag, "--bind") || !strcmp(flag, "--symlink") || !strcmp(flag, "--chmod")) return 2;
  if (!strcmp(flag, "--dir") || !strcmp(flag, "--proc") || !strcmp(flag, "--devpts")) return 1;
  return 0;
}

int main(int argc, char **argv) {
  int i = 1;
  const char *user = NULL, *nproc = NULL, *as = NULL, *handover = NULL, *root = NULL, *target = NULL;
  int drop = 0, port = 0, words = 0, die = 0, user_namespace = 0, network = 0, as_init = 0, count = 0;
  int enter_user = 0, enter_network = 0, new_session = 0, terminal = 0;
  char **bridge = NULL;
  struct root_op ops[argc];
  const char *cgroups[argc];
  int cgroup_count = 0;
  for (; i < argc && strcmp(argv[i], "--"); i++) {
    int op_words = root_op_words(argv[i]);
    if (op_words) {
      if (!root || i + op_words >= argc) usage();
      ops[count++] = (struct root_op){ argv[i], argv + i + 1 };
      i += op_words;
    } else if (!strcmp(argv[i], "--die-with-parent")) die = 1;
    else if (!strcmp(argv[i], "--cgroup") && i + 1 < argc) cgroups[cgroup_count++] = argv[++i];
    else if (!strcmp(argv[i], "--unshare-user")) user_namespace = 1;
    else if (!strcmp(argv[i], "--unshare-net")) network = 1;
    else if (!strcmp(argv[i], "--as-init")) as_init = 1;
    else if (!strcmp(argv[i], "--enter") && i + 1 < argc) target = argv[++i], number(target);
    else if (!strcmp(argv[i], "--enter-user")) enter_user = 1;
    else if (!strcmp(argv[i], "--enter-net")) enter_network = 1;
    else if (!strcmp(argv[i], "--new-session")) new_session = 1;
    else if (!strcmp(argv[i], "--terminal")) terminal = 1;
    else if (!strcmp(argv[i], "--root") && i + 1 < argc) root = argv[++i];
    else if (!strcmp(argv[i], "--user") && i + 1 < argc) user = argv[++i];
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
  if (i + 1 >= argc || (handover && !bridge) || port > 65535 || ((user_namespace || network || as_init) && !root) || (as_init && (user || drop || handover || nproc || as)) ||
      ((enter_user || enter_network || new_session || terminal) && !target) || (new_session && terminal) || (target && (root || die))) usage();
  char **program = argv + i + 1;
  if (die && prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0)) fail("cannot start the sandbox", errno);
  for (int c = 0; c < cgroup_count; c++) {
    char pid[24];
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    write_file(cgroups[c], pid);
  }
  if (root) enter_sandbox(root, ops, count, user_namespace, network, as_init);
  if (target) enter(target, enter_user, enter_network, new_session, terminal);
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
