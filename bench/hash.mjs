// Streaming SHA-256 throughput: node:crypto (the way src/hash.ts reads files: fd reads, double-buffered)
// against `openssl dgst -sha256` and `sha256sum` on the same temp file, page cache warm, so it measures
// hashing, not the disk. This is the figure behind choosing SHA-256 from node:crypto over BLAKE3:
// node:crypto is OpenSSL, which uses the CPU's SHA extensions (SHA-NI, ARMv8 SHA2), needs no native
// dependency, and with the next read overlapping the hashing it runs at the hash's own speed, in the
// range of what an NVMe disk delivers. (A coreutils sha256sum built without OpenSSL has no SHA-NI path
// and is several times slower; that is the tool, not the algorithm.)
//
//   node bench/hash.mjs [MiB=512] [runs=3]
//
// Plain JS importing nothing from src/, so it runs without a build.
import { execFileSync } from "node:child_process"
import { createHash, randomBytes } from "node:crypto"
import { createReadStream } from "node:fs"
import { mkdtemp, open, rm } from "node:fs/promises"
import { cpus, tmpdir } from "node:os"
import { join } from "node:path"
import { pipeline } from "node:stream/promises"

const mib = Number(process.argv[2] ?? 512)
const runs = Number(process.argv[3] ?? 3)
const bytes = mib * 1024 * 1024

const dir = await mkdtemp(join(tmpdir(), "pipeline-bench-hash-"))
const file = join(dir, "data.bin")

const writeFile = async () => {
  const fh = await open(file, "w")
  const block = randomBytes(16 * 1024 * 1024)
  for (let written = 0; written < bytes; written += block.length) {
    await fh.write(block, 0, Math.min(block.length, bytes - written))
  }
  await fh.close()
}

/**
 * What src/fs-util.ts `readChunks` does: fd reads into two reused buffers, the next read in flight while
 * the current chunk is hashed. `doubleBuffered: false` waits for each read before hashing.
 */
const nodeFd = (chunk, doubleBuffered) => async () => {
  const fh = await open(file, "r")
  try {
    const hash = createHash("sha256")
    let current = Buffer.allocUnsafe(chunk)
    let spare = Buffer.allocUnsafe(chunk)
    let pending = fh.read(current, 0, chunk, null)
    for (;;) {
      const { bytesRead } = await pending
      if (bytesRead === 0) break
      if (doubleBuffered) {
        ;[current, spare] = [spare, current]
        pending = fh.read(current, 0, chunk, null)
        hash.update(spare.subarray(0, bytesRead))
      } else {
        hash.update(current.subarray(0, bytesRead))
        pending = fh.read(current, 0, chunk, null)
      }
    }
    return hash.digest("hex")
  } finally {
    await fh.close()
  }
}

/** A plain read stream piped into the hash (64 KiB chunks by default). */
const nodeStream = (highWaterMark) => async () => {
  const hash = createHash("sha256")
  await pipeline(createReadStream(file, { highWaterMark }), hash)
  return hash.digest("hex")
}

const tool = (cmd, args) => async () =>
  execFileSync(cmd, [...args, file], { encoding: "utf8" }).split(/\s/)[0]

/** name, run, and for an external tool the command that says whether it is installed */
const candidates = [
  ["node:crypto, 2 x 1 MiB buffers (ours)", nodeFd(1024 * 1024, true)],
  ["node:crypto, 1 x 1 MiB buffer", nodeFd(1024 * 1024, false)],
  ["node:crypto, read stream, 64 KiB", nodeStream(64 * 1024)],
  ["openssl dgst -sha256", tool("openssl", ["dgst", "-sha256", "-r"]), ["openssl", "version"]],
  ["sha256sum", tool("sha256sum", []), ["sha256sum", "--version"]],
]

const installed = ([cmd, ...args]) => {
  try {
    execFileSync(cmd, args, { stdio: "ignore" })
    return true
  } catch {
    return false
  }
}

try {
  await writeFile()
  // Warm the page cache so every candidate measures hashing, not the disk.
  await nodeFd(1024 * 1024, true)()
  const results = []
  let expected
  for (const [name, run, check] of candidates) {
    if (check !== undefined && !installed(check)) {
      console.log(`${name.padEnd(40)} (not installed, skipped)`)
      continue
    }
    let best = Number.POSITIVE_INFINITY
    for (let i = 0; i < runs; i++) {
      const start = process.hrtime.bigint()
      const digest = await run()
      const seconds = Number(process.hrtime.bigint() - start) / 1e9
      expected ??= digest
      if (digest !== expected) throw new Error(`${name} disagrees: ${digest} vs ${expected}`)
      best = Math.min(best, seconds)
    }
    results.push({ name, gibps: bytes / best / 1024 ** 3 })
  }
  const openssl = results.find((r) => r.name.startsWith("openssl"))
  const sha256sum = results.find((r) => r.name === "sha256sum")
  console.log(
    `SHA-256 of a ${mib} MiB file (page cache warm), best of ${runs}; ${cpus()[0]?.model ?? "unknown CPU"}, node ${process.version}`,
  )
  for (const r of results) {
    const vs = (ref, label) => (ref === undefined ? "" : `  ${(r.gibps / ref.gibps).toFixed(2)}x ${label}`)
    console.log(
      `${r.name.padEnd(40)} ${r.gibps.toFixed(2).padStart(6)} GiB/s${vs(openssl, "openssl")}${vs(sha256sum, "sha256sum")}`,
    )
  }
} finally {
  await rm(dir, { recursive: true, force: true })
}
