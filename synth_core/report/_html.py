"""The report page: one self-contained HTML document (inline CSS, pictures as ``data:`` URIs, no
script and nothing loaded from anywhere), and the readable forms of its numbers."""

from __future__ import annotations

import html
from dataclasses import dataclass, field

import pandas as pd

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;color:#1d2430;background:#f6f7f9}
header{background:#1d2430;color:#fff;padding:16px 28px}header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;color:#c9d1dc;font-size:13px}
nav{padding:8px 28px;background:#e9edf2;font-size:13px}nav a{margin-right:16px;color:#1d4e89}
main{padding:8px 28px 40px}section{background:#fff;border:1px solid #dde2e8;border-radius:6px;margin:16px 0;padding:12px 18px}
h2{font-size:18px;margin:4px 0 10px}h3{font-size:14px;margin:14px 0 6px}
.cards{display:flex;flex-wrap:wrap;gap:12px}.card{border:1px solid #dde2e8;border-radius:6px;padding:10px 14px;min-width:220px}
.card .big{font-size:24px;font-weight:600}.card .small{font-size:12px;color:#5a6472}
.pass{color:#17803d}.fail{color:#b42318}.grid{display:flex;flex-wrap:wrap;gap:10px}
figure{margin:0;border:1px solid #eef0f3;padding:4px}figcaption{font-size:12px;color:#5a6472;max-width:560px}
table{border-collapse:collapse;font-size:12px;margin:6px 0}td,th{border:1px solid #dde2e8;padding:3px 8px;text-align:right}
th{background:#f0f3f6}td:first-child,th:first-child{text-align:left}.note{font-size:12px;color:#5a6472}
.status{margin:16px 28px 0;padding:10px 18px;border:2px solid;border-radius:6px;background:#fff}
.status .verdict{font-size:24px;font-weight:700}.status p{margin:4px 0;color:#1d2430;font-size:13px}
.status ul{margin:6px 0 2px;padding-left:20px;font-size:14px}
"""  # noqa: E501 (the CSS the page carries, byte for byte)


def pct(value: float | None, digits: int = 2) -> str:
    """A share in [0, 1] as a percentage, e.g. ``98.83 %``; ``–`` when missing."""
    if value is None or pd.isna(value):
        return "–"
    return f"{float(value) * 100:.{digits}f} %"


def num(value: float | None, digits: int = 3) -> str:
    """A plain number with ``digits`` significant digits, e.g. ``0.291``; ``–`` when missing."""
    if value is None or pd.isna(value):
        return "–"
    return f"{float(value):.{digits}g}"


def dec(value: float | None, digits: int = 3) -> str:
    """A number with ``digits`` decimals, e.g. an AUC ``0.510``; ``–`` when missing."""
    if value is None or pd.isna(value):
        return "–"
    return f"{float(value):.{digits}f}"


def count(value: int | float | None, unit: str = "") -> str:
    """A count with thousands separators and its unit, e.g. ``24,421 rows``."""
    if value is None or pd.isna(value):
        return "–"
    return f"{int(value):,}" + (f" {unit}" if unit else "")


def interval(values, fmt=pct) -> str:
    """A 95 % interval as ``low – high`` in the given format."""
    if not values:
        return "–"
    return f"{fmt(values[0])} – {fmt(values[1])}"


def esc(text) -> str:
    return html.escape(str(text), quote=True)


@dataclass
class Page:
    """The document being assembled: a title, then sections in order."""

    title: str
    subtitle: str = ""
    sections: list[tuple[str, str, list[str]]] = field(default_factory=list)  # id, heading, parts
    banner: str = ""  # the verdict, between the header and the sections (:func:`status_banner`)
    tab_prefix: str = ""  # e.g. "Not published · ": a refused report says so in its browser tab too

    def section(self, ident: str, heading: str) -> list[str]:
        """A new section; returns the list to append its HTML parts to."""
        parts: list[str] = []
        self.sections.append((ident, heading, parts))
        return parts

    def render(self) -> str:
        nav = "".join(f'<a href="#{esc(i)}">{esc(h)}</a>' for i, h, _ in self.sections)
        body = "".join(f'<section id="{esc(i)}"><h2>{esc(h)}</h2>{"".join(p)}</section>' for i, h, p in self.sections)
        return (
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{esc(self.tab_prefix + self.title)}</title>"
            f"<style>{CSS}</style></head><body><header><h1>{esc(self.title)}</h1><p>{esc(self.subtitle)}</p></header>"
            f"{self.banner}<nav>{nav}</nav><main>{body}</main></body></html>\n"
        )


def image(png_base64: str, alt: str, caption: str = "") -> str:
    """A picture embedded as a ``data:`` URI, with an optional caption."""
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return f'<figure><img alt="{esc(alt)}" src="data:image/png;base64,{png_base64}">{cap}</figure>'


def card(title: str, big: str, small: str = "", css: str = "") -> str:
    return (f'<div class="card"><div class="small">{esc(title)}</div><div class="big {css}">{esc(big)}</div>'
            f'<div class="small">{esc(small)}</div></div>')


def table(frame: pd.DataFrame) -> str:
    """A small table; cells are shown as given (format them first)."""
    head = "".join(f"<th>{esc(c)}</th>" for c in frame.columns)
    rows = "".join("<tr>" + "".join(f"<td>{esc(v)}</td>" for v in row) + "</tr>"
                   for row in frame.itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def status_banner(label: str, passed: bool, explanation: str = "", reasons=()) -> str:
    """The verdict at the top of the page: a big label, one sentence, and one line per failed check."""
    css = "pass" if passed else "fail"
    items = "".join(f'<li class="fail">{esc(r)}</li>' for r in reasons)
    return (f'<div id="status" class="status {css}"><div class="verdict {css}">{esc(label)}</div>'
            + (f"<p>{esc(explanation)}</p>" if explanation else "") + (f"<ul>{items}</ul>" if items else "") + "</div>")


def note(text: str) -> str:
    return f'<p class="note">{esc(text)}</p>'
