/** The one exit-code table: printed by `sandboxes help exit-codes` and copied into the README. */
export const EXIT = {
  ok: 0,
  failure: 1,
  usage: 2,
  timeout: 124,
  sandboxesFailure: 125,
  sigpipe: 141,
  sighup: 129,
  sigint: 130,
  sigterm: 143,
} as const;

/** 128+N for the way a run was stopped from outside. */
export function exitForStop(reason: unknown): number {
  return reason === "SIGTERM" ? EXIT.sigterm : reason === "SIGHUP" ? EXIT.sighup : reason === "SIGPIPE" ? EXIT.sigpipe : EXIT.sigint;
}

export const EXIT_CODE_TABLE: ReadonlyArray<readonly [string, string]> = [
  ["0-255", "run, exec, shell, claude: the sandboxed program's own exit code"],
  ["128+N", "run, exec: the sandboxed program was killed by signal N (e.g. 137 for SIGKILL, also past the local sandbox's --memory)"],
  ["124", "run, exec: the command hit --timeout and its whole process tree was killed"],
  ["125", "run, exec, shell, claude: sandboxes itself failed (bad flags, missing file, no credentials, provider unreachable)"],
  ["129", "hung up (SIGHUP, e.g. the terminal closed); sandboxes created by this run or session were destroyed first"],
  ["130", "interrupted by Ctrl-C (SIGINT); sandboxes created by this run were destroyed first"],
  ["143", "terminated by SIGTERM; sandboxes created by this run were destroyed first"],
  ["141", "run, exec, cp: whoever read our stdout went away (SIGPIPE, e.g. `| head -1`; cp writes there with `cp SRC -`); the program or the copy was stopped and what this run created destroyed"],
  ["0", "other commands: success"],
  ["1", "other commands: failure (a provider error, a failed check in `sandboxes test`)"],
  ["2", "other commands: usage error (unknown flag, missing argument)"],
];

export function renderExitCodeTable(): string {
  const width = Math.max(...EXIT_CODE_TABLE.map(([code]) => code.length));
  return EXIT_CODE_TABLE.map(([code, meaning]) => `  ${code.padEnd(width)}  ${meaning}`).join("\n");
}
