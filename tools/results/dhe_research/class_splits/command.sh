#!/bin/bash
# Does the unseen protocol's verdict hold for other class splits? The grid
# draws the 3 unseen classes with split seed 0 (T-shirt, trouser, bag) for
# every seed. Here DHE, DLBHC and DPSH with their tuned flagfiles on the
# splits of split seeds 1 and 2, training seed 0, test scored (--test): a
# measurement of the protocol, not a choice of settings. 12 bits.
for split in 1 2; do
  for method in dhe dlbhc dpsh; do
    variants+=("--variant=${method}_split${split}: --flagfile=flags/fashion_mnist_${method}.flags --protocol=unseen --split_seed=${split}")
  done
done
python tools/compare_settings.py --out_dir=tools/results/dhe_research/class_splits \
  "${variants[@]}" --bits=12 --seeds=0 --test "$@"
