"""The book: TOC completeness, chapters executed with papermill, HTML rendering, errors."""

import ast
import html
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.sign import NotebookNotary
from scipy import stats as scistats

from cwi import analysis, attribution, config, data, faithfulness, inference, pipeline
from cwi.__main__ import ChapterFailed, build_html, chapter_sources, run_chapter, toc_entries

ROOT = Path(__file__).resolve().parents[1]


def test_every_chapter_source_is_in_the_toc():
    listed = set(toc_entries(ROOT))
    sources = {f"book/{path.stem}" for path in (ROOT / "book").glob("*.py")}
    assert sources, "no chapter sources found"
    assert sources - listed == set(), "book/*.py missing from _toc.yml"
    assert chapter_sources(ROOT), "no executable chapter in the TOC"


def test_chapters_declare_a_parameters_cell():
    for source in chapter_sources(ROOT):
        text = source.read_text()
        assert '# %% tags=["parameters"]\nprofile = ' in text, f"{source.name} has no parameters cell"


def test_bookkeeping_stays_out_of_the_code_a_reader_reads():
    """`glue` and the CSV links live in hidden cells: a shown (or folded) cell holds what a reader would type."""
    import jupytext

    for source in chapter_sources(ROOT):
        for cell in jupytext.read(source).cells:
            tags = cell.metadata.get("tags", [])
            if cell.cell_type != "code" or {"remove-input", "remove-cell"} & set(tags):
                continue
            calls = re.findall(r"\b(glue|csv_download)\(", cell.source)
            assert not calls, f"{source.name}: a shown cell calls {calls[0]}: {cell.source.splitlines()[0]!r}"


# What a number in a chapter's Markdown may be without code computing it: part of a name ("GloVe 6B 50-d",
# "all-MiniLM-L6-v2", "STS12-16", "x100", assumption "A1"), a cross-reference ("section 5"), a year, or the
# reference values 0 and 1 ("above 0", "1 = the sentence's mean"). Math and code are not prose; a sentence
# with a {cite} role cites a published value.
NOT_PROSE = [r"\$\$.*?\$\$", r"\$[^$]*\$", r"`[^`]*`(?<!\}`)", r"\([a-z-]+\)=", r"\]\([^)]*\)"]
REFERENCES = r"\b(?:section|check|step|chapter)s? \d+|^#+ \d+\."
NAME_OR_REFERENCE = re.compile(r"^(?:[A-Za-z][\w.-]*\d[\w.-]*|\d+-?[A-Za-z][\w.-]*|\d+-\d+|[01]|(?:19|20)\d\d)$")


def unexplained_numbers(source: Path) -> list[str]:
    """Numbers in `source`'s Markdown cells that no code computes and no citation vouches for."""
    import jupytext

    found = []
    for cell in jupytext.read(source).cells:
        if cell.cell_type != "markdown":
            continue
        text = re.sub(r"\$\$.*?\$\$", " ", cell.source, flags=re.S)
        for sentence in re.split(r"(?<=[.!?:])\s+|\n\n|\n(?=#)", text):
            if "{cite" in sentence:  # a published value, with its source in the sentence
                continue
            sentence = re.sub(r"\{[a-z:]+\}`[^`]*`", " ", sentence)  # roles: {eq}`...`, {glue:text}`...`
            for pattern in NOT_PROSE + [REFERENCES]:
                sentence = re.sub(pattern, " ", sentence, flags=re.S | re.M)
            for token in re.findall(r"[^\s,;()]*\d[^\s,;()]*", sentence):
                if not NAME_OR_REFERENCE.match(token.strip(".:*")):
                    found.append(f"{token!r} in: {sentence.strip()[:100]}")
    return found


def test_no_number_in_the_prose_that_code_does_not_compute(tmp_path):
    """A number that depends on the data or the settings is printed by code; prose keeps only names and citations."""
    planted = tmp_path / "planted.py"
    planted.write_text('# %% [markdown]\n# ## 2. A section\n#\n# The base scored 41.6 on STS-B test with GloVe 6B '
                       '50-d vectors, above 0.\n#\n# SimCSE used dropout 0.1 {cite}`gao2021simcse`; $T = 0.05$.\n')
    assert [found.split(" in:")[0] for found in unexplained_numbers(planted)] == ["'41.6'"]
    found = {source.name: unexplained_numbers(source) for source in chapter_sources(ROOT)}
    assert not any(found.values()), {name: numbers for name, numbers in found.items() if numbers}


def copy_book(destination: Path) -> Path:
    for name in ["_config.yml", "_toc.yml"]:
        shutil.copy(ROOT / name, destination / name)
    shutil.copytree(ROOT / "book", destination / "book", ignore=shutil.ignore_patterns("*.ipynb", "_build"))
    shutil.copytree(ROOT / "_static", destination / "_static")
    return destination


def glued(notebook: dict) -> dict:
    """The values a chapter glued (``myst_nb.glue``), by name, read back from their text form."""
    values = {}
    for cell in notebook["cells"]:
        for output in cell.get("outputs", []):
            name = output.get("metadata", {}).get("scrapbook", {}).get("name")
            if name:
                text = next(v for k, v in output["data"].items() if k.endswith("text/plain"))
                values[name] = ast.literal_eval("".join(text))
    return values


def prose(notebook: dict) -> str:
    """Everything a reader reads as text: Markdown cells and the Markdown the code cells print."""
    parts = ["".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "markdown"]
    for cell in notebook["cells"]:
        for output in cell.get("outputs", []):
            parts.append("".join(output.get("data", {}).get("text/markdown", "")))
    return "\n".join(parts)


