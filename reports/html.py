"""Reports as self-contained HTML pages, and the pages of a model run and of a sweep.

:func:`write_html` renders a report's Markdown (the subset satmem's reports write: headings,
paragraphs, lists, pipe tables, images, emphasis, code, links) to one HTML file with every
``![..](file.png)`` embedded as a base64 data URI, so the page can be mailed or attached
without its directory. No Markdown package is needed.

:func:`model_report` writes the figures of one model run (energy against dense, roofline,
utilisation over time) with a Markdown and an HTML page; :func:`sweep_report` the table, the
energy breakdown and the Pareto fronts of a sweep's stored results (``satmem sweep --report``).
"""

from __future__ import annotations

import base64
import html
import json
import re
from pathlib import Path

import pandas as pd

__all__ = ["image_refs", "markdown_to_html", "model_report", "sweep_report", "write_html"]

_IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")
_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
_CSS = """body{font:15px/1.45 system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222}table{border-collapse:collapse;margin:1em 0;font-size:13px}th,td{border:1px solid #ccc;
padding:3px 8px}th{background:#f3f3f3}td.r{text-align:right}img{max-width:100%}
code{background:#f4f4f4;padding:0 3px}h1,h2,h3{line-height:1.2}"""


def _inline(text: str, images: dict[str, str]) -> str:
    """Escape, then images, links, code, bold and italics of one line of Markdown."""
    out, pos = [], 0
    spans = []  # code spans are literal: cut them out first
    for m in re.finditer(r"`([^`]+)`", text):
        out.append(text[pos:m.start()])
        out.append(f"\0{len(spans)}\0")
        spans.append(f"<code>{html.escape(m.group(1))}</code>")
        pos = m.end()
    out.append(text[pos:])
    s = html.escape("".join(out), quote=False)

    def image(m: re.Match) -> str:
        alt, src = m.group(1), html.unescape(m.group(2))
        data = images.get(src, src)
        return f'<img alt="{html.escape(alt)}" src="{data}">'

    s = _IMAGE.sub(image, s)
    s = _LINK.sub(lambda m: f'<a href="{m.group(2)}">{m.group(1)}</a>', s)
    s = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", s)
    s = re.sub(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])", r"<em>\1</em>", s)
    return re.sub("\0(\\d+)\0", lambda m: spans[int(m.group(1))], s)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def markdown_to_html(text: str, images: dict[str, str] | None = None, *,
                     title: str = "satmem report") -> str:
    """A whole HTML page from Markdown; ``images`` maps an image's path as written in the
    Markdown to the ``src`` to use (a data URI)."""
    images = images or {}
    lines = text.splitlines()
    body: list[str] = []
    para: list[str] = []
    i = 0

    def flush() -> None:
        if para:
            body.append("<p>" + " ".join(_inline(p, images) for p in para) + "</p>")
            para.clear()

    while i < len(lines):
        line = lines[i]
        head = re.match(r"(#{1,6})\s+(.*)", line)
        if head:
            flush()
            n = len(head.group(1))
            body.append(f"<h{n}>{_inline(head.group(2), images)}</h{n}>")
        elif line.lstrip().startswith("|") and i + 1 < len(lines) \
                and re.match(r"^\s*\|?\s*:?-{3,}", lines[i + 1]):
            flush()
            heads = _cells(line)
            align = ["r" if c.endswith(":") else "" for c in _cells(lines[i + 1])]
            rows = ["<tr>" + "".join(f"<th>{_inline(h, images)}</th>" for h in heads) + "</tr>"]
            i += 2
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                cells = _cells(lines[i])
                rows.append("<tr>" + "".join(
                    f'<td{" class=r" if j < len(align) and align[j] else ""}>'
                    f"{_inline(c, images)}</td>" for j, c in enumerate(cells)) + "</tr>")
                i += 1
            body.append("<table>" + "".join(rows) + "</table>")
            continue
        elif re.match(r"^\s*[-*]\s+", line):
            flush()
            items = []
            while i < len(lines) and lines[i].strip():
                m = re.match(r"^\s*[-*]\s+(.*)", lines[i])
                if m:
                    items.append(m.group(1))
                elif items:  # a continuation line of the last item
                    items[-1] += " " + lines[i].strip()
                i += 1
            body.append("<ul>" + "".join(f"<li>{_inline(t, images)}</li>" for t in items)
                        + "</ul>")
            continue
        elif not line.strip():
            flush()
        else:
            para.append(line.strip())
        i += 1
    flush()
    return (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}"
            f"</title><style>{_CSS}</style></head><body>\n" + "\n".join(body)
            + "\n</body></html>\n")


