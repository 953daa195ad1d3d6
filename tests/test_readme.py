"""The README's curl exchanges, replayed against a fresh node: the documentation cannot drift."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.servers import REPO_ROOT, corral_process, free_port, running

README = REPO_ROOT / "README.md"


def console_exchanges(text: str) -> list[tuple[str, str]]:
    """(command, expected output) pairs from the README's ```console blocks."""
    exchanges: list[tuple[str, str]] = []
    for block in re.findall(r"```console\n(.*?)```", text, flags=re.S):
        for chunk in re.split(r"^\$ ", block, flags=re.M):
            if chunk.strip():
                command, _, output = chunk.partition("\n")
                exchanges.append((command, output.strip()))
    return exchanges


def test_readme_has_exchanges() -> None:
    assert len(console_exchanges(README.read_text())) >= 8


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_readme_curl_examples(tmp_path: Path) -> None:
    port = free_port()
    # The same flags as `make run`, so the IDs in the README's output are the ones a reader sees.
    server = corral_process(tmp_path / "data", port, name="default", peer_urls=False)
    with running(server):
        for command, expected in console_exchanges(README.read_text()):
            argv = [arg.replace("127.0.0.1:2379", f"127.0.0.1:{port}") for arg in shlex.split(command)]
            result = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            assert result.stdout.strip() == expected, command


def python_examples(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_python_examples(tmp_path: Path) -> None:
    examples = python_examples(README.read_text())
    assert examples
    port = free_port()
    server = corral_process(tmp_path / "data", port, name="default", peer_urls=False)
    with running(server):
        for number, example in enumerate(examples):
            script = tmp_path / f"example_{number}.py"
            script.write_text(example.replace("127.0.0.1:2379", f"127.0.0.1:{port}"))
            result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
            assert result.returncode == 0, f"README example {number} failed:\n{example}\n{result.stderr}"
