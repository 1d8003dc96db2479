"""Every command in README.md's bash blocks runs: `wrt-run` at budget=smoke on a small subset, in a
temporary folder, then `wrt-analyze` on what they wrote; a command marked `# long` is composed only
(`dry_run=true` for a sweep: every job composed and checked; `--cfg job` for one run), and so is a sweep
through a named launcher (`hydra/launcher=…`): tests/test_launchers.py runs a sweep through each launcher.
A command with `hydra.searchpath=` gets docs/extending.md's example project (tests/fixtures/user_project.py)
in its place. Any other command must be one the test knows (make targets, scripts, `export`), so a new kind
of example cannot slip by."""

from __future__ import annotations

import importlib.util
import re
import shlex
import sys
from pathlib import Path

from conftest import IN_CI, ROOT, TINY, missing, run_tool, share_probes
from fixtures.user_project import user_project

BIN = Path(sys.executable).parent
KNOWN = (re.compile(r"^make (run|test)\b"), re.compile(r"^(\w+=\S+ )*bash scripts/\w+\.sh\b"),
         re.compile(r"^export (\w+=\S+ ?)+$"))  # the environment each command needs, the test sets itself


def readme_commands() -> list[tuple[str, bool]]:
    """(command, long) for each command line of the README's bash blocks (continuations joined)."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S):
        for line in block.replace("\\\n", " ").splitlines():
            command, _, comment = line.partition(" #")
            if command.strip() and not command.lstrip().startswith("#"):
                commands.append((command.strip(), comment.strip().startswith("long")))
    return commands


def rewrite(command: str, long: bool, tmp_path: Path) -> tuple[list[str], dict]:
    """The command's arguments as the test runs them, and the environment it adds."""
    words = shlex.split(command)
    tool = Path(words[0]).name
    assert words[0] == f".venv/bin/{tool}" and tool in ("wrt-run", "wrt-analyze"), command
    args = [w for w in words[1:] if not w.startswith(("results_dir=", "store_dir="))]
    env = {}
    if any(w.startswith("hydra.searchpath=") for w in args):
        search, env = user_project(tmp_path / "myproject")
        args = [search[0] if w.startswith("hydra.searchpath=") else w for w in args]
    where = [f"results_dir={tmp_path}/results", f"store_dir={tmp_path}/store"]
    if tool == "wrt-analyze":
        return [str(BIN / tool), *args, where[0]], env
    if long:
        return [str(BIN / tool), *args, *where, *(["dry_run=true"] if "-m" in args else ["--cfg", "job"])], env
    args = [w for w in args if not w.startswith(("budget=", "progress="))]
    return [str(BIN / tool), *args, *where, *TINY, "progress=false"], env


def test_readme_commands_run(tmp_path, fmnist_full, suite_probes):
    share_probes(tmp_path / "store", suite_probes)
    commands = readme_commands()
    assert any("wrt-run -m" in c for c, _ in commands) and any("wrt-analyze" in c for c, _ in commands)
    for command, long in commands:
        if any(pattern.match(command) for pattern in KNOWN):
            continue
        if "hydra/launcher=ray" in command and importlib.util.find_spec("hydra_plugins.hydra_ray_launcher") is None:
            if IN_CI:  # CI must compose every command; elsewhere tests/test_launchers.py's skip names the fix
                missing("the Ray launcher is not installed: pip install -e '.[ray]' (make test does)")
            continue
        args, env = rewrite(command, long or "hydra/launcher=" in command, tmp_path)
        proc = run_tool(args, tmp_path, {"RAY_USAGE_STATS_ENABLED": "0", **env}, timeout=600)
        assert proc.returncode == 0, f"README command failed: {command}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
