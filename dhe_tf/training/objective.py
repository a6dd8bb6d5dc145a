"""The training objective of a run, compiled into its model.

    hash_loss_weight · L_method(labels, u) + classification_weight · CE(logits)

L_method is the registered method's loss on the hash activations u [N, K]
(dhe_tf.training.methods); CE is the cross-entropy of the classifier on top of the
hash layer, softmax for single-label data and sigmoid for multi-label data.
"""

import keras

from dhe_tf.training import callbacks
from dhe_tf.runs import config as config_lib
from dhe_tf.training import hardware
from dhe_tf.losses import hamming_embedding as losses
from dhe_tf.training import methods
from dhe_tf.training import optimization


def compile_model(model, config, *, multi_label, steps_per_epoch=1,
                  jit_compile=None):
  """Compiles `model` with the objective of `config`'s method.

  Objective: hash_loss_weight · L_method(hash)
           + classification_weight · cross-entropy(logits)
  (softmax cross-entropy for single-label data, sigmoid for multi-label,
  with --label_smoothing; see dhe_tf.training.methods). A term of weight 0 is left
  out; with classification_weight = 0 the classifier is frozen and unused.

  With hash_loss_warmup_epochs > 0 the hash loss's weight grows linearly
  from 0 over that many epochs of `steps_per_epoch` steps. The optimizer is
  dhe_tf.training.optimization.make_optimizer's; `jit_compile` (bool) overrides
  config.jit_compile, as resolved by dhe_tf.training.hardware.resolve_jit_compile.
  Under a tf.distribute strategy, call it inside `strategy.scope()`.

  Returns:
    The callbacks the objective needs during fit (HashNet's continuation,
    the warm-up).
  """
  config = config_lib.resolve(config)
  hash_loss = methods.make_loss(
      config.method, config.method_params,
      num_classes=model.output["logits"].shape[-1], bits=config.bits)
  fit_callbacks = (methods.METHODS[config.method].callbacks(hash_loss)
                   if hash_loss is not None else [])
  if hash_loss is not None and config.hash_loss_warmup_epochs > 0:
    hash_loss = losses.WarmedUpLoss(hash_loss)
    fit_callbacks.append(callbacks.LossWarmup(
        hash_loss, config.hash_loss_warmup_epochs * steps_per_epoch))
  loss, loss_weights = {}, {}
  if hash_loss is not None and config.hash_loss_weight > 0:
    loss["hash"] = hash_loss
    loss_weights["hash"] = config.hash_loss_weight
  if config.classification_weight > 0:
    if multi_label:
      loss["logits"] = keras.losses.BinaryCrossentropy(
          from_logits=True, label_smoothing=config.label_smoothing)
    else:
      loss["logits"] = keras.losses.CategoricalCrossentropy(
          from_logits=True, label_smoothing=config.label_smoothing)
    loss_weights["logits"] = config.classification_weight
  else:
    model.get_layer("logits").trainable = False
  if jit_compile is None:
    jit_compile = hardware.JIT_VALUES[config.jit_compile]
  optimizer = optimization.make_optimizer(model, config,
                                         steps_per_epoch=steps_per_epoch)
  model.compile(optimizer=optimizer, loss=loss, loss_weights=loss_weights,
                jit_compile=jit_compile)
  return fit_callbacks
