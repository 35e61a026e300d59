"""Offline WordNet set-up: built from Debian's wordnet-base, behaving as NLTK's real WordNet 3.0."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import pytest

from meit.errors import OfflineError
from meit.evaluation import wordnet as wn_setup

SOURCE = wn_setup.DEFAULT_SOURCE


@pytest.fixture(scope="module")
def wordnet():  # type: ignore[no-untyped-def]
    wn_setup.ensure_wordnet()
    from nltk.corpus import wordnet

    wordnet.ensure_loaded()
    return wordnet


def test_lexnames_has_45_numbered_lines() -> None:
    lines = wn_setup.lexnames_text().splitlines()
    assert len(lines) == 45
    for i, line in enumerate(lines):
        index, name, cat = line.split()
        assert int(index) == i and cat in {"1", "2", "3", "4"} and "." in name
    assert lines[0] == "00\tadj.all\t3" and lines[3] == "03\tnoun.Tops\t1" and lines[44] == "44\tadj.ppl\t3"


def test_lexnames_agree_with_the_data_files() -> None:
    """Every synset's lexicographer file number names a file of its own part of speech."""
    category = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}
    used: set[int] = set()
    for pos, cat in category.items():
        with open(SOURCE / f"data.{pos}", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("  "):
                    continue
                lex_filenum = int(line[9:11])
                name, lex_cat = wn_setup.LEXNAMES[lex_filenum]
                assert lex_cat == cat and name.startswith(pos + "."), line[:40]
                used.add(lex_filenum)
    assert used == set(range(45))


def test_lexnames_agree_with_the_manual_page() -> None:
    page = Path("/usr/share/man/man5/lexnames.5WN.gz")  # shipped by wordnet-base (scripts/install.sh)
    with gzip.open(page, "rt") as fh:
        listed = re.findall(r"^(\d\d)\t(\S+)", fh.read(), flags=re.M)
    assert [(int(i), n) for i, n in listed] == [(i, n) for i, (n, _) in enumerate(wn_setup.LEXNAMES)]


def test_known_synsets_and_synonyms(wordnet) -> None:  # type: ignore[no-untyped-def]
    dog = wordnet.synset("dog.n.01")
    assert dog.lexname() == "noun.animal" and "domestic_dog" in dog.lemma_names()
    assert "automobile" in wordnet.synset("car.n.01").lemma_names()
    assert wordnet.morphy("dogs") == "dog" and wordnet.morphy("ran", "v") == "run"
    assert {"always", "forever"} <= {name for s in wordnet.synsets("always") for name in s.lemma_names()}
    assert wordnet.synsets("quick")[0].pos() in {"a", "s", "n"}
    assert wordnet.synset("heart.n.02").lexname() == "noun.body"
    assert wordnet.lemma_from_key("dog%1:05:00::").synset() == dog


def test_nltk_documented_meteor_values(wordnet) -> None:  # type: ignore[no-untyped-def]
    """Values printed in NLTK's own doctests, which were computed with the real WordNet."""
    from nltk.translate.meteor_score import meteor_score, single_meteor_score

    from meit.evaluation.tokenize import meteor_tokenize

    hyp = ["It", "is", "a", "guide", "to", "action", "which", "ensures", "that", "the", "military", "always",
           "obeys", "the", "commands", "of", "the", "party"]
    ref = ["It", "is", "a", "guide", "to", "action", "that", "ensures", "that", "the", "military", "will",
           "forever", "heed", "Party", "commands"]
    assert round(single_meteor_score(ref, hyp), 4) == 0.6944
    t = meteor_tokenize
    assert meteor_score([t("The cat sat on the mat")], t("on the mat sat the cat")) == 0.5
    assert round(meteor_score([t("The cat sat on the mat")], t("The cat was sat on the mat")), 4) == 0.9654
    assert round(meteor_score([t("create or update a vm set")],
                              t("creates or updates a virtual machine scale set")), 4) == 0.7806


def test_missing_source_raises_offline_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MEIT_WORDNET_SOURCE", str(tmp_path / "nowhere"))
    with pytest.raises(OfflineError, match=r"apt-get install wordnet-base.*--no-meteor"):
        wn_setup.ensure_wordnet()


@pytest.fixture(scope="module")
def built_from_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ensure_wordnet() over a copy of plain wordnet-base (no index.sense), in its own cache."""
    tmp = tmp_path_factory.mktemp("wn")
    src = tmp / "src"
    src.mkdir()
    for name in (*wn_setup.REQUIRED_FILES, "cntlist.rev"):
        (src / name).symlink_to(SOURCE / name)
    import nltk

    before = list(nltk.data.path)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEIT_CACHE", str(tmp / "cache"))
        mp.setenv("MEIT_WORDNET_SOURCE", str(src))
        try:
            target = wn_setup.ensure_wordnet()
            assert str(tmp / "cache" / "nltk_data") in nltk.data.path
            assert wn_setup.ensure_wordnet() == target  # second call: nothing rebuilt
        finally:
            nltk.data.path[:] = before
    assert target == tmp / "cache" / "nltk_data" / "corpora" / "wordnet"
    return target


def test_builds_from_wordnet_base_alone(built_from_base: Path) -> None:
    for name in (*wn_setup.REQUIRED_FILES, "cntlist.rev"):
        assert (built_from_base / name).read_bytes() == (SOURCE / name).read_bytes(), name
    assert (built_from_base / "lexnames").read_text() == wn_setup.lexnames_text()
    assert (built_from_base / "index.sense").stat().st_size > 1_000_000
    # loading through NLTK is covered by the tests above (ensure_wordnet() + nltk.corpus.wordnet)


def test_generated_sense_index_equals_debian_package(built_from_base: Path) -> None:
    """Debian ships index.sense separately (wordnet-sense-index); ours is derived line for line."""
    real = SOURCE / "index.sense"  # Debian's wordnet-sense-index, installed by scripts/install.sh
    assert (built_from_base / "index.sense").read_bytes() == real.read_bytes()
