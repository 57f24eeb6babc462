"""Worst cases for the Python translations of the signal patterns (``bot/core/backtrack.py``).

Python's ``re`` backtracks, so each translated pattern is timed on crafted texts of ``SHORT_TEXT``
characters (the longest it is ever given): its own required literals repeated back to back, with and
without filler, so that matches keep starting and failing. Prints the slowest patterns and the sum.

    .venv/bin/python benchmarks/backtrack_worst.py [--top 10]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.core.backtrack import SHORT_TEXT, compile_short
from bot.core.prefilter import alternatives
from bot.knowledge import load_knowledge


def crafted_texts(pattern: str) -> list[str]:
    units = ["你的借款", "x1", "1", "x", "的"]
    clauses = [clause for alternative in alternatives(pattern) or [] for clause in alternative]
    literals = [literal for clause in clauses for literal in sorted(clause)]
    if literals:
        units += ["".join(literals), "的".join(literals)]
        units += ["".join(sorted(clause)) for clause in clauses]
    return [(unit * (SHORT_TEXT // len(unit) + 1))[:SHORT_TEXT] for unit in units]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=10, help="slowest patterns to list (default: %(default)s)")
    args = parser.parse_args()
    patterns = [p for c in load_knowledge().signals for p in c.signal.patterns]
    timings = []
    kept_with_re2 = 0
    for pattern in patterns:
        regex = compile_short(pattern)
        if regex is None:
            kept_with_re2 += 1
            continue
        worst = 0.0
        for text in crafted_texts(pattern):
            started = time.perf_counter()
            regex.search(text)
            worst = max(worst, time.perf_counter() - started)
        timings.append((worst, pattern))
    timings.sort(reverse=True)
    print(f"{len(patterns)} patterns: {len(timings)} translated, {kept_with_re2} kept with RE2")
    print(f"worst case per pattern on {SHORT_TEXT}-character crafted texts, slowest first:")
    for seconds, pattern in timings[: args.top]:
        print(f"  {seconds * 1000:7.2f} ms  {pattern[:90]}")
    print(f"sum over all translated patterns: {sum(s for s, _ in timings) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
