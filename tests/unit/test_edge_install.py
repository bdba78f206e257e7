"""The edge install is small: no controller dependency, and the agent never imports one."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONTROLLER_ONLY = ("psycopg", "psycopg_pool", "fastapi", "uvicorn", "ortools", "numpy", "rich")


def test_base_and_edge_dependencies_exclude_the_controller_stack() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = [d.split("==")[0].split("[")[0].lower() for d in project["dependencies"]]
    names += [d.split("==")[0].lower() for d in project["optional-dependencies"]["edge"]]
    for forbidden in ("psycopg", "psycopg-pool", "fastapi", "uvicorn", "ortools", "numpy"):
        assert forbidden not in names


def test_agent_runs_without_controller_packages() -> None:
    # Block every controller-only package and the controller itself, then import the agent's
    # entry point and build its parts: an ImportError here means a gateway install would break.
    script = textwrap.dedent(
        f"""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {(*CONTROLLER_ONLY, "controller", "simulators")!r}:
                    raise ImportError("blocked on a gateway: " + name)
                return None
        sys.meta_path.insert(0, Block())
        import edge_agent.cli, edge_agent.runtime, edge_agent.agent
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
