"""`make lab`: JupyterLab, started as the Makefile starts it, opens every chapter as a notebook.

The chapters are MyST Markdown; jupytext's server extension (installed with the pinned
``jupytext``) must present each one to JupyterLab as a notebook with its code cells and the
Python kernel, or a reader who runs ``make lab`` gets plain text instead of something to run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from refimpl.launcher import free_port

ROOT = Path(__file__).resolve().parents[2]


def toc_chapters() -> list[str]:
    """The pages `_toc.yml` names (``root:`` or ``file: book/x`` -> ``x.md``)."""
    text = (ROOT / "_toc.yml").read_text()
    return [f"{name}.md" for name in re.findall(r"(?:root|file):\s*book/([\w-]+)", text)]


def executable(chapter: str) -> bool:
    """A page whose front matter names a kernel is executed at build (the others are prose)."""
    return "kernelspec:" in (ROOT / "book" / chapter).read_text().split("\n---", 1)[0]


def lab_command(port: int) -> list[str]:
    """The Makefile's ``lab`` recipe, with a fixed port, no browser and no token."""
    recipe = (ROOT / "Makefile").read_text().split("\nlab:", 1)[1].split("\n")[1].strip()
    assert recipe.startswith("$(BIN)/jupyter lab --ServerApp.root_dir=book"), recipe
    command = [str(Path(sys.executable).parent / "jupyter"), "lab", "--ServerApp.root_dir=book"]
    if os.geteuid() == 0:
        assert "--allow-root" in recipe, "as root, jupyter lab refuses to start without it"
        command.append("--allow-root")
    return [*command, "--no-browser", f"--ServerApp.port={port}",
            "--IdentityProvider.token=", "--ServerApp.password="]  # fmt: skip


@pytest.fixture(scope="module")
def lab_url() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(lab_command(port), cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if process.poll() is not None:
                assert process.stderr is not None
                pytest.fail("jupyter lab exited: " + process.stderr.read().decode()[-2000:])
            try:
                if httpx.get(f"{url}/api/status", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        else:
            pytest.fail("jupyter lab did not answer within 90 s")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


def test_every_chapter_opens_as_a_notebook_with_code_and_the_python_kernel(
    lab_url: str,
) -> None:
    """Each executed chapter opens with its code cells and the python3 kernel; the prose
    pages (introduction, appendix, glossary) open as notebooks too."""
    chapters = toc_chapters()
    runnable = [c for c in chapters if executable(c)]
    assert len(runnable) >= 10, chapters
    for chapter in chapters:
        reply = httpx.get(f"{lab_url}/api/contents/{chapter}", params={"content": "1"},
                          timeout=30)  # fmt: skip
        assert reply.status_code == 200, (chapter, reply.text[:300])
        doc = reply.json()
        assert doc["type"] == "notebook", (chapter, doc["type"])
        if chapter not in runnable:
            continue
        kernel = doc["content"]["metadata"].get("kernelspec", {}).get("name")
        assert kernel == "python3", (chapter, doc["content"]["metadata"])
        code = [c for c in doc["content"]["cells"] if c["cell_type"] == "code"]
        assert code, f"{chapter} opens with no code cell"


def test_the_lab_page_itself_is_served(lab_url: str) -> None:
    reply = httpx.get(f"{lab_url}/lab", timeout=30)
    assert reply.status_code == 200
    assert "JupyterLab" in reply.text
