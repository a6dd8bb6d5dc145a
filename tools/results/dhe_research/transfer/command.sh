#!/bin/bash
# Why does DPSH transfer to new classes and DHE not (issue 13)? The
# ablation (tools/results/dhe_ablation) shows DHE's pairwise loss without
# its classifier collapses (margin 0.5: the push is idle at initialisation,
# where every relaxed distance is K/2). Two measurements, test scored
# (--test), nothing chosen on them: DPSH with DLBHC's classifier added
# (is the classifier what hurts transfer?) and DHE's loss alone at margin
# 0.6 (its constructor default, the push active from the start), with the
# expected distance and with the squared one (‖u_i − u_j‖², 0 between equal
# codes: is the relaxation what fails?). 12 bits, seeds 0-2, both protocols.
for protocol in unseen 1k5k; do
  python tools/compare_settings.py --out_dir=tools/results/dhe_research/transfer/$protocol \
    --variant="dpsh: --flagfile=flags/fashion_mnist_dpsh.flags --protocol=$protocol" \
    --variant="dpsh_with_classifier: --flagfile=flags/fashion_mnist_dpsh.flags --protocol=$protocol --classification_weight=1" \
    --variant="dhe_loss_alone_margin_0.6: --flagfile=flags/fashion_mnist_dhe.flags --protocol=$protocol --classification_weight=0 --method_params=margin=0.6,quantization_weight=0.0" \
    --variant="dhe_loss_alone_squared: --flagfile=flags/fashion_mnist_dhe.flags --protocol=$protocol --classification_weight=0 --method_params=margin=0.6,quantization_weight=0.0,distance=squared" \
    --bits=12 --seeds=0,1,2 --test "$@" || exit 1
done
