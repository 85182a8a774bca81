/**
 * Quoting interpolated values into shell commands, so that a param such as `x; rm -rf ~` stays one word
 * of one command. The interpolator asks `ShellContext` what quoting is open where a `${...}` reference
 * stands and escapes the value for exactly that context: `echo ${params.msg}`, `echo "${params.msg}"` and
 * `echo '${params.msg}'` all print the value as it is.
 */

// Characters that never need quoting in a POSIX shell word (the same set as Python's shlex.quote).
const SAFE = /^[A-Za-z0-9_@%+=:,./-]+$/

/** POSIX single-quote quoting: `it's` becomes `'it'\''s'`; safe words are left as they are. */
export const shellQuote = (s: string): string => {
  if (SAFE.test(s)) return s
  return `'${s.replace(/'/g, `'\\''`)}'`
}

/** The quoting in effect at a point of a command line. */
export type Quoting = "none" | "single" | "double"

// `sub` is a `$(...)` or a backtick command substitution, `paren` a `( ... )` subshell inside one:
// inside them the shell starts over unquoted, even within double quotes.
type Frame = "single" | "double" | "sub" | "backtick" | "paren"

/**
 * A small scanner of POSIX shell quoting. Feed it the literal text of a command piece by piece; between
 * pieces, `quoting` says how a value inserted there must be escaped. It follows quotes, backslashes,
 * `$(...)` and backticks; it does not need to understand the rest of the grammar.
 */
export class ShellContext {
  private readonly stack: Frame[] = []
  private escaped = false

  /** Reads literal command text. */
  feed(text: string): void {
    for (let i = 0; i < text.length; i++) {
      const c = text[i]!
      const top = this.stack.at(-1)
      if (this.escaped) {
        this.escaped = false
        continue
      }
      if (top === "single") {
        if (c === "'") this.stack.pop()
        continue
      }
      if (c === "\\") {
        this.escaped = true
      } else if (top === "double") {
        if (c === '"') this.stack.pop()
        else if (c === "`") this.stack.push("backtick")
        else if (c === "$" && text[i + 1] === "(") {
          this.stack.push("sub")
          i++
        }
      } else if (c === "'") this.stack.push("single")
      else if (c === '"') this.stack.push("double")
      else if (c === "`") {
        if (top === "backtick") this.stack.pop()
        else this.stack.push("backtick")
      } else if (c === "$" && text[i + 1] === "(") {
        this.stack.push("sub")
        i++
      } else if (c === "(") this.stack.push("paren")
      else if (c === ")" && (top === "sub" || top === "paren")) this.stack.pop()
    }
  }

  /** The quoting open at the current point. */
  get quoting(): Quoting {
    const top = this.stack.at(-1)
    return top === "single" ? "single" : top === "double" ? "double" : "none"
  }
}

/** `value` escaped so that, inserted where `quoting` is open, the shell reads it back unchanged. */
export const quoteFor = (value: string, quoting: Quoting): string => {
  switch (quoting) {
    case "none":
      return shellQuote(value)
    case "double":
      return value.replace(/[\\$`"]/g, "\\$&")
    case "single":
      // close the quote, write an escaped quote, reopen
      return value.replace(/'/g, `'\\''`)
  }
}
