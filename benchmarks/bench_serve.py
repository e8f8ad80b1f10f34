#!/usr/bin/env python3
"""``stylekit serve``: time to the first preview, and what streaming snapshots costs the optimiser.

    python benchmarks/bench_serve.py                      # 256 px, 20 iterations, 2 rounds
    python benchmarks/bench_serve.py --size 256 --iterations 20 --rounds 3

Method. Everything runs in this one process, on the bundled cat photo and The Starry Night, single scale,
with the command line's CPU kernels on.

- *CLI path*: an ImageJob run as ``stylekit image`` runs it (``job.run`` with a progress callback that does
  nothing, the quiet bar).
- *serve path*: the same settings submitted to a real server (uvicorn on 127.0.0.1, in a thread) while an
  event-stream client reads every event, as the page does; snapshots at every iteration
  (``--preview-interval 0``, the worst case) and at the default throttle (0.25 s).

The per-iteration time of a run is the median of the differences of the optimiser's own clock
(``Progress.elapsed``) between consecutive steps, so start-up (weights, style targets) is left out. The two
paths alternate, round by round, so background load falls on both alike; the overhead is the ratio of the
medians over rounds. On a shared machine that ratio carries the other processes' noise, so two figures that
do not are reported too: the optimiser thread's own CPU time per iteration (``time.thread_time``; with one
torch thread every kernel runs on it), and the time spent in the serve path's callback itself (recording the
terms and making the snapshot, timed around each call) as a share of the optimiser's time.

The time to the first preview is measured from the request that starts a run to the first ``frame`` event
the client receives: with the default settings at ``--size`` (three scales, so the first snapshot is of the
coarsest), cold (the server's first run: the weights are read) and warm (a second run); and for the
single-scale runs above, whose first snapshot is at ``--size``.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONTENT = ROOT / "examples" / "images" / "chelsea.png"
STYLE = ROOT / "examples" / "images" / "starry_night.jpg"
HEADERS = {"X-Stylekit": "1"}


#: Seconds spent in the serve path's progress callback (recording the terms, making the snapshot), per step.
CALLBACK: list[float] = []
#: The optimiser thread's CPU clock at each step of the serve path.
CPU: list[float] = []


def time_the_callback() -> None:
    """Wrap the serve runs' progress callback so that its own cost is recorded in :data:`CALLBACK`."""
    from stylekit.serve import runs
    inner = runs._Publisher.__call__

    def timed(self, p):
        CPU.append(time.thread_time())
        t = time.perf_counter()
        try:
            return inner(self, p)
        finally:
            CALLBACK.append(time.perf_counter() - t)
    runs._Publisher.__call__ = timed


def per_iteration(elapsed: list[float]) -> float:
    return statistics.median(b - a for a, b in zip(elapsed, elapsed[1:]))


def cli_path(size: int, iterations: int) -> tuple[float, float]:
    from stylekit._command import enable_fast_kernels
    from stylekit.image.config import ImageStyleConfig
    from stylekit.image.job import ImageJob
    enable_fast_kernels()
    config = ImageStyleConfig(size=size, iterations=iterations, scales=1)
    with tempfile.TemporaryDirectory() as d:
        job = ImageJob(CONTENT, [STYLE], Path(d) / "out.png", config)
        job.check()
        elapsed: list[float] = []
        cpu: list[float] = []

        def progress(p) -> None:          # returns None: a true value would stop the run
            elapsed.append(p.elapsed)
            cpu.append(time.thread_time())
        job.run(progress=progress)
    return per_iteration(elapsed), per_iteration(cpu)


