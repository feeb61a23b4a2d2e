"""The repository stands on its own: every path its docs point to exists."""

import pathlib
import re
import runpy

import pytest

from tce_jax.analysis import report_markdown

REPO = pathlib.Path(__file__).resolve().parents[1]
DOCS = sorted(
    path
    for path in REPO.glob("**/*.md")
    if not {".git", "runs", ".pytest_cache"} & set(path.relative_to(REPO).parts)
)
# Repository paths written in backticks, e.g. `tce_jax/losses.py`.
_CODE_PATH = re.compile(
    r"`((?:tce_jax|configs|tests|benchmarks|scripts|results|docs)/[\w./-]+)`"
)
_LINK = re.compile(r"\]\(([^)#\s]+)")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_referenced_path_exists(doc):
    text = doc.read_text()
    links = [link for link in _LINK.findall(text) if "://" not in link]
    missing = [link for link in links if not (doc.parent / link).exists()]
    missing += [
        path
        for path in _CODE_PATH.findall(text)
        if "NAME" not in path and not (REPO / path).exists()
    ]
    assert not missing, f"{doc.relative_to(REPO)} points to missing files: {missing}"


def test_docs_were_found():
    pages = ("losses", "training", "data_and_noise", "accelerators", "results")
    assert {"README.md", "docs/development.md", *(f"docs/{p}.md" for p in pages)} <= {
        str(doc.relative_to(REPO)) for doc in DOCS
    }


# The README's headline table quotes the generated tables of the results it
# links to: each cell is a final-epoch "mean ± std" of the linked folder's
# generated README block or report/results.md, in the same scenario and loss.
_HEADLINE_LOSSES = {
    "CE": "ce",
    "TCE alpha 0.1": "tce-alpha0.1",
    "self-tuning TCE": "tce-auto",
    "GCE": "gce-q0.7",
    "SCE": "sce-alpha0.1-beta1",
}
_SECTION = re.compile(r"^(?:###|\*\*)\s*\w+, (\w+) noise\b", flags=re.MULTILINE)
_CELL = re.compile(r"^(\d+\.\d ± \d+\.\d) /")


def _row(line):
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _generated_accuracy(results_dir):
    """{(noise kind, rate, loss): {final-epoch cell}} of a results folder."""
    readme = (results_dir / "README.md").read_text()
    begin = readme.find(report_markdown.README_BEGIN)
    end = readme.find(report_markdown.README_END)
    texts = [readme[begin:end]] if 0 <= begin < end else []
    texts += [path.read_text() for path in results_dir.glob("**/report/results.md")]
    cells = {}
    for text in texts:
        for section in _SECTION.finditer(text):
            # The first table after a section heading is its accuracy table.
            lines = text[section.end() :].split("\n")
            start = next(i for i, line in enumerate(lines) if line.startswith("|"))
            header, *body = lines[start:]
            rates = _row(header)[1:]
            for line in body[1:]:
                if not line.startswith("|"):
                    break
                loss, *row = _row(line)
                for rate, cell in zip(rates, row, strict=True):
                    if match := _CELL.match(cell):
                        key = (section.group(1), float(rate), loss)
                        cells.setdefault(key, set()).add(match.group(1))
    return cells


def test_readme_headline_table_quotes_the_generated_results():
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Headline results") :]
    section = section[: section.index("\n## ", 1)]
    lines = [line for line in section.split("\n") if line.startswith("|")]
    header, _, *rows = (_row(line) for line in lines)
    assert header[1:-1] == list(_HEADLINE_LOSSES), header
    checked = 0
    for row in rows:
        [link] = re.findall(r"\]\((results/[\w/]+/README\.md)\)", row[-1])
        cells = _generated_accuracy((REPO / link).parent)
        scenario = re.search(r"(symmetric|pair|instance) (\d(?:\.\d+)?)", row[0])
        kind, rate = scenario.groups()
        for column, value in zip(_HEADLINE_LOSSES, row[1:-1], strict=True):
            if value == "–":
                continue
            key = (kind, float(rate), _HEADLINE_LOSSES[column])
            assert value in cells.get(key, ()), (
                f"README headline {row[0]!r}, {column}: {value} is not what "
                f"{link}'s generated tables give ({sorted(cells.get(key, ()))})"
            )
            checked += 1
    assert checked >= 10


def test_accelerator_docs_keep_cpus_safely_and_run_one_srun_task_per_gpu():
    text = (REPO / "docs" / "accelerators.md").read_text()
    # An empty CUDA_VISIBLE_DEVICES is reported to crash JAX with jax[cuda12].
    assert "JAX_PLATFORMS=cpu" in text
    assert not re.search(r"set it\s+empty", text)
    commands = re.findall(r"^ *srun .*?(?<!\\)$", text, flags=re.MULTILINE | re.DOTALL)
    assert commands
    for command in commands:
        gpus = re.search(r"--gres=gpu:(\d+)", command)
        tasks = re.search(r"--ntasks-per-node=(\d+)", command)
        # JAX gives task i of a node its GPU i: one task per GPU uses them all.
        assert gpus and tasks and gpus.group(1) == tasks.group(1), command


def test_the_self_tuning_rule_choice_quoted_is_what_choose_py_prints(capsys):
    """The development README quotes the registered choice; it must be what the
    script computes from the committed reports."""
    folder = REPO / "results" / "fashion_mnist_alpha_rule_v2_dev"
    readme = (folder / "README.md").read_text()
    quoted = re.search(r"^    (parts: .*?^    chosen: \S+)$", readme, re.M | re.S)
    runpy.run_path(str(folder / "choose.py"), run_name="choose")["main"](
        ["step", "cosine"]
    )
    printed = capsys.readouterr().out.strip()
    assert printed == "\n".join(
        line.removeprefix("    ") for line in quoted.group(1).splitlines()
    )
