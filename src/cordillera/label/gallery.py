"""An HTML gallery of a labelled dataset, for looking at labels with one's own eyes.

``write_gallery(root, out_html)`` writes one static page (inline CSS, no script, nothing
fetched) with a card per keyframe: its cameras at the keyframe with the causal objects' boxes
drawn on them and the strongest cause's camera as a strip of the past frames, the decisions,
the Chain-of-Causation text, every counterfactual test (which candidates were causes and how
much removing them changed the ego's speed) and the validation outcome. The pictures are PNG
files in a folder beside the page (``<name>_files/``), so the page stays small for large
datasets. The look follows the evaluation report (:mod:`cordillera.eval.report`).
"""

from __future__ import annotations

import html
import urllib.parse
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw

from cordillera.label.dataset import DatasetError, read_samples, safe_name
from cordillera.label.record import CameraFrameRef, LabelSample

CAUSE_RGB = ((220, 38, 38), (234, 88, 12), (202, 138, 4), (147, 51, 234), (37, 99, 235))
"""Box colours by cause rank, strongest first (then repeating)."""
OTHER_RGB = (8, 145, 178)
"""Box colour of a grounded object that is not a cause."""
GRID_COLUMNS = 4
PAD_PX = 4
LABEL_H_PX = 14

_CSS = """
:root { --bg: #f1f4f8; --card: #fff; --ink: #1e293b; --muted: #64748b; --line: #e2e8f0;
  --accent: #2563eb; --good: #15803d; --bad: #b91c1c;
  font-family: ui-sans-serif, system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  font-size: 14px; color: var(--ink); background: var(--bg); }
body { margin: 0; }
header.top { background: #0f172a; color: #f8fafc; padding: 18px 28px 16px; }
header.top h1 { margin: 0 0 4px; font-size: 20px; font-weight: 650; }
header.top .sub { color: #cbd5e1; font-size: 13px; }
main { padding: 18px 28px 40px; max-width: 1500px; margin: 0 auto; }
.card { background: var(--card); border-radius: 10px; box-shadow: 0 1px 3px rgba(15,23,42,.08);
  padding: 16px 18px; margin-bottom: 18px; }
.head { display: flex; align-items: baseline; gap: 12px; flex-wrap: wrap; margin-bottom: 8px; }
.head h2 { margin: 0; font-size: 16px; }
.muted { color: var(--muted); }
.chip { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px;
  background: #e2e8f0; color: #0f172a; margin: 1px 3px 1px 0; white-space: nowrap; }
.chip.bad { background: #fee2e2; color: var(--bad); }
.chip.good { background: #dcfce7; color: var(--good); }
.coc { background: #f8fafc; border-left: 3px solid var(--accent); padding: 6px 9px;
  border-radius: 4px; line-height: 1.45; margin: 8px 0; }
.body { display: grid; grid-template-columns: minmax(320px, 3fr) minmax(280px, 2fr); gap: 14px; }
.body img { max-width: 100%; border-radius: 6px; background: #111; display: block; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { padding: 4px 7px; border-bottom: 1px solid var(--line); text-align: right; }
th { font-weight: 600; color: var(--muted); font-size: 12px; background: #f8fafc; }
th:first-child, td:first-child, td.t { text-align: left; }
tr.cause td:first-child { font-weight: 650; }
h3 { font-size: 12px; margin: 10px 0 4px; color: var(--muted); text-transform: uppercase;
  letter-spacing: .6px; font-weight: 600; }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px;
  margin-right: 5px; vertical-align: -1px; }
"""


def _e(x: object) -> str:
    return html.escape(str(x))


def _rgb_hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def _load(root: Path, ref: CameraFrameRef) -> Image.Image:
    path = root / ref.path
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except OSError as e:
        raise DatasetError(f"camera frame unreadable: {e}", field="frames", path=path) from None


def _cause_colours(s: LabelSample) -> dict[str, tuple[int, int, int]]:
    return {c: CAUSE_RGB[i % len(CAUSE_RGB)] for i, c in enumerate(s.causes)}


def _labelled(im: Image.Image, text: str) -> Image.Image:
    out = Image.new("RGB", (im.width, im.height + LABEL_H_PX), (20, 22, 26))
    ImageDraw.Draw(out).text((2, 1), text, fill=(235, 235, 235))
    out.paste(im, (0, LABEL_H_PX))
    return out


