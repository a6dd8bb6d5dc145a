#!/bin/bash
# Screen 6 of issue 13, chosen on the 1k5k validation split (the unseen test
# queries are a measurement: no validation split here predicts new classes,
# screen 5). 12 bits, test scored for the record. Two questions:
# - The transfer lead (DHE's loss alone with the squared distance
#   ‖u_i − u_j‖², 0 between equal codes: unseen test 0.751, 1k5k 0.53) with
#   DLBHC's classifier added back at weight 1, 0.3 and 0.1. On 1k5k weights 1
#   and 0.1 were dropped after seed 0 (0.022 and 0.128 under DHE).
# - DHE at DLBHC's tuned learning rate (2e-3): DHE's tuning spent its budget
#   on the loss at 1e-3 and never tried the rate DLBHC won with.
# Ran on a 2-core AMD EPYC; seed for seed, runs reproduce only on the same
# CPU type, so every reference (dhe, dlbhc) ran here again. A variant was
# dropped after seed 0 when seed 0 put it 0.02 or more under DHE.
DHE="--flagfile=flags/fashion_mnist_dhe.flags --protocol=1k5k"
SQUARED="--method_params=margin=0.6,quantization_weight=0.0,distance=squared"
SCREEN=tools/results/dhe_research/screen6
if [ "$1" != "--unseen_only" ]; then
  python tools/compare_settings.py --out_dir=$SCREEN/1k5k --seeds=0 --bits=12 --test \
    --variant="dhe: $DHE" \
    --variant="squared: $DHE $SQUARED" \
    --variant="squared_classifier_0.3: $DHE $SQUARED --classification_weight=0.3" \
    --variant="squared_classifier_0.1: $DHE $SQUARED --classification_weight=0.1" || exit 1
  python tools/compare_settings.py --out_dir=$SCREEN/1k5k --seeds=0,1,2 --bits=12 --test \
    --variant="dhe: $DHE" \
    --variant="squared_classifier_0.3: $DHE $SQUARED --classification_weight=0.3" \
    --variant="dhe_lr_0.002: $DHE --learning_rate=0.002" \
    --variant="dlbhc: --flagfile=flags/fashion_mnist_dlbhc.flags --protocol=1k5k" || exit 1
  # The rate's gain over seeds 0-2 (+0.005 ± 0.002) contradicts screen 1's
  # (−0.005 ± 0.006, seeds 0-1 on an Intel Xeon): four more seeds, two
  # processes sharing the out_dir.
  for seeds in 3,5 4,6; do
    python tools/compare_settings.py --out_dir=$SCREEN/1k5k --seeds=$seeds --bits=12 --test \
      --variant="dhe: $DHE" \
      --variant="dhe_lr_0.002: $DHE --learning_rate=0.002" \
      --variant="dlbhc: --flagfile=flags/fashion_mnist_dlbhc.flags --protocol=1k5k" &
  done
  wait
fi
# unseen: results.csv also holds DHE seed 0 (a first pass, stopped to give
# the time to the variants; --report_only with a "dhe" variant shows it).
DHE="--flagfile=flags/fashion_mnist_dhe.flags --protocol=unseen"
python tools/compare_settings.py --out_dir=$SCREEN/unseen --seeds=0,1,2 --bits=12 --test \
  --variant="squared: $DHE $SQUARED" \
  --variant="squared_classifier_0.3: $DHE $SQUARED --classification_weight=0.3" \
  --variant="squared_classifier_0.1: $DHE $SQUARED --classification_weight=0.1"
