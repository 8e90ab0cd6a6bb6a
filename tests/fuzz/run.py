"""The random-program tester's driver: many programs, each in a subprocess.

    python tests/fuzz/run.py --count 10000 --jobs 2        # make fuzz
    python tests/fuzz/run.py --count 120                   # make fuzz-fast (CI's profile)
    python tests/fuzz/run.py --seed 218 --show             # one program: its source and outcome

Worker processes (``--worker``) read seeds on stdin and answer one JSON line
per program; a worker that dies (an abort in LLVM or MLIR, a segfault) is
recorded as a ``crash`` of the program it was running and replaced, one
that takes longer than ``--timeout`` seconds as a ``timeout``. The report
counts outcomes per mode and lists every failure with its seed (written to
``--report`` too). Known failures (``known_failures.txt``: a seed, the
mode, and the root cause) are reported apart; ``--strict`` makes any
unknown failure the exit status 1 (the CI test).
"""

import argparse
import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent


def worker() -> None:
    """Answer seeds from stdin with one JSON line each."""
    sys.path.insert(0, str(HERE))
    from check import check
    from generate import generate
    # The driver's own test (tests/test_fuzz.py) makes a worker die or hang
    # on one seed, to check that a crash or a hang is recorded and survived.
    sabotage = os.environ.get("FERRULE_FUZZ_SABOTAGE", "")   # "abort:SEED" or "hang:SEED"
    for line in sys.stdin:
        seed = int(line)
        if sabotage == f"abort:{seed}":
            os.abort()
        if sabotage == f"hang:{seed}":
            time.sleep(3600)
        t = time.perf_counter()
        res = check(generate(seed))
        res.update(seed=seed, seconds=round(time.perf_counter() - t, 2))
        print(json.dumps(res), flush=True)


class _Worker:
    def __init__(self, env):
        self.env = env
        self.start()

    def start(self):
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--worker"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=self.env)
        self.lines = queue.Queue()
        self.stderr = []
        # Each reader is bound to its own process's pipe and queue: after a
        # restart, the old reader's end-of-file must not reach the new
        # worker's queue (it did, and the driver then waited for ever on a
        # healthy worker it took for dead).
        threading.Thread(target=self._read, args=(self.proc, self.lines), daemon=True).start()
        threading.Thread(target=self._read_err, args=(self.proc, self.stderr),
                         daemon=True).start()

    @staticmethod
    def _read(proc, lines):
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    @staticmethod
    def _read_err(proc, stderr):
        for line in proc.stderr:
            stderr.append(line)
            del stderr[:-20]

    def run(self, seed: int, timeout: float) -> dict:
        self.proc.stdin.write(f"{seed}\n")
        self.proc.stdin.flush()
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            self.proc.kill()
            self.proc.wait()
            self.start()
            return {"seed": seed, "outcome": "timeout", "mode": "?",
                    "detail": f"no answer in {timeout:.0f} s"}
        if line is None:
            code = self.proc.wait()
            err = "".join(self.stderr[-5:]).strip()
            self.start()
            return {"seed": seed, "outcome": "crash", "mode": "?",
                    "detail": f"worker died with status {code}: {err[-500:]}"}
        return json.loads(line)

    def close(self):
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
        except Exception:
            self.proc.kill()


def known_failures(path: Path) -> dict:
    """``{seed: "mode: cause"}`` from ``path`` (lines ``seed mode cause``)."""
    known = {}
    if path.exists():
        for line in path.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                seed, rest = line.split(None, 1)
                known[int(seed)] = rest
    return known


