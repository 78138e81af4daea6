/**
 * How one command runs through the agent's POST /commands/run, which answers once, with stdout and
 * stderr as JSON strings. The wrapper below (run by /bin/sh in the sandbox) makes that exact:
 *   - the command's stdout and stderr go to files and come back base64-encoded, so binary output
 *     survives the JSON strings byte for byte;
 *   - it runs in a process group of its own (setsid) whose id is written to PREFIX.pid, so a
 *     timeout or Ctrl-C can kill the whole tree (KILL_SCRIPT, a second request);
 *   - a watchdog inside the sandbox kills that group when the time limit passes and leaves
 *     PREFIX.timeout, so a timeout is told apart from a program that exits 124 by itself;
 *   - stdin, when there is one, arrives as files PREFIX.in.N.SIZE written through the agent's file
 *     API while the command runs, then PREFIX.eof; a feeder copies them into a FIFO in order.
 * Its own stdout is "sandboxes-exec CODE TIMEDOUT", the base64 of stdout, "--", the base64 of
 * stderr. Anything on its own stderr is a shell error of the wrapper and is passed on as such.
 */
import { ProviderError } from "../../base/errors";

export const EXEC_WRAPPER = String.raw`o=$1; limit=$2; feed=$3; shift 3
g=; command -v setsid >/dev/null 2>&1 && g=setsid
killtree() { kill -9 "-$1" 2>/dev/null || kill -9 "$1" 2>/dev/null; }
in=/dev/null; f=
if [ "$feed" = 1 ]; then
  rm -f "$o.fifo"; mkfifo "$o.fifo" || exit 126
  in=$o.fifo
  ( i=0
    while :; do
      for c in "$o.in.$i".*; do :; done
      if [ -e "$c" ]; then
        n=\${c##*.}
        while [ "$(($(wc -c <"$c")))" -lt "$n" ]; do sleep 0.02; done
        cat "$c"; rm -f "$c"; i=$((i+1))
      elif [ -e "$o.eof" ]; then break
      else sleep 0.05; fi
    done ) >"$o.fifo" 2>/dev/null &
  f=$!
fi
$g "$@" <"$in" >"$o.out" 2>"$o.err" &
p=$!
echo "$p" >"$o.pid"
w=
if [ "$limit" != 0 ]; then
  $g sh -c 'sleep "$1"; : >"$2.timeout"; kill -9 "-$3" 2>/dev/null || kill -9 "$3"' watchdog "$limit" "$o" "$p" </dev/null >/dev/null 2>&1 &
  w=$!
fi
wait "$p" 2>/dev/null; code=$?
[ -n "$w" ] && killtree "$w"
[ -n "$f" ] && kill "$f" 2>/dev/null
t=0; [ -e "$o.timeout" ] && t=1
printf 'sandboxes-exec %s %s\n' "$code" "$t"
base64 <"$o.out"; echo --; base64 <"$o.err"
rm -f "$o.out" "$o.err" "$o.pid" "$o.timeout" "$o.fifo" "$o.eof" "$o".in.*
exit "$code"`.replaceAll("\\$", "$");

/** Kills the group of the command behind PREFIX (waiting up to 2 s for it to start), and ends its stdin. */
export const KILL_SCRIPT = `o=$1; i=0
while [ ! -s "$o.pid" ] && [ $i -lt 20 ]; do sleep 0.1; i=$((i+1)); done
p=$(cat "$o.pid" 2>/dev/null) && { kill -9 "-$p" 2>/dev/null || kill -9 "$p" 2>/dev/null; }
: >"$o.eof"; true`;

export interface CommandAnswer {
  success?: boolean;
  stdout?: string;
  stderr?: string;
  exit_code?: number;
  error?: string;
  message?: string;
}

export interface WrappedResult {
  exitCode: number;
  timedOut: boolean;
  stdout: Uint8Array;
  stderr: Uint8Array;
  /** What the wrapper itself printed on stderr (a shell error), if anything. */
  wrapperStderr: string;
}

/** The agent's answer -> the command's exact bytes and exit; a ProviderError when the wrapper did not finish. */
export function parseAnswer(answer: CommandAnswer, provider: string, what: string): WrappedResult {
  const text = answer.stdout ?? "";
  const header = /^sandboxes-exec (\d+) ([01])\n/.exec(text);
  if (!header) {
    const detail = (answer.error || answer.message || answer.stderr || "").trim().split("\n").pop() || `exit code ${answer.exit_code ?? "unknown"}`;
    // An error from the agent (a missing workdir, its own timeout) speaks for itself; otherwise the wrapper could not run.
    const hint = answer.error || answer.message ? undefined : "the sandbox image needs /bin/sh, base64 and mkfifo (coreutils)";
    throw new ProviderError(provider, `${what} did not finish in the sandbox: ${detail}`, undefined, undefined, hint);
  }
  const body = text.slice(header[0].length);
  const split = body.indexOf("--\n");
  const out = split === -1 ? body : body.slice(0, split);
  const err = split === -1 ? "" : body.slice(split + 3);
  return {
    exitCode: Number(header[1]) & 255,
    timedOut: header[2] === "1",
    stdout: decode(out),
    stderr: decode(err),
    wrapperStderr: answer.stderr ?? "",
  };
}

function decode(base64: string): Uint8Array {
  return new Uint8Array(Buffer.from(base64.replace(/\s+/g, ""), "base64"));
}
