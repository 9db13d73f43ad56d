#!/usr/bin/env python3
"""Store finished tqdm progress bars as one static line of text instead of a widget.

    python scripts/static_progress.py book/**/*.ipynb          # rewrite stored outputs in place
    python scripts/static_progress.py --check book/**/*.ipynb  # exit 1 if any bar is still a widget

``tqdm.auto`` draws a live ipywidgets bar for people running a notebook. Stored in the committed
notebook, that bar is a widget view whose final text lives only in the notebook's widget state:
the rendered book must load the 3.5 MB widget manager to draw it, clips it on a desktop and drops
it on a phone. This script turns each stored bar into the line a terminal would show, e.g.

    GANTask: 100%|██████████| 300/300 [00:28<00:00, 13.36it/s]
      loss_d=1.128, d_real=0.5975, d_fake=0.3981, loss_g=1.202

(a ``stdout`` stream, so the book merges it with the cell's printed results), then drops the
widget state nothing displays any more, and the whole ``widgets`` metadata when no real widget
is left. Real widgets (sliders, explorers) are kept, unless their cell is tagged ``remove-output``
(the book never shows them; their state would only make the page load the widget manager).
``scripts/execute_notebook.py`` applies it after every execution; only stored outputs change,
nothing is re-executed.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import sys
from pathlib import Path
from typing import Any

import nbformat

VIEW = "application/vnd.jupyter.widget-view+json"
STATE = "application/vnd.jupyter.widget-state+json"
MODEL_REF = re.compile(r"IPY_MODEL_(\w+)")
# tqdm's right-hand text: " 300/300 [00:28<00:00, 13.36it/s, loss_d=1.1, ...]"
RIGHT = re.compile(r"^\s*(?P<count>\S+)\s*\[(?P<elapsed>[^,\]]*),\s*(?P<rate>[^,\]]*)(?:,\s*(?P<postfix>.*))?\]\s*$")
BAR_WIDTH = 10
HIDDEN = {"remove-output", "remove-cell"}  # cell tags whose outputs the book does not render


def _states(notebook: dict) -> dict[str, dict]:
    """model id -> {"model_name": ..., "state": {...}} from the notebook's stored widget state."""
    return notebook.get("metadata", {}).get("widgets", {}).get(STATE, {}).get("state", {})


def _text(value: Any) -> str:
    """The plain text of a tqdm HTML widget value (entities decoded, figure spaces as spaces)."""
    return html.unescape(str(value or "")).replace("\u2007", " ").replace("\xa0", " ").strip()


def tqdm_line(hbox_id: str, states: dict[str, dict]) -> str | None:
    """The static text of the tqdm bar whose HBox model is ``hbox_id``; None if it is not one.

    A ``tqdm.notebook`` bar is an HBox of three children: HTML (description and percentage),
    a Float/IntProgress (value, max) and HTML (count, times, rate, postfix).
    """
    box = states.get(hbox_id)
    if not box or box.get("model_name") != "HBoxModel":
        return None
    children = [MODEL_REF.fullmatch(str(c)) for c in box.get("state", {}).get("children", [])]
    if len(children) != 3 or not all(children):
        return None
    left, bar, right = (states.get(m.group(1)) or {} for m in children)
    if (left.get("model_name"), right.get("model_name")) != ("HTMLModel", "HTMLModel") or \
            bar.get("model_name") not in ("FloatProgressModel", "IntProgressModel"):
        return None
    value, total = float(bar["state"].get("value") or 0), float(bar["state"].get("max") or 0)
    head = _text(left["state"].get("value"))
    tail = _text(right["state"].get("value"))
    if total > 0:
        filled = min(BAR_WIDTH, int(BAR_WIDTH * value / total))
        head += f"|{'█' * filled}{' ' * (BAR_WIDTH - filled)}|"
    match = RIGHT.match(tail)
    if not match:
        return f"{head} {tail}".rstrip()
    line = f"{head} {match['count']} [{match['elapsed']}, {match['rate']}]"
    if match["postfix"]:
        line += f"\n  {match['postfix']}"
    return line


def _referenced(value: Any) -> set[str]:
    """Every model id a widget state value refers to (``IPY_MODEL_<id>`` anywhere inside it)."""
    return set(MODEL_REF.findall(json.dumps(value)))


def static_progress(notebook: dict) -> int:
    """Replace every stored tqdm widget output of ``notebook`` (nbformat dict) in place.

    Returns the number of widget outputs replaced or dropped: a widget in a cell tagged
    ``remove-output`` or ``remove-cell`` is never shown, so its output goes. Widget state that
    no remaining output reaches is dropped; ``metadata.widgets`` goes entirely when no widget
    view is left.
    """
    states = _states(notebook)
    replaced = 0
    shown: set[str] = set()
    for cell in notebook.get("cells", []):
        outputs = cell.get("outputs")
        if not outputs:
            continue
        hidden = bool(HIDDEN & set(cell.get("metadata", {}).get("tags", [])))
        new_outputs = []
        for output in outputs:
            view = output.get("data", {}).get(VIEW) if output.get("output_type") in (
                "display_data", "execute_result") else None
            if view is None:
                new_outputs.append(output)
                continue
            if hidden:  # the book never shows it: drop the view, so its state is dropped too
                replaced += 1
                continue
            line = tqdm_line(view.get("model_id", ""), states)
            if line is None:
                new_outputs.append(output)
                shown.add(view.get("model_id", ""))
                continue
            new_outputs.append(nbformat.from_dict({"name": "stdout", "output_type": "stream", "text": line + "\n"}))
            replaced += 1
        cell["outputs"] = new_outputs
    widgets = notebook.get("metadata", {}).get("widgets")
    if widgets is not None:
        if not shown:
            del notebook["metadata"]["widgets"]
        else:
            keep, todo = set(), [m for m in shown if m in states]
            while todo:
                model = todo.pop()
                if model in keep:
                    continue
                keep.add(model)
                todo.extend(m for m in _referenced(states[model].get("state", {})) if m in states)
            widgets[STATE]["state"] = {k: v for k, v in states.items() if k in keep}
    return replaced


def tqdm_outputs(notebook: dict) -> list[int]:
    """Indices of cells whose stored outputs still hold a tqdm widget (text/plain like '0%|...|')."""
    found = []
    for index, cell in enumerate(notebook.get("cells", [])):
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            text = data.get("text/plain", "")
            text = "".join(text) if isinstance(text, list) else text
            if VIEW in data and (tqdm_line(data[VIEW].get("model_id", ""), _states(notebook))
                                 or re.search(r"\d+%\|.*\|", text)):
                found.append(index)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--check", action="store_true", help="report stored tqdm widgets; change nothing")
    args = parser.parse_args(argv)
    status = 0
    for path in args.notebooks:
        notebook = nbformat.read(path, as_version=4)
        if args.check:
            cells = tqdm_outputs(notebook)
            if cells:
                print(f"{path}: tqdm widget outputs in cells {cells}")
                status = 1
            continue
        before = json.dumps(notebook.get("metadata", {}).get("widgets"))
        count = static_progress(notebook)
        if count or json.dumps(notebook.get("metadata", {}).get("widgets")) != before:
            nbformat.write(notebook, path)
            print(f"{path}: {count} widget output(s) stored as text or dropped")
    return status


if __name__ == "__main__":
    sys.exit(main())
