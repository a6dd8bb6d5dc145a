#!/bin/bash
# The first screen of issue 13 (validation split of fashion_mnist 1k5k, 12 bits,
# seeds 0 and 1): tools/compare_settings.py resumes, so this reruns nothing
# that results.csv holds; add --report_only for the table alone.
CW="--method_params=margin=0.5,quantization_weight=0,codeword_weight=1"
CW10="--method_params=margin=0.5,quantization_weight=0,codeword_weight=10"
python tools/compare_settings.py --out_dir=tools/results/dhe_research/screen1 \
  --common="--flagfile=flags/fashion_mnist_dhe.flags" \
  --variant="today:" \
  --variant="codewords: $CW" \
  --variant="codewords_bn: $CW --head=batchnorm_sigmoid" \
  --variant="bn: --head=batchnorm_sigmoid" \
  --variant="lr2e-3: --learning_rate=0.002" \
  --variant="bn_lr2e-3: --head=batchnorm_sigmoid --learning_rate=0.002" \
  --variant="cw_bn_lr2e-3: $CW --head=batchnorm_sigmoid --learning_rate=0.002" \
  --variant="cw10: $CW10" \
  --variant="cw10_bn: $CW10 --head=batchnorm_sigmoid" \
  --variant="margin0.3: --method_params=margin=0.3,quantization_weight=0" \
  --variant="smooth0.1: --label_smoothing=0.1" \
  --variant="augment: --augment=shift_flip" \
  --variant="codewords_augment: $CW --augment=shift_flip" \
  --bits=12 --seeds=0,1 "$@"
