/**
 * A user's own stage kind: `uses: ./kinds/shout.mjs` names a module inside the project that has the
 * interface of a built-in kind. It exports `definition` (a `KindDefinition`: kind, version, description,
 * schema, outs, deps, check) and `run(ctx)` (a `StageImplementation`). The spec loader imports it here to
 * read the definition and compile its schema; the stage runner imports it again, in the stage's own process,
 * to call `run`. Whatever is wrong with it becomes one problem, which the loader reports at the `uses:` value.
 *
 * The module is imported in the loader's process, so `pipeline status` and `pipeline dag` run its top level
 * too: a module should only define things there, and import heavy libraries inside `run`.
 */
import { execFile } from "node:child_process"
import { createHash } from "node:crypto"
import { readdir, readFile, stat } from "node:fs/promises"
import { basename, dirname, extname, isAbsolute, relative, resolve, sep } from "node:path"
import { pathToFileURL } from "node:url"
import type { KindDefinition, KindProblem } from "../stages/registry.js"
import { linkOutside } from "./paths.js"
import { compileUserSchema } from "./schema.js"
import { closest } from "./suggest.js"

/** Whether `uses:` names a kind module (a path starting with `./` or `../`) rather than a built-in kind. */
export const isKindModule = (uses: string): boolean => uses.startsWith("./") || uses.startsWith("../")

/** A kind module, loaded: its checked definition and its project-relative path; or what is wrong with it. */
export type KindModule =
  | { readonly ok: true; readonly kind: KindDefinition; readonly path: string }
  | {
      readonly ok: false
      /** completes `kind module "./x.mjs" of stage "s" ...` */
      readonly problem: string
      readonly hint: string
    }

/** Where kind modules are looked for, and how their paths are shown. */
export interface KindModuleOptions {
  /** absolute path of the pipeline file: `uses:` paths are relative to its folder */
  readonly pipelineFile: string
  readonly root: string
  /** the working directory: messages name files relative to it */
  readonly cwd: string
}

/** A kind module's function misbehaved while the loader called it (threw, or returned the wrong thing). */
export class KindModuleError extends Error {
  override readonly name = "KindModuleError"
  constructor(
    message: string,
    readonly hint: string,
  ) {
    super(message)
  }
}

const MODULE_EXTENSIONS = [".mjs", ".js"]
const TYPESCRIPT_EXTENSIONS = [".ts", ".mts", ".cts", ".tsx"]
const README = 'see "Your own stage kinds" in the README'

const failed = (problem: string, hint: string): KindModule => ({ ok: false, problem, hint })

const toPosix = (p: string): string => p.split(sep).join("/")

const shown = (file: string, cwd: string): string => {
  const rel = relative(cwd, file)
  return rel === "" || rel.startsWith("..") || isAbsolute(rel) ? file : toPosix(rel)
}

const describeValue = (v: unknown): string =>
  v === null ? "null" : Array.isArray(v) ? "a list" : typeof v === "object" ? "an object" : typeof v

/** `Error: message`, or the thrown value as text. */
const describeThrown = (e: unknown): string => {
  if (e instanceof Error) return `${e.name}: ${e.message}`
  if (typeof e !== "object" || e === null) return String(e)
  try {
    return JSON.stringify(e)
  } catch {
    return String(e)
  }
}

/** Where `node --check` places a syntax error: `/abs/x.mjs:4`, the line, then `^^^` under the token. */
const syntaxErrorPlace = (file: string): Promise<string | undefined> =>
  new Promise((done) => {
    execFile(process.execPath, ["--check", file], { timeout: 20_000 }, (_error, _stdout, stderr) => {
      const [first = "", , carets = ""] = String(stderr).split("\n")
      const line = first.startsWith(`${file}:`) ? first.slice(file.length + 1) : ""
      if (!/^\d+$/.test(line)) return done(undefined)
      const column = carets.indexOf("^")
      done(column >= 0 ? `${line}:${column + 1}` : line)
    })
  })

/** What went wrong importing the module, with the place in the module when Node tells it. */
const importProblem = async (e: unknown, file: string, root: string, display: string): Promise<string> => {
  // Absolute paths in Node's messages become project-relative: the message reads the same on any machine.
  const text = describeThrown(e)
    .replaceAll(`${pathToFileURL(root).href}/`, "")
    .replaceAll(`${root}${sep}`, "")
  if (e instanceof SyntaxError) {
    // Node names no place for a syntax error found by import(); its syntax check does.
    const place = await syntaxErrorPlace(file)
    return place === undefined ? text : `${text} (${display}:${place})`
  }
  return `${text}${placeIn(e, file, display)}`
}

