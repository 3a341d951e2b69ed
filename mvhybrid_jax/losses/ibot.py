"""iBOT's masked-patch loss: the student predicts the teacher's patch targets where masked."""

import jax
import jax.numpy as jnp


def ibot_loss(student_patch_logits, teacher_patch_probs, masks, *, student_temp: float = 0.1):
  """student_patch_logits, teacher_patch_probs (images, patches, K); masks (images, patches).

  Per masked patch the cross-entropy -sum_k t log softmax(s / temp); each image's masked patches
  are averaged (weight 1 / its number of masked patches), and the sum is divided by the number
  of images, masked or not, as DINOv2 does.
  """
  lsm = jax.nn.log_softmax(student_patch_logits.astype(jnp.float32) / student_temp, axis=-1)
  per_patch = -jnp.sum(teacher_patch_probs * lsm, axis=-1)  # (images, patches)
  m = masks.astype(jnp.float32)
  per_image = jnp.sum(per_patch * m, axis=-1) / jnp.maximum(jnp.sum(m, axis=-1), 1.0)
  return jnp.sum(per_image) / masks.shape[0]


def ibot_loss_gathered(student_logits, teacher_probs, weights, n_images: int, *,
                       student_temp: float = 0.1):
  """The same loss on the masked patches only, gathered into a buffer as DINOv2 does:
  student_logits, teacher_probs (buffer, K); weights (buffer,) = 1 / the number of masked
  patches of the token's image, 0 for padding; n_images, all images, masked or not."""
  lsm = jax.nn.log_softmax(student_logits.astype(jnp.float32) / student_temp, axis=-1)
  per_token = -jnp.sum(teacher_probs * lsm, axis=-1)  # (buffer,)
  return jnp.sum(per_token * weights) / n_images
