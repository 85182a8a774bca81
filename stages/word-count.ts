/**
 * `word-count`: lines, words and the most frequent words of a text file or of every file in a folder.
 * The reference built-in kind: it proves the registry, `with:` validation, derived deps and outs, and the
 * stage runner end to end.
 */
import { readdir, readFile, stat, writeFile } from "node:fs/promises"
import { join, relative, resolve } from "node:path"
import { type StageImplementation, StageInputError } from "./api.js"

const filesUnder = async (path: string): Promise<string[]> => {
  const st = await stat(path)
  if (!st.isDirectory()) return [path]
  const entries = await readdir(path, { withFileTypes: true, recursive: true })
  return entries
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name))
    .sort()
}

export const run: StageImplementation = async (ctx) => {
  const input = resolve(ctx.root, String(ctx.args.input))
  const lowercase = ctx.args.lowercase !== false
  const top = typeof ctx.args.top === "number" ? ctx.args.top : 10
  const files = await filesUnder(input).catch(() => {
    throw new StageInputError(`input ${String(ctx.args.input)} does not exist`)
  })
  let lines = 0
  let words = 0
  const freq = new Map<string, number>()
  for (const [i, file] of files.entries()) {
    const text = await readFile(file, "utf8")
    lines += text.split("\n").length - (text.endsWith("\n") ? 1 : 0)
    for (const raw of text.match(/[\p{L}\p{N}']+/gu) ?? []) {
      const w = lowercase ? raw.toLowerCase() : raw
      words++
      freq.set(w, (freq.get(w) ?? 0) + 1)
    }
    ctx.progress({ step: i + 1, total: files.length })
  }
  const ranked = [...freq]
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .slice(0, top)
  const out = ctx.outs[ctx.outs.length - 1]!
  const result = {
    files: files.map((f) => relative(ctx.root, f)),
    lines,
    words,
    distinct: freq.size,
    top: ranked.map(([word, count]) => ({ word, count })),
  }
  await writeFile(out, `${JSON.stringify(result, null, 2)}\n`)
}
