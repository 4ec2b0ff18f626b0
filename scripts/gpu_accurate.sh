#!/usr/bin/env bash
# Train the `accurate` FER model (the VGG variant of Khaireddin & Chen 2021) end to end on
# one GPU, in well under ten minutes on an H100, and write its fp16 checkpoint to OUT.
#
#   bash scripts/gpu_accurate.sh DATA.faces.xz OUT [EPOCHS]
#
# DATA is FER-2013's training split packed by `python -m vidaffect_trainers.fer2013.pack`
# (47 MB, so it can travel with the repository to a machine that cannot reach the data).
# Needs PyTorch, torchvision, OpenCV, safetensors, scipy, tqdm, matplotlib and pluggy; the
# repository is used in place (no pip install). Environment: PYTHON (default python3),
# DEVICE (default cuda), LIMIT (train on N faces only, for a smoke run), BATCH (256).
# Writes OUT/fer2013-vgg.safetensors (fp16, calibrated, validation figures in its metadata),
# OUT/history.json and OUT/train.log. Evaluate it on the test split where the data is:
#   vidaffect evaluate --checkpoint OUT/fer2013-vgg.safetensors
set -euo pipefail
DATA=${1:?usage: gpu_accurate.sh DATA.faces.xz OUT [EPOCHS]}
OUT=${2:?usage: gpu_accurate.sh DATA.faces.xz OUT [EPOCHS]}
EPOCHS=${3:-60}
PYTHON=${PYTHON:-python3}
RUN=$(mktemp -d)/accurate
PP=$(mktemp -d)
ln -s "$PWD/trainers" "$PP/vidaffect_trainers"
ln -s "$PWD/plugins" "$PP/vidaffect_plugins"
export PYTHONPATH="$PWD:$PP" PYTHONUNBUFFERED=1
mkdir -p "$OUT"
"$PYTHON" -c "import torch; print('torch', torch.__version__, 'device', torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu')"
"$PYTHON" -m vidaffect_trainers.fer2013 train --arch vgg --data "$DATA" --out "$RUN" \
    --device "${DEVICE:-cuda}" --batch-size "${BATCH:-256}" --epochs "$EPOCHS" \
    --optimizer sgd --lr 0.02 --weight-decay 5e-4 --warmup-epochs 3 --ema 0.999 \
    --teacher default --teacher alexnet --robust 0.3 --limit "${LIMIT:-0}" --quiet 2>&1 | tee "$OUT/train.log"
cp "$RUN/history.json" "$OUT/"
"$PYTHON" -m vidaffect_trainers.fer2013 export "$RUN/best.safetensors" "$OUT/fer2013-vgg.safetensors" 2>&1 | tee -a "$OUT/train.log"