def downloads_in(page: str) -> dict:
    """The CSV tables a rendered page offers (``cwi.downloads.csv_download``), by file name."""
    import base64
    import io

    import pandas as pd

    links = re.findall(r'class="cwi-download" download="([^"]+)" href="data:text/csv;charset=utf-8;base64,([^"]+)"',
                       page)
    return {name: pd.read_csv(io.StringIO(base64.b64decode(data).decode())) for name, data in links}


def run_book(root: Path, profile: str, environment: dict | None = None, dry_run: bool = False) -> dict:
    """`python -m cwi book --profile PROFILE` in `root`; check every chapter and page; return the glued values."""
    result = subprocess.run(
        [sys.executable, "-m", "cwi", "--root", str(root), "book", "--profile", profile] + ["--dry-run"] * dry_run,
        capture_output=True, text=True, timeout=900, env=environment,
    )
    profile += config.DRY_RUN if dry_run else ""  # the reference every chapter receives
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # The kernels' own log lines (such as TCP's eavesdropping warning) stay out of the terminal.
    assert "[IPKernelApp] WARNING" not in result.stdout + result.stderr
    values = {}
    for source in chapter_sources(root):
        notebook = json.loads(source.with_suffix(".ipynb").read_text())
        assert notebook["metadata"]["papermill"]["parameters"] == {"profile": profile}
        outputs = [o for cell in notebook["cells"] if cell["cell_type"] == "code" for o in cell.get("outputs", [])]
        assert not [o for o in outputs if o.get("output_type") == "error"]
        # A widget (a library's progress bar, say) is dead in the HTML, which loads no widget code.
        shown = [c for c in notebook["cells"] if "remove-output" not in c["metadata"].get("tags", [])]
        widgets = ["".join(c["source"]) for c in shown for o in c.get("outputs", [])
                   if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
        assert not widgets, f"{source.name} shows widgets the HTML cannot draw, in: {widgets[0][:200]}"
        assert any("image/png" in o.get("data", {}) for o in outputs), f"{source.name} drew no figure"
        html = root / "_build" / "html" / "book" / f"{source.stem}.html"
        assert html.exists(), f"{html} not rendered"
        page = html.read_text()
        assert "Traceback" not in page
        assert downloads_in(page), f"{source.stem} offers no table to download"
        text = prose(notebook)
        assert not re.search(r"\b(nan|NaN|None)\b", text), f"{source.name} prints nan or None in its prose"
        values[source.stem] = glued(notebook)
    assert (root / "_build" / "html" / "index.html").exists()
    return values


def test_a_study_file_runs_the_whole_book_on_the_paper_path_with_the_users_pair(tmp_path, data_dir, hub_cache):
    """A study file extending `paper`, dry run: the paper's Hub models and the user's own pair, through every chapter.

    The paper's code path (its models, poolings, Hub loading at pinned revisions,
    every pair and both methods) at the smoke profile's sizes, as ``paper-dryrun``
    is; the study adds two folder models (one given relative to the file) as its
    pair ``mine``.  They hold the same weights as the tiny ``bert-base-uncased`` and
    its unsupervised SimCSE twin, so ``mine`` must read exactly as ``bert-unsup``:
    two names for the same weights give the same numbers.
    """
    import hub_models

    (tmp_path / "book-root").mkdir()  # a folder of its own: the study and its models sit beside it
    root = copy_book(tmp_path / "book-root")
    snapshot = {model: hub_cache / "hub" / f"models--{model.replace('/', '--')}" / "snapshots"
                / hub_models.fixture_revision(model)
                for model in ("bert-base-uncased", "princeton-nlp/unsup-simcse-bert-base-uncased")}
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "my-bert").symlink_to(snapshot["bert-base-uncased"])
    study = tmp_path / "my-study.toml"
    study.write_text(
        'extends = "paper"\nname = "my-study"\n\n'
        '[models.my-bert]\nlocation = "models/my-bert"\npooling = "cls_before_pooler"\ncontrastive = false\n\n'
        f'[models.my-simcse]\nlocation = "{snapshot["princeton-nlp/unsup-simcse-bert-base-uncased"]}"\n'
        'pooling = "cls_before_pooler"\ncontrastive = true\n\n'
        '[pairs.mine]\npretrained = "my-bert"\nfinetuned = "my-simcse"\n')
    values = run_book(root, str(study), {**os.environ, "HF_HOME": str(hub_cache), "HF_HUB_OFFLINE": "1"}, dry_run=True)
    dryrun = config.get_profile(str(study) + config.DRY_RUN)
    assert dryrun.name == "my-study-dryrun"
    present = pipeline.comparisons(dryrun)
    assert {"mine", "bert-unsup", "bert-sup", "roberta-unsup", "roberta-sup", "minilm", "mpnet"} <= set(present)
    correlations = values["05_correlations"]
    assert correlations["headline_pairs"] == sorted(present)
    assert correlations["headline_rows"] == headline_rows(dryrun, present)
    primary = correlations["primary"]
    mine = {key.split("/", 1)[1]: member for key, member in primary.items() if key.startswith("mine/")}
    assert mine
    for key, member in mine.items():
        twin = primary[f"bert-unsup/{key}"]
        assert member["verdict"] == twin["verdict"], key
        assert [member[k] for k in ("estimate", "low", "high")] == pytest.approx([twin[k] for k in ("estimate", "low",
                                                                                                      "high")], abs=1e-9)
    expected = {m: dryrun.attribution.sentences(m) * len(dryrun.attribution.datasets) for m in dryrun.attribution.models}
    assert values["04_attribution"]["sentences_by_model"] == expected
    assert values["04_attribution"]["shap_efficiency_max"] < 1e-4
    # What the reader is told: the profile in force on the first page, the user's pair named in Correlations.
    first = (root / "_build" / "html" / "book" / "intro.html").read_text()
    assert "my-study" in first and str(study) in first and "models.my-simcse" in first
    text = prose(json.loads((root / "book" / "05_correlations.ipynb").read_text()))
    assert "brings its own pair: mine" in text


