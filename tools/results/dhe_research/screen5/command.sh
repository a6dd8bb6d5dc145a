#!/bin/bash
# Screen 5 of issue 13: DHE with less classification, chosen for new
# classes on a validation split that changes with the seed. Screens 3 and 4
# held out one fixed set of seen classes, and which classes are held out
# decided the ranking. Here each seed s draws its own class split
# (--split_seed={seed}: the 7 seen classes and, of them, the 3 held out for
# validation; fit on the other 4), so 4 seeds average over 4 splits. The
# queries are never scored. 12 bits, seeds 0-3.
UNSEEN="--protocol=unseen --validation_by=classes --validation_fraction=0.4 --split_seed={seed}"
DHE="--flagfile=flags/fashion_mnist_dhe.flags $UNSEEN"
python tools/compare_settings.py --out_dir=tools/results/dhe_research/screen5 \
  --variant="dhe: $DHE" \
  --variant="dlbhc: --flagfile=flags/fashion_mnist_dlbhc.flags $UNSEEN" \
  --variant="dpsh: --flagfile=flags/fashion_mnist_dpsh.flags $UNSEEN" \
  --variant="dhe_no_classifier: $DHE --classification_weight=0" \
  --variant="dhe_classifier_0.3: $DHE --classification_weight=0.3" \
  --bits=12 --seeds=0,1,2,3 "$@"
