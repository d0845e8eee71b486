"""`certsmith` as bench/ratio.py runs it: the CLI, with every reconcile counted by kind and the counts
written every half second to the JSON file named by $CERTSMITH_BENCH_RECONCILES. The count wraps
`Runtime._reconcile`, so it works the same for this tree and for an earlier one (PYTHONPATH)."""

from __future__ import annotations

import collections
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from certsmith import runtime
from certsmith.cli import main

_counts: collections.Counter[str] = collections.Counter()
_original = runtime.Runtime._reconcile


def _counted(self: runtime.Runtime, item: Any) -> Any:  # noqa: ANN401 -- either tree's types
    _counts[item.plural] += 1
    return _original(self, item)


def _write(path: Path) -> None:
    while True:
        path.write_text(json.dumps(dict(_counts)))
        time.sleep(0.5)


if __name__ == "__main__":
    runtime.Runtime._reconcile = _counted  # type: ignore[method-assign]
    threading.Thread(
        target=_write, args=(Path(os.environ["CERTSMITH_BENCH_RECONCILES"]),), daemon=True
    ).start()
    sys.exit(main(sys.argv[1:]))
