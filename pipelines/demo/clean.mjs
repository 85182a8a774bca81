// Demo stage: normalise review lines and drop those shorter than a minimum length.
// Usage: node clean.mjs INPUT OUTPUT MIN_LENGTH
import { readFileSync, writeFileSync } from "node:fs"

const [input, output, minLength] = process.argv.slice(2)
const lines = readFileSync(input, "utf8")
  .split("\n")
  .map((l) => l.trim().replace(/\s+/g, " "))
  .filter((l) => [...l].length >= Number(minLength))
writeFileSync(output, `${lines.join("\n")}\n`)
console.log(`kept ${lines.length} lines of at least ${minLength} characters`)
