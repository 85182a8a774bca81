/**
 * Simple commands, run without a shell. A `cmd` such as `python train.py --lr 0.1` or
 * `cat data/a.txt > out/a.txt` means exactly the same started directly as through `/bin/sh -c`: a program,
 * its arguments and at most a few redirections of stdin, stdout or stderr to files. The shell adds a second
 * program start (its own exec, dynamic linking and a vfork) to every such stage: about 1.1 ms of CPU each
 * here, as much as the stage's own process for a small one. GNU make starts a recipe line without a shell
 * when it has no shell syntax at all; this goes one step further and also takes plain `<`, `>`, `>>` and
 * `2>` redirections, which a posix_spawn file action does exactly as the shell would.
 *
 * `parseSimpleCommand` accepts only what it can read exactly as a POSIX shell does, and answers undefined
 * for anything else, which then runs through `/bin/sh -c` as always:
 * - words of the characters that never need quoting (`[A-Za-z0-9_@%+=:,./-]`), of single-quoted text, and
 *   of double-quoted text without `$`, backquotes or backslashes, separated by spaces or tabs;
 * - redirections `<`, `>`, `>>`, optionally with a descriptor 0, 1 or 2 in front (`2>`), to such a word;
 * - a first word that is not a shell keyword or builtin (`echo` is the shell's own, `cd` changes the
 *   shell), and not an assignment (`=` in it).
 * Everything else, from `$HOME` to `a | b`, globs, `~`, `;`, comments or a line break, is the shell's.
 *
 * Hand-written rather than a shell-parsing package: it must refuse everything outside this small subset
 * (a general parser would have to be audited for that instead), and it is a few dozen lines.
 */

/** A redirection: file descriptor `fd` opened on `path` for reading, writing (truncated) or appending. */
export interface Redirect {
  readonly fd: 0 | 1 | 2
  readonly path: string
  readonly mode: "read" | "write" | "append"
}

/** A command that runs the same without a shell. */
export interface SimpleCommand {
  /** the program (looked up on PATH unless it holds a `/`) and its arguments */
  readonly argv: readonly [string, ...string[]]
  /** applied in order, as the shell does */
  readonly redirects: ReadonlyArray<Redirect>
}

/** Names the shell treats itself, so that running a program of that name would differ (dash's and bash's). */
const SHELL_OWN = new Set([
  // reserved words
  "!",
  "{",
  "}",
  "case",
  "do",
  "done",
  "elif",
  "else",
  "esac",
  "fi",
  "for",
  "if",
  "in",
  "then",
  "until",
  "while",
  "[[",
  "]]",
  "function",
  "select",
  "time",
  "coproc",
  // builtins
  ".",
  ":",
  "[",
  "alias",
  "bg",
  "bind",
  "break",
  "builtin",
  "caller",
  "cd",
  "chdir",
  "command",
  "compgen",
  "complete",
  "compopt",
  "continue",
  "declare",
  "dirs",
  "disown",
  "echo",
  "enable",
  "eval",
  "exec",
  "exit",
  "export",
  "false",
  "fc",
  "fg",
  "getopts",
  "hash",
  "help",
  "history",
  "jobs",
  "kill",
  "let",
  "local",
  "logout",
  "mapfile",
  "popd",
  "printf",
  "pushd",
  "pwd",
  "read",
  "readarray",
  "readonly",
  "return",
  "set",
  "shift",
  "shopt",
  "source",
  "suspend",
  "test",
  "times",
  "trap",
  "true",
  "type",
  "typeset",
  "ulimit",
  "umask",
  "unalias",
  "unset",
  "wait",
])

/** Characters that stand for themselves outside quotes (the same set as `shellQuote`'s). */
const isPlain = (c: string): boolean =>
  (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || (c >= "0" && c <= "9") || "_@%+=:,./-".includes(c)

const isBlank = (c: string): boolean => c === " " || c === "\t"

/** One word read from `cmd` at `at`: its value, its raw text, and where reading stopped. */
interface Word {
  readonly value: string
  readonly raw: string
  readonly end: number
}

/**
 * Read the word starting at `start` (not a blank): plain characters and quoted parts, up to a blank, a
 * redirection operator or the end. Undefined if it holds anything the shell would treat specially.
 */
const readWord = (cmd: string, start: number): Word | undefined => {
  let value = ""
  let i = start
  while (i < cmd.length) {
    const c = cmd[i]!
    if (isBlank(c) || c === "<" || c === ">") break
    if (c === "'") {
      const close = cmd.indexOf("'", i + 1)
      if (close < 0) return undefined
      value += cmd.slice(i + 1, close)
      i = close + 1
    } else if (c === '"') {
      let j = i + 1
      for (; j < cmd.length && cmd[j] !== '"'; j++) if ("$`\\".includes(cmd[j]!)) return undefined
      if (j === cmd.length) return undefined
      value += cmd.slice(i + 1, j)
      i = j + 1
    } else if (isPlain(c)) {
      value += c
      i++
    } else return undefined
  }
  return { value, raw: cmd.slice(start, i), end: i }
}

/** `cmd` as a program, its arguments and its redirections, if it runs the same without a shell. */
export const parseSimpleCommand = (cmd: string): SimpleCommand | undefined => {
  const words: string[] = []
  let firstRaw: string | undefined
  const redirects: Redirect[] = []
  let i = 0
  const skipBlanks = () => {
    while (i < cmd.length && isBlank(cmd[i]!)) i++
  }
  skipBlanks()
  while (i < cmd.length) {
    let fd: 0 | 1 | 2 | undefined
    if (cmd[i] !== "<" && cmd[i] !== ">") {
      const word = readWord(cmd, i)
      if (word === undefined) return undefined
      i = word.end
      // Digits right before an operator are the descriptor it redirects (`2>err`), as one unquoted token.
      if (i < cmd.length && (cmd[i] === "<" || cmd[i] === ">") && /^[0-9]+$/.test(word.raw)) {
        if (word.raw !== "0" && word.raw !== "1" && word.raw !== "2") return undefined
        fd = Number(word.raw) as 0 | 1 | 2
      } else {
        if (words.length === 0) firstRaw = word.raw
        words.push(word.value)
        skipBlanks()
        continue
      }
    }
    // a redirection operator at i
    let mode: Redirect["mode"]
    if (cmd[i] === "<") {
      if (cmd[i + 1] === "<" || cmd[i + 1] === "&" || cmd[i + 1] === ">") return undefined
      mode = "read"
      i += 1
    } else if (cmd[i + 1] === ">") {
      mode = "append"
      i += 2
    } else {
      if (cmd[i + 1] === "&" || cmd[i + 1] === "|") return undefined
      mode = "write"
      i += 1
    }
    skipBlanks()
    if (i >= cmd.length || cmd[i] === "<" || cmd[i] === ">") return undefined
    const target = readWord(cmd, i)
    // An empty name is an error the shell words better.
    if (target === undefined || target.value === "") return undefined
    i = target.end
    redirects.push({ fd: fd ?? (mode === "read" ? 0 : 1), path: target.value, mode })
    skipBlanks()
  }
  const [program, ...args] = words
  if (program === undefined || firstRaw === undefined) return undefined
  if (firstRaw.includes("=") || SHELL_OWN.has(program) || program === "") return undefined
  return { argv: [program, ...args], redirects }
}
