/**
 * The model layer: a BERT-style encoder in TensorFlow.js core ops with a masked-LM head and a
 * sequence-classification head, Hugging Face checkpoints (safetensors) in and out, and TensorFlow.js
 * model folders (`model.json` + shards) for our own saves.
 */
export {
  assignParams,
  type BertModel,
  type CreateOptions,
  countParams,
  createBert,
  disposeBert,
  type ParamCounts,
  param,
  selectModelParams,
  setTrainable,
  trainableVariables,
  trainOnly,
} from "./bert.js"
export { BERT_FORMAT, type LoadedBert, loadBert, type SaveBertOptions, saveBert } from "./bert-io.js"
export {
  bertParamName,
  type HfCheckpoint,
  type LoadHfOptions,
  type LoadReport,
  loadHfCheckpoint,
  type NameMapping,
  type SaveHfOptions,
  saveHfCheckpoint,
} from "./checkpoint.js"
export {
  BERT_BASE,
  type BertConfig,
  bertConfig,
  configFromHf,
  configProblems,
  configToHf,
  type HiddenAct,
  readHfConfig,
} from "./config.js"
export { dropoutMask, dropoutMaskRows } from "./dropout.js"
export {
  type EncoderInput,
  encode,
  encodeRows,
  type ForwardOptions,
  gatherRows,
  pool,
  pooler,
} from "./encoder.js"
export * from "./errors.js"
export {
  type ClassificationBatch,
  classificationLogits,
  classificationLoss,
  classifierLogits,
  classify,
  crossEntropy,
  IGNORE_INDEX,
  type MaskedTargets,
  type MlmBatch,
  maskedLmLogits,
  maskedTargets,
  mlmLogits,
  mlmLoss,
} from "./heads.js"
export { type ParamPart, type ParamSpec, paramLayer, paramPart, paramSpecs, selectParams } from "./params.js"
export {
  type DecodedTensor,
  encodeSafetensors,
  parseSafetensors,
  readSafetensors,
  type SafetensorsDtype,
  type SafetensorsFile,
  type TensorInfo,
  type TensorToWrite,
} from "./safetensors.js"
export { type FileSystemIOOptions, fileSystemIO, MODEL_JSON, SHARD_BYTES } from "./tfjs-io.js"
