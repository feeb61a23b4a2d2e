"""The repository stands on its own: every path its docs point to exists."""

import pathlib
import re
import runpy

import pytest

from tce_jax.analysis import headline, report, report_tables

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


def test_readme_headline_is_what_the_benchmark_runs_give():
    """The README's headline block (tables, which margins are established, the
    targets) is regenerated from the committed benchmark runs."""
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Headline results") :]
    section = section[: section.index("\n## ", 1)]
    sweep_dir = "results/fashion_mnist_benchmark"
    begin = section.index(headline.BEGIN_PREFIX)
    end = section.index(headline.END) + len(headline.END)
    expected = headline.headline_block(
        report_tables.collect(REPO / sweep_dir),
        sweep_dir,
        report.registered_plan(REPO / sweep_dir),
    )
    assert section[begin:end] == expected, (
        "the README headline is stale: python3 -m tce_jax.analysis.report "
        f"--sweep_dir={sweep_dir} --headline=README.md"
    )
    # Outside the block, no table: every headline number is generated.
    outside = section[:begin] + section[end:]
    assert not [line for line in outside.split("\n") if line.startswith("|")]


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


def test_the_self_tuning_rule_choices_quoted_are_what_choose_py_prints(capsys):
    """The development README quotes the registered choice (step, cosine) and
    the check on large; each must be what the script computes from the
    committed reports of the parts it names."""
    folder = REPO / "results" / "fashion_mnist_alpha_rule_v2_dev"
    readme = (folder / "README.md").read_text()
    quoted = re.findall(
        r"^    (parts: (.*?);.*?^    chosen: \S+)$", readme, re.M | re.S
    )
    assert [parts for _, parts in quoted] == ["step, cosine", "large"]
    main = runpy.run_path(str(folder / "choose.py"), run_name="choose")["main"]
    for block, parts in quoted:
        main(parts.split(", "))
        printed = capsys.readouterr().out.strip()
        assert printed == "\n".join(
            line.removeprefix("    ") for line in block.splitlines()
        )