def image_refs(text: str) -> list[str]:
    """The image paths a Markdown text references, in order."""
    return [m.group(2) for m in _IMAGE.finditer(text)]


def write_html(md_path: str | Path, html_path: str | Path | None = None) -> Path:
    """Render ``md_path`` to a self-contained HTML page (default: the same name, ``.html``),
    embedding every PNG the Markdown references (relative to its directory) as base64.

    Raises
    ------
    FileNotFoundError
        An image the Markdown references is missing.
    """
    md_path = Path(md_path)
    text = md_path.read_text()
    images = {}
    for ref in image_refs(text):
        f = md_path.parent / ref
        if not f.is_file():
            raise FileNotFoundError(f"{md_path} references {ref}, which is not in "
                                    f"{md_path.parent}")
        kind = "png" if f.suffix.lower() == ".png" else f.suffix.lower().lstrip(".")
        images[ref] = f"data:image/{kind};base64," + base64.b64encode(f.read_bytes()).decode()
    title = next((line.lstrip("# ").strip() for line in text.splitlines()
                  if line.startswith("#")), md_path.stem)
    out = Path(html_path) if html_path is not None else md_path.with_suffix(".html")
    out.write_text(markdown_to_html(text, images, title=title))
    return out


# --- pages ----------------------------------------------------------------------------------------

def model_report(model: str = "resnet18", method: str = "bdwp", pattern: str | None = "2:8",
                 config="vcu1525", out_dir: str | Path = "reports/figures", *, batch: int = 1,
                 bins: int = 120, **model_kw) -> Path:
    """Simulate one model step with ``method`` and dense, and write ``model_report.md`` and
    ``.html`` with ``energy.png`` (both steps by component), ``roofline.png`` (every GEMM
    item of both steps) and ``utilisation.png`` (the ``method`` step's units over time).

    Returns the Markdown file.
    """
    from dataflow.simulate import simulate_model
    from hwsim.config import load_config

    from . import figures as fg

    cfg = load_config(config)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with fg.capture_runs() as runs:
        res = simulate_model(model, method, pattern, cfg, batch, compare_dense=method != "dense",
                             **model_kw)
    (prog, st), *rest = runs
    label = f"{method} {pattern}" if method != "dense" else "dense"
    roofs = {label: fg.roofline(prog, st, cfg)}
    energy = {label: res.totals}
    if rest:
        dprog, dst = rest[0]
        roofs = {"dense": fg.roofline(dprog, dst, cfg), **roofs}
        energy = {"dense": {"energy_pj": dst.energy_total_pj,
                            **{f"energy_{k}_pj": v for k, v in dst.energy_pj.items()}}, **energy}
    what = f"{res.model} {res.what} on {cfg.name}, batch {res.batch}"
    fg.plot_energy({what: energy}, out / "energy.png", title="Energy by component")
    fg.plot_roofline(roofs, out / "roofline.png", title=f"Roofline: {what}")
    util = fg.schedule_utilisation(prog, st, bins)
    fg.plot_utilisation(util, out / "utilisation.png", clock_mhz=cfg.clock_mhz,
                        title=f"Units busy over the {label} step ({what})")
    et = fg.energy_table(energy)
    r = roofs[label]
    lines = [f"# {what}", "", res.summary(), "",
             "## Energy by component", "", "![energy by component](energy.png)", "",
             "| step | " + " | ".join(fg.component_label(c) for c in et.columns) + " |",
             "|---|" + "---:|" * len(et.columns)]
    lines += [f"| {k} | " + " | ".join(f"{v / 1e9:,.3f}" for v in row) + " |"
              for k, row in zip(et.index, et.to_numpy(), strict=True)]
    lines += ["", "mJ. SRAM per buffer: `sram ACT`, `WGT`, `ACC`, `IDX` (N:M indices), `VEC` "
              "(the vector and lookup engines' scratch) and `sram hot rows` (the lookup "
              "engine's hot-row cache) sum to the SRAM component (`hwsim.energy`).", "",
              "## Roofline per layer and pass", "",
              "![roofline](roofline.png)", "",
              f"{len(r)} GEMM items in the {label} step, {int(r.memory_bound.sum())} "
              f"memory-bound (intensity below the ridge of {r.attrs['ridge']:.2f} MACs per "
              "byte). Attained: useful MACs over each item's window (first command's start to "
              "last command's end); DRAM bytes: its DMA loads and stores.", "",
              "## Utilisation over time", "", "![utilisation over time](utilisation.png)", ""]
    md = out / "model_report.md"
    md.write_text("\n".join(lines))
    write_html(md)
    return md


