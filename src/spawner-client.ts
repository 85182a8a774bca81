/**
 * The orchestrator's side of the spawner (`spawner.ts`): starts spawner processes when the first stage
 * process is asked for, sends them spawn requests, and routes what they answer to the request's handlers.
 *
 * A pool holds up to `size` spawners, started lazily: a request goes to an idle spawner, or to a new one while
 * the pool is not full, or else to the least busy. A chain of stages therefore uses one spawner; a fan-out
 * spreads its forks over several, one per core, so they proceed in parallel.
 *
 * A spawner that dies (killed, crashed, could not start) is dropped from the pool; each request it had not
 * finished is told `lost` with the reason, and the next request starts a new spawner.
 *
 * Two spawner programs speak the protocol: the native one (`native/spawner.c`, built to `dist/spawner-native`
 * when the build found a C compiler), which starts processes several times faster, and the Node one
 * (`dist/spawner.mjs`), used when the native one was not built or `PIPELINE_SPAWNER=node` asks for it.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { accessSync, constants } from "node:fs"
import { dirname, join } from "node:path"
import { lineSplitter } from "./line-splitter.js"
import { encodeFrame, type SpawnerMessage, type SpawnRequest, type StageFd } from "./spawner-protocol.js"

/** A spawner program: the Node bundle, run by this Node, or the native executable. */
export interface SpawnerProgram {
  readonly kind: "node" | "native"
  readonly path: string
}

/**
 * The spawner a run uses: the native one built beside the Node bundle `nodeEntry` when it is there and
 * `PIPELINE_SPAWNER` (in `env`) is not `node`, else the Node one. `PIPELINE_SPAWNER=native` insists on the
 * native one (an error if it was not built).
 */
export const spawnerProgram = (
  nodeEntry: string,
  env: Readonly<Record<string, string | undefined>> = process.env,
): SpawnerProgram => {
  const choice = env.PIPELINE_SPAWNER
  if (choice !== undefined && choice !== "" && choice !== "node" && choice !== "native")
    throw new Error(`PIPELINE_SPAWNER must be "node" or "native", got "${choice}"`)
  const native = join(dirname(nodeEntry), "spawner-native")
  if (choice === "node") return { kind: "node", path: nodeEntry }
  try {
    accessSync(native, constants.X_OK)
    return { kind: "native", path: native }
  } catch {
    if (choice === "native")
      throw new Error(
        `PIPELINE_SPAWNER=native, but ${native} was not built: install a C compiler (cc) and run npm run build`,
      )
    return { kind: "node", path: nodeEntry }
  }
}

/** What a spawn request is told, in this order: `started`, `line`s, `exited`; or `failed`; or `lost`. */
export interface SpawnHandlers {
  /** the process started: `pid` is also its process group id */
  readonly started: (pid: number) => void
  readonly line: (fd: StageFd, line: string) => void
  /** the process exited and its pipes are closed */
  readonly exited: (code: number | null, signal: string | null) => void
  /** the process could not be started */
  readonly failed: (message: string) => void
  /** the spawner died before the process's end was reported: `message` says how */
  readonly lost: (message: string) => void
}

/** The spawners of one run. */
export interface SpawnerPool {
  /** Ask a spawner to start a process. */
  readonly spawn: (request: Omit<SpawnRequest, "id">, handlers: SpawnHandlers) => void
  /** The pids of the spawners now running. */
  readonly pids: () => ReadonlyArray<number>
  /** Close every spawner's stdin and wait for them to exit. */
  readonly close: () => Promise<void>
}

/** How long a spawner gets to exit after its stdin is closed (it exits at once unless it is stuck). */
const CLOSE_GRACE_MS = 2000

/** How much of a dying spawner's stderr is kept for the message. */
const STDERR_KEPT = 4096

/** One spawner process and its requests in flight. */
class Spawner {
  private readonly child: ChildProcess
  private readonly inFlight = new Map<number, SpawnHandlers>()
  private nextId = 1
  private stderr = ""
  /** resolves once the process is gone and everything it wrote has been read */
  readonly closed: Promise<void>

