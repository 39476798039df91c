"""`pretrain` and `resume` get one `--flag` per TrainConfig field, generated from the config's
sections so the flags cannot drift from it: parsing machinery, kept out of cli.py's commands.

A generated flag defaults to None ("not given": the --config YAML, the saved run or the
field's default decides) and shows the field's default in --help; its type is the field's kind
(a key of `config.PARSERS`, the table YAML values are parsed with), and a boolean gets
--x/--no-x. `resume` takes the fields of the sections it may change (`Resume.CHANGE`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import typer

from tinyllama_cli.config import TrainField, train_fields


def train_flags(sections: tuple[str, ...], panel: str) -> list[inspect.Parameter]:
    """Keyword-only parameters, one per field of `sections`, shown under `panel` in --help."""
    return [_flag(f, panel) for f in train_fields().values() if f.section in sections]


def _flag(field: TrainField, panel: str) -> inspect.Parameter:
    flag = "--" + field.name.replace("_", "-")
    boolean = field.kind is bool
    decls = [f"{flag}/--no-{flag[2:]}"] if boolean else [flag]
    help_text = field.help
    if field.default is not None:
        shown = (flag[2:] if field.default else f"no-{flag[2:]}") if boolean else field.default
        help_text += f" \\[default: {shown}]"  # escaped: rich would read [...] as markup
    option = typer.Option(None, *decls, help=help_text, show_default=False, rich_help_panel=panel)
    return inspect.Parameter(
        field.name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=field.kind | None
    )


def with_train_flags(
    sections: tuple[str, ...], panel: str
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give `func(own parameters, **flags)` a signature Typer reads: its own parameters, then
    the flags of `sections` (`train_flags`); the flags reach it as `**flags`."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        own = [p for p in inspect.signature(func).parameters.values() if p.kind != p.VAR_KEYWORD]
        params = own + train_flags(sections, panel)

        def wrapper(**kwargs: Any) -> Any:
            return func(**kwargs)

        wrapper.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        wrapper.__name__, wrapper.__doc__ = func.__name__, func.__doc__
        return wrapper

    return decorate
