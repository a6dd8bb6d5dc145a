#!/bin/bash
# The third screen of issue 13: retrieval of classes never trained on
# (protocol unseen: fit on 7 of the 10 classes, test on the other 3). The
# validation holds out every training image of 2 of the 7 seen classes
# (--validation_by=classes), so it too measures retrieval of classes never
# fitted; the runs fit on the other 5. 12 bits, seeds 0, 1, 2. Does the
# Hamming embedding carry similarity to new classes better than
# classification alone, and which of its terms does? tools/compare_settings.py
# resumes; add --report_only for the table.
UNSEEN="--protocol=unseen --validation_by=classes"
DHE="--flagfile=flags/fashion_mnist_dhe.flags $UNSEEN"
DLBHC="--flagfile=flags/fashion_mnist_dlbhc.flags $UNSEEN"
python tools/compare_settings.py --out_dir=tools/results/dhe_research/screen3 \
  --variant="dhe: $DHE" \
  --variant="dlbhc: $DLBHC" \
  --variant="dhe_push_only: $DHE --method_params=margin=0.5,quantization_weight=0.0,similar_weight=0.0" \
  --variant="dhe_embedding_x4: $DHE --hash_loss_weight=4" \
  --variant="dhe_no_classifier: $DHE --classification_weight=0" \
  --variant="dhe_margin_0.7: $DHE --method_params=margin=0.7,quantization_weight=0.0" \
  --variant="dpsh: --flagfile=flags/fashion_mnist_dpsh.flags $UNSEEN" \
  --variant="dhe_margin_0.8: $DHE --method_params=margin=0.8,quantization_weight=0.0" \
  --variant="dhe_margin_1.0: $DHE --method_params=margin=1.0,quantization_weight=0.0" \
  --variant="dhe_margin_0.7_embedding_x4: $DHE --method_params=margin=0.7,quantization_weight=0.0 --hash_loss_weight=4" \
  --variant="dhe_margin_0.7_classification_0.5: $DHE --method_params=margin=0.7,quantization_weight=0.0 --classification_weight=0.5" \
  --bits=12 --seeds=0,1,2 "$@"
