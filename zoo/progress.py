"""Progress bars that read as a person writes: ``1,000/2,000 structures [00:04<00:04, 250
structures/s]``, or without a total ``1,000 structures [00:04, 250 structures/s]`` (tqdm's own
format writes ``1000structure`` and ``250.31structure/s``)."""

from __future__ import annotations

from tqdm import tqdm

WITH_TOTAL = "{l_bar}{bar}| {count}/{whole} {unit} [{elapsed}<{remaining}, {speed}]"
WITHOUT_TOTAL = "{desc}: {count} {unit} [{elapsed}, {speed}]"


class CountBar(tqdm):
    """A tqdm bar whose ``unit`` is a plural noun (``"structures"``), counts carry thousands
    separators and the rate is a whole number of units per second. Takes tqdm's arguments."""

    @property
    def format_dict(self) -> dict:
        values = super().format_dict
        rate = values["rate"]
        done = values["n"] - values.get("initial", 0)
        if rate is None and values["elapsed"]:
            rate = done / values["elapsed"]
        values["bar_format"] = WITH_TOTAL if values["total"] else WITHOUT_TOTAL
        values["count"] = f"{values['n']:,.0f}"
        values["whole"] = f"{values['total']:,.0f}" if values["total"] else "?"
        per_second = f"{rate:,.0f}" if rate is not None and rate >= 1 else f"{rate or 0:.2g}"
        values["speed"] = f"{per_second} {values['unit']}/s"
        return values
