"""Every page must render outside the built book too: on GitHub, in Colab and in Jupyter.

Those renderers never read ``_config.yml``, so a TeX macro defined there (``\\E``, ``\\KL``)
shows as a red error in Colab. The pages write every command out; this test fails when a page
uses a command that plain MathJax 3 does not know, or when ``_config.yml`` grows macros again.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

# TeX commands that MathJax 3's default TeX input (as GitHub, Colab and Jupyter load it) knows.
# Add a command here only after checking it renders in plain MathJax 3 without configuration.
STANDARD_COMMANDS = set("""
Big Bigg Delta Gamma Lambda Longrightarrow Leftrightarrow Omega Phi Pi Pr Psi Rightarrow Sigma
Theta Vert Xi alpha approx arctan arg bar begin beta big bigg bigl bigr bmod boldsymbol cdot
cdots chi circ cos cosh cup cap ddots delta det dfrac displaystyle div dot dots ell emptyset end
epsilon equiv eta exp forall frac gamma ge geq gets hat iff in inf infty int iota kappa ldots
lVert lambda land langle lceil le left leftarrow leq lfloor lim liminf limsup ln log lor lvert
mapsto mathbb mathbf mathcal mathit mathrm mathsf max mid min mp mu nabla ne neg neq nu odot
oint omega operatorname otimes overline partial perp phi pi pm prime prod propto psi qquad quad
rVert rangle rceil rfloor rho right rightarrow rvert scriptstyle setminus sigma sim simeq sin
sinh sqrt star subset subseteq sum sup tanh tau text textbf textit textrm textstyle tfrac theta
tilde times to top triangleq underbrace underset overset upsilon varepsilon varphi varrho
varsigma vartheta vdots vec wedge widehat widetilde xi xrightarrow zeta
""".split())

DISPLAY_MATH = re.compile(r"\$\$(.+?)\$\$", re.S)
INLINE_MATH = re.compile(r"(?<!\\)\$(.+?)(?<!\\)\$", re.S)
MATH_BLOCK = re.compile(r"```\{math\}(.+?)```", re.S)
COMMAND = re.compile(r"\\([A-Za-z]+)")


def pages() -> list[Path]:
    return sorted(p for p in (ROOT / "book").rglob("*")
                  if p.suffix in {".md", ".ipynb"} and ".ipynb_checkpoints" not in p.parts)


def prose(path: Path) -> list[str]:
    if path.suffix == ".md":
        return [path.read_text(encoding="utf-8")]
    notebook = json.loads(path.read_text(encoding="utf-8"))
    return ["".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "markdown"]


def math_spans(text: str) -> list[str]:
    spans = DISPLAY_MATH.findall(text) + MATH_BLOCK.findall(text)
    rest = MATH_BLOCK.sub("", DISPLAY_MATH.sub("", text))
    return spans + INLINE_MATH.findall(rest)


def unknown_commands(text: str) -> set[str]:
    return {name for span in math_spans(text) for name in COMMAND.findall(span)} - STANDARD_COMMANDS


def test_the_scanner_finds_a_custom_macro():
    assert unknown_commands(r"The bound $\E_{q}[\log p] - \KL(q \| p)$ holds.") == {"E", "KL"}
    assert unknown_commands(r"$$\mathbb{E}_q[x]$$ and $\mathrm{KL}$") == set()


def test_config_defines_no_tex_macros():
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    mathjax = (config.get("sphinx", {}).get("config", {}) or {}).get("mathjax3_config", {}) or {}
    macros = (mathjax.get("tex", {}) or {}).get("macros", {})
    assert not macros, ("_config.yml defines TeX macros that GitHub, Colab and Jupyter never see: "
                        f"{sorted(macros)}; write them out in the pages instead")


@pytest.mark.parametrize("path", pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_page_math_renders_without_the_book_config(path):
    unknown = set().union(*(unknown_commands(text) for text in prose(path)))
    assert not unknown, (f"{path.relative_to(ROOT)} uses TeX commands plain MathJax 3 may not know: "
                         f"{sorted(unknown)}; write them out (e.g. \\mathbb{{E}} for \\E), or add a "
                         "standard command to STANDARD_COMMANDS in this test")


# Chinese renderings the glossary rejects (issue 13): "Inception" is a network's name, not 初始;
# 众数 is the statistical mode of values, not a mode of a distribution; "latent" is 潜 throughout.
REJECTED_TERMS = {"初始距离": "Fréchet Inception 距离", "初始分数": "Inception 分数", "众数": "模式",
                  "隐变量": "潜变量", "隐空间": "潜空间", "责任度": "响应度", "码率": "率"}


def key_term_rows(text: str) -> list[str]:
    start = text.find("Key terms")
    if start < 0:
        return []
    rows = []
    for line in text[start:].splitlines()[1:]:
        if line.startswith("#"):
            break
        if line.startswith("|"):
            rows.append(line)
    return rows


def test_the_term_check_finds_a_rejected_rendering():
    rows = key_term_rows("## Key terms\n\n| English | 中文 |\n|---|---|\n| latent variable | 隐变量 |\n\n## References")
    assert [term for row in rows for term in REJECTED_TERMS if term in row] == ["隐变量"]


@pytest.mark.parametrize("path", pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_key_terms_use_the_glossary_renderings(path):
    rows = [row for text in prose(path) for row in key_term_rows(text)]
    found = {term: fix for row in rows for term, fix in REJECTED_TERMS.items() if term in row}
    assert not found, f"{path.relative_to(ROOT)}: key terms use rejected renderings {found} (term: use instead)"


# Stored tqdm bars (issue 14): a widget view needs the 3.5 MB widget manager, renders clipped on a
# desktop and not at all on a phone. scripts/execute_notebook.py stores each as one line of text.
_spec = importlib.util.spec_from_file_location("static_progress", ROOT / "scripts" / "static_progress.py")
static_progress = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(static_progress)

_TQDM_STATE = {
    "box": {"model_name": "HBoxModel", "state": {"children": ["IPY_MODEL_a1", "IPY_MODEL_b2", "IPY_MODEL_c3"]}},
    "a1": {"model_name": "HTMLModel", "state": {"value": "GANTask:\u2007100%"}},
    "b2": {"model_name": "FloatProgressModel", "state": {"value": 300.0, "max": 300.0}},
    "c3": {"model_name": "HTMLModel", "state": {"value": "\u2007300/300\u2007[00:28&lt;00:00,\u2007"
                                                         "13.36it/s,\u2007loss_d=1.128,\u2007loss_g=1.2]"}},
    "slider": {"model_name": "FloatSliderModel", "state": {"layout": "IPY_MODEL_lay"}},
    "lay": {"model_name": "LayoutModel", "state": {}},
}


def _notebook_with(*model_ids: str) -> dict:
    view = static_progress.VIEW
    outputs = [{"output_type": "display_data", "metadata": {},
                "data": {view: {"model_id": m, "version_major": 2, "version_minor": 0},
                         "text/plain": "GANTask:   0%|          | 0/300 [00:00<?, ?it/s]"}} for m in model_ids]
    state = {"state": json.loads(json.dumps(_TQDM_STATE)), "version_major": 2, "version_minor": 0}
    return {"cells": [{"cell_type": "code", "source": "", "metadata": {}, "outputs": outputs}],
            "metadata": {"widgets": {static_progress.STATE: state}}}


def test_a_stored_tqdm_bar_becomes_its_final_line_and_real_widgets_stay():
    notebook = _notebook_with("box")
    assert static_progress.tqdm_outputs(notebook) == [0]
    assert static_progress.static_progress(notebook) == 1
    assert notebook["cells"][0]["outputs"] == [{"name": "stdout", "output_type": "stream", "text":
                                                "GANTask: 100%|██████████| 300/300 [00:28<00:00, 13.36it/s]\n"
                                                "  loss_d=1.128, loss_g=1.2\n"}]
    assert "widgets" not in notebook["metadata"] and static_progress.tqdm_outputs(notebook) == []
    mixed = _notebook_with("box", "slider")
    assert static_progress.static_progress(mixed) == 1
    kept = mixed["metadata"]["widgets"][static_progress.STATE]["state"]
    assert sorted(kept) == ["lay", "slider"]  # the bar's models go, the slider and its layout stay
    hidden = _notebook_with("slider")
    hidden["cells"][0]["metadata"]["tags"] = ["remove-output"]  # never rendered: no state needed
    assert static_progress.static_progress(hidden) == 1
    assert hidden["cells"][0]["outputs"] == [] and "widgets" not in hidden["metadata"]


@pytest.mark.parametrize("path", [p for p in pages() if p.suffix == ".ipynb"], ids=lambda p: str(p.relative_to(ROOT)))
def test_no_stored_tqdm_widget(path):
    notebook = json.loads(path.read_text(encoding="utf-8"))
    cells = static_progress.tqdm_outputs(notebook)
    assert not cells, (f"{path.relative_to(ROOT)} stores tqdm progress widgets in cells {cells}: run "
                       f"python scripts/static_progress.py {path.relative_to(ROOT)}")
