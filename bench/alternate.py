#!/usr/bin/env python3
"""Times commands in alternation, for comparisons that hyperfine's one-command-after-another
order would bias.

hyperfine runs every run of one command before the next, so when the machine drifts (other jobs,
page cache, CPU frequency) over the minutes of a slow benchmark such as `runc run`, the drift
lands in the difference between the commands. Here every round runs each command once, the order
reversed every other round (A B, B A, A B, ...), so a steady drift affects all commands alike.

Each run is a whole process, timed from spawn (posix_spawn, no shell) to its exit status (wait4),
stdin, stdout and stderr on /dev/null. A command's `--prepare` step runs before each of its runs
and is not timed. A failing run (non-zero exit) stops the benchmark.

Prints each command's median and 5th-95th percentile, and the ratio of each command's median to
the reference command's (the first one unless `--reference` names another) with a 90% interval
from resampling whole rounds (a paired bootstrap). `--export-json` writes hyperfine's export
format (results: command, mean, stddev, median, user, system, min, max, times, exit_codes; times
in seconds) plus `ratios` (command, reference, ratio of the medians, low and high end of its
90% interval), which bench/run-all.sh collects with hyperfine's.

    bench/alternate.py [--runs N] [--warmup N] [--reference NAME] [--export-json FILE]
                       [-n NAME] [--prepare CMD] COMMAND [[-n NAME] [--prepare CMD] COMMAND]...

Commands and prepare steps are split like a shell would split words (shlex), without running a
shell. `-n` and `--prepare` apply to the COMMAND that follows them.
"""

import gc
import json
import os
import random
import shlex
import statistics
import subprocess
import sys
import time

USAGE = __doc__.split("    bench/alternate.py", 1)[1].split("\n\n", 1)[0]


class Command:
    """One compared command: its name, argv, prepare argv, and the measured runs."""

    def __init__(self, command, name, prepare):
        self.argv = shlex.split(command)
        if not self.argv:
            fail(f"empty command {command!r}")
        self.name = name or command
        self.prepare = shlex.split(prepare) if prepare else None
        self.times = []  # seconds, wall
        self.user = []
        self.system = []


def fail(message):
    sys.exit(f"bench/alternate.py: {message}")


def parse(args):
    """Returns (options, commands) from the command line."""
    options = {"runs": 200, "warmup": 5, "reference": None, "export_json": None}
    commands = []
    name = prepare = None
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in ("-h", "--help"):
            print(__doc__)
            sys.exit(0)
        if arg in ("--runs", "--warmup", "--reference", "--export-json", "-n", "--prepare"):
            if i + 1 >= len(args):
                fail(f"{arg} needs a value\nusage: bench/alternate.py{USAGE}")
            value = args[i + 1]
            i += 2
            if arg in ("--runs", "--warmup"):
                try:
                    options[arg[2:]] = int(value)
                except ValueError:
                    fail(f"{arg} {value!r} is not a number")
            elif arg == "-n":
                name = value
            elif arg == "--prepare":
                prepare = value
            else:
                options[arg[2:].replace("-", "_")] = value
            continue
        if arg.startswith("-"):
            fail(f"unknown option {arg}\nusage: bench/alternate.py{USAGE}")
        commands.append(Command(arg, name, prepare))
        name = prepare = None
        i += 1
    if len(commands) < 2:
        fail(f"needs at least two commands to compare\nusage: bench/alternate.py{USAGE}")
    if options["runs"] < 2:
        fail("--runs must be at least 2")
    return options, commands


def run_once(command, devnull):
    """Prepares and runs `command` once; returns (wall seconds, user seconds, system seconds)."""
    if command.prepare:
        prepared = subprocess.run(command.prepare, stdin=devnull, stdout=devnull, check=False)
        if prepared.returncode != 0:
            fail(f"prepare step {shlex.join(command.prepare)!r} of {command.name!r} "
                 f"exited with {prepared.returncode}")
    actions = [(os.POSIX_SPAWN_DUP2, devnull, fd) for fd in (0, 1, 2)]
    start = time.perf_counter_ns()
    pid = os.posix_spawnp(command.argv[0], command.argv, os.environ, file_actions=actions)
    _, status, usage = os.wait4(pid, 0)
    wall = (time.perf_counter_ns() - start) / 1e9
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        fail(f"{command.name!r} ({shlex.join(command.argv)}) exited with {code}; "
             "run it by hand to see its output")
    return wall, usage.ru_utime, usage.ru_stime


def quantiles(times):
    """The 5th and 95th percentiles of `times`."""
    q = statistics.quantiles(times, n=20)
    return q[0], q[-1]


def ratio_interval(sample, reference, rounds, rng):
    """90% interval of median(sample)/median(reference), resampling whole rounds."""
    ratios = []
    for _ in range(2000):
        picks = [rng.randrange(rounds) for _ in range(rounds)]
        ratios.append(statistics.median(sample[i] for i in picks)
                      / statistics.median(reference[i] for i in picks))
    ratios.sort()
    return ratios[len(ratios) * 5 // 100], ratios[len(ratios) * 95 // 100 - 1]


def main():
    options, commands = parse(sys.argv[1:])
    reference = commands[0]
    if options["reference"] is not None:
        reference = next((c for c in commands if c.name == options["reference"]), None)
        if reference is None:
            fail(f"--reference {options['reference']!r} names none of the commands")
    devnull = os.open(os.devnull, os.O_RDWR)
    gc.disable()  # no collector pauses inside a timed run
    for round_number in range(options["warmup"] + options["runs"]):
        order = commands if round_number % 2 == 0 else commands[::-1]
        for command in order:
            wall, user, system = run_once(command, devnull)
            if round_number >= options["warmup"]:
                command.times.append(wall)
                command.user.append(user)
                command.system.append(system)
    gc.enable()

    rounds = options["runs"]
    width = max(len(c.name) for c in commands)
    print(f"{rounds} alternating rounds after {options['warmup']} warm-up rounds, "
          f"load average {open('/proc/loadavg').read().split()[0]}")
    for command in commands:
        p5, p95 = quantiles(command.times)
        print(f"  {command.name:<{width}}  median {statistics.median(command.times) * 1000:8.2f} ms"
              f"   p5 - p95 {p5 * 1000:.2f} - {p95 * 1000:.2f} ms")
    rng = random.Random(4)  # a fixed seed: the same runs give the same interval
    ratios = []
    for command in commands:
        if command is reference:
            continue
        ratio = statistics.median(command.times) / statistics.median(reference.times)
        low, high = ratio_interval(command.times, reference.times, rounds, rng)
        ratios.append({"command": command.name, "reference": reference.name, "ratio": ratio,
                       "low": low, "high": high})
        print(f"  {command.name} / {reference.name}: {ratio:.3f}x the median "
              f"(90% interval of the ratio {low:.3f} - {high:.3f})")

    if options["export_json"]:
        results = []
        for command in commands:
            results.append({
                "command": command.name,
                "mean": statistics.mean(command.times),
                "stddev": statistics.stdev(command.times),
                "median": statistics.median(command.times),
                "user": statistics.mean(command.user),
                "system": statistics.mean(command.system),
                "min": min(command.times),
                "max": max(command.times),
                "times": command.times,
                "exit_codes": [0] * len(command.times),
            })
        with open(options["export_json"], "w") as out:
            json.dump({"results": results, "ratios": ratios}, out, indent=2)


if __name__ == "__main__":
    main()
