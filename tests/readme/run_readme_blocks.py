#!/usr/bin/env python3
"""Runs every ```bash block of the README, in order, as written.

The blocks run with bash (-e -o pipefail) in a scratch copy of the checkout's layout: build/ is the
CMake build under test, configs/, scripts/ and slurm/ are the sources', ../shared is the shared
data, and out/ starts empty, so what the blocks write stays out of the checkout. A block preceded
by an HTML comment `<!-- readme-test: skip (REASON) -->` is not run (set-up steps that take
minutes, a Slurm cluster); the number of skipped blocks per reason must be what --expect-skipped
says, so no block escapes the test unnoticed. A block marked `<!-- readme-test: needs models/ -->`
runs only where the checkout has models/ (scripts/get-models.sh) and is skipped otherwise.

  run_readme_blocks.py --readme README.md --source DIR --build DIR --shared DIR \
      --expect-skipped set-up=2 --expect-skipped slurm=1
"""
import argparse
import collections
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time

BLOCK = re.compile(r"(?:<!--\s*readme-test:\s*(?P<marker>[^>]*?)\s*-->\s*\n)?```bash\n(?P<body>.*?)```",
                   re.S)
SKIP = re.compile(r"skip \((?P<reason>[^)]+)\)")


def blocks(text):
    """(line, marker, body) of every ```bash block."""
    for match in BLOCK.finditer(text):
        line = text.count("\n", 0, match.start("body"))
        yield line, (match.group("marker") or "").strip(), match.group("body")


def layout(scratch, source, build, shared):
    checkout = scratch / "checkout"
    checkout.mkdir()
    (checkout / "build").symlink_to(build)
    for folder in ("configs", "scripts", "slurm"):
        (checkout / folder).symlink_to(source / folder)
    if (source / "models").is_dir():
        (checkout / "models").symlink_to(source / "models")
    if (source / "data").is_dir():
        (checkout / "data").symlink_to(source / "data")
    (scratch / "shared").symlink_to(shared)
    return checkout


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--readme", type=pathlib.Path, required=True)
    parser.add_argument("--source", type=pathlib.Path, required=True)
    parser.add_argument("--build", type=pathlib.Path, required=True)
    parser.add_argument("--shared", type=pathlib.Path, required=True)
    parser.add_argument("--expect-skipped", action="append", default=[],
                        help="REASON=COUNT: blocks marked skip (REASON)")
    args = parser.parse_args()
    expected = collections.Counter()
    for item in args.expect_skipped:
        reason, count = item.rsplit("=", 1)
        expected[reason] = int(count)

    text = args.readme.read_text()
    found = list(blocks(text))
    if not found:
        sys.exit(f"{args.readme}: no ```bash blocks")
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OPENBLAS_NUM_THREADS="1")
    skipped = collections.Counter()
    with tempfile.TemporaryDirectory(prefix="qshard-readme-") as scratch:
        checkout = layout(pathlib.Path(scratch), args.source.resolve(), args.build.resolve(),
                          args.shared.resolve())
        for line, marker, body in found:
            where = f"{args.readme.name}:{line + 1}"
            skip = SKIP.fullmatch(marker)
            if skip:
                skipped[skip.group("reason")] += 1
                print(f"{where}: skipped ({skip.group('reason')})")
                continue
            if marker == "needs models/" and not (args.source / "models").is_dir():
                skipped["needs models/"] += 1
                print(f"{where}: skipped (no models/: scripts/get-models.sh)")
                continue
            if marker and marker != "needs models/":
                sys.exit(f"{where}: unknown readme-test marker '{marker}'")
            if not (args.shared / "models" / "stories260k").is_dir() and "../shared" in body:
                skipped["no ../shared"] += 1
                print(f"{where}: skipped (no ../shared)")
                continue
            print(f"{where}: running\n{body}", flush=True)
            start = time.monotonic()
            result = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", body], cwd=checkout,
                                    env=env)
            print(f"{where}: exit {result.returncode} in {time.monotonic() - start:.1f} s",
                  flush=True)
            if result.returncode != 0:
                sys.exit(f"{where}: the block failed (exit {result.returncode})")
        stray = sorted(p.name for p in checkout.iterdir()
                       if p.name not in ("build", "configs", "scripts", "slurm", "models", "data",
                                         "out"))
        if stray:
            sys.exit(f"blocks wrote outside out/: {stray}")
    marked = collections.Counter({k: v for k, v in skipped.items()
                                  if k not in ("needs models/", "no ../shared")})
    if marked != expected:
        sys.exit(f"skipped blocks {dict(marked)}, expected {dict(expected)}: a README block gained "
                 f"or lost its readme-test marker")
    print(f"{len(found)} blocks: {len(found) - sum(skipped.values())} run, "
          f"{sum(skipped.values())} skipped {dict(skipped)}")


if __name__ == "__main__":
    main()
