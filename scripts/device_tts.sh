#!/usr/bin/env bash
# The synthesizer's training calls on a lent GPU, as short commands (the machine is given back after 30 s
# idle, so each call must be issued as soon as the last one returns). The recipe is in models/tts/README.md:
#
#   here:    signals speech tts prepare ../shared/data/kokoro-teacher --out data/tts_pack --compressed data/tts_gpu
#            mkdir -p .gpu/tts && cp models/tts/{config.json,model.safetensors,train_log.jsonl} .gpu/tts/
#            mkdir -p .gpu/speaker_encoder && cp models/speaker_encoder/{config.json,model.safetensors} .gpu/speaker_encoder/
#            scripts/device_tree.sh hide
#   call 1 (carry data/tts_gpu):  scripts/device_tts.sh prepare
#   call 2 (carry .gpu):          scripts/device_tts.sh train 515
#   call 3 (carry nothing):       scripts/device_tts.sh train <seconds left>
#   here:    scripts/device_tree.sh restore; signals speech tts export <returned>/best --out models/tts
#
# prepare: unpacks the compressed mels once, then times the eager and the compiled decoder step on the same
#          real batches (benchmarks/bench_tts_train.py) into data/tts_gpu/bench.json (kept on the warm machine)
#          and $OUT/bench.json.
# train:   trains into .gpu/run (resumed from .gpu/run/last if there, else --init .gpu/tts), with --compile when
#          prepare measured the compiled step at least 10 % faster; then brings back best/ and, when it is a later
#          step, last/ (3 weight shards each), with both state.json files, train_log.jsonl and the console log in
#          one logs.tar.gz: 8 files, the most a call returns. Unpack with `tar -xzf logs.tar.gz` in the returned
#          folder. (Session 5 returned best/ only and so lost last/ at step 4,672.) Extra arguments go to the trainer.
# The machine's image does not install this package: the script puts the checkout on PYTHONPATH.
# TTS_BENCH=0 skips the timing (session 5 on an H200: compiled 0.380 s/step vs eager 0.391, 1.03x, so eager;
# the timing cost 48 s of the call, 21 s of it the compile).
# The speaker encoder (.gpu/speaker_encoder, 5.5 MB, travels with .gpu) gives validation its speaker metric and
# is what `train SECONDS --speaker-weight W` trains against (signals/speech/tts/speaker_loss.py).
# Settings: TTS_DATA (data/tts_gpu), TTS_BATCH (192), TTS_RUN (.gpu/run), TTS_INIT (.gpu/tts),
# TTS_ENCODER (.gpu/speaker_encoder), PYTHON (python3).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"   # benchmarks/ import signals from the checkout
data=${TTS_DATA:-data/tts_gpu}
batch=${TTS_BATCH:-192}
run=${TTS_RUN:-.gpu/run}
init=${TTS_INIT:-.gpu/tts}
encoder=${TTS_ENCODER:-.gpu/speaker_encoder}
py=${PYTHON:-python3}
out=${OUT:-runs/device_out}
mkdir -p "$out"

case "${1:-}" in
  prepare)
    shift
    "$py" -c "import sys; from signals.speech.tts.data import unpack_pack; unpack_pack(sys.argv[1])" "$data"
    [ -f "$data/mels.npy" ] || { echo "no $data/mels.npy: carry the compressed pack (data/tts_gpu)" >&2; exit 1; }
    # a failed, killed or skipped benchmark leaves no bench.json: train then runs eager
    rm -f "$data/bench.json"
    if [ "${TTS_BENCH:-1}" = 1 ]; then
      timeout "${TTS_BENCH_SECONDS:-200}" "$py" benchmarks/bench_tts_train.py --data "$data" --batch-size "$batch" \
        --steps "${TTS_BENCH_STEPS:-10}" --warmup 3 --json "$data/bench.json" "$@" || echo "benchmark failed or timed out" >&2
    fi
    [ -f "$data/bench.json" ] && cp "$data/bench.json" "$out/" || true
    ;;
  train)
    seconds=${2:?usage: $0 train SECONDS [trainer options]}
    shift 2
    args=(--data "$data" --out "$run" --batch-size "$batch" --max-seconds "$seconds" --quiet)
    [ -d "$run/last" ] || args+=(--init "$init")
    [ -f "$encoder/model.safetensors" ] && args+=(--speaker-encoder "$encoder")
    if [ -f "$data/bench.json" ] && "$py" -c "import json, sys; r = {x['mode']: x['s_per_step'] for x in \
json.load(open(sys.argv[1]))['rows']}; sys.exit(0 if 'compiled' in r and 'eager' in r and r['eager'] >= 1.1 * r['compiled'] else 1)" \
      "$data/bench.json"; then
      args+=(--compile)
    fi
    echo "+ signals.speech.tts.train ${args[*]} $*" | tee -a "$out/train.out"
    status=0
    "$py" -m signals.speech.tts.train "${args[@]}" "$@" >> "$out/train.out" 2>&1 || status=$?
    # whatever happened, bring back what there is (a call returns at most 8 files: 3 + 3 shards + 1 tar)
    rm -rf "$out/best" "$out/last" "$out/logs.tar.gz"
    small=(train.out)
    for ck in best last; do
      [ -f "$run/$ck/state.json" ] || continue
      if [ "$ck" = last ] && [ -f "$run/best/state.json" ] && cmp -s <(grep -m1 '"step"' "$run/best/state.json") \
          <(grep -m1 '"step"' "$run/last/state.json"); then
        continue   # last/ is best/: one copy is enough
      fi
      mkdir -p "$out/$ck"
      cp "$run/$ck"/*.safetensors "$out/$ck/"
      cp "$run/$ck/state.json" "$out/$ck/state.json"
      small+=("$ck/state.json")
    done
    [ -f "$run/train_log.jsonl" ] && cp "$run/train_log.jsonl" "$out/" && small+=(train_log.jsonl)
    tail -5 "$out/train.out"
    tar -czf "$out/logs.tar.gz" -C "$out" "${small[@]}"
    (cd "$out" && rm -f "${small[@]}")
    exit "$status"
    ;;
  *) echo "usage: $0 prepare [bench options] | train SECONDS [trainer options]" >&2; exit 2 ;;
esac
