"""The access file at the router, re-read when it changes.

crossbar's node controller owns the router's signals, so the router polls
the file's modification time and size instead of waiting for SIGHUP. A
reload that fails keeps the readers in force (``ReadersHolder``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from twisted.logger import Logger

from common.access.access_file import ReadersHolder, access_file, load_readers
from common.access.readers import Readers

log = Logger()


class ReadersFile:
    """The router's readers, and the stamp of the file they came from."""

    def __init__(self, env: Mapping[str, str]) -> None:
        path = access_file(env)
        self.holder = ReadersHolder(load_readers(path) if path else Readers.open_default(), path)
        self.stamp = self.file_stamp()

    @property
    def readers(self) -> Readers:
        return self.holder.readers

    @property
    def path(self) -> str:
        return self.holder.path

    def file_stamp(self) -> tuple[float, int] | None:
        if not self.path:
            return None
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_mtime, st.st_size)

    def poll(self) -> None:
        """Re-read the file if it changed since the last look."""
        stamp = self.file_stamp()
        if stamp == self.stamp:
            return
        self.stamp = stamp
        problem = self.holder.reload()
        if problem:
            log.warn("readers.reload_failed reason={reason}", reason=problem)
        else:
            log.info("readers.reloaded readers={n}", n=len(self.readers.readers))
