#!/bin/bash
# The second screen of issue 13 (validation split of fashion_mnist 1k5k,
# 12 bits, seeds 0 and 1; validation = held-out images retrieving each other):
# does a classifier that reads Hamming distance to learned class codes
# (--hamming_classifier=β, dhe_tf.model.heads.HammingClassifier), or one that reads
# the binary codes (--classifier_reads=codes, straight through), help DHE,
# and DLBHC? tools/compare_settings.py resumes; add --report_only for the
# table.
DHE="--flagfile=flags/fashion_mnist_dhe.flags"
DLBHC="--flagfile=flags/fashion_mnist_dlbhc.flags"
python tools/compare_settings.py --out_dir=tools/results/dhe_research/screen2 \
  --variant="dhe: $DHE" \
  --variant="dlbhc: $DLBHC" \
  --variant="dhe_hamming1: $DHE --hamming_classifier=1" \
  --variant="dhe_hamming2: $DHE --hamming_classifier=2" \
  --variant="dhe_hamming4: $DHE --hamming_classifier=4" \
  --variant="dlbhc_hamming2: $DLBHC --hamming_classifier=2" \
  --variant="dhe_reads_codes: $DHE --classifier_reads=codes" \
  --variant="dhe_reads_codes_hamming2: $DHE --classifier_reads=codes --hamming_classifier=2" \
  --variant="dlbhc_reads_codes: $DLBHC --classifier_reads=codes" \
  --bits=12 --seeds=0,1 "$@"
