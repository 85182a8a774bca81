/**
 * Which pipeline file a command means, which project it belongs to, and where that project keeps its lock
 * file and store: plain functions over the file system, light enough for the CLI's no-op fast path
 * (`fast-run.ts`). `pipeline-file.ts` wraps them for the Effect-based commands.
 */
import { existsSync, readdirSync, statSync } from "node:fs"
import { basename, dirname, extname, isAbsolute, join, resolve } from "node:path"

const DEFAULT_FILE = "pipeline.yaml"
const PIPELINES_DIR = "pipelines"
const EXTENSIONS = [".yaml", ".yml"] as const
// Any of these marks the top of a project: pipeline's own state, a git work tree, a Node package.
const ROOT_MARKERS = [".pipeline", ".git", "package.json"] as const

const isFile = (p: string): boolean => {
  try {
    return statSync(p).isFile()
  } catch {
    return false
  }
}

/** The names of the pipelines in `<cwd>/pipelines/`, without extension, sorted. */
export const listPipelines = (cwd: string): ReadonlyArray<string> => {
  try {
    return readdirSync(join(cwd, PIPELINES_DIR))
      .filter((f) => EXTENSIONS.some((ext) => f.endsWith(ext)))
      .map((f) => basename(f, extname(f)))
      .sort()
  } catch {
    return []
  }
}

const availableHint = (cwd: string): string => {
  const names = listPipelines(cwd)
  return names.length === 0
    ? `Create ${DEFAULT_FILE} here, or pass the path of a pipeline file.`
    : `Pipelines in ${PIPELINES_DIR}/: ${names.join(", ")}. Pass one of these names or the path of a pipeline file.`
}

/**
 * The absolute path of the pipeline file an argument names: none means `<cwd>/pipeline.yaml`; an existing
 * path is taken as it is (a folder means its pipeline.yaml); a bare name means `<cwd>/pipelines/<name>.yaml`
 * (or `.yml`). When there is none, what went wrong and a hint.
 */
export const findPipelineFile = (
  arg: string | undefined,
  cwd: string,
): { readonly file: string } | { readonly message: string; readonly hint: string } => {
  if (arg === undefined) {
    const file = join(cwd, DEFAULT_FILE)
    if (isFile(file)) return { file }
    return { message: `no ${DEFAULT_FILE} in ${cwd}`, hint: availableHint(cwd) }
  }
  const given = resolve(cwd, arg)
  if (isFile(given)) return { file: given }
  if (existsSync(given) && isFile(join(given, DEFAULT_FILE))) return { file: join(given, DEFAULT_FILE) }
  if (!arg.includes("/") && !arg.includes("\\")) {
    for (const ext of EXTENSIONS) {
      const named = join(cwd, PIPELINES_DIR, `${arg}${ext}`)
      if (isFile(named)) return { file: named }
    }
  }
  return { message: `pipeline "${arg}" not found`, hint: availableHint(cwd) }
}

/**
 * The project root: `explicit` (from --root or PIPELINE_ROOT) when given; else the nearest folder, from the
 * pipeline file's folder upwards, that holds `.pipeline`, `.git` or `package.json`; else the file's folder.
 */
export const findProjectRoot = (pipelineFile: string, explicit: string | undefined): string => {
  if (explicit !== undefined && explicit !== "") return resolve(explicit)
  const start = dirname(resolve(pipelineFile))
  for (let dir = start; ; dir = dirname(dir)) {
    if (ROOT_MARKERS.some((marker) => existsSync(join(dir, marker)))) return dir
    if (dirname(dir) === dir) return start
  }
}

/** The lock file that records a pipeline's last results: next to it, `pipelines/train.yaml` -> `pipelines/train.lock`. */
export const lockFileFor = (pipelineFile: string): string =>
  join(dirname(pipelineFile), `${basename(pipelineFile, extname(pipelineFile))}.lock`)

/** The store: `explicit` (--store, else PIPELINE_STORE) resolved against `cwd`, else `<root>/.pipeline/store`. */
export const storeDirFor = (root: string, explicit: string | undefined, cwd: string): string =>
  explicit ? (isAbsolute(explicit) ? explicit : resolve(cwd, explicit)) : join(root, ".pipeline", "store")
