"""node_agent/Dockerfile's steps, performed without a Docker engine.

The Dockerfile is parsed, not restated: each stage's COPY lines copy the same
files, its RUN lines run the same venv and pip command lines (with a Python of
the base image's version), into a directory per stage that stands for the
image's filesystem. Steps only the base image can do (apt, users, file
capabilities, setuid sweeps) do not change what Python imports and are not
performed; any other step fails the build here until this module learns it.
"""

from __future__ import annotations

import glob
import json
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).parents[2]
DOCKERFILE = ROOT / "node_agent" / "Dockerfile"
# the first word of a command the base image performs and the emulation leaves out
SYSTEM_COMMANDS = frozenset({"apt-get", "groupadd", "useradd", "setcap", "find"})


@dataclass
class Stage:
    name: str
    base: str  # another stage's name, or the base image
    steps: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [rest for kind, rest in self.steps if kind == keyword]


@dataclass
class Dockerfile:
    args: dict[str, str]
    stages: dict[str, Stage]

    @classmethod
    def parse(cls, path: Path = DOCKERFILE) -> Dockerfile:
        lines = [
            line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")
        ]
        joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
        args: dict[str, str] = {}
        stages: dict[str, Stage] = {}
        current: Stage | None = None
        for line in filter(None, (raw.strip() for raw in joined.splitlines())):
            keyword, _, rest = line.partition(" ")
            keyword = keyword.upper()
            if keyword == "FROM":
                words = rest.split()
                name = words[2] if len(words) == 3 and words[1].upper() == "AS" else ""
                current = Stage(name or f"stage-{len(stages)}", words[0])
                stages[current.name] = current
            elif current is None and keyword == "ARG":
                key, _, value = rest.partition("=")
                args[key] = value
            elif current is not None:
                current.steps.append((keyword, rest))
        return cls(args, stages)

    @property
    def default_target(self) -> str:
        return list(self.stages)[-1]

    def chain(self, target: str) -> list[Stage]:
        """The stage and the stages it is built on, base first."""
        stages = [self.stages[target]]
        while stages[0].base in self.stages:
            stages.insert(0, self.stages[stages[0].base])
        return stages

    def env(self, target: str) -> dict[str, str]:
        found: dict[str, str] = {}
        for stage in self.chain(target):
            for rest in stage.all("ENV"):
                for word in shlex.split(rest):
                    key, value = word.split("=", 1)
                    found[key] = value
        return found

    def entrypoint(self, target: str) -> list[str]:
        (*_, last) = [rest for stage in self.chain(target) for rest in stage.all("ENTRYPOINT")]
        words: list[str] = json.loads(last)  # the exec form
        return words


class ImageBuild:
    """Builds targets of a Dockerfile into `work`/<stage>, one directory per stage."""

    def __init__(self, dockerfile: Dockerfile, work: Path, python: str) -> None:
        self.dockerfile = dockerfile
        self.work = work
        self.python = python
        self.commands: list[tuple[str, list[str]]] = []  # (target, command) of every run
        self.built: dict[str, Path] = {}

    def build(self, target: str) -> Path:
        if target in self.built:
            return self.built[target]
        root = self.work / target
        root.mkdir(parents=True)
        for stage in self.dockerfile.chain(target):
            for keyword, rest in stage.steps:
                if keyword == "COPY":
                    self._copy(root, rest)
                elif keyword == "RUN":
                    for command in rest.split("&&"):
                        self._run(target, root, shlex.split(command))
        self.built[target] = root
        return root

    def _copy(self, root: Path, rest: str) -> None:
        words = rest.split()
        source_root = ROOT
        if words[0].startswith("--from="):
            source_root = self.build(words.pop(0).removeprefix("--from="))
        *sources, destination = words
        for source in sources:
            matches = sorted(glob.glob(str(inside(source_root, source))))
            assert matches, f"COPY {source}: nothing matches"
            for match in map(Path, matches):
                target = inside(root, destination)
                if destination.endswith("/"):
                    target = target / match.name
                target.parent.mkdir(parents=True, exist_ok=True)
                if match.is_dir():
                    shutil.copytree(match, target, symlinks=True, dirs_exist_ok=True)
                else:
                    shutil.copy2(match, target)

    def _run(self, target: str, root: Path, words: list[str]) -> None:
        if words[0] in SYSTEM_COMMANDS or words[:5] == [
            "python",
            "-m",
            "pip",
            "uninstall",
            "--yes",
        ]:
            return
        if words[:3] == ["python", "-m", "venv"]:
            *options, path = words[3:]
            self._execute(target, [self.python, "-m", "venv", *options, str(inside(root, path))])
        elif words[:4] == ["python", "-m", "pip", "--python"] and words[5] == "install":
            options = [
                str(inside(root, word)) if word.startswith("/") else word
                for word in words[6:]
                if word != "--no-cache-dir"  # pip's cache keeps this test fast
            ]
            interpreter = str(inside(root, words[4]))
            self._execute(
                target, [self.python, "-m", "pip", "--python", interpreter, "install", *options]
            )
        elif words[:3] == ["python", "-m", "compileall"]:
            options = [
                str(inside(root, word)) if word.startswith("/") else word for word in words[3:]
            ]
            # -s/-p: the files are named by their image paths, as compiling in the image names them
            self._execute(
                target, [self.python, "-m", "compileall", *options, "-s", str(root), "-p", "/"]
            )
        elif words[:2] == ["rm", "-rf"]:
            for path in words[2:]:
                if path.startswith("/var/lib/apt/"):
                    continue  # apt's lists: the base image's
                found = inside(root, path)
                assert found.exists(), f"`rm -rf {path}` removes nothing: is the path stale?"
                shutil.rmtree(found)
        else:
            raise AssertionError(f"tests/agent/image.py cannot perform this step: {words}")

    def _execute(self, target: str, command: list[str]) -> None:
        self.commands.append((target, command))
        subprocess.run(command, check=True, capture_output=True, text=True, timeout=600)


def inside(root: Path, path: str) -> Path:
    """An image path (absolute: the image's filesystem; relative: the build context)."""
    return root / path.lstrip("/")