/** ` (kinds/x.mjs:12:7)`: the innermost place in the module where `e` was thrown, if its stack shows one. */
const placeIn = (e: unknown, file: string, display: string): string => {
  const url = pathToFileURL(file).href
  const frame = (e instanceof Error ? (e.stack ?? "") : "")
    .split("\n")
    .find((l) => l.includes(url))
    ?.match(/:(\d+):(\d+)\)?\s*$/)
  return frame ? ` (${display}:${frame[1]}:${frame[2]})` : ""
}

/** The problems that keep `exports` from being a stage kind; none when it is one. */
const shapeProblems = (definition: unknown, run: unknown): ReadonlyArray<string> => {
  if (definition === null || typeof definition !== "object" || Array.isArray(definition))
    return [
      definition === undefined
        ? "it exports no `definition`"
        : `\`definition\` is ${describeValue(definition)}, not an object`,
      ...(typeof run === "function" ? [] : ["it exports no `run` function"]),
    ]
  const d = definition as Record<string, unknown>
  const problems: string[] = []
  const expect = (key: string, ok: boolean, what: string) => {
    if (!ok)
      problems.push(
        d[key] === undefined ? `\`definition.${key}\` is missing` : `\`definition.${key}\` must be ${what}`,
      )
  }
  expect("kind", typeof d.kind === "string" && d.kind !== "", "a non-empty string: the kind's name")
  expect("version", typeof d.version === "string" && d.version !== "", 'a non-empty string such as "1"')
  expect("description", typeof d.description === "string", "a string")
  if (d.schema !== undefined)
    expect(
      "schema",
      typeof d.schema === "object" && d.schema !== null && !Array.isArray(d.schema),
      "an object",
    )
  expect("outs", typeof d.outs === "function", "a function (args, outDir) => paths")
  expect("deps", typeof d.deps === "function", "a function (args) => paths")
  if (d.check !== undefined) expect("check", typeof d.check === "function", "a function (args) => problems")
  if (typeof run !== "function") problems.push("it exports no `run` function")
  return problems
}

const isStringList = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === "string")

const isProblemList = (v: unknown): v is Array<{ message: string; hint?: unknown }> =>
  Array.isArray(v) &&
  v.every(
    (p) => typeof p === "object" && p !== null && typeof (p as { message?: unknown }).message === "string",
  )

/** Calls a definition function, turning a throw or a result of the wrong shape into a `KindModuleError`. */
const guarded = <A extends unknown[], R>(
  name: string,
  f: (...args: A) => unknown,
  valid: (v: unknown) => v is R,
  shape: string,
  where: (e: unknown) => string,
): ((...args: A) => R) => {
  const hint = `Fix \`definition.${name}\`: it is called when the pipeline is loaded and must return ${shape}.`
  return (...args) => {
    let value: unknown
    try {
      value = f(...args)
    } catch (e) {
      throw new KindModuleError(`\`definition.${name}\` threw ${describeThrown(e)}${where(e)}`, hint)
    }
    if (!valid(value))
      throw new KindModuleError(
        `\`definition.${name}\` returned ${value instanceof Promise ? "a Promise" : describeValue(value)}, not ${shape}`,
        hint,
      )
    return value
  }
}

/** The module's definition, checked, with its functions guarded; `where` places a throw in the module. */
const asKindDefinition = (d: Record<string, unknown>, where: (e: unknown) => string): KindDefinition => {
  const check = d.check as ((args: unknown) => unknown) | undefined
  const checkGuarded =
    check === undefined
      ? undefined
      : guarded("check", check, isProblemList, "a list of { message, hint } objects (synchronously)", where)
  return {
    kind: d.kind as string,
    version: d.version as string,
    description: d.description as string,
    // no schema: any mapping is accepted as `with:`
    schema: (d.schema as object | undefined) ?? { type: "object" },
    outs: guarded(
      "outs",
      d.outs as (...a: unknown[]) => unknown,
      isStringList,
      "a list of paths (synchronously)",
      where,
    ),
    deps: guarded(
      "deps",
      d.deps as (...a: unknown[]) => unknown,
      isStringList,
      "a list of paths (synchronously)",
      where,
    ),
    ...(checkGuarded === undefined
      ? {}
      : {
          check: (args): ReadonlyArray<KindProblem> =>
            checkGuarded(args).map((p) => ({
              message: p.message,
              hint: typeof p.hint === "string" ? p.hint : "",
            })),
        }),
  }
}

