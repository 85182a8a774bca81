// Demo stage: a deterministic train/test split by a hash of each line (the same line always lands in the
// same split, whatever else changes), written as a folder out.
// Usage: node split.mjs INPUT OUTDIR TEST_PERCENT
import { createHash } from "node:crypto"
import { mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"

const [input, outDir, testPercent] = process.argv.slice(2)
const fd = Number(process.env.PIPELINE_EVENTS_FD ?? 3)
const lines = readFileSync(input, "utf8").split("\n").filter(Boolean)
const train = []
const test = []
for (const [i, line] of lines.entries()) {
  const bucket = createHash("sha256").update(line).digest().readUInt32BE(0) % 100
  ;(bucket < Number(testPercent) ? test : train).push(line)
  writeFileSync(fd, `${JSON.stringify({ step: i + 1, total: lines.length })}\n`)
}
mkdirSync(outDir, { recursive: true })
writeFileSync(join(outDir, "train.txt"), `${train.join("\n")}\n`)
writeFileSync(join(outDir, "test.txt"), `${test.join("\n")}\n`)
console.log(`train ${train.length}, test ${test.length}`)
