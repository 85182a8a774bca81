/**
 * The spawner: a small long-lived process that starts stage processes for the orchestrator (see
 * `spawner-protocol.ts` for what they say to each other, `spawner-client.ts` for the other side).
 *
 * Why a separate process: `child_process.spawn` forks the calling process, and a fork costs in proportion to
 * the caller's memory. The orchestrator's heap (Effect, the pipeline, the store) made every spawn block its
 * main thread for ~5 ms; this process loads nothing but `node:child_process`, so its forks are cheap, and it
 * forks on its own thread of execution while the orchestrator carries on.
 *
 * Why `node:child_process` and not execa (which started stages before the spawner): this process needs only
 * `spawn` with a process group, three pipes and fd 3, all of which Node gives directly, and every module it
 * loads adds to the size of each fork. execa's conveniences (promise API, output buffering, error
 * formatting) are done on the orchestrator's side of the protocol, so it is no longer a dependency.
 *
 * It only starts processes and relays what they write. Everything else stays with the orchestrator, which
 * kills a stage by its process group (the stage's pid) exactly as before. The spawner exits when its stdin
 * ends (the orchestrator closed it, or died), leaving any stage still running alone: a stage is ended by the
 * orchestrator, or by the next run that takes over a killed run's lock, never by the spawner.
 */
import { spawn } from "node:child_process"
import { closeSync, constants, openSync } from "node:fs"
import { resolve } from "node:path"
import type { Readable } from "node:stream"
import { lineSplitter } from "./line-splitter.js"
import type { SpawnerMessage, SpawnRequest, StageFd } from "./spawner-protocol.js"

/** The stage pipes being read: paused together while the orchestrator is behind. */
const reading = new Set<Readable>()
let draining = false

const send = (message: SpawnerMessage): void => {
  if (process.stdout.write(`${JSON.stringify(message)}\n`) || draining) return
  // The orchestrator reads slower than the stages write: stop reading them until it caught up, so a stage
  // that floods its output waits on a full pipe, as it would writing to a terminal, instead of this
  // process buffering without bound.
  draining = true
  for (const stream of reading) stream.pause()
  process.stdout.once("drain", () => {
    draining = false
    for (const stream of reading) stream.resume()
  })
}

const openFlags = {
  read: constants.O_RDONLY,
  write: constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC,
  append: constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND,
} as const

const start = (req: SpawnRequest): void => {
  const { id } = req
  // The redirections' files, opened here in order as the shell would (a later one for the same descriptor
  // wins), handed to the child and closed once it has them.
  const stdio: Array<"ignore" | "pipe" | number> = ["ignore", "pipe", "pipe", "pipe"]
  const opened: number[] = []
  try {
    for (const r of req.redirects ?? []) {
      const fd = openSync(resolve(req.cwd, r.path), openFlags[r.mode], 0o666)
      opened.push(fd)
      stdio[r.fd] = fd
    }
  } catch (e) {
    for (const fd of opened) closeSync(fd)
    send({ t: "failed", id, message: (e as Error).message })
    return
  }
  const child = spawn(req.file, [...req.args], {
    cwd: req.cwd,
    env: req.env,
    detached: true, // its own process group, so a kill reaches every process it started
    stdio,
  })
  for (const fd of opened) closeSync(fd)
  const pid = child.pid
  if (pid === undefined) {
    // The fork or exec failed (a missing cwd or program): Node reports it as an event.
    child.once("error", (e) => send({ t: "failed", id, message: e.message }))
    return
  }
  send({ t: "started", id, pid })
  let result: { code: number | null; signal: string | null } | undefined
  // The pipes and the exit: `exited` goes out when all are done, after every line.
  const piped = ([1, 2, 3] as const satisfies ReadonlyArray<StageFd>).filter((fd) => stdio[fd] === "pipe")
  let pending = piped.length + 1
  const settle = () => {
    if (--pending === 0 && result !== undefined) send({ t: "exited", id, ...result })
  }
  for (const fd of piped) {
    const stream = child.stdio[fd] as Readable
    const lines = lineSplitter((line) => send({ t: "line", id, fd, line }))
    stream.setEncoding("utf8")
    stream.on("data", lines.push)
    reading.add(stream)
    if (draining) stream.pause()
    stream.once("close", () => {
      reading.delete(stream)
      lines.end()
      settle()
    })
  }
  child.once("exit", (code, signal) => {
    result = { code, signal }
    // What the stage left in the background would outlive it and hold its pipes open.
    try {
      process.kill(-pid, "SIGKILL")
    } catch {}
    settle()
  })
}

const requests = lineSplitter((line) => {
  if (line !== "") start(JSON.parse(line) as SpawnRequest)
})
process.stdout.on("error", () => process.exit(0)) // the orchestrator is gone
process.stdin.setEncoding("utf8")
process.stdin.on("data", requests.push)
process.stdin.once("end", () => process.exit(0))
