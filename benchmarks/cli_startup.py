"""`podid --help` beside the floor any Typer CLI pays, in one run.

Each sample is a fresh interpreter started from an empty directory; the
commands are sampled interleaved so load on the machine hits them alike. The
floor is a two-command Typer app printing its help (Typer renders help with
rich, and its help module imports rich's markdown and traceback support);
`python -c pass` is the interpreter alone. Printed: median wall and CPU (the
child's user+system time) and each as a ratio to the floor.

    .venv/bin/python benchmarks/cli_startup.py [--runs 15]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MINIMAL_APP = '''
import typer
app = typer.Typer(help="A minimal CLI.", no_args_is_help=True, add_completion=False)
@app.command()
def first(name: str = "a") -> None:
    """The first command."""
@app.command()
def second() -> None:
    """The second command."""
app()
'''


def timed(command: list[str], cwd: str) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall * 1000, cpu * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    runs = parser.parse_args().runs
    bin_dir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory() as empty:
        app = Path(empty) / "minimal_app.py"
        app.write_text(MINIMAL_APP)
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "minimal Typer app --help (floor)": [sys.executable, str(app), "--help"],
            "podid --help": [str(bin_dir / "podid"), "--help"],
        }
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
        for _ in range(runs):
            for name, command in commands.items():
                samples[name].append(timed(command, empty))
    medians = {
        name: (statistics.median(s[0] for s in got), statistics.median(s[1] for s in got))
        for name, got in samples.items()
    }
    floor_wall, floor_cpu = medians["minimal Typer app --help (floor)"]
    print(f"median of {runs} fresh interpreters each, sampled interleaved")
    print(
        f"{'command':36} {'wall ms':>8} {'cpu ms':>8} {'x floor (wall)':>15} {'x floor (cpu)':>14}"
    )
    for name, (wall, cpu) in medians.items():
        print(f"{name:36} {wall:8.0f} {cpu:8.0f} {wall / floor_wall:15.2f} {cpu / floor_cpu:14.2f}")


if __name__ == "__main__":
    main()
