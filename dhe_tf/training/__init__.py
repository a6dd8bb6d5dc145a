"""Training: the method registry and the parts of a training run.

    methods       METHODS: each method's loss, head, weights, tuning grid
    optimization  the optimizer (per-variable rates, decoupled decay) and
                  learning-rate schedules
    hardware      XLA, mixed precision, tf.distribute strategies
    callbacks     validation mAP, loss schedules, stop on NaN
    objective     a method's loss, compiled on the model's outputs
    trainer       train(config, model_dir): prepare, fit, finish
"""
