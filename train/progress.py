"""The training progress bar: step, the main losses and the time left (rich; silent when disabled)."""

from __future__ import annotations

from typing import Any


class Progress:
    """A rich progress bar with step, losses and ETA (silent when disabled)."""

    SHOW = ("d_adv", "g_adv", "d_acc")

    def __init__(self, enabled: bool, start: int, total: int) -> None:
        self.enabled, self.start, self.total = enabled, start, total
        self.bar = None

    def __enter__(self) -> Progress:
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(
                TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[losses]}"),
                TimeRemainingColumn(), transient=False,
            )
            self.bar.start()
            self.task = self.bar.add_task("train", total=self.total, completed=self.start, losses="")
        return self

    def update(self, step: int, record: dict[str, Any] | None) -> None:
        if self.bar is None:
            return
        fields = {}
        if record is not None:
            fields["losses"] = " ".join(f"{k}={record[k]:.3f}" for k in self.SHOW if k in record)
        self.bar.update(self.task, completed=step, **fields)

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.stop()
