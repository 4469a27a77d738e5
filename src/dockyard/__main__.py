"""``python -m dockyard``: the console script, for when only the interpreter is known.

`dockyard parallel` starts its shards this way, so they run with its own Python and dockyard
whatever ``PATH`` holds.
"""

from __future__ import annotations

from dockyard.cli.program import main

if __name__ == "__main__":
    main()
