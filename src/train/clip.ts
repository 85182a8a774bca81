/**
 * Gradient clipping by global norm (`torch.nn.utils.clip_grad_norm_`): when the L2 norm of all gradients
 * together exceeds `maxNorm`, every gradient is scaled by `maxNorm / (norm + 1e-6)`.
 */
import * as tf from "@tensorflow/tfjs"

/** The clipped gradients (new tensors; the caller disposes the inputs) and the norm before clipping. */
export const clipByGlobalNorm = (
  grads: Readonly<Record<string, tf.Tensor>>,
  maxNorm: number,
): { readonly grads: Record<string, tf.Tensor>; readonly norm: number } => {
  const names = Object.keys(grads)
  const norm = tf.tidy(() => {
    const squares = names.map((n) => tf.sum(tf.square(grads[n]!)))
    return squares.length === 0 ? 0 : Math.sqrt(tf.addN(squares).dataSync()[0]!)
  })
  const scale = maxNorm > 0 && norm > maxNorm ? maxNorm / (norm + 1e-6) : 1
  const out: Record<string, tf.Tensor> = {}
  for (const n of names) out[n] = scale === 1 ? grads[n]!.clone() : tf.tidy(() => tf.mul(grads[n]!, scale))
  return { grads: out, norm }
}