def run(seeds, jobs: int, timeout: float, progress: bool = True, log=None):
    """Outcome dicts of ``seeds``, run on ``jobs`` worker processes; each
    also appended to the file ``log`` (one JSON line) as it comes, so a
    long run stopped early keeps what it found (``--summarize``)."""
    env = dict(os.environ)
    env.setdefault("FERRULE_CACHE_DIR", "")      # compile everything: the disk cache hides nothing
    todo = queue.Queue()
    for s in seeds:
        todo.put(s)
    results, lock = [], threading.Lock()

    def loop():
        w = _Worker(env)
        while True:
            try:
                s = todo.get_nowait()
            except queue.Empty:
                break
            r = w.run(s, timeout)
            with lock:
                results.append(r)
                if log:
                    with open(log, "a") as fh:
                        fh.write(json.dumps(r) + "\n")
                if progress and len(results) % 50 == 0:
                    bad = sum(x["outcome"] not in ("ok", "skipped") for x in results)
                    print(f"  {len(results)}/{len(seeds)} programs, {bad} failing",
                          file=sys.stderr, flush=True)
        w.close()
    threads = [threading.Thread(target=loop) for _ in range(max(1, jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sorted(results, key=lambda r: r["seed"])


def report(results, known) -> str:
    """The counts per outcome and mode, then each failure."""
    from generate import generate
    by_outcome = Counter(r["outcome"] for r in results)
    by_mode = Counter((r["outcome"], r["mode"]) for r in results if r["outcome"] != "ok")
    secs = sum(r.get("seconds", 0) for r in results)
    lines = [f"{len(results)} programs ({secs:.0f} s of checking):"]
    lines += [f"  {k:10s} {v}" for k, v in sorted(by_outcome.items())]
    for (o, m), v in sorted(by_mode.items()):
        lines.append(f"    {o} in {m}: {v}")
    fails = [r for r in results if r["outcome"] not in ("ok", "skipped")]
    for r in fails:
        tag = "known" if r["seed"] in known else "NEW"
        lines.append(f"\n[{tag}] seed {r['seed']}: {r['outcome']} in {r['mode']}: {r['detail']}")
        if r["seed"] in known:
            lines.append(f"  known cause: {known[r['seed']]}")
        lines.append(generate(r["seed"]).source)
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--count", type=int, default=120, help="programs to run")
    ap.add_argument("--start", type=int, default=0, help="first seed")
    ap.add_argument("--seed", type=int, help="run this one seed")
    ap.add_argument("--show", action="store_true", help="print the program's source")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per program")
    ap.add_argument("--report", default=None, help="also write the report here")
    ap.add_argument("--log", default=None,
                    help="append each program's outcome to this file (JSON lines) as it comes")
    ap.add_argument("--summarize", default=None, metavar="LOG",
                    help="print the report of a --log file (of a run stopped early) and exit")
    ap.add_argument("--strict", action="store_true",
                    help="exit status 1 when a failure is not in known_failures.txt")
    a = ap.parse_args(argv)
    if a.worker:
        worker()
        return 0
    sys.path.insert(0, str(HERE))
    if a.summarize:
        results = sorted((json.loads(l) for l in open(a.summarize) if l.strip()),
                         key=lambda r: r["seed"])
        print(report(results, known_failures(HERE / "known_failures.txt")))
        return 0
    seeds = [a.seed] if a.seed is not None else list(range(a.start, a.start + a.count))
    if a.show:
        from generate import generate
        for s in seeds:
            p = generate(s)
            print(f"# seed {s}: {p.dtype}, inputs {p.shapes} in {p.ranges}\n{p.source}")
    t0 = time.perf_counter()
    results = run(seeds, a.jobs, a.timeout, progress=len(seeds) > 1, log=a.log)
    known = known_failures(HERE / "known_failures.txt")
    text = report(results, known) + f"\n\nwall time {time.perf_counter() - t0:.0f} s, {a.jobs} job(s)"
    print(text)
    if a.report:
        Path(a.report).write_text(text + "\n")
    new = [r for r in results if r["outcome"] not in ("ok", "skipped") and r["seed"] not in known]
    return 1 if a.strict and new else 0


if __name__ == "__main__":
    sys.exit(main())
