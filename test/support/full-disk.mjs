// Disk-full scenarios for test/reliability.test.ts, run inside a private mount namespace (`unshare -m`, or
// `unshare -Urm` without root) so that the small file system it mounts vanishes with it, whatever happens.
//
//   node full-disk.mjs BIN DIR      prints one JSON object: what each step saw
//
// DIR gets a 1 MiB tmpfs at DIR/small. Scenario "store": the project and its store are on the small file
// system; a stage writes an out that fits but leaves no room for its copy in the store. Scenario "restore":
// the project is on the small file system, its store elsewhere; restoring an out needs more room than is left.
import { spawnSync } from "node:child_process"
import { createHash } from "node:crypto"
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { join, relative } from "node:path"

const [bin, dir] = process.argv.slice(2)
const small = join(dir, "small")
mkdirSync(small, { recursive: true })
const mount = spawnSync("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", small], { encoding: "utf8" })
if (mount.status !== 0) {
  process.stdout.write(`${JSON.stringify({ mounted: false, why: mount.stderr || String(mount.error) })}\n`)
  process.exit(0)
}

const pipeline = `params:
  kb: 100
stages:
  small:
    cmd: echo hello > small.txt
    outs: [small.txt]
  big:
    cmd: head -c \${params.kb}000 /dev/zero | tr '\\0' a > big.txt
    outs: [big.txt]
  size:
    cmd: wc -c < big.txt > size.txt
    deps: [big.txt]
    outs: [size.txt]
`

const run = (cwd, args) => {
  const r = spawnSync(process.execPath, [bin, ...args], {
    cwd,
    encoding: "utf8",
    env: { ...process.env, NO_COLOR: "1" },
  })
  return { code: r.status, stderr: r.stderr }
}
const read = (path) => (existsSync(path) ? readFileSync(path, "utf8") : null)
/** Every file under a store's objects/ and tmp/, and whether each object's content hashes to its name. */
const storeState = (store) => {
  const objects = []
  const objectsDir = join(store, "objects")
  for (const sub of existsSync(objectsDir) ? readdirSync(objectsDir) : [])
    for (const name of readdirSync(join(objectsDir, sub))) {
      const bytes = readFileSync(join(objectsDir, sub, name))
      objects.push({
        name: sub + name,
        intact: createHash("sha256").update(bytes).digest("hex") === sub + name,
      })
    }
  const tmp = []
  const walk = (d) => {
    for (const e of existsSync(d) ? readdirSync(d, { withFileTypes: true }) : []) {
      if (e.isDirectory()) walk(join(d, e.name))
      else tmp.push(relative(store, join(d, e.name)))
    }
  }
  walk(join(store, "tmp"))
  return { objects, tmp }
}
const hidden = (project) => readdirSync(project).filter((n) => n.startsWith(".big.txt."))

const result = { mounted: true }

// Scenario "store": the store runs out of room while saving a stage's out.
{
  const project = join(small, "store-full")
  mkdirSync(join(project, ".git"), { recursive: true })
  writeFileSync(join(project, "pipeline.yaml"), pipeline)
  const first = run(project, ["run"])
  const before = {
    small: read(join(project, "small.txt")),
    size: read(join(project, "size.txt")),
    lock: read(join(project, "pipeline.lock")),
  }
  const full = run(project, ["run", "--set", "kb=450"])
  result.store = {
    project,
    first: first.code,
    full,
    before,
    after: {
      small: read(join(project, "small.txt")),
      size: read(join(project, "size.txt")),
      lock: read(join(project, "pipeline.lock")),
    },
    store: storeState(join(project, ".pipeline", "store")),
    verify: run(project, ["verify"]).code,
  }
  rmSync(project, { recursive: true, force: true })
}

// Scenario "restore": the workspace has no room for the restored out.
{
  const project = join(small, "restore-full")
  const store = join(dir, "store")
  mkdirSync(join(project, ".git"), { recursive: true })
  writeFileSync(join(project, "pipeline.yaml"), pipeline)
  const setup = [
    run(project, ["run", "--store", store, "--set", "kb=600"]).code,
    run(project, ["run", "--store", store, "--set", "kb=200"]).code,
  ]
  // 200 kB of big.txt and 400 kB of filler: no room left for a 600 kB big.txt beside the old one
  writeFileSync(join(project, "filler"), Buffer.alloc(400_000))
  const previous = read(join(project, "big.txt"))
  const full = run(project, ["run", "--store", store, "--set", "kb=600"])
  const after = {
    bigIntact: read(join(project, "big.txt")) === previous,
    size: read(join(project, "size.txt")),
    hidden: hidden(project),
  }
  rmSync(join(project, "filler"))
  const freed = run(project, ["run", "--store", store, "--set", "kb=600"])
  result.restore = {
    project,
    setup,
    full,
    after,
    freed: {
      code: freed.code,
      bigLength: read(join(project, "big.txt"))?.length ?? null,
      stderr: freed.stderr,
    },
    store: storeState(store),
  }
}

process.stdout.write(`${JSON.stringify(result)}\n`)
