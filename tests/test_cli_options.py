"""Option groups: a dataclass of typer options that a command receives as one object."""

from dataclasses import dataclass, field
from typing import Annotated

import typer
from typer.testing import CliRunner

from ctrlgen.serve.options import grouped


@dataclass(frozen=True)
class Out:
    name: Annotated[str, typer.Option("--name", "-o", help="where")] = "x.png"
    tags: Annotated[list[str], typer.Option(help="repeatable")] = field(default_factory=list)


def test_grouped_fields_are_plain_options_and_arrive_as_one_object():
    got = []

    @grouped(out=Out)
    def cmd(*, n: Annotated[int, typer.Option()] = 1, out: Out) -> None:
        got.append((n, out))

    app = typer.Typer()
    app.command()(cmd)
    app.command("other")(lambda: None)
    runner = CliRunner()
    assert runner.invoke(app, ["cmd", "--n", "3", "-o", "y.png", "--tags", "a", "--tags", "b"]).exit_code == 0
    assert runner.invoke(app, ["cmd"]).exit_code == 0
    assert got == [(3, Out("y.png", ["a", "b"])), (1, Out())]
    helptext = runner.invoke(app, ["cmd", "--help"]).output
    assert "--name" in helptext and "--tags" in helptext and "--out" not in helptext
