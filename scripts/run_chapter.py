"""Execute one book chapter (a MyST notebook) and print its outputs: `python scripts/run_chapter.py book/x.md`.

A quicker loop than building the whole book while writing a chapter; the kernel runs in book/.
"""

import sys
import time
from pathlib import Path

import jupytext  # type: ignore[import-untyped]
from nbclient import NotebookClient


def main() -> int:
    path = Path(sys.argv[1])
    notebook = jupytext.read(path)
    started = time.monotonic()
    client = NotebookClient(
        notebook, timeout=600, resources={"metadata": {"path": str(path.parent)}}
    )
    failed = False
    try:
        client.execute()
    except Exception as error:  # a failing cell: report it below with the outputs
        failed = True
        print(f"FAILED: {type(error).__name__}: {str(error)[-2000:]}")
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            text = output.get("text") or output.get("data", {}).get("text/plain", "")
            if text:
                print(text.rstrip())
    print(f"--- {path}: {time.monotonic() - started:.1f} s, {'FAILED' if failed else 'ok'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
