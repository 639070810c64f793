#!/usr/bin/env bash
# HiFi-SR adversarial training on a lent GPU, as short commands (the machine is given back after 30 s idle, so
# each call must be issued as soon as the last one returns). The recipe and its reasons are in
# models/super_resolution/README.md, "Training":
#
#   here:  scripts/device_sr.sh here          # data/sr_debian (Debian speech pack), data/sr_wheels (soundfile for the
#                                             # device image), data/sr_init.safetensors, data/sr_post; prints the size
#          scripts/device_tree.sh hide        # models/ (over the 64 MiB upload limit) out of the upload
#   call (carry data/sr_debian/pack data/sr_wheels data/sr_init.safetensors data/sr_post, and runs/sr_gpu once a
#         call has returned one):        scripts/device_sr.sh train 450
#   here:  copy the returned sr_gpu/ to runs/sr_gpu (the next call resumes from it); scripts/device_tree.sh restore
#          signals speech sr export --weights runs/sr_gpu/generator_best.safetensors --out runs/sr_new   (then the
#          card's "Export" steps: comb/gain sweep and envelope on validation audio, never the test set)
#
# train: installs the carried wheels into /tmp/site (the image has torch but no soundfile), trains into runs/sr_gpu
#        (resumed from runs/sr_gpu/last when carried, else from data/sr_init.safetensors), validation scored through
#        the shipped post-processing (data/sr_post: config.json + envelope.onnx), then copies the run folder to
#        $OUT/sr_gpu: last/ (the compact state, <= 15.9 MiB shards), the weights, and logs.tar.gz (train_log.jsonl,
#        train_config.json, the console log, validation samples), within the 8 files of 16 MiB a call returns.
#        Unpack with `tar -xzf logs.tar.gz` in the returned folder before resuming. Extra arguments go to the
#        trainer; SECONDS is its --max-seconds (leave ~100 s of the call for start-up and the copy).
# Settings: SR_DATA (data/sr_debian/pack), SR_RUN (runs/sr_gpu), SR_STEPS (40000, the cosine schedule's length),
# SR_BATCH (16), SR_WORKERS (12), SR_DISC (compact), PYTHON (python3).
set -euo pipefail
cd "$(dirname "$0")/.."
data=${SR_DATA:-data/sr_debian/pack}
run=${SR_RUN:-runs/sr_gpu}
py=${PYTHON:-python3}
out=${OUT:-runs/device_out}

case "${1:-}" in
  here)
    signals=${SIGNALS:-.venv/bin/signals}
    [ -f data/sr_debian/pack/index.json ] || "$signals" speech sr prepare --out data/sr_debian --cache data/sr_cache --quiet
    ls data/sr_wheels/soundfile-*.whl > /dev/null 2>&1 || .venv/bin/python -m pip download -q --no-deps soundfile==0.14.0 cffi \
      pycparser --only-binary :all: --python-version 3.12 --platform manylinux_2_28_x86_64 -d data/sr_wheels
    cp models/super_resolution/model.safetensors data/sr_init.safetensors
    mkdir -p data/sr_post && cp models/super_resolution/config.json models/super_resolution/envelope.onnx data/sr_post/
    carry=(data/sr_debian/pack data/sr_wheels data/sr_init.safetensors data/sr_post)
    [ -d "$run" ] && carry+=("$run")
    du -shc "${carry[@]}"
    ;;
  train)
    seconds=${2:?usage: $0 train SECONDS [trainer options]}
    shift 2
    [ -f "$data/index.json" ] || { echo "no $data/index.json: carry the pack (data/sr_debian/pack)" >&2; exit 1; }
    site=/tmp/sr_site
    if ls data/sr_wheels/*.whl > /dev/null 2>&1 && ! "$py" -c "import soundfile" 2> /dev/null; then
      "$py" -m pip install -q --no-index --no-deps --target "$site" data/sr_wheels/*.whl
    fi
    export PYTHONPATH="$site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
    args=(--data "$data" --out "$run" --config small --disc "${SR_DISC:-compact}" --steps "${SR_STEPS:-40000}"
          --batch-size "${SR_BATCH:-16}" --workers "${SR_WORKERS:-12}" --eval-every 1000 --disc-warmup 200 --max-seconds "$seconds"
          --val-postprocess data/sr_post --quiet)
    if [ -d "$run/last" ]; then args+=(--resume); else args+=(--init-weights data/sr_init.safetensors); fi
    status=0
    mkdir -p "$(dirname "$run")"
    "$py" -m signals.speech.sr.train "${args[@]}" "$@" 2>&1 | tee "$run.log" || status=$?
    # a call returns at most 8 files: the state shards and weights as they are, everything else in one archive
    mkdir -p "$out/sr_gpu"
    cp -r "$run/last" "$out/sr_gpu/" 2> /dev/null || true
    cp "$run"/*.safetensors "$out/sr_gpu/" 2> /dev/null || true
    cp "$run.log" "$run/console.log" 2> /dev/null || true
    (cd "$run" && find . -path ./last -prune -o -type f ! -name '*.safetensors' -print | tar -czf - -T -) \
      > "$out/sr_gpu/logs.tar.gz"
    find "$out/sr_gpu" -type f -printf '%s %p\n' | sort -n | awk '{printf "%6.1f MiB  %s\n", $1 / 1048576, $2}'
    exit "$status"
    ;;
  *)
    echo "usage: $0 here | train SECONDS [trainer options]" >&2
    exit 2
    ;;
esac
