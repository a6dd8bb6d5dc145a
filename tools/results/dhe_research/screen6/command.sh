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
# Resumable; "$@" reaches every call (--report_only prints the tables).
DHE="--flagfile=flags/fashion_mnist_dhe.flags --protocol=1k5k"
SQUARED="--method_params=margin=0.6,quantization_weight=0.0,distance=squared"
SCREEN=tools/results/dhe_research/screen6
REFERENCE="dhe: $DHE"
RATE="dhe_lr_0.002: $DHE --learning_rate=0.002"
DLBHC="dlbhc: --flagfile=flags/fashion_mnist_dlbhc.flags --protocol=1k5k"
SQUARED_03="squared_classifier_0.3: $DHE $SQUARED --classification_weight=0.3"
python tools/compare_settings.py --out_dir=$SCREEN/1k5k --seeds=0 --bits=12 --test \
  --variant="$REFERENCE" --variant="squared: $DHE $SQUARED" --variant="$SQUARED_03" \
  --variant="squared_classifier_0.1: $DHE $SQUARED --classification_weight=0.1" "$@" || exit 1
python tools/compare_settings.py --out_dir=$SCREEN/1k5k --seeds=0,1,2 --bits=12 --test \
  --variant="$REFERENCE" --variant="$SQUARED_03" --variant="$RATE" --variant="$DLBHC" "$@" || exit 1
# The rate's gain over seeds 0-2 (+0.005 ± 0.002) contradicts screen 1's
# (−0.005 ± 0.006, seeds 0-1 on an Intel Xeon): four more seeds, two
# processes sharing the out_dir.
pids=()
for seeds in 3,5 4,6; do
  python tools/compare_settings.py --out_dir=$SCREEN/1k5k --seeds=$seeds --bits=12 --test \
    --variant="$REFERENCE" --variant="$RATE" --variant="$DLBHC" "$@" &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid" || exit 1; done
python tools/compare_settings.py --out_dir=$SCREEN/1k5k --report_only --seeds=0,1,2,3,4,5,6 --bits=12 \
  --variant="$REFERENCE" --variant="$RATE" --variant="$DLBHC" --variant="squared: $DHE $SQUARED" \
  --variant="$SQUARED_03" --variant="squared_classifier_0.1: $DHE $SQUARED --classification_weight=0.1"
# unseen: results.csv also holds DHE seed 0 (a first pass, stopped to give
# the time to the variants); the last call's table shows it.
DHE="--flagfile=flags/fashion_mnist_dhe.flags --protocol=unseen"
UNSEEN=(--variant="squared: $DHE $SQUARED"
        --variant="squared_classifier_0.3: $DHE $SQUARED --classification_weight=0.3"
        --variant="squared_classifier_0.1: $DHE $SQUARED --classification_weight=0.1")
python tools/compare_settings.py --out_dir=$SCREEN/unseen --seeds=0,1,2 --bits=12 --test \
  "${UNSEEN[@]}" "$@" || exit 1
python tools/compare_settings.py --out_dir=$SCREEN/unseen --report_only --seeds=0,1,2 --bits=12 \
  "${UNSEEN[@]}" --variant="dhe: $DHE"
