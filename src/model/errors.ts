/**
 * The failures of the model layer: bad model files and checkpoints, bad configurations and bad parameter
 * selections. Each message names the file (and the tensor or field) and says what to do.
 */
import { Data } from "effect"

/** A `.safetensors` file is malformed or holds something we cannot convert. */
export class SafetensorsInvalid extends Data.TaggedError("SafetensorsInvalid")<{
  readonly file: string
  /** the tensor the problem is about, when there is one */
  readonly tensor?: string
  readonly message: string
}> {}

/** A TensorFlow.js model folder (`model.json` + shards) or a checkpoint file is missing or malformed. */
export class ModelFileInvalid extends Data.TaggedError("ModelFileInvalid")<{
  readonly path: string
  readonly message: string
}> {}

/** A model configuration (a `config.json` or one built in code) is not a BERT configuration we can run. */
export class ModelConfigInvalid extends Data.TaggedError("ModelConfigInvalid")<{
  /** where the configuration came from: a file path, or `"(in code)"` */
  readonly source: string
  readonly problems: ReadonlyArray<string>
  readonly message: string
}> {}

/** One parameter whose stored shape differs from the one the configuration asks for. */
export interface ShapeMismatch {
  readonly name: string
  readonly expected: ReadonlyArray<number>
  readonly found: ReadonlyArray<number>
}

/** A checkpoint's parameters do not fit the model: required ones missing, shapes differing, or extras. */
export class CheckpointMismatch extends Data.TaggedError("CheckpointMismatch")<{
  readonly path: string
  readonly missing: ReadonlyArray<string>
  readonly unexpected: ReadonlyArray<string>
  readonly mismatched: ReadonlyArray<ShapeMismatch>
  readonly message: string
}> {}

/** A parameter selector (for freezing) matches no parameter or cannot be read. */
export class ParamSelectorInvalid extends Data.TaggedError("ParamSelectorInvalid")<{
  readonly selector: string
  readonly message: string
}> {}

/** Every failure of the model layer. */
export type ModelError =
  | SafetensorsInvalid
  | ModelFileInvalid
  | ModelConfigInvalid
  | CheckpointMismatch
  | ParamSelectorInvalid