  constructor(
    private readonly program: SpawnerProgram,
    onDeath: (s: Spawner) => void,
  ) {
    const [file, args] =
      program.kind === "node" ? [process.execPath, [program.path]] : [program.path, [] as string[]]
    this.child = spawn(file, args, {
      stdio: ["pipe", "pipe", "pipe"],
      // Its own process group: a Ctrl-C at the terminal reaches the orchestrator, which then ends the stages
      // itself; a spawner killed by the same keystroke would turn their cancellation into failures.
      detached: true,
      env: {},
    })
    const messages = lineSplitter((line) => {
      let m: SpawnerMessage
      try {
        m = JSON.parse(line) as SpawnerMessage
      } catch {
        return // not the protocol (it writes nothing else): ignored rather than trusted
      }
      this.dispatch(m)
    })
    this.child.stdout?.setEncoding("utf8")
    this.child.stdout?.on("data", messages.push)
    this.child.stderr?.setEncoding("utf8")
    this.child.stderr?.on("data", (text: string) => {
      if (this.stderr.length < STDERR_KEPT) this.stderr += text.slice(0, STDERR_KEPT - this.stderr.length)
    })
    this.child.stdin?.on("error", () => undefined) // EPIPE once it died: reported by "close"
    this.closed = new Promise((resolve) => {
      let done = false
      const end = (how: string) => {
        if (done) return
        done = true
        onDeath(this)
        // Node prints where it failed before what failed: the error's own line says more.
        const lines = this.stderr.trim().split("\n")
        const detail = lines.find((l) => /^\w*Error\b/.test(l)) ?? lines[0]
        const message = `the process spawner (pid ${this.child.pid ?? "?"}) ${how}${detail ? `: ${detail}` : ""}`
        const lost = [...this.inFlight.values()]
        this.inFlight.clear()
        for (const h of lost) h.lost(message)
        resolve()
      }
      // "close" comes after stdout ended: every message the spawner sent before it died has been dispatched.
      this.child.once("close", (code, signal) =>
        end(signal ? `was killed by ${signal}` : `exited with code ${code}`),
      )
      this.child.once("error", (e) => end(`could not start: ${e.message}`))
    })
  }

  get pid(): number | undefined {
    return this.child.pid
  }

  /** Requests started and not finished. */
  get load(): number {
    return this.inFlight.size
  }

  spawn(request: Omit<SpawnRequest, "id">, handlers: SpawnHandlers): void {
    const id = this.nextId++
    this.inFlight.set(id, handlers)
    const full = { id, ...request }
    this.child.stdin?.write(this.program.kind === "node" ? `${JSON.stringify(full)}\n` : encodeFrame(full))
  }

  private dispatch(m: SpawnerMessage): void {
    const h = this.inFlight.get(m.id)
    if (h === undefined) return
    switch (m.t) {
      case "started":
        h.started(m.pid)
        break
      case "line":
        h.line(m.fd, m.line)
        break
      case "exited":
        this.inFlight.delete(m.id)
        h.exited(m.code, m.signal)
        break
      case "failed":
        this.inFlight.delete(m.id)
        h.failed(m.message)
        break
    }
  }

  /** End its stdin, and wait for it to exit; one that does not within `graceMs` is killed. */
  async close(graceMs: number): Promise<void> {
    this.child.stdin?.end()
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<void>((r) => {
      timer = setTimeout(() => {
        this.child.kill("SIGKILL")
        r()
      }, graceMs)
    })
    await Promise.race([this.closed, late])
    clearTimeout(timer)
    await this.closed
  }
}

/**
 * A pool of up to `size` spawners running `program`, started on demand. `close` kills a spawner that has not
 * exited `closeGraceMs` after its stdin was closed.
 */
export const makeSpawnerPool = (
  program: SpawnerProgram,
  size: number,
  closeGraceMs = CLOSE_GRACE_MS,
): SpawnerPool => {
  const live: Spawner[] = []
  const all = new Set<Spawner>()
  const drop = (s: Spawner) => {
    const at = live.indexOf(s)
    if (at >= 0) live.splice(at, 1)
  }
  const pick = (): Spawner => {
    let best: Spawner | undefined
    for (const s of live) if (best === undefined || s.load < best.load) best = s
    if (best !== undefined && (best.load === 0 || live.length >= size)) return best
    const s = new Spawner(program, drop)
    live.push(s)
    all.add(s)
    return s
  }
  return {
    spawn: (request, handlers) => pick().spawn(request, handlers),
    pids: () => live.flatMap((s) => (s.pid === undefined ? [] : [s.pid])),
    close: async () => {
      await Promise.all([...all].map((s) => s.close(closeGraceMs)))
    },
  }
}