def headline_rows(profile, comparisons) -> int:
    """Rows of the per-setting table: every pair x quantity x each method that attributed all its models."""
    registered = set(profile.attribution.models)
    return sum((len(attribution.METHODS) if c.models <= registered else len(profile.attribution.draw_methods))
               * len(analysis.QUANTITIES) for c in comparisons.values())


def family_size(profile, comparisons) -> int:
    """Members of the primary family: pair x claim x statistic (no r beyond frequency) x reading."""
    primary = [c for name, c in comparisons.items() if c.pretrained and not name.endswith("(selected)")]
    statistics = sum(1 if control == "frequency" else 2 for *_, control in profile.analysis.claims)
    return sum(statistics * (2 if c.controls else 1) for c in primary)


@pytest.fixture(scope="session")
def smoke_book(tmp_path_factory, data_dir, worker_id) -> tuple[Path, dict]:
    """`python -m cwi book --profile smoke`, once per test session: the book's root and the glued values.

    The lanes share one build: pytest-xdist's ``xdist_group`` does not hold under pytest 9 (its renamed node
    ids are not used, so a group's tests can land in both lanes), so the first lane to need the book builds it
    under a file lock and a later one reads it.
    """
    import fcntl

    base = tmp_path_factory.getbasetemp()
    shared = base.parent if worker_id != "master" else base  # the lanes' common folder, new in every session
    record = shared / "smoke-book.pickle"  # pickle: the glued values come back exactly (tuples stay tuples)
    with open(shared / "smoke-book.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if the build fails
        if record.exists():
            return pickle.loads(record.read_bytes())
        root = shared / "smoke-book"
        shutil.rmtree(root, ignore_errors=True)  # a build that failed in another lane starts again
        root.mkdir()
        values = run_book(copy_book(root), "smoke")
        record.write_bytes(pickle.dumps((root, values)))
        return root, values


def test_whole_book_runs_with_the_smoke_profile_and_renders(smoke_book):
    """`python -m cwi book --profile smoke` executes every TOC chapter, then renders HTML.

    Then, as PySDM's tests read a notebook's values, the chapters' conclusions are
    checked: no ``nan`` or ``None`` in what a reader reads, and the values each
    chapter glued for the tests hold.
    """
    root, values = smoke_book
    notary = NotebookNotary()  # signed, so JupyterLab runs the interactive views' scripts
    assert all(notary.check_signature(nbformat.read(source.with_suffix(".ipynb"), as_version=4))
               for source in chapter_sources(root))
    smoke = config.get_profile("smoke")
    present = pipeline.comparisons(smoke)
    correlations = values["05_correlations"]
    assert correlations["headline_rows"] == headline_rows(smoke, present)
    assert correlations["headline_pairs"] == sorted(present)
    offered = downloads_in((root / "_build" / "html" / "book" / "05_correlations.html").read_text())
    assert len(offered["headline.csv"]) == correlations["headline_rows"]  # the download is the table shown
    assert sorted(offered["headline.csv"]["pair"].unique()) == correlations["headline_pairs"]
    finetuning = values["02_finetuning"]
    base_search = finetuning["mlm_search"]  # the base, too, is the dev argmax of its search
    assert len(base_search["stsb_dev"]) == len(smoke.finetune.mlm_candidates()) > 1
    assert base_search["chosen"] == max(range(len(base_search["stsb_dev"])), key=base_search["stsb_dev"].__getitem__)
    for kind, search in finetuning["search"].items():  # the recipe is the dev argmax of the search shown
        assert search["chosen"] == max(range(len(search["stsb_dev"])), key=search["stsb_dev"].__getitem__), kind
    # Supervised SimCSE trains on the SNLI triplets that hold no STS sentence: the count dropped is the difference.
    kept = len(data.snli_triplets(data.evaluation_sentences()))
    assert finetuning["triplets_dropped"] == len(data.snli_triplets()) - kept > 0
    # Every drawn model scored: each recipe's and control's fresh seeds, and the replication on the second base.
    assert finetuning["sts_by_seed"].keys() == {"unsup-SimCSE/chosen", "sup-SimCSE/chosen", "unsup-control/chosen",
                                                "sup-control/chosen", "unsup-SimCSE/second", "unsup-control/second"}
    assert all(len(scores) == (smoke.finetune.seeds if key.endswith("chosen") else smoke.finetune.replication_seeds)
               for key, scores in finetuning["sts_by_seed"].items())
    assert set(finetuning["recipe_steps"].values()) <= {*smoke.finetune.unsup.snapshots, smoke.finetune.unsup.steps,
                                                        *smoke.finetune.sup.snapshots, smoke.finetune.sup.steps}
    seed_rows = sum(len(analysis.QUANTITIES) * (len(side) + 1) for name, c in present.items()
                    if len(c.finetuned) > 1 for side in (c.finetuned, c.controls) if side)
    assert len(correlations["seed_deltas"]) == seed_rows  # each pair's seeds of each side, and their mean
    # The first page says what each chapter found, pasted from the chapter's own glued HTML.
    first_page = html.unescape(re.sub(r"<[^>]+>", "", (root / "_build" / "html" / "book" / "intro.html").read_text()))
    for chapter in ("04_attribution", "05_correlations", "06_weighting", "07_similarity"):
        finding = values[chapter]["finding"]
        assert len(finding) > 80 and finding in " ".join(first_page.split()), chapter
    assert all(f"{m['estimate']:+.3f} [{m['low']:+.3f}, {m['high']:+.3f}]" in values["05_correlations"]["finding"]
               for key, m in correlations["primary"].items()
               if key.endswith("/delta beta/vs base") and key.split("/")[1] == smoke.analysis.claims[0][0])
    # The primary family: every pair x claim x statistic x reading, decided by the permutation max-T rule.
    primary = correlations["primary"]
    assert len(primary) == family_size(smoke, present)
    assert all(m["low"] <= m["estimate"] <= m["high"] for m in primary.values())
    assert all(m["verdict"] == analysis.verdict(m["low"], m["high"]) for m in primary.values())
    # A recipe-level call is never made without the models-level one.
    assert all(m["verdict"] == m["recipe_verdict"] for m in primary.values() if m["recipe_verdict"] != "unclear")
    assert correlations["critical"] > 1.9  # never below one interval's own
    calibration = correlations["calibration"]
    assert 0 <= calibration["false_positive"] <= 1 and calibration["status"] in inference.RATE_WORDS
    assert calibration["effect_removed_status"] in inference.RATE_WORDS
    # Findings need both nulls' rates not above nominal; the recipe's words need the wandering seeds' rate too.
    assert calibration["findings"] == ("above" not in (calibration["status"], calibration["effect_removed_status"]))
    assert not calibration["recipe_findings"] or calibration["findings"]
    assert calibration["permutations"] == smoke.analysis.permutations
    assert calibration["power"] and all(0 <= rate <= 1 for rate in calibration["power"].values())
    assert set(correlations["claim_words"].values()) <= set(inference.CLAIM_WORDS)
    table = pipeline.corpus_statistics(smoke)  # cached by the run above
    frequent = table[table["count"] >= smoke.stats.min_count]
    agreement = scistats.spearmanr(frequent["information_gain_corrected"], frequent["information_gain_binned"])
    assert values["03_statistics"]["corrections_spearman"] == pytest.approx(agreement.statistic, abs=1e-9)
    assert 0 <= values["03_statistics"]["bias_r2"] <= 1
    attributions = values["04_attribution"]
    assert attributions["completeness_median_max"] < attributions["completeness_target"]
    assert attributions["ig_word_error_median"] < attributions["completeness_target"]  # IG's per-word stop held
    shap_sentences = sum(smoke.attribution.sentences(m) * len(smoke.attribution.datasets) for m in smoke.attribution.models)
    assert 0 <= attributions["shap_budget_spent"] <= shap_sentences
    # Unit-length output changes the weights of the normalising encoders only, and is measured for each of them.
    normalising = sorted(m for m in smoke.attribution.models if smoke.model(m).normalized)
    assert sorted(attributions["normalised_spearman"]) == normalising
    assert all(-1 <= rho <= 1 for rho in attributions["normalised_spearman"].values())
    assert attributions["captum_difference"] < 1e-4 and attributions["shap_efficiency_max"] < 1e-4
    expected = {m: smoke.attribution.sentences(m) * len(smoke.attribution.datasets) for m in smoke.attribution.models}
    assert attributions["sentences_by_model"] == expected
    assert attributions["drawn_models"] == len(pipeline.draw_models(smoke))
    # The stopping rule checked word by word against the reference rule: within the target where it stopped early.
    assert attributions["rule_check"]["worst_true"] < 2 * attributions["completeness_target"]
    # Faithfulness: one family of every model x method x removal x rival x score, with its measured error rate.
    faithful = attributions["faithfulness"]
    # Both measures; each method against each rival, and the attribution-free comparison beside them.
    comparisons = len(attribution.METHODS) * len(faithfulness.RIVALS) + len(faithfulness.ATTRIBUTION_FREE)
    assert faithful["members"] == (len(smoke.attribution.models) * comparisons * 2 * len(faithfulness.MEASURES)
                                   * len(smoke.faithfulness.removals))
    assert faithful["critical"]["flips"] > 1.96 and faithful["critical"]["bootstrap"] > 1.96  # a family, not one test
    # The normalised AOPC of IG's deletion order: one per model, removal and measure.
    assert len(attributions["faithfulness_normalised"]) == (len(smoke.attribution.models) * len(faithfulness.MEASURES)
                                                            * len(smoke.faithfulness.removals))
    assert faithful["status"] in inference.RATE_WORDS and 0 <= faithful["false_positive"] <= 1
    assert set(faithful["versus_frequency"].values()) <= {"more", "less", "unclear"}
    assert attributions["faithfulness_pairs_null"]["status"] in inference.RATE_WORDS  # the pairs' family too
    assert attributions["leave_one_out_tau"] and all(-1 <= t <= 1 for t in attributions["leave_one_out_tau"].values())
    most = max(smoke.attribution.sentences(m) for m in smoke.attribution.models)
    offered = min(smoke.attribution.explorer_sentences, most) * len(smoke.attribution.datasets)
    assert attributions["explorer_sentences"] == offered
    weighting = values["06_weighting"]
    assert weighting["sif_a"] in smoke.weighting.sif_a_grid
    # The verdict compares only encoders chosen on dev: the information weighting is the dev argmax.
    dev_information = weighting["dev_information"]
    assert weighting["verdict_compares"] == [max(dev_information, key=dev_information.get), "SIF", "uniform"]
    # What the reader reads: no test-chosen "winner"; the highest test average, if named, is called just that.
    weighting_prose = prose(json.loads((root / "book" / "06_weighting.ipynb").read_text()))
    assert weighting["verdict_text"] in weighting_prose and not re.search(r"\bwins?\b", weighting_prose)
    if weighting["highest_test"] not in weighting["verdict_compares"]:
        assert "highest test average" in weighting_prose
    self_term = values["01_theory"]["self_term"]  # the self-occurrence term: its size and how much it reorders
    assert self_term["spread"] > 0 and self_term["gain_spread"] > 0 and -1 <= self_term["rank_agreement"] <= 1
    assert weighting["static_encoders"] == 6 * len(smoke.weighting.remove_components)
    assert weighting["versus_sif"]["low"] <= weighting["versus_sif"]["delta"] <= weighting["versus_sif"]["high"]
    similar = values["07_similarity"]  # every pair of every dataset, by every twinned model, split within IG's error
    decomposed, twins = pipeline.similarity_models(smoke)
    assert similar["similarity_pairs"] == smoke.similarity.pairs_per_dataset * len(smoke.attribution.datasets)
    assert similar["similarity_models"] == len(decomposed) and similar["similarity_max_error"] < 1e-3
    checks = similar["similarity_checks"]
    # Per twin: the same-word share, its excess over chance, and a slope per quantity.
    assert len(checks["verdicts"]) == checks["members"] == len(twins) * (2 + len(analysis.QUANTITIES))
    # The references of the share: its permutation reference and excess, with and without the common direction.
    overlap = similar["similarity_overlap"]
    assert sorted(overlap) == sorted(decomposed)
    for shares in overlap.values():
        assert 0 < shares["matched_fraction"] < 1 and 0 <= shares["word vectors along it"] <= 1
    # The variance of the score split by term: the parts sum to 1 up to IG's completeness error.
    assert sorted(similar["similarity_ranking"]) == sorted(f"{m}/{split}" for m in decomposed
                                                           for split in ("variance of the score", "covariance with gold"))
    assert all(abs(sum(parts.values()) - 1) < 0.05 for key, parts in similar["similarity_ranking"].items()
               if key.endswith("variance of the score"))
    # The rule's rate at nested sizes, the profile's own among them; the baselines' check for every model.
    assert max(map(int, similar["similarity_rate_by_size"])) == smoke.similarity.pairs_per_dataset
    assert (similar["similarity_smallest_size"] is None
            or str(similar["similarity_smallest_size"]) in similar["similarity_rate_by_size"])
    # Each twin's reversals are among the other baselines.
    assert sorted(similar["similarity_baseline_flips"]) == sorted(twins)
    assert all(set(flips) <= set(smoke.similarity.other_baselines) for flips in similar["similarity_baseline_flips"].values())
    assert sorted(similar["similarity_baselines"]) == sorted(
        f"{m}/{b}" for m in decomposed for b in (smoke.attribution.baseline, *smoke.similarity.other_baselines))
    assert checks["status"] in inference.RATE_WORDS and 0 <= checks["said"] <= checks["simulations"]
    assert checks["simulations"] == smoke.analysis.null_simulations and checks["worst_models"] == sorted(decomposed)
    assert checks["explorer_pairs"] == similar["similarity_pairs"]  # smoke offers every pair
    offered = downloads_in((root / "_build" / "html" / "book" / "07_similarity.html").read_text())
    assert len(offered["similarity_pairs.csv"]) == similar["similarity_pairs"] * len(decomposed)


def test_after_a_run_a_chapter_opens_in_jupyterlab_with_its_outputs_trusted(smoke_book):
    """JupyterLab's Jupytext contents manager opens the .py with the outputs of the newer executed .ipynb.

    Without ``outdated_text_notebook_margin`` in book/jupytext.toml Jupytext
    refuses the pair ("... is more recent than ..."); without the runner's
    signature the interactive views' scripts would not run.
    """
    from jupytext.sync_contentsmanager import TextFileContentsManager

    root, _ = smoke_book
    manager = TextFileContentsManager(root_dir=str(root / "book"))  # as `python -m cwi lab` roots JupyterLab
    cells = [cell for cell in manager.get("04_attribution.py")["content"].cells if cell.cell_type == "code"]
    views = [output for cell in cells for output in cell.get("outputs", [])
             if "cwi-explorer" in output.get("data", {}).get("text/html", "")]
    assert len(views) == 1 and all(cell.metadata.get("trusted") for cell in cells)


# What a reader of a page would notice, measured in the browser. The text check reads prose, tables
# and captions, not code, settings reprs (`None` is a value there) or the interactive views' data
# (sentences of the STS sets contain the word "None").
READ_PAGE = r"""(() => {
  const main = document.querySelector("article.bd-article") || document.querySelector("main");
  const right = main.getBoundingClientRect().right + 2;
  const prose = [...main.querySelectorAll("p, li, h1, h2, h3, table, figure, img, .cell_output")]
    .filter((e) => (e.getBoundingClientRect().right > right || e.scrollWidth > e.clientWidth + 2)
                   && (!e.closest(".cell_output")
                       || e.matches(".cell_output") && e.getBoundingClientRect().right > right))
    .map((e) => `${e.tagName}: ${e.textContent.slice(0, 60)}`);
  const skipped = "pre, code, script, style, details, .cell_input, .cwi-interactive";
  const walker = document.createTreeWalker(main, NodeFilter.SHOW_TEXT,
    {acceptNode: (n) => n.parentElement.closest(skipped) ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT});
  const pieces = [];
  while (walker.nextNode()) pieces.push(walker.currentNode.nodeValue);
  return {
    page_overflow: document.documentElement.scrollWidth - document.documentElement.clientWidth,
    overflowing: prose,
    broken_images: [...document.images].filter((i) => !(i.complete && i.naturalWidth > 0))
      .map((i) => i.src.slice(0, 80)),
    figures: main.querySelectorAll(".cell_output img").length,
    inactive: main.querySelectorAll(".cwi-inactive").length,  // a view whose script did not run
    bad_text: [...pieces.join(" ").matchAll(/.{0,40}\b(nan|NaN|None|Loading widget)\b.{0,40}/g)].map((m) => m[0]),
  };
})()"""

# One change of a select, then what the explorer shows.
EXPLORER_AFTER = r"""((role, index) => {
  const view = document.querySelector(".cwi-explorer");
  if (role) {
    const select = view.querySelector(`select[data-role=${role}]`);
    select.selectedIndex = index;
    select.dispatchEvent(new Event("change"));
  }
  return {shown: view.dataset.shown, words: view.querySelector("[data-role=words]").innerText,
          bars: [...view.querySelectorAll("[data-role=bars] rect")].map((r) => r.getAttribute("height")).join(),
          options: Object.fromEntries([...view.querySelectorAll("select")]
            .map((s) => [s.dataset.role, s.options.length]))};
})"""

SIMILARITY_AFTER = r"""((role, index) => {
  const view = document.querySelector(".cwi-similarity");
  if (role) {
    const select = view.querySelector(`select[data-role=${role}]`);
    select.selectedIndex = index;
    select.dispatchEvent(new Event("change"));
  }
  return {shown: view.dataset.shown, panels: view.querySelectorAll(".cwi-panel").length,
          cells: [...view.querySelectorAll(".cwi-heatmap rect")].map((r) => r.getAttribute("fill")).join(),
          gold: view.querySelector("[data-role=gold]").textContent,
          options: Object.fromEntries([...view.querySelectorAll("select")].map((s) => [s.dataset.role, s.options.length]))};
})"""

DOT_TO_HOVER = r"""(() => {
  const view = document.querySelector(".cwi-scatter");
  view.scrollIntoView({block: "start"});
  const dots = view.querySelectorAll("circle"), dot = dots[Math.floor(dots.length / 2)];
  const box = dot.getBoundingClientRect();
  return {x: box.x + box.width / 2, y: box.y + box.height / 2, word: dot.dataset.word, dots: dots.length};
})()"""

# Every table's columns against the text column's right edge: a table fits, unless it is a marked raw preview.
TABLE_COLUMNS = r"""(() => {
  const main = document.querySelector("article.bd-article") || document.querySelector("main");
  const right = main.getBoundingClientRect().right + 2;
  return [...main.querySelectorAll(".cell_output table")].map((table) => ({
    wide: table.classList.contains("cwi-wide"),
    past: [...table.querySelectorAll("th, td")].filter((cell) => cell.getBoundingClientRect().right > right)
      .map((cell) => cell.textContent.trim().slice(0, 30)).slice(0, 3),
    header: [...table.querySelectorAll("thead th")].map((cell) => cell.textContent.trim()).join(" | ").slice(0, 200),
  }));
})()"""

# The equations as a reader sees them: typeset by MathJax (its output elements), no TeX source left in the text.
TYPESET = r"""(() => {
  const main = document.querySelector("article.bd-article") || document.querySelector("main");
  const skipped = "pre, code, script, style, mjx-container, .cell_input";
  const walker = document.createTreeWalker(main, NodeFilter.SHOW_TEXT,
    {acceptNode: (n) => n.parentElement.closest(skipped) ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT});
  const pieces = [];
  while (walker.nextNode()) pieces.push(walker.currentNode.nodeValue);
  return {math: main.querySelectorAll(".math").length, typeset: main.querySelectorAll(".math mjx-container").length,
          tex: [...pieces.join(" ").matchAll(/.{0,30}(\$\$|\\\(|\\\[|\\frac|\\sum|\\mathrm).{0,30}/g)]
            .map((m) => m[0]).slice(0, 3)};
})()"""


def typeset_math(browser, timeout: float = 20.0) -> dict:
    """What `TYPESET` sees once MathJax, which runs after the page loads, has typeset every equation (or `timeout`)."""
    deadline = time.monotonic() + timeout
    while True:
        seen = browser.evaluate(TYPESET)
        if seen["typeset"] >= seen["math"] or time.monotonic() > deadline:
            return seen
        time.sleep(0.1)


# Jupyter Book 1's template declares sphinx-thebe's settings twice on every page: not the book's error.
TEMPLATE_ERRORS = ("Identifier 'THEBE_JS_URL' has already been declared",)


def test_every_page_reads_well_in_chromium(smoke_book):
    """The built HTML in headless Chromium, offline, as a reader meets it, at a laptop's and a narrow width.

    No page scrolls sideways and no prose runs past the text column; every table
    fits it too, its comparison columns in view, except a raw preview marked
    ``cwi-wide`` (:func:`cwi.downloads.wide`), which scrolls inside its output; every image loaded; no ``nan``,
    ``None`` or ``Loading widget`` in the text; every equation typeset by the
    MathJax that ships with the book; no script error; the explorer
    redraws on every new selection and the scatter names the word under the
    pointer, with no kernel.
    """
    from browser import Browser, find_chromium

    binary = find_chromium()
    if binary is None:
        message = "Chromium not found (apt install chromium, or set CWI_CHROMIUM): the HTML is not checked in a browser"
        if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
            pytest.fail(message)
        pytest.skip(message)
    root, _ = smoke_book
    html = root / "_build" / "html" / "book"
    pages = sorted(html.glob("*.html"))
    chapters = {source.stem for source in chapter_sources(root)}
    assert {page.stem for page in pages} >= chapters
    for width in (1280, 820):
        with Browser(binary, width=width) as browser:
            for page in pages:
                browser.open(page.as_uri())
                seen = browser.evaluate(READ_PAGE)
                where = f"{page.name} at {width} px"
                assert seen["page_overflow"] <= 0, f"{where} scrolls sideways by {seen['page_overflow']} px"
                assert not seen["overflowing"], f"{where}: past the text column: {seen['overflowing']}"
                assert not seen["broken_images"], f"{where}: images not loaded: {seen['broken_images']}"
                assert not seen["bad_text"], f"{where}: {seen['bad_text']}"
                assert seen["inactive"] == 0, f"{where}: an interactive view's script did not run"
                if page.stem in chapters:
                    assert seen["figures"] > 0, f"{where} shows no figure"
                # The answer in view: every table a reader reads fits the text column (a raw preview scrolls).
                tables = browser.evaluate(TABLE_COLUMNS)
                cut = [table for table in tables if table["past"] and not table["wide"]]
                assert not cut, f"{where}: a table runs past the text column: {cut[0]}"
                if page.stem == "05_correlations":  # the claims' table and the per-setting table, comparison first
                    answers = [t["header"] for t in tables if "verdict" in t["header"] and not t["wide"]]
                    assert any(h.startswith("pair | claim | statistic | estimate") for h in answers), answers
                    assert any(h.startswith("pair | method | quantity | delta beta") for h in answers), answers
                # MathJax ships with the book (sphinx-mathjax-offline): equations are typeset with no network.
                math = typeset_math(browser)
                assert math["typeset"] == math["math"] and not math["tex"], f"{where}: equations not typeset: {math}"
                if page.stem == "01_theory":
                    assert math["math"] > 10  # the derivation is the book's argument
            browser.open((html / "04_attribution.html").as_uri())
            views = [browser.evaluate(f"{EXPLORER_AFTER}(null, 0)")]
            assert views[0]["options"]["sentence"] > 1 and views[0]["options"]["method"] == len(attribution.METHODS)
            for role, index in [("sentence", 1), ("method", 1), ("first", 1), ("dataset", 1)]:
                views.append(browser.evaluate(f"{EXPLORER_AFTER}({json.dumps(role)}, {index})"))
                before, after = views[-2], views[-1]
                assert after["shown"] != before["shown"], f"the explorer ignored a new {role}"
                assert after["bars"] and after["bars"] != before["bars"], f"the bars did not change with the {role}"
            browser.open((html / "07_similarity.html").as_uri())  # the pair explorer: two panels, each redrawn
            views = [browser.evaluate(f"{SIMILARITY_AFTER}(null, 0)")]
            assert views[0]["panels"] == 2 and views[0]["options"]["pair"] > 1 and views[0]["gold"].startswith("gold")
            for role, index in [("pair", 1), ("second", 2), ("dataset", 1)]:
                views.append(browser.evaluate(f"{SIMILARITY_AFTER}({json.dumps(role)}, {index})"))
                before, after = views[-2], views[-1]
                assert after["shown"] != before["shown"], f"the pair explorer ignored a new {role}"
                assert after["cells"] and after["cells"] != before["cells"], f"the matrix did not change with the {role}"
            browser.open((html / "05_correlations.html").as_uri())
            dot = browser.evaluate(DOT_TO_HOVER)
            browser.hover(dot["x"], dot["y"])
            tip = browser.evaluate('document.querySelector(".cwi-scatter [data-role=tip]").textContent')
            assert dot["dots"] > 0 and tip.startswith(dot["word"] + "  ("), (dot, tip)
            errors = [e for e in browser.errors if not any(known in e for known in TEMPLATE_ERRORS)]
            assert not errors, f"script errors at {width} px: {errors}"


def test_the_book_build_fails_on_a_broken_reference(tmp_path):
    """-W -n: a {cite} of a missing key fails the build instead of rendering as text."""
    shutil.copy(ROOT / "_config.yml", tmp_path / "_config.yml")
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n  - file: book/references\n")
    (tmp_path / "book").mkdir()
    for name in ("references.bib", "references.md"):
        shutil.copy(ROOT / "book" / name, tmp_path / "book" / name)
    (tmp_path / "book" / "intro.md").write_text("# A page\n\nAs {cite}`nobody2099never` showed.\n")
    with pytest.raises(RuntimeError, match="(?s)warnings are errors.*nobody2099never"):
        build_html(tmp_path)
    (tmp_path / "book" / "intro.md").write_text("# A page\n\nAs {cite}`kurita2023contrastive` showed.\n")
    assert build_html(tmp_path).exists()


def test_failing_chapter_names_chapter_and_cell(tmp_path):
    source = tmp_path / "book" / "99_broken.py"
    source.parent.mkdir()
    source.write_text(
        '# %% tags=["parameters"]\nprofile = "default"\n\n# %%\nx = 1\n\n# %%\nraise ValueError("planted failure")\n'
    )
    with pytest.raises(ChapterFailed) as info:
        run_chapter(source, "smoke", progress=False)
    message = str(info.value)
    assert "99_broken.py" in message and "code cell 3 of the source" in message
    assert "ValueError: planted failure" in message


def test_cli_reports_unknown_chapter(tmp_path):
    root = copy_book(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "cwi", "--root", str(root), "run", "no_such_chapter", "--profile", "smoke"],
        capture_output=True, text=True,
    )
    assert result.returncode == 1
    assert "no chapter 'no_such_chapter'" in result.stderr and "03_statistics" in result.stderr


