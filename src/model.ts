/**
 * The resolved pipeline: what the spec loader hands to the graph, the fingerprint and the executor.
 * Everything here is already validated and interpolated; paths are normalised.
 */

/** A place in a source file; lines and columns are 1-based, `end*` is exclusive. */
export interface Span {
  readonly file: string
  readonly line: number
  readonly column: number
  readonly endLine: number
  readonly endColumn: number
}

/**
 * What a stage does: a list of shell commands, or a stage kind run through the stage runner: a built-in one,
 * or a user's kind module (`module` set).
 */
export type StageAction =
  | { readonly _tag: "Command"; readonly cmd: ReadonlyArray<string> }
  | {
      readonly _tag: "Builtin"
      /** the kind's name (`uses:` of a built-in kind; `definition.kind` of a kind module) */
      readonly uses: string
      /** the kind's implementation version: part of the fingerprint */
      readonly version: string
      /** the stage's `with:` after interpolation and schema validation */
      readonly with: Readonly<Record<string, unknown>>
      /** a kind module's project-relative path (it is also a dep, so its content is in the fingerprint) */
      readonly module?: string
    }

/** Counted resource slots a stage holds while its process runs. */
export interface Resources {
  readonly cpu: number
  readonly gpu: number
  /**
   * Take one GPU when the run has any (`--gpus`, by default the GPUs detected), none otherwise: the training and
   * evaluation kinds when `resources.gpu` is not written.
   */
  readonly gpuWhenPresent?: boolean
}

/** One stage, resolved. */
export interface Stage {
  readonly name: string
  readonly action: StageAction
  /**
   * Files or directories it reads: project-relative POSIX paths (`data/raw.csv`), or absolute paths for
   * read-only inputs outside the project. Sorted, unique.
   */
  readonly deps: ReadonlyArray<string>
  /** Files or directories it writes: project-relative POSIX paths, in declaration order. */
  readonly outs: ReadonlyArray<string>
  /** The params it uses (dotted names) with their resolved values, sorted by name. */
  readonly params: Readonly<Record<string, unknown>>
  /** Explicit ordering edges (`needs:`), as written. */
  readonly needs: ReadonlyArray<string>
  /** Every direct upstream stage (from deps inside another stage's outs, `${stages.x...}` and `needs`); sorted. */
  readonly upstream: ReadonlyArray<string>
  /** The declared environment (after interpolation). */
  readonly env: Readonly<Record<string, string>>
  readonly resources: Resources
  readonly retries: number
  /** first retry waits this long, then doubling */
  readonly retryDelayMs: number
  readonly timeoutMs: number | undefined
  /**
   * Whether it gets a scratch folder (`scratch.ts`): every stage kind does, a command stage when it says
   * `scratch: true`. Off by default for commands: making and removing a folder per stage is a real part of
   * the cost of a pipeline of many small stages.
   */
  readonly scratch: boolean
  /** where the stage's key is in the pipeline file, for run-time messages */
  readonly span: Span
}

/** A loaded, valid pipeline. */
export interface Pipeline {
  readonly name: string
  /** absolute path of the pipeline file */
  readonly file: string
  /** absolute paths of the files the definition was read from: the pipeline file, then its params file */
  readonly sources: ReadonlyArray<string>
  /** absolute path of the project root; every project-relative path is relative to it */
  readonly root: string
  /** the resolved params: defaults < params file < --set */
  readonly params: Readonly<Record<string, unknown>>
  /** stages in file order */
  readonly stages: ReadonlyMap<string, Stage>
  /** stage names, every stage after all its upstream stages (ties broken by file order) */
  readonly order: ReadonlyArray<string>
}
