/**
 * The spawner protocol: what the orchestrator and its spawner process (`spawner.ts`, or the native one,
 * `native/spawner.c`) say to each other. The orchestrator writes requests on the spawner's stdin (one JSON
 * object per line to the Node spawner, `encodeFrame`'s frames to the native one); the spawner answers on its
 * stdout, one JSON object per line, every message naming the request it belongs to. Per request the spawner
 * sends exactly one `started` (then any number of `line`s, then one `exited`) or exactly one `failed`, in
 * that order.
 *
 * Types and one encoder: the spawner's bundle stays free of anything the orchestrator loads.
 */
import type { Redirect } from "./simple-command.js"

/**
 * Start one stage process: a new process group (`setsid`), stdin from /dev/null, stdout/stderr/fd 3 piped,
 * then `redirects` applied in order (relative paths from `cwd`), as a shell would before running it.
 */
export interface SpawnRequest {
  /** the request's number, unique per spawner */
  readonly id: number
  readonly file: string
  readonly args: ReadonlyArray<string>
  readonly cwd: string
  /** the complete environment */
  readonly env: Readonly<Record<string, string>>
  /** files opened on stdin, stdout or stderr instead (`simple-command.ts`) */
  readonly redirects?: ReadonlyArray<Redirect>
}

/** Which of the stage's pipes a line came from: stdout, stderr, or the events channel (fd 3). */
export type StageFd = 1 | 2 | 3

/** What the spawner reports. */
export type SpawnerMessage =
  /** the process started; its pid is its process group id */
  | { readonly t: "started"; readonly id: number; readonly pid: number }
  /** one line the process wrote, without its line break (split as `node:readline` does) */
  | { readonly t: "line"; readonly id: number; readonly fd: StageFd; readonly line: string }
  /**
   * the process exited and every pipe of its group is closed (what it left in the background was killed):
   * `code` when it exited, `signal` when a signal killed it
   */
  | {
      readonly t: "exited"
      readonly id: number
      readonly code: number | null
      readonly signal: string | null
    }
  /** the process could not be started (no `started` came before) */
  | { readonly t: "failed"; readonly id: number; readonly message: string }

/**
 * A request as the native spawner reads it: a decimal byte count and a newline, then that many bytes of
 * NUL-terminated fields: id, file, the number of args, the args, cwd, the number of environment entries,
 * the entries as `NAME=value`, the number of redirections, and each as three fields: its descriptor, `r`, `w`
 * or `a` (read, write, append) and its path. (Framed rather than JSON so the C side needs no JSON parser; no field can
 * hold a NUL, since none could be passed to a process.)
 */
export const encodeFrame = (request: SpawnRequest): Buffer => {
  // One string built in one pass (a frame per stage process: on a run of many small stages, building it
  // field by field was a visible share of the orchestrator's time); the NULs are counted once at the end.
  const { args, env } = request
  const redirects = request.redirects ?? []
  let body = `${request.id}\0${request.file}\0${args.length}\0`
  for (const a of args) body += `${a}\0`
  let entries = ""
  let envc = 0
  for (const name in env) {
    entries += `${name}=${env[name]}\0`
    envc++
  }
  body += `${request.cwd}\0${envc}\0${entries}${redirects.length}\0`
  for (const r of redirects) body += `${r.fd}\0${r.mode[0]}\0${r.path}\0`
  const fields = 6 + args.length + envc + 3 * redirects.length
  let nuls = 0
  for (let at = body.indexOf("\0"); at >= 0; at = body.indexOf("\0", at + 1)) nuls++
  if (nuls !== fields) {
    const all = [
      request.file,
      ...args,
      request.cwd,
      ...Object.entries(env).map(([k, v]) => `${k}=${v}`),
      ...redirects.map((r) => r.path),
    ]
    const bad = all.find((f) => f.includes("\0"))
    throw new TypeError(`a process argument or variable holds a NUL byte: ${JSON.stringify(bad)}`)
  }
  return Buffer.from(`${Buffer.byteLength(body)}\n${body}`, "utf8")
}
