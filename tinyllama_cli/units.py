"""Numbers for people: one decimal-suffix formatter shared by every table and log line."""

from __future__ import annotations

_SCALES = (1e12, 1e9, 1e6, 1e3)


def si(
    x: float,
    spec: str = ".3g",
    sep: str = "",
    *,
    giga: str = "B",
    kilo: str = "k",
    unit: str = "",
    small_spec: str = ".0f",
) -> str:
    """x with a decimal suffix (T, giga, M, kilo): si(7.31e9, ".2f", " ", giga="G") == "7.31 G".

    `giga`/`kilo` pick the letters ("B" for token counts, "G" for FLOPs); below a thousand the
    number is written with `small_spec`, followed by the unit (if any).
    """
    for suffix, scale in zip(("T", giga, "M", kilo), _SCALES):
        if x >= scale:
            return f"{x / scale:{spec}}{sep}{suffix}{unit}"
    return f"{x:{small_spec}}" + (f"{sep}{unit}" if unit else "")
