/**
 * Project paths: how deps and outs are normalised, and where a stage may write. Outs are restored from the
 * cache and deleted before a stage reruns, so an out that escapes the project (by `..`, an absolute path
 * or a symbolic link) or covers pipeline's own files would let a pipeline destroy what it does not own.
 */
import { lstatSync, readlinkSync, realpathSync } from "node:fs"
import { basename, dirname, isAbsolute, join, posix, relative, resolve, sep } from "node:path"

/** What the path rules need to know of the project. */
export interface ProjectPaths {
  /** absolute project root */
  readonly root: string
  /** absolute path of the pipeline file */
  readonly pipelineFile: string
  /** absolute path of the pipeline's lock file */
  readonly lockFile: string
  /**
   * whether each path already looked at is a symbolic link, for the checks of one load of the pipeline (all its
   * outs usually share their folders; one `lstat` of each is enough within one moment)
   */
  readonly links?: Map<string, boolean>
}

/** A normalised path, or why the written one is refused. */
export type PathResult =
  | { readonly ok: true; readonly path: string }
  | { readonly ok: false; readonly problem: string; readonly hint: string }

// Directories pipeline owns: its store and run state, and git's.
const RESERVED = [".pipeline", ".git"] as const

/** `relative` with `/` separators. */
const toPosix = (p: string): string => p.split(sep).join("/")

/** `a/./b//c/` -> `a/b/c`; the root itself is `.`. */
export const normaliseRelative = (p: string): string => {
  const normal = posix.normalize(p).replace(/\/+$/, "")
  return normal === "" ? "." : normal
}

/** Whether project-relative `inner` is `outer` or lies inside it. */
export const within = (inner: string, outer: string): boolean =>
  outer === "." || inner === outer || inner.startsWith(`${outer}/`)

const escapes = (rel: string): boolean => rel === ".." || rel.startsWith("../")

/**
 * A dep as the stage will see it: project-relative when inside the project (absolute ones included),
 * absolute when outside it (a read-only input such as a local dataset).
 */
export const normaliseDep = (written: string, project: ProjectPaths): PathResult => {
  if (written.trim() === "")
    return { ok: false, problem: "is empty", hint: "Write the path of a file or folder." }
  const absolute = isAbsolute(written) ? resolve(written) : resolve(project.root, written)
  const rel = toPosix(relative(project.root, absolute))
  if (rel === "") return { ok: true, path: "." }
  if (escapes(rel) || isAbsolute(rel)) return { ok: true, path: absolute }
  return { ok: true, path: normaliseRelative(rel) }
}

const isLink = (p: string, known?: Map<string, boolean>): boolean => {
  const seen = known?.get(p)
  if (seen !== undefined) return seen
  let link: boolean
  try {
    link = lstatSync(p, { throwIfNoEntry: false })?.isSymbolicLink() ?? false
  } catch {
    link = false
  }
  known?.set(p, link)
  return link
}

// Where `p` really is: the real path of its deepest existing ancestor, plus the rest. What does not exist
// yet will be created there by the stage.
const realLocation = (p: string): string => {
  const missing: string[] = []
  for (let at = p; ; at = dirname(at)) {
    try {
      return join(realpathSync(at), ...missing.reverse())
    } catch {
      if (dirname(at) === at) return p
      missing.push(basename(at))
    }
  }
}

/**
 * The first symbolic link along project-relative `rel` that leads outside the project's real root `root`, if
 * any. A dangling link counts by where its target would be created. Checked when the pipeline is loaded, and
 * again before a run writes or removes an out, since a link may have appeared since.
 */
export const linkOutside = (rel: string, root: string, known?: Map<string, boolean>): string | undefined => {
  // Resolved only once a link is found: usually there is none, and resolving walks every folder above the root.
  let realRoot: string | undefined
  const parts = rel.split("/")
  for (let i = 1; i <= parts.length; i++) {
    const prefix = parts.slice(0, i).join("/")
    const full = join(root, prefix)
    if (!isLink(full, known)) continue
    realRoot ??= realLocation(root)
    const fromRoot = relative(realRoot, realLocation(resolve(dirname(full), readlinkSync(full))))
    if (escapes(toPosix(fromRoot)) || isAbsolute(fromRoot)) return prefix
  }
  return undefined
}

/** An out as the stage will write it: a project-relative path inside the project and outside its own files. */
export const normaliseOut = (written: string, project: ProjectPaths): PathResult => {
  if (written.trim() === "")
    return { ok: false, problem: "is empty", hint: "Write the path of a file or folder." }
  if (isAbsolute(written))
    return {
      ok: false,
      problem: "is an absolute path",
      hint: 'Outs are written inside the project: use a path relative to the project root, such as "outputs/model.bin".',
    }
  const rel = normaliseRelative(written)
  if (escapes(rel))
    return {
      ok: false,
      problem: "is outside the project",
      hint: 'Outs are written inside the project: use a path below the project root, without a leading "..".',
    }
  if (rel === ".")
    return {
      ok: false,
      problem: "is the project root itself",
      hint: "Name a file or folder inside the project; a stage cannot own the whole project.",
    }
  for (const dir of RESERVED)
    if (within(rel, dir))
      return {
        ok: false,
        problem: `is inside "${dir}/", which is not the pipeline's to write`,
        hint: `Write outs elsewhere; "${dir}/" holds ${dir === ".git" ? "the git repository" : "pipeline's cache and state"}.`,
      }
  for (const [file, what] of [
    [project.pipelineFile, "the pipeline file"],
    [project.lockFile, "the pipeline's lock file"],
  ] as const) {
    const own = toPosix(relative(project.root, file))
    if (!escapes(own) && within(own, rel))
      return {
        ok: false,
        problem: own === rel ? `is ${what}` : `contains ${what} "${own}"`,
        hint: "Write outs to a separate folder, such as outputs/, so a rerun never deletes the pipeline's own files.",
      }
  }
  const link = linkOutside(rel, project.root, project.links)
  if (link !== undefined)
    return {
      ok: false,
      problem: `leads outside the project through the symbolic link "${link}"`,
      hint: "Write outs to a real folder inside the project, or replace the link with a folder.",
    }
  return { ok: true, path: rel }
}