def test_chapter_kernels_get_one_thread_per_usable_cpu(tmp_path, monkeypatch):
    from cwi.__main__ import pin_threads, usable_cpus

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    threads = pin_threads()
    assert 1 <= threads <= usable_cpus() and os.environ["OMP_NUM_THREADS"] == str(threads)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the user's choice wins
    assert pin_threads() == 1


def test_the_terminal_hears_from_a_running_chapter(tmp_path, monkeypatch, capsys):
    import cwi.__main__ as runner

    monkeypatch.setattr(runner, "HEARTBEAT", 1.0)
    source = tmp_path / "book" / "98_slow.py"
    source.parent.mkdir()
    source.write_text('# %% tags=["parameters"]\nprofile = "default"\n\n# %%\nimport time\n'
                      "from cwi import progress\n"
                      'with progress.Progress(3, "counting", every=0.0) as bar:\n'
                      "    for _ in range(3):\n        bar.update()\n"
                      "time.sleep(2.5)\n")
    notebook = run_chapter(source, "smoke", progress=False)
    printed = capsys.readouterr().out
    assert "98_slow | counting: 3/3 steps (100%)" in printed  # the kernel's lines reach the terminal
    assert "98_slow | still running" in printed  # and a heartbeat while a cell reports nothing
    # At the end, the longest silence but for heartbeats: the 2.5 s sleep after the last line (start-up is not counted).
    silence = re.search(r"98_slow \| longest wait with no progress line: (\d+) s", printed)
    assert silence and 2 <= int(silence.group(1)) <= 30, printed
    cells = json.loads(notebook.read_text())["cells"]
    hidden = [c for c in cells if "parameters" in c["metadata"].get("tags", [])]
    assert hidden and all("remove-cell" in c["metadata"]["tags"] for c in hidden)
    assert any("injected-parameters" in c["metadata"].get("tags", []) for c in cells)