class Served:
    """A real server in a thread, with an event-stream client that reads everything (and notes frames)."""

    def __init__(self, preview_interval: float) -> None:
        import httpx

        from stylekit.serve.config import ServeConfig
        from stylekit.serve.server import Server, bind
        config = ServeConfig(port=0, preview_interval=preview_interval)
        self.server = Server(config, bind("127.0.0.1", 0), fast_kernels=True)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        self.client = httpx.Client(base_url=self.server.url.rstrip("/"), timeout=600)
        while True:
            try:
                self.client.get("/api/info")
                break
            except httpx.TransportError:
                time.sleep(0.05)
        self.frames: dict[str, float] = {}           # run id -> time its first frame arrived
        self.listener = threading.Thread(target=self._listen, daemon=True)
        self.listener.start()
        self.ids = [self._upload(CONTENT), self._upload(STYLE)]

    def _upload(self, path: Path) -> str:
        r = self.client.post("/api/uploads/image", content=path.read_bytes(), headers=HEADERS)
        r.raise_for_status()
        return r.json()["id"]

    def _listen(self) -> None:
        import httpx
        try:
            with httpx.Client(base_url=self.server.url.rstrip("/"), timeout=None) as c, \
                    c.stream("GET", "/api/events") as r:
                name = None
                for line in r.iter_lines():
                    if line.startswith("event: "):
                        name = line[7:]
                    elif line.startswith("data: ") and name == "frame":
                        run = json.loads(line[6:])["run"]
                        self.frames.setdefault(run, time.perf_counter())
        except httpx.HTTPError:
            pass

    def run(self, settings: dict) -> tuple[dict, float]:
        """Start a run; returns its final state and the seconds from the request to its first frame event."""
        t0 = time.perf_counter()
        r = self.client.post("/api/runs", json={"medium": "image", "content": self.ids[0], "styles": [self.ids[1]],
                                                "settings": settings}, headers=HEADERS)
        r.raise_for_status()
        run_id = r.json()["id"]
        while True:
            info = self.client.get(f"/api/runs/{run_id}").json()
            if info["state"] not in ("queued", "running"):
                break
            time.sleep(0.2)
        assert info["state"] == "done", info
        return info, self.frames.get(run_id, float("nan")) - t0

    def close(self) -> None:
        self.server.exit()
        self.thread.join(60)
        self.client.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    import torch
    print(f"# {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS', 'unset')}", flush=True)
    fast = {"size": str(args.size), "iterations": str(args.iterations), "scales": "1"}
    time_the_callback()
    every, throttled = Served(0.0), Served(0.25)
    try:
        _, cold = every.run({"size": str(args.size), "iterations": "2", "coarse_iterations": "2"})
        _, warm = every.run({"size": str(args.size), "iterations": "2", "coarse_iterations": "2"})
        print(f"time to first preview at {args.size} px (default scales): cold {cold:.2f} s, warm {warm:.2f} s",
              flush=True)
        cli_path(args.size, 3)              # warm-up: the CLI path's first run in this process
        rows: dict[str, list[float]] = {"cli": [], "serve, every iteration": [], "serve, throttled 0.25 s": []}
        cpu = {k: [] for k in rows}
        share: dict[str, list[float]] = {k: [] for k in rows if k != "cli"}
        firsts: list[float] = []
        for i in range(args.rounds):
            wall, thread = cli_path(args.size, args.iterations)
            rows["cli"].append(wall)
            cpu["cli"].append(thread)
            for name, served in (("serve, every iteration", every), ("serve, throttled 0.25 s", throttled)):
                CALLBACK.clear()
                CPU.clear()
                info, first = served.run(fast)
                firsts.append(first)
                steps = served.client.get(f"/api/runs/{info['id']}").json()["steps"]
                rows[name].append(per_iteration([s["elapsed"] for s in steps]))
                cpu[name].append(per_iteration(CPU))
                share[name].append(sum(CALLBACK) / max(steps[-1]["elapsed"], 1e-9))
            print(f"round {i + 1}: " + ", ".join(f"{k} {v[-1] * 1000:.0f} ms/it" for k, v in rows.items())
                  + "; callback share " + ", ".join(f"{v[-1]:.2%}" for v in share.values()), flush=True)
    finally:
        every.close()
        throttled.close()
    print(f"time to first preview at {args.size} px, one scale (warm): median {statistics.median(firsts):.2f} s "
          f"of {len(firsts)} runs")
    base = statistics.median(rows["cli"])
    print(f"\nper iteration at {args.size} px, median of {args.rounds} rounds of {args.iterations} iterations:")
    cpu_base = statistics.median(cpu["cli"])
    for k, v in rows.items():
        m, c = statistics.median(v), statistics.median(cpu[k])
        cost = f"; time in the callback {statistics.median(share[k]):.2%}" if k in share else ""
        print(f"  {k:24s} wall {m * 1000:6.0f} ms, ratio {m / base:.3f} (rounds "
              f"{', '.join(f'{x / b:.3f}' for x, b in zip(v, rows['cli']))}); optimiser thread CPU {c * 1000:6.0f} ms, "
              f"ratio {c / cpu_base:.3f}{cost}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
