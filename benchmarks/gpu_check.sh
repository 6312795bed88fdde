#!/usr/bin/env bash
# Issues 14 and 25 on a GPU machine, in one go within 9 minutes (16 cores, one H100 or H200,
# python3 with torch (CUDA), OpenCV, scikit-image, click, rich and matplotlib): the CUDA tests;
# bench_train, whose end-to-end case is also the 120 s `vidcolor train` on the shared clip's
# frames; bench_render at 1080p (--make-1080p); a render with that run's model and `vidcolor
# eval` against the original; last, the fault tests' SIGTERM cases for `train` and `render`,
# which run on CUDA there (their --device is auto): stopped part-way, resumed or run again,
# the output whole. PyAV and PySceneDetect come from the wheels in .whl/ (carry it) when
# missing.
#
# Every step runs under a timeout inside one overall budget, and a failing step does not stop
# the others. Each step's status, exit code, time, log tail and JSON result go into one summary:
# $OUT/summary.json when $OUT is set (with the whole logs in $OUT/logs), else the path given,
# else WORK/summary.json.
#
# The wheels, made here once (the GPU machine's python3 is 3.12 and has pytest and xdist; 36 MB):
#   echo /.whl/ >> .git/info/exclude; python3 -m pip download --no-deps --only-binary=:all:
#     --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64
#     --platform manylinux_2_17_x86_64 -d .whl av==18.1.0 scenedetect==0.7.2 platformdirs
# then `run` with carry [".whl"] and the command `bash benchmarks/gpu_check.sh`.
#
# Usage: bash benchmarks/gpu_check.sh [SUMMARY.json]
#   GPU_CHECK_QUICK=1    tiny settings on any device: proves the plumbing on a CPU
#   GPU_CHECK_BUDGET=S   overall seconds (default 520; quick 660)
#   GPU_CHECK_WORK=DIR   work folder (default: a new one under /tmp); DEV=cuda|cpu|auto
#   PYTHON=python3       the interpreter
set -u
cd "$(dirname "$0")/.."
REPO=$PWD
QUICK=${GPU_CHECK_QUICK:-0}
PY=${PYTHON:-python3}
if [ "$QUICK" = 1 ]; then DEV=${DEV:-auto}; BUDGET=${GPU_CHECK_BUDGET:-660}
else DEV=${DEV:-cuda}; BUDGET=${GPU_CHECK_BUDGET:-520}; fi
W=${GPU_CHECK_WORK:-$(mktemp -d /tmp/gpu_check.XXXXXX)}
CLIP=${GPU_CHECK_CLIP:-$REPO/../shared/media/bbb_360p_60s.mp4}
SUMMARY=${OUT:+$OUT/summary.json}
SUMMARY=${SUMMARY:-${1:-$W/summary.json}}
GRACE=10  # seconds between a step's SIGTERM and its SIGKILL
mkdir -p "$W/logs" "$W/steps" "$W/results" "$(dirname "$SUMMARY")"
export PYTHONUNBUFFERED=1 PYTHONPATH=$REPO${PYTHONPATH:+:$PYTHONPATH}
export PY DEV W CLIP REPO QUICK
T0=$SECONDS
N=0

# One JSON record per step, read back by summarize. Fields hold no quotes.
record() {  # NAME STATUS RC SECONDS LIMIT NOTE
  N=$((N + 1))
  printf '{"name": "%s", "status": "%s", "rc": %s, "seconds": %s, "limit_s": %s, "note": "%s"}\n' \
    "$1" "$2" "$3" "$4" "$5" "$6" > "$W/steps/$(printf %02d $N)_$1.json"
}

summarize() {  # the summary from the records so far: written after every step
  "$PY" - "$W" "$SUMMARY" "$BUDGET" "$((SECONDS - T0))" "$QUICK" "$DEV" <<'PY'
import json, os, re, shutil, sys
from pathlib import Path
w, summary, budget, elapsed, quick, dev = sys.argv[1:]
w = Path(w)
def tail(path, n=25):
    if not path.exists():
        return []
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", path.read_text(errors="replace"))
    lines = [l.split("\r")[-1].rstrip() for l in text.splitlines()]
    return [l for l in lines if l.strip()][-n:]
def result(name):
    path = w / "results" / f"{name}.json"
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError:
        return {"unparsed": tail(path, 40)}
steps = []
for rec in sorted((w / "steps").glob("*.json")):
    step = json.loads(rec.read_text())
    step["log_tail"] = tail(w / "logs" / f"{step['name']}.log")
    step["result"] = result(step["name"])
    steps.append(step)
out = {"quick": quick == "1", "device": dev, "budget_s": int(budget), "elapsed_s": int(elapsed),
       "work": str(w), "all_ok": all(s["status"] in ("ok", "skipped") for s in steps),
       "steps": steps}
part = Path(summary + ".part")
part.write_text(json.dumps(out, indent=1))
os.replace(part, summary)
if os.environ.get("OUT"):  # whole logs travel back too
    shutil.copytree(w / "logs", Path(os.environ["OUT"]) / "logs", dirs_exist_ok=True)
PY
}

