"""Long frame-fuzzing run: the harness of tests/fuzz/frames.py (mutated real frames into a TUN
and a TAP stack, invariants after every frame, clean shutdown after every input) for as long as
asked, with a seeded random generator. Prints a summary (inputs, frames, drop reasons, peak
memory) and, on a failure, the input that broke an invariant as a Python literal, to paste into
a regression test.

    .venv/bin/python tools/fuzz_frames.py --minutes 25 --seed 1 [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fuzz.frames import Stats, build_target, check_final, random_steps, run_input  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-steps", type=int, default=24, help="frames steps per input (default 24)")
    ap.add_argument("--json", metavar="FILE", help="write the summary as JSON")
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    deadline = time.monotonic() + args.minutes * 60
    t0 = time.monotonic()
    per_medium = {m: Stats() for m in ("ip", "ethernet")}
    inputs = {m: 0 for m in per_medium}
    answers = {m: 0 for m in per_medium}
    failure = None
    while time.monotonic() < deadline and failure is None:
        for medium, stats in per_medium.items():
            target_seed = rng.randrange(1 << 30)
            target = build_target(medium, seed=target_seed)
            steps = random_steps(rng, len(target.corpus), args.max_steps)
            try:
                run_input(target, steps, stats)
                check_final(target)
            except AssertionError as e:
                failure = {"medium": medium, "target_seed": target_seed, "error": str(e)[:4000],
                           "steps": repr(steps)}
                break
            inputs[medium] += 1
            answers[medium] += target.sent
    elapsed = time.monotonic() - t0
    summary = {"seconds": round(elapsed, 1), "seed": args.seed, "failure": failure}
    for medium, s in per_medium.items():
        summary[medium] = {"inputs": inputs[medium], "frames": s.frames, "answers_checked": answers[medium],
                           "dropped": s.dropped,
                           "delivered": s.delivered, "peak_memory": s.peak_memory,
                           "distinct_drop_reasons": len(s.reasons),
                           "top_reasons": dict(sorted(s.reasons.items(), key=lambda kv: -kv[1])[:15])}
    text = json.dumps(summary, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 1 if failure else 0


if __name__ == "__main__":
    sys.exit(main())
