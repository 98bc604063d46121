"""The storage writer process (``python -m tuner.run.write_behind_process FD``): applies a
study process's trial writes (reports, user attributes) to the study storage, in the
order they came, through the storage's public methods (see ``tuner.run.write_behind``
for why a process).

A write that fails is kept, with every write after it, and handed back at the next
flush for the study process to apply itself: it has the same storage, and waits for
a database server that went away. It ignores SIGINT and SIGTERM (a Ctrl-C reaches the
whole process group; the study process handles it) and stops at the end of its pipe,
once everything it received has been applied.
"""

from __future__ import annotations

import sys
from multiprocessing.connection import Connection
from typing import Any

from tuner.tracking.writer import child_main, reply

__all__ = ["main"]

WRITES = frozenset({"set_trial_intermediate_value", "set_trial_user_attr"})


def _serve(conn: Connection) -> None:
    _, url = conn.recv()
    storage: Any = None
    failed: list[tuple[str, tuple[Any, ...]]] = []
    try:
        from tuner.storage.backends import build_storage

        storage = build_storage(url, create=False)
    except Exception:  # every write is handed back; the study process makes them
        pass
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return  # the study process is gone: everything it sent has been applied
        op = msg[0]
        if op == "w":  # [(method, args)], in order
            for method, args in msg[1]:
                if storage is None or failed or method not in WRITES:
                    failed.append((method, args))
                    continue
                try:
                    getattr(storage, method)(*args)
                except Exception:  # the study process makes it, and raises if it fails there too
                    failed.append((method, args))
        elif op == "flush":
            reply(conn, ("flushed", msg[1], failed))
            failed = []
        elif op == "close":
            return


def main(argv: list[str]) -> None:
    child_main(argv, _serve)


if __name__ == "__main__":
    main(sys.argv[1:])