def _synth_json(path: str | Path | None) -> dict | None:
    p = Path(path) if path is not None else \
        Path(__file__).resolve().parent / "synth" / "vcu1525_synth_report.json"
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None


def sweep_report(df: pd.DataFrame, out_dir: str | Path, title: str, *,
                 synth: str | Path | None = None) -> Path:
    """``report.md`` and ``report.html`` of a sweep's stored results: the table
    (:func:`reports.store.markdown_table`), latency against energy per workload with the
    Pareto front (``pareto_energy.png``), latency against area where the synthesis report's
    fits map the points to LUTs (``pareto_area.png``, :func:`reports.figures.area_luts`), and
    the energy of the points by component (``energy.png``, one panel per workload).
    Returns the Markdown file."""
    from . import figures as fg
    from .store import markdown_table

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lines = [markdown_table(df, title).rstrip(), ""]
    ok = df[df["error"].isna()] if "error" in df.columns and len(df) else df
    if len(ok):
        ok = ok.copy()
        vary = [c for c in ok.columns if "." in c and ok[c].astype(str).nunique() > 1]
        ok["point"] = ok[vary].apply(
            lambda r: ", ".join(f"{c}={v}" for c, v in r.items()), axis=1) if vary \
            else ok["config"]
        fig = fg.plot_pareto(ok, out / "pareto_energy.png", title="Latency against energy")
        front = sum(len(v) for v in fig.fronts.values())
        lines += ["## Pareto front: latency against energy", "",
                  "![latency against energy](pareto_energy.png)", "",
                  f"{front} of {len(ok)} points are non-dominated (no other point of the same "
                  "workload is as fast and as frugal, and better on one).", ""]
        lines += ["| workload | " + " | ".join(vary or ["config"]) + " | ms | mJ |",
                  "|---|" + "---|" * len(vary or ["config"]) + "---:|---:|"]
        for g, idx in fig.fronts.items():
            for k in sorted(idx, key=lambda k: ok.at[k, "seconds"]):
                cells = [str(ok.at[k, c]) for c in (vary or ["config"])]
                lines.append(f"| {g} | " + " | ".join(cells) + f" | "
                             f"{ok.at[k, 'seconds'] * 1e3:,.4f} | "
                             f"{ok.at[k, 'energy_pj'] / 1e9:,.4f} |")
        lines.append("")
        data = _synth_json(synth)
        luts, why = fg.area_luts(ok, data) if data else (None, "no synthesis report")
        if luts is not None and luts.notna().any():
            ok["luts"] = luts
            fg.plot_pareto(ok, out / "pareto_area.png", y="luts", ylabel="area, k LUTs",
                           yscale=1e-3, title="Latency against area")
            lines += ["## Pareto front: latency against area", "",
                      "![latency against area](pareto_area.png)", "", f"Area: {why}.", ""]
        else:
            lines += [f"No latency-against-area front: {why}.", ""]
        panels: dict[str, dict] = {}
        for r in ok.itertuples(index=False):
            d = dict(zip(ok.columns, r, strict=True))
            panels.setdefault(str(d["workload"]), {})[str(d["point"])] = {
                k: v for k, v in d.items() if k.startswith("energy_") and k.endswith("_pj")}
        if any(len(fg.energy_components(t)) for p in panels.values() for t in p.values()):
            fg.plot_energy(panels, out / "energy.png", unit="uJ",
                           title="Energy by component per design point")
            lines += ["## Energy by component", "", "![energy by component](energy.png)", ""]
            if ok["energy_array_pj"].isna().any() if "energy_array_pj" in ok else True:
                lines += ["Points stored before the store kept energy per component show no "
                          "segments.", ""]
            elif (ok["energy_sram_act_pj"].isna().any() if "energy_sram_act_pj" in ok
                  else True):
                lines += ["Points stored before the store kept SRAM energy per buffer show "
                          "SRAM as one segment (`sram`).", ""]
    md = out / "report.md"
    md.write_text("\n".join(lines))
    write_html(md)
    return md