/** A close file name for a module that does not exist, as `uses:` would spell it. */
const nearby = async (file: string, uses: string): Promise<string | undefined> => {
  const names = await readdir(dirname(file)).catch(() => [] as string[])
  const match = closest(
    basename(file),
    names.filter((n) => MODULE_EXTENSIONS.includes(extname(n))),
  )
  return match === undefined ? undefined : `${uses.slice(0, uses.length - basename(file).length)}${match}`
}

/** Load the kind module `uses:` names. Never throws: every problem is a value. */
export const loadKindModule = async (uses: string, opts: KindModuleOptions): Promise<KindModule> => {
  const file = resolve(dirname(opts.pipelineFile), uses)
  const rel = toPosix(relative(opts.root, file))
  if (rel === ".." || rel.startsWith("../") || isAbsolute(rel))
    return failed(
      "is outside the project",
      "A kind module is part of the pipeline and of its stages' fingerprints: keep it inside the project, for example under kinds/.",
    )
  const link = linkOutside(rel, opts.root)
  if (link !== undefined)
    return failed(
      `leads outside the project through the symbolic link "${link}"`,
      "Keep the kind module inside the project: copy it in, or replace the link with a folder.",
    )
  const ext = extname(file)
  if (TYPESCRIPT_EXTENSIONS.includes(ext))
    return failed(
      "is TypeScript, which pipeline does not load",
      `Compile it to a JavaScript module (tsc, or esbuild with --format=esm) and name the .mjs file in "uses:".`,
    )
  if (!MODULE_EXTENSIONS.includes(ext))
    return failed(
      "is not a JavaScript module (.mjs or .js)",
      'Name the module file, with its extension, in "uses:"; a kind module is an ES module (.mjs).',
    )
  const info = await stat(file).catch(() => undefined)
  if (info === undefined) {
    const near = await nearby(file, uses)
    return failed(
      "does not exist",
      near !== undefined
        ? `Did you mean "${near}"?`
        : `The path is relative to the folder of ${basename(opts.pipelineFile)}: fix it, or create the module.`,
    )
  }
  if (!info.isFile())
    return failed("is not a file", 'Name the module file itself in "uses:", such as "./kinds/my-kind.mjs".')

  const display = shown(file, opts.cwd)
  let exports: Record<string, unknown>
  try {
    // The content digest in the URL makes an edited module a new module, in a process that loads it twice.
    const digest = createHash("sha256")
      .update(await readFile(file))
      .digest("hex")
    exports = (await import(`${pathToFileURL(file).href}?digest=${digest.slice(0, 16)}`)) as Record<
      string,
      unknown
    >
  } catch (e) {
    return failed(
      `cannot be imported: ${await importProblem(e, file, opts.root, display)}`,
      `Fix the module: pipeline imports it to read its definition (\`node ${e instanceof SyntaxError ? "--check " : ""}${display}\` shows the error too).`,
    )
  }
  // A CommonJS module (`module.exports = { definition, run }`) arrives as `default`.
  const fallback = exports.default as Record<string, unknown> | undefined
  const useDefault = exports.definition === undefined && typeof fallback === "object" && fallback !== null
  const definition = useDefault ? fallback.definition : exports.definition
  const run = useDefault ? fallback.run : exports.run
  const problems = shapeProblems(definition, run)
  if (problems.length > 0)
    return failed(
      `is not a stage kind: ${problems.join("; ")}`,
      `Export \`definition\` ({ kind, version, description, schema, outs, deps }) and \`run(ctx)\`; ${README}.`,
    )
  const kind = asKindDefinition(definition as Record<string, unknown>, (e) => placeIn(e, file, display))
  try {
    await compileUserSchema(kind.schema)
  } catch (e) {
    return failed(
      `has an invalid \`definition.schema\`: ${e instanceof Error ? e.message : String(e)}`,
      "Write a JSON Schema (draft-07) that ajv accepts in strict mode: known keywords only, valid types.",
    )
  }
  return { ok: true, kind, path: rel }
}

/** Load every kind module named in `uses`, each once. */
export const loadKindModules = async (
  uses: Iterable<string>,
  opts: KindModuleOptions,
): Promise<ReadonlyMap<string, KindModule>> => {
  const names = [...new Set(uses)].filter(isKindModule)
  const loaded = await Promise.all(names.map((u) => loadKindModule(u, opts)))
  return new Map(names.map((u, i) => [u, loaded[i]!]))
}
