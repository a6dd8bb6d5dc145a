#!/bin/bash
# The DHE loss's ablation (issue 13): each ingredient of the grid's DHE
# (flags/fashion_mnist_dhe.flags: classifier + pull on similar pairs α = 0.25
# + push on dissimilar pairs β = 1, margin 0.5; its quantization term was
# already removed by the tuning) taken out in turn, on both protocols of the
# benchmark, 12 and 32 bits, seeds 0-2, test scored (--test): a measurement,
# nothing is chosen on it. Removing the whole loss is DLBHC (the grid's row).
# Resumable: run it again to finish; --report_only writes the tables.
P="margin=0.5,quantization_weight=0.0"
for bits in 12 32; do
  for protocol in unseen 1k5k; do
    python tools/compare_settings.py --out_dir=tools/results/dhe_ablation/$protocol \
      --common="--flagfile=flags/fashion_mnist_dhe.flags --protocol=$protocol" \
      --variant="dhe:" \
      --variant="no_classifier: --classification_weight=0" \
      --variant="no_pull: --method_params=$P,similar_weight=0" \
      --variant="no_push: --method_params=$P,dissimilar_weight=0" \
      --bits=$bits --seeds=0,1,2 --test "$@" || exit 1
  done
done
