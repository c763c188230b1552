"""Summarise a py-spy profile (``py-spy record -f raw``): where a service spends its CPU.

``python -m bench.profiling var/bench/<run>/profile-routing.txt [--top 20] [--seconds 20]`` prints the share
of samples by package (self time: the innermost frame's package) and the functions with the largest inclusive
share. py-spy records running threads only, so samples / (seconds x 100 Hz) is the CPU share of one core.
``make bench`` with ``--profile`` writes one such file per service under load.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")
_PACKAGES = (
    ("aiokafka", "aiokafka"),
    ("faststream", "faststream"),
    ("redis/", "redis-py"),
    ("pydantic", "pydantic"),
    ("fast_depends", "fast_depends"),
    ("prometheus_client", "prometheus_client"),
    ("uvicorn", "uvicorn"),
    ("starlette", "starlette"),
    ("fastapi", "fastapi"),
    ("h11", "h11"),
    ("jinja2", "jinja2"),
    ("aiosmtplib", "aiosmtplib"),
    ("/services/", "services (ours)"),
    ("/shared/", "shared (ours)"),
    ("logging/", "logging"),
    ("json/", "json"),
    ("asyncio/", "asyncio"),
    ("uuid.py", "uuid"),
    ("email/", "email"),
)


def package_of(file: str) -> str:
    for needle, name in _PACKAGES:
        if needle in file:
            return name
    return "other: " + file.rsplit("/", 1)[-1]


def parse(path: Path) -> list[tuple[list[tuple[str, str]], int]]:
    stacks = []
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = []
        for raw in stack.split(";"):
            match = _FRAME.match(raw.strip())
            if match:
                frames.append((match["func"], match["file"]))
        if frames:
            stacks.append((frames, int(count)))
    return stacks


def summarise(path: Path, top: int = 15, seconds: float | None = None, rate_hz: int = 100) -> str:
    stacks = parse(path)
    total = sum(count for _, count in stacks) or 1
    by_package: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for frames, count in stacks:
        _, file = frames[-1]
        by_package[package_of(file)] += count
        for name in {
            f"{f} ({p.rsplit('/', 2)[-2] + '/' if '/' in p else ''}{p.rsplit('/', 1)[-1]})" for f, p in frames
        }:
            inclusive[name] += count
    busy = f", busy {total / (seconds * rate_hz):.0%} of one core" if seconds else ""
    lines = [f"{path.name}: {total} samples (py-spy samples running threads only{busy})"]
    lines.append("  self time by package:")
    lines += [f"    {count / total:6.1%}  {name}" for name, count in by_package.most_common(top)]
    lines.append("  inclusive time by function:")
    lines += [f"    {count / total:6.1%}  {name}" for name, count in inclusive.most_common(top * 2)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("profiles", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--seconds", type=float, help="how long the profile ran (for the busy share)")
    args = parser.parse_args()
    for path in args.profiles:
        print(summarise(path, args.top, args.seconds))


if __name__ == "__main__":
    main()
