#!/bin/bash
# Screen 4 of issue 13: can a validation split choose settings for protocol
# unseen? Screen 3 held out 2 of the 7 seen classes (shirt and sneaker, an
# easy pair) and ranked DPSH last where the unseen test ranks it first by
# 0.09. Here 3 of the 7 are held out (--validation_fraction=0.4 of the
# classes, as the test retrieves 3 unseen classes); the runs fit on the
# other 4. If this validation ranks DPSH, DLBHC and DHE as the test does, it
# can choose DHE's settings for unseen classes. 12 bits, seeds 0, 1.
UNSEEN="--protocol=unseen --validation_by=classes --validation_fraction=0.4"
DHE="--flagfile=flags/fashion_mnist_dhe.flags $UNSEEN"
python tools/compare_settings.py --out_dir=tools/results/dhe_research/screen4 \
  --variant="dhe: $DHE" \
  --variant="dlbhc: --flagfile=flags/fashion_mnist_dlbhc.flags $UNSEEN" \
  --variant="dpsh: --flagfile=flags/fashion_mnist_dpsh.flags $UNSEEN" \
  --variant="dhe_margin_1.0: $DHE --method_params=margin=1.0,quantization_weight=0.0" \
  --variant="dhe_no_classifier: $DHE --classification_weight=0" \
  --bits=12 --seeds=0,1 "$@"
