// Demo stage: a small Markdown report from the word counts and the split.
// Usage: node report.mjs COUNTS_JSON SPLIT_DIR OUTPUT
import { readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"

const [countsFile, splitDir, output] = process.argv.slice(2)
const counts = JSON.parse(readFileSync(countsFile, "utf8"))
const size = (f) => readFileSync(join(splitDir, f), "utf8").split("\n").filter(Boolean).length
const report = [
  "# Demo report",
  "",
  `- lines: ${counts.lines}, words: ${counts.words}, distinct words: ${counts.distinct}`,
  `- split: ${size("train.txt")} train, ${size("test.txt")} test`,
  `- most frequent: ${counts.top.map((t) => `${t.word} (${t.count})`).join(", ")}`,
  "",
]
writeFileSync(output, report.join("\n"))