def test_progress_lines_say_what_how_far_and_how_long(tmp_path, monkeypatch):
    from cwi import progress

    log = tmp_path / "progress.log"
    monkeypatch.setenv("CWI_PROGRESS_FILE", str(log))
    with progress.Progress(4, "training", show_bar=False, every=0.0, announce_start=True) as bar:
        bar.set_postfix(loss="1.000")
        bar.update(2)
        bar.update(2)
    lines = log.read_text().splitlines()
    assert lines[0].startswith("training: 4 steps to do")
    assert lines[1].startswith("training: 2/4 steps (50%), loss 1.000,") and lines[1].endswith("left")
    assert lines[2].startswith("training: 4/4 steps (100%)") and "done in" in lines[2]
    assert len(lines) == 3  # closing after the last update's line repeats nothing
    assert progress.duration(30) == "30 s" and progress.duration(600) == "10 min"
    assert progress.duration(3900) == "1 h 05 min"
    with progress.Progress(1, "quiet") as bar:  # under a runner the lines replace the notebook's bar,
        assert bar.bar.disable  # which papermill would save as a dead widget in the HTML book
    monkeypatch.delenv("CWI_PROGRESS_FILE")
    with progress.Progress(1, "shown") as bar:
        assert not bar.bar.disable


def test_jupyterlab_opens_chapters_as_notebooks(tmp_path):
    """`python -m cwi lab`'s environment makes Jupytext's notebook the default viewer of .py files."""
    import socket
    import time
    import urllib.request

    from cwi.__main__ import lab_environment

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    environment = lab_environment(ROOT)
    environment["JUPYTER_RUNTIME_DIR"] = str(tmp_path / "runtime")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", f"--port={port}", "--ServerApp.token=cwi-test",
         f"--ServerApp.root_dir={ROOT / 'book'}", "--ServerApp.open_browser=False"],
        env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/lab/api/settings/@jupyterlab/docmanager-extension:plugin?token=cwi-test"
    try:
        for _ in range(120):
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    settings = json.load(response)
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("JupyterLab did not answer within 60 s")
    finally:
        server.terminate()
        server.wait(timeout=30)
    # Overrides become the schema's defaults, which the user's own settings (none here) would override.
    assert settings["schema"]["properties"]["defaultViewers"]["default"]["python"] == "Jupytext Notebook"
