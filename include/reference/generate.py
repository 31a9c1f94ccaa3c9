"""Write the example reference datasets' files, once, from packages on PyPI:

- ``countries.csv``: ISO 3166-1 countries from ``pycountry`` 26.2.16 (its copy of the iso-codes
  database), one row per alpha-2 code;
- ``uk_bank_holidays.csv``: the bank holidays of England and Wales, 2000-2030, from
  ``holidays`` 0.108 (``country_holidays("GB", subdiv="ENG")``; Wales has the same days, which
  the script checks), one row per date.

The files are committed; this script is kept to say how they were made and to make the next
version (bump the pins, run it, read ``wharf reference diff``, commit). Neither package is a
dependency of Wharf: install them somewhere of their own, e.g.::

    uv pip install --target /tmp/refgen pycountry==26.2.16 holidays==0.108
    PYTHONPATH=/tmp/refgen python include/reference/generate.py

The output is sorted and written with ``\\n`` line ends, so the same package versions give
byte-identical files (and an unchanged checksum: nothing is loaded again).
"""

from __future__ import annotations

import csv
from importlib.metadata import version
from pathlib import Path

PINS = {"pycountry": "26.2.16", "holidays": "0.108"}
YEARS = range(2000, 2031)
HERE = Path(__file__).resolve().parent


def _check_pins() -> None:
    for package, pinned in PINS.items():
        found = version(package)
        if found != pinned:
            raise SystemExit(f"{package} {found} is installed; this script pins {pinned}")


def countries() -> list[dict[str, str]]:
    import pycountry

    rows = [
        {
            "alpha_2": c.alpha_2,
            "alpha_3": c.alpha_3,
            "numeric_code": c.numeric,
            "name": c.name,
            "official_name": getattr(c, "official_name", ""),
            "common_name": getattr(c, "common_name", ""),
        }
        for c in pycountry.countries
    ]
    return sorted(rows, key=lambda r: r["alpha_2"])


def bank_holidays() -> list[dict[str, str]]:
    import holidays

    england = holidays.country_holidays("GB", subdiv="ENG", years=YEARS)
    wales = holidays.country_holidays("GB", subdiv="WLS", years=YEARS)
    if dict(england) != dict(wales):
        raise SystemExit("England's and Wales's bank holidays differ: one file cannot hold both")
    return [{"date": day.isoformat(), "name": name} for day, name in sorted(england.items())]


def write(name: str, rows: list[dict[str, str]]) -> None:
    with (HERE / name).open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    print(f"{name}: {len(rows)} rows")


if __name__ == "__main__":
    _check_pins()
    write("countries.csv", countries())
    write("uk_bank_holidays.csv", bank_holidays())
