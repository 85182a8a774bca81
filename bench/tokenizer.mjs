#!/usr/bin/env node
// Tokenizer throughput: count the words of a text corpus, train WordPiece vocabularies of a few sizes on
// it (the demo's `tokenize` stage trains one on its corpus, so this is time every fresh run pays), then
// tokenize and batch-encode the same corpus with the trained vocabulary.
//
// Usage: node bench/tokenizer.mjs [--mib 5] [--vocab 8000,30000] PATH...
//   PATH: text files or folders of them, read in name order until --mib MiB are in. Any English prose
//   works; Debian's vim-runtime has ~10 MB of it: node bench/tokenizer.mjs /usr/share/vim/vim90/doc
//
// esbuild bundles src/tokenizer into a temp file first, so the bench runs without a build.
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs"
import { cpus, tmpdir } from "node:os"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import { parseArgs } from "node:util"
import { build } from "esbuild"

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "..")
const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { mib: { type: "string", default: "5" }, vocab: { type: "string", default: "8000,30000" } },
})
if (positionals.length === 0) {
  console.error("usage: node bench/tokenizer.mjs [--mib 5] [--vocab 8000,30000] PATH...")
  process.exit(2)
}
const budget = Number(values.mib) * 1024 * 1024
const vocabSizes = values.vocab.split(",").map(Number)

const files = (path) =>
  statSync(path).isDirectory()
    ? readdirSync(path)
        .sort()
        .flatMap((f) => files(join(path, f)))
    : [path]
const texts = []
let bytes = 0
for (const f of positionals.flatMap(files)) {
  if (bytes >= budget) break
  const text = readFileSync(f, "utf8")
  texts.push(text)
  bytes += Buffer.byteLength(text)
}

const tmp = mkdtempSync(join(tmpdir(), "pipeline-bench-tokenizer-"))
const out = join(tmp, "tokenizer.mjs")
await build({
  entryPoints: [join(repo, "src/tokenizer/index.ts")],
  bundle: true,
  platform: "node",
  format: "esm",
  outfile: out,
  logLevel: "warning",
})
const tk = await import(pathToFileURL(out).href)
rmSync(tmp, { recursive: true, force: true })

// Wall-clock seconds, and CPU seconds beside them: on a shared machine the CPU time is the steadier figure.
const time = (f) => {
  const t0 = performance.now()
  const c0 = process.cpuUsage()
  const result = f()
  const cpu = process.cpuUsage(c0)
  return [result, (performance.now() - t0) / 1000, (cpu.user + cpu.system) / 1e6]
}
const secs = (wall, cpu) => `${wall.toFixed(2)} s (CPU ${cpu.toFixed(2)} s)`
const mib = bytes / 1024 / 1024
console.log(
  `corpus: ${texts.length} files, ${mib.toFixed(2)} MiB; ${cpus()[0]?.model ?? "?"}, Node ${process.version}`,
)

const [counts, countS, countCpu] = time(() => {
  const c = new tk.WordCounter(tk.UNCASED)
  for (const t of texts) c.add(t)
  return c.counts()
})
let words = 0
for (const n of counts.values()) words += n
console.log(
  `count words: ${secs(countS, countCpu)}, ${(mib / countS).toFixed(1)} MiB/s; ${words} words, ${counts.size} distinct`,
)

let tokenizer
for (const vocabSize of vocabSizes) {
  const [tokens, trainS, trainCpu] = time(() => tk.trainWordPiece(counts, { vocabSize }))
  console.log(`train vocabSize ${vocabSize}: ${secs(trainS, trainCpu)} -> ${tokens.length} tokens`)
  tokenizer = new tk.BertTokenizer(tk.Vocab.fromTokens(tokens), {
    basic: tk.UNCASED,
    wordpiece: tk.BERT_WORDPIECE,
    specials: tk.BERT_SPECIALS,
  })
}

const lines = texts.flatMap((t) => t.split("\n")).filter((l) => l.trim() !== "")
const [pieces, tokS, tokCpu] = time(() => {
  let n = 0
  for (const t of texts) n += tokenizer.textIds(t).length
  return n
})
console.log(`tokenize: ${secs(tokS, tokCpu)}, ${(mib / tokS).toFixed(1)} MiB/s; ${pieces} pieces`)
const [batch, encS, encCpu] = time(() =>
  tokenizer.encodeBatch(lines, { maxLength: 128, padding: "max_length" }),
)
console.log(
  `encodeBatch ${lines.length} lines, maxLength 128: ${secs(encS, encCpu)}; ${batch.rows}x${batch.cols} Int32Array`,
)
