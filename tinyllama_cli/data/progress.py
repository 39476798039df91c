"""A rich progress bar for prepare-data: bytes read with ETA, documents/s and tokens/s."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class RichProgress:
    """Implements `prepare.ProgressSink`; use as a context manager around `prepare_data`."""

    def __init__(self, console: Console):
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), DownloadColumn(),
            TextColumn("{task.fields[rates]}"), TimeElapsedColumn(), TextColumn("ETA"),
            TimeRemainingColumn(), console=console, transient=False,
        )
        self.task = None
        self.documents = 0
        self.tokens = 0
        self.t0 = time.perf_counter()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        if self.task is not None:
            self.progress.stop()

    def _add_task(self, text: str, **kw) -> None:
        # Started on the first task, so a run that fails its checks prints only its error.
        self.progress.start()
        self.task = self.progress.add_task(text, rates="", **kw)

    def stage(self, text: str) -> None:
        if self.task is None:
            self._add_task(text, total=None)
        else:
            self.progress.update(self.task, description=text)

    def start(self, total_bytes: int, done_bytes: int, files: int, resumed: int) -> None:
        text = f"tokenizing {files} files" + (f" ({resumed} done before)" if resumed else "")
        if self.task is None:
            self._add_task(text, total=total_bytes, completed=done_bytes)
        else:
            self.progress.update(self.task, description=text, total=total_bytes, completed=done_bytes)
        self.t0 = time.perf_counter()

    def advance(self, documents: int, tokens: int, nbytes: int) -> None:
        self.documents += documents
        self.tokens += tokens
        elapsed = max(time.perf_counter() - self.t0, 1e-9)
        rates = f"{self.documents / elapsed:,.0f} docs/s {self.tokens / elapsed / 1e6:,.2f}M tok/s"
        self.progress.update(self.task, advance=nbytes, rates=rates)
