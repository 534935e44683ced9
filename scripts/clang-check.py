#!/usr/bin/env python3
"""Parses the C++ sources of the libraries, the tools and the Python binding with clang.

The build compiles with GCC, and GCC accepts some C++20 that the clang of Debian 12 (14) does
not: a lambda capturing a structured binding, for one. The libFuzzer build and users elsewhere
compile with clang, so every translation unit of the build's compile_commands.json under mx/,
tools/ and python/ is parsed with `clang++ -fsyntax-only` and the build's warnings as errors
(its include paths, defines and language standard; code generation flags dropped). The tests
are left out: they are most of the time and none of the library.

    scripts/clang-check.py BUILD_DIR [CLANGXX]

Exit status: 0 when every file parses, 1 when one does not (clang's messages printed),
2 on bad arguments, 77 (skipped) when there is no clang++.
"""
import concurrent.futures
import json
import os
import shlex
import shutil
import subprocess
import sys

CHECKED_FOLDERS = ("mx", "tools", "python")
WARNINGS = ["-Wall", "-Wextra", "-Werror"]


def parse_arguments(args):
    """The include paths, defines and standard of one compile command's arguments."""
    kept = []
    i = 1
    while i < len(args):
        arg = args[i]
        if arg in ("-isystem", "-I", "-D") and i + 1 < len(args):
            kept += [arg, args[i + 1]]
            i += 2
            continue
        if arg.startswith(("-I", "-D", "-std=")):
            kept.append(arg)
        i += 1
    return kept


def checked_commands(build_dir, clangxx):
    with open(os.path.join(build_dir, "compile_commands.json"), encoding="utf-8") as f:
        entries = json.load(f)
    source_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for entry in entries:
        path = os.path.abspath(entry["file"])
        relative = os.path.relpath(path, source_dir)
        if not path.endswith(".cpp") or relative.split(os.sep)[0] not in CHECKED_FOLDERS:
            continue
        args = entry["arguments"] if "arguments" in entry else shlex.split(entry["command"])
        yield relative, [clangxx, "-fsyntax-only"] + WARNINGS + parse_arguments(args) + [path]


def main():
    if len(sys.argv) not in (2, 3):
        print("usage: scripts/clang-check.py BUILD_DIR [CLANGXX]", file=sys.stderr)
        return 2
    build_dir = sys.argv[1]
    clangxx = sys.argv[2] if len(sys.argv) == 3 else shutil.which("clang++")
    if not clangxx or not shutil.which(clangxx):
        print("SKIP: no clang++ to parse the sources with")
        return 77
    if not os.path.isfile(os.path.join(build_dir, "compile_commands.json")):
        print(f"clang-check: no compile_commands.json in {build_dir}", file=sys.stderr)
        return 2
    commands = list(checked_commands(build_dir, clangxx))
    if not commands:
        print(f"clang-check: no sources under {', '.join(CHECKED_FOLDERS)} in {build_dir}",
              file=sys.stderr)
        return 2

    def parse(item):
        relative, command = item
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        return relative, done.returncode, done.stdout + done.stderr

    failed = []
    with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        for relative, status, output in pool.map(parse, commands):
            if status != 0:
                failed.append(relative)
                print(output, end="")
    version = subprocess.run([clangxx, "--version"], capture_output=True, text=True,
                             check=False).stdout.splitlines()[0]
    if failed:
        print(f"clang-check: {len(failed)} of {len(commands)} files do not parse with {version}: "
              + ", ".join(failed))
        return 1
    print(f"clang-check: {len(commands)} files parse with {version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