def _grid(tiles: Sequence[Image.Image], columns: int) -> Image.Image:
    """Tiles of equal size in rows of ``columns`` on a dark canvas."""
    w, h = tiles[0].width, tiles[0].height
    cols = min(columns, len(tiles))
    rows = -(-len(tiles) // cols)
    canvas = Image.new("RGB", (cols * (w + PAD_PX) + PAD_PX, rows * (h + PAD_PX) + PAD_PX))
    canvas.paste((20, 22, 26), (0, 0, canvas.width, canvas.height))
    for i, t in enumerate(tiles):
        r, c = divmod(i, cols)
        canvas.paste(t, (PAD_PX + c * (w + PAD_PX), PAD_PX + r * (h + PAD_PX)))
    return canvas


def sample_picture(root: Path, s: LabelSample) -> Image.Image | None:
    """The keyframe's cameras with the causes' boxes drawn, then (a row below) the past frames
    of the camera that sees the strongest cause largest (visible share x box area); None when
    no frames are stored."""
    if not s.frames:
        return None
    key = max(f.frame for f in s.frames)
    colours = _cause_colours(s)
    tiles = []
    for ref in (f for f in s.frames if f.frame == key):  # a handful of cameras
        im = _load(root, ref)
        draw = ImageDraw.Draw(im)
        for g in (g for g in s.groundings if g.camera == ref.camera):
            rgb = colours.get(g.object_id, OTHER_RGB)
            draw.rectangle(g.bbox_xyxy, outline=rgb, width=2)
            x0, y0 = g.bbox_xyxy[:2]
            draw.text((x0 + 2, max(0.0, y0 - 11)), g.object_id, fill=rgb)
        tiles.append(_labelled(im, ref.camera))
    picture = _grid(tiles, GRID_COLUMNS)
    if key == 0:
        return picture
    best = max(
        (g for g in s.groundings if s.causes and g.object_id == s.causes[0]),
        key=lambda g: (
            g.visible_fraction
            * (g.bbox_xyxy[2] - g.bbox_xyxy[0])
            * (g.bbox_xyxy[3] - g.bbox_xyxy[1])
        ),
        default=None,
    )
    camera = best.camera if best is not None else s.frames[0].camera
    history = [f for f in s.frames if f.camera == camera]
    strip = _grid(
        [_labelled(_load(root, f), f"{camera} {f.time_offset_s:+.1f} s") for f in history],
        len(history),
    )
    if strip.width > picture.width:  # keep the page's picture width that of the camera grid
        scale = picture.width / strip.width
        strip = strip.resize((picture.width, max(1, round(strip.height * scale))))
    out = Image.new("RGB", (picture.width, picture.height + strip.height), (20, 22, 26))
    out.paste(picture, (0, 0))
    out.paste(strip, (0, picture.height))
    return out


def _evidence_table(s: LabelSample) -> str:
    if not s.evidence:
        return '<p class="muted">No candidate causes were tested.</p>'
    colours = _cause_colours(s)
    behaviour = {c.object_id: c.behaviour for c in s.coc.causes}
    rows = [
        "<tr><th>candidate</th><th>kind</th><th>intervention</th><th>effect (m/s)</th>"
        "<th>min speed (m/s) with → without</th><th>decision changed</th></tr>"
    ]
    for ev in s.evidence:
        cause = ev.cause_id in colours
        swatch = (
            f'<span class="swatch" style="background:{_rgb_hex(colours[ev.cause_id])}"></span>'
            if cause
            else ""
        )
        what = f" — {_e(behaviour[ev.cause_id])}" if ev.cause_id in behaviour else ""
        rows.append(
            f'<tr class="{"cause" if cause else ""}"><td>{swatch}{_e(ev.cause_id)}{what}</td>'
            f'<td class="t">{_e(ev.kind)}</td><td class="t">{_e(ev.intervention)}</td>'
            f"<td>{ev.effect:.2f}</td><td>{ev.min_speed_factual_mps:.1f} → "
            f"{ev.min_speed_counterfactual_mps:.1f}</td>"
            f"<td>{'yes' if ev.decision_changed else 'no'}</td></tr>"
        )
    return f"<table>{''.join(rows)}</table>"


def _card(s: LabelSample, image_src: str | None) -> str:
    valid = (
        '<span class="chip good">valid</span>'
        if s.valid
        else f'<span class="chip bad">invalid: {_e(s.valid_reason)}</span>'
    )
    decisions = "".join(
        f'<span class="chip">{_e(label)}: {_e((d or "none").replace("_", " "))}</span>'
        for label, d in (("longitudinal", s.decision_longitudinal), ("lateral", s.decision_lateral))
    )
    design = ""
    if s.designed_decision or s.designed_cause_object_id:
        hit = s.designed_cause_object_id in s.causes
        design = (
            f'<span class="chip {"good" if hit else "bad"}">designed: '
            f"{_e(s.designed_decision or '?')} for {_e(s.designed_cause_object_id or '?')}</span>"
        )
    ground = "".join(
        f"<tr><td>{_e(g.object_id)}</td><td class='t'>{_e(g.camera)}</td>"
        f"<td>{g.visible_fraction:.2f}</td>"
        f"<td>{', '.join(f'{v:.0f}' for v in g.bbox_xyxy)}</td></tr>"
        for g in s.groundings
    )
    ground_html = (
        "<table><tr><th>object</th><th>camera</th><th>visible</th><th>box (px)</th></tr>"
        f"{ground}</table>"
        if ground
        else '<p class="muted">No cause visible in any camera.</p>'
    )
    picture = (
        f'<img src="{_e(image_src)}" alt="cameras of {_e(s.sample_id)}" loading="lazy">'
        if image_src
        else '<p class="muted">No camera frames stored.</p>'
    )
    return f"""<section class="card" id="{_e(s.sample_id)}">
<div class="head"><h2>{_e(s.sample_id)}</h2>
<span class="muted">{_e(s.source)} · t = {s.time_s:.1f} s · {_e(s.keyframe_reason)} ·
ego {s.ego_speed_mps:.1f} m/s, {s.ego_accel_mps2:+.1f} m/s² · rig {_e(s.rig or "?")}</span></div>
<div>{valid}{decisions}{design}</div>
<div class="coc">{_e(s.coc_text)}</div>
<div class="body"><div>{picture}</div>
<div><h3>Counterfactual tests (strongest first)</h3>{_evidence_table(s)}
<h3>Groundings</h3>{ground_html}</div></div>
</section>"""


def write_gallery(
    root: str | Path, out_html: str | Path, max_samples: int = 100, title: str = ""
) -> Path:
    """Write the gallery of the first ``max_samples`` samples of the dataset at ``root`` (in
    dataset order) to ``out_html``, its pictures to ``<out_html stem>_files/``; returns the
    page's path."""
    if max_samples < 1:
        raise DatasetError(f"max_samples {max_samples!r} must be >= 1", field="max_samples")
    root_p, out = Path(root), Path(out_html)
    all_samples = read_samples(root_p)
    samples = all_samples[:max_samples]
    files = out.with_name(f"{out.stem}_files")
    files.mkdir(parents=True, exist_ok=True)
    cards = []
    for s in samples:
        picture = sample_picture(root_p, s)
        src = None
        if picture is not None:
            name = f"{safe_name(s.sample_id)}.png"
            picture.save(files / name, format="PNG")
            src = urllib.parse.quote(f"{files.name}/{name}")
        cards.append(_card(s, src))
    n_valid = sum(s.valid for s in all_samples)
    decisions = Counter(s.decision_longitudinal or "none" for s in all_samples)
    summary = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in sorted(decisions.items()))
    heading = title or f"Labelled keyframes — {root_p.name}"
    sub = (
        f"{len(all_samples)} samples ({n_valid} valid) from "
        f"{len({s.scene_id for s in all_samples})} scenes; longitudinal decisions: "
        f"{summary or 'none'}; showing {len(samples)}."
    )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(heading)}</title><style>{_CSS}</style></head>
<body><header class="top"><h1>{_e(heading)}</h1><div class="sub">{_e(sub)}</div></header>
<main>{"".join(cards) or '<p class="muted">The dataset has no samples.</p>'}</main>
</body></html>
"""
    out.write_text(page, encoding="utf-8")
    return out