# run_step NAME LIMIT CMD...: CMD under a timeout of LIMIT s, or less when the budget has less.
run_step() {
  local name=$1 limit=$2 rc status t
  shift 2
  local left=$((BUDGET - (SECONDS - T0) - GRACE))
  if [ "$left" -lt 5 ]; then
    record "$name" skipped -1 0 0 "out of time: the budget of ${BUDGET} s is spent"
    summarize
    return
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  t=$SECONDS
  echo "== $name (at most ${limit} s)"
  timeout -k "$GRACE" "$limit" "$@" > "$W/logs/$name.log" 2>&1
  rc=$?
  case $rc in
    0) status=ok ;;
    124) status=timeout ;;
    137) status=killed ;;
    *) status=failed ;;
  esac
  echo "   $status (exit $rc) in $((SECONDS - t)) s"
  record "$name" "$status" "$rc" "$((SECONDS - t))" "$limit" "${NOTE:-}"
  NOTE=""
  summarize
}

# The steps that are more than one command; exported so that `timeout bash -c NAME` runs them.
env_probe() {
  "$PY" - "$W/results/env.json" <<'PY'
import json, os, sys
import av, cv2, torch
info = {"torch": torch.__version__, "cuda": torch.cuda.is_available(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "av": av.__version__, "opencv": cv2.__version__, "cpus": os.cpu_count(),
        "python": sys.version.split()[0]}
try:
    import scenedetect
    info["scenedetect"] = scenedetect.__version__
except ImportError as e:
    info["scenedetect"] = f"missing: {e}"
print(json.dumps(info))
open(sys.argv[1], "w").write(json.dumps(info))
PY
}
render_step() {  # the original's first 10 s (to a keyframe), colorized with the run's model
  local model=$W/run/model.pt
  [ -f "$model" ] || model=$W/run/last.pt
  [ -f "$model" ] || { echo "no model: the training run left neither model.pt nor last.pt"; return 1; }
  echo "model: $model"
  "$PY" pipelines/sample_clip.py "$CLIP" "$W/original_10s.mp4" 0 10 &&
    "$PY" -m cli render "$W/original_10s.mp4" "$W/colour_10s.mp4" --model "$model" \
      --device "$DEV" --overwrite
}
train_step() {  # ARGS...: `vidcolor train` stopped by SIGTERM after TRAIN_S s, as planned
  timeout -s TERM "$TRAIN_S" "$PY" -m cli train "$W/frames" -o "$W/run" --pretrain-epochs 0 \
    --device "$DEV" "$@"
  local rc=$?
  [ "$rc" = 124 ] && { echo "stopped after $TRAIN_S s, as planned"; return 0; }
  return "$rc"
}
eval_step() {
  "$PY" -m cli eval "$W/original_10s.mp4" "$W/colour_10s.mp4" --device "$DEV" --json \
    > "$W/results/eval.json"
}
export -f env_probe render_step train_step eval_step

echo "gpu_check: work $W, summary $SUMMARY, budget ${BUDGET} s, device $DEV, quick $QUICK"

# 1. PyAV and PySceneDetect (and pytest, if .whl/ has it) from .whl/ when this python lacks
# them; installed beside the repository, not into site-packages.
if "$PY" -c "import av, scenedetect, pytest" 2> /dev/null; then
  record wheels skipped 0 0 0 "av, scenedetect and pytest already importable"
elif compgen -G ".whl/*.whl" > /dev/null; then
  run_step wheels 40 "$PY" -m pip install -q --no-index --no-deps --no-compile \
    --disable-pip-version-check --target "$W/site" .whl/*.whl
  export PYTHONPATH=$W/site:$PYTHONPATH
else
  record wheels failed 1 0 0 "av missing and no .whl folder: carry .whl"
fi
run_step env 30 bash -c env_probe

# 2. The tests that need CUDA (they skip on a CPU).
run_step cuda-tests 45 "$PY" -m pytest -q -p no:cacheprovider -k cuda tests

# 3. The shared clip's frames, for training.
if [ "$QUICK" = 1 ]; then
  run_step extract 60 "$PY" -m cli extract "$CLIP" -o "$W/frames" --end 8 --size 96
else
  run_step extract 30 "$PY" -m cli extract "$CLIP" -o "$W/frames" --workers 8
fi

# 4. bench_train: step rates, the data path, and `vidcolor train` end to end for TRAIN_S
# seconds into $W/run (the run the render below uses).
FRAMES=(--clip "$CLIP")  # bench_train extracts its own frames when the step above failed
[ -f "$W/frames/manifest.jsonl" ] && FRAMES=(--frames "$W/frames")
if [ "$QUICK" = 1 ]; then
  LIMIT=150 TRAIN_S=40
  TRAIN_ARGS=(--size 32 --batch-size 4 --base-width 32 --depth 6 --workers 2)
  BENCH_ARGS=(--size 32 --batch-size 4 --steps 2 --configs small --e2e-config small
    --loader-batches 4 --workers 2)
else
  LIMIT=180 TRAIN_S=120
  TRAIN_ARGS=(--workers 8)
  BENCH_ARGS=(--workers 8)
fi
left=$((BUDGET - (SECONDS - T0) - GRACE))
[ "$LIMIT" -gt "$left" ] && LIMIT=$left
[ "$TRAIN_S" -gt $((LIMIT - 55)) ] && TRAIN_S=$((LIMIT - 55))
[ "$TRAIN_S" -lt 10 ] && TRAIN_S=10
export TRAIN_S
NOTE="end-to-end vidcolor train for ${TRAIN_S} s into $W/run"
run_step bench-train "$LIMIT" "$PY" benchmarks/bench_train.py "${FRAMES[@]}" "${BENCH_ARGS[@]}" \
  --device "$DEV" --e2e-seconds "$TRAIN_S" --e2e-run "$W/run" \
  --json "$W/results/bench-train.json"

# 4b. Only when bench_train left no run: a plain `vidcolor train`, stopped by SIGTERM.
if [ -f "$W/run/last.pt" ]; then
  record train skipped 0 0 0 "trained by bench-train's end-to-end case: $W/run"
elif [ -f "$W/frames/manifest.jsonl" ]; then
  rm -rf "$W/run"
  NOTE="vidcolor train for ${TRAIN_S} s into $W/run (bench-train left no run)"
  run_step train $((TRAIN_S + 30)) bash -c 'train_step "$@"' train "${TRAIN_ARGS[@]}"
else
  record train failed 1 0 0 "no frames and no run"
fi

# 5. bench_render at 1080p: the clip's first 20 s scaled up, outside the repository.
if [ "$QUICK" = 1 ]; then
  R=(--make-seconds 1 --naive-seconds 0.25 --model-seconds 1 --case-timeout 60)
  run_step bench-render 170 "$PY" benchmarks/bench_render.py --clip "$CLIP" \
    --make-1080p "$W/bbb_1080p.mp4" "${R[@]}" --json "$W/results/bench-render.json"
else
  R=(--make-seconds 20 --naive-seconds 2 --model-seconds 3 --case-timeout 45)
  run_step bench-render 140 "$PY" benchmarks/bench_render.py --clip "$CLIP" \
    --make-1080p "$W/bbb_1080p.mp4" "${R[@]}" --json "$W/results/bench-render.json"
fi

# 6. A render with the run's model, scored against the original.
if [ "$QUICK" = 1 ]; then
  run_step render 90 bash -c render_step
  run_step eval 150 bash -c eval_step
else
  run_step render 25 bash -c render_step
  run_step eval 50 bash -c eval_step
fi

# 7. SIGTERM during `train` and `render` (on CUDA where there is one), then resumed or run again:
# tests/test_faults.py checks the output whole, nothing else touched, no traceback.
run_step faults 90 "$PY" -m pytest -q -p no:cacheprovider -n 0 tests/test_faults.py \
  -k "TERM and (train or render)"

echo "gpu_check: $((SECONDS - T0)) s; summary: $SUMMARY"
"$PY" -c "
import json, sys
s = json.load(open(sys.argv[1]))
for x in s['steps']:
    print(f\"{x['name']:13} {x['status']:8} rc {x['rc']:>4} {x['seconds']:>4} s  {x['note']}\")
" "$SUMMARY"
