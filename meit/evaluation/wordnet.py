"""Offline WordNet 3.0 for NLTK's METEOR, built from Debian's ``wordnet-base`` package.

NLTK only reads WordNet from ``<nltk_data>/corpora/wordnet/`` and needs a ``lexnames`` file that
Debian does not ship, and its downloader needs the network. We therefore copy the dictionary files
from ``/usr/share/wordnet`` into ``$MEIT_CACHE/nltk_data/corpora/wordnet`` once, write the fixed
45-line WordNet 3.0 ``lexnames`` list next to them, and put that ``nltk_data`` on ``nltk.data.path``.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from meit.cache_build import cached_build
from meit.errors import OfflineError

#: Where Debian's ``wordnet-base`` installs the WordNet 3.0 database.
DEFAULT_SOURCE = Path("/usr/share/wordnet")

#: Files NLTK's ``WordNetCorpusReader`` reads for what METEOR uses (synsets, lemmas, morphy).
REQUIRED_FILES: tuple[str, ...] = (
    "index.noun", "index.verb", "index.adj", "index.adv",
    "data.noun", "data.verb", "data.adj", "data.adv",
    "noun.exc", "verb.exc", "adj.exc", "adv.exc",
)
#: Copied when present. NLTK 3.10 opens ``index.sense`` while loading (to map WordNet versions);
#: Debian ships it separately (``wordnet-sense-index``), so we derive it when it is absent.
OPTIONAL_FILES: tuple[str, ...] = ("cntlist.rev", "index.sense")
_POS_FILES: tuple[str, ...] = ("noun", "verb", "adj", "adv")
_SS_TYPE_NUMBER = {"n": 1, "v": 2, "a": 3, "r": 4, "s": 5}
_ADJ_MARKER = re.compile(r"\([a-z]+\)")

#: WordNet 3.0 lexicographer files, numbered 0-44 as in ``lexnames(5WN)``: (name, syntactic category)
#: with category 1 noun, 2 verb, 3 adjective, 4 adverb. NLTK parses ``"NN name CAT"`` per line.
LEXNAMES: tuple[tuple[str, int], ...] = (
    ("adj.all", 3), ("adj.pert", 3), ("adv.all", 4), ("noun.Tops", 1), ("noun.act", 1),
    ("noun.animal", 1), ("noun.artifact", 1), ("noun.attribute", 1), ("noun.body", 1),
    ("noun.cognition", 1), ("noun.communication", 1), ("noun.event", 1), ("noun.feeling", 1),
    ("noun.food", 1), ("noun.group", 1), ("noun.location", 1), ("noun.motive", 1),
    ("noun.object", 1), ("noun.person", 1), ("noun.phenomenon", 1), ("noun.plant", 1),
    ("noun.possession", 1), ("noun.process", 1), ("noun.quantity", 1), ("noun.relation", 1),
    ("noun.shape", 1), ("noun.state", 1), ("noun.substance", 1), ("noun.time", 1),
    ("verb.body", 2), ("verb.change", 2), ("verb.cognition", 2), ("verb.communication", 2),
    ("verb.competition", 2), ("verb.consumption", 2), ("verb.contact", 2), ("verb.creation", 2),
    ("verb.emotion", 2), ("verb.motion", 2), ("verb.perception", 2), ("verb.possession", 2),
    ("verb.social", 2), ("verb.stative", 2), ("verb.weather", 2), ("adj.ppl", 3),
)

#: bumped when the built layout changes (a new version rebuilds the cache)
_VERSION = 1
#: the completion marker written by meit before the cache used :mod:`meit.cache_build`
_LEGACY_MARKER = ".meit-complete"


def lexnames_text() -> str:
    """The ``lexnames`` file content, in the WordNet 3.0 distribution's tab-separated layout."""
    return "".join(f"{i:02d}\t{name}\t{cat}\n" for i, (name, cat) in enumerate(LEXNAMES))


def _read_synsets(source: Path) -> dict[tuple[str, str], tuple[int, str, list[tuple[str, int]], str | None]]:
    """``(pos file, offset) -> (lex_filenum, ss_type, [(lowercase lemma, lex_id)], head offset)``."""
    synsets: dict[tuple[str, str], tuple[int, str, list[tuple[str, int]], str | None]] = {}
    for pos in _POS_FILES:
        with open(source / f"data.{pos}", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("  "):  # licence header
                    continue
                f = line.split(" ")
                w_cnt = int(f[3], 16)
                words = [(_ADJ_MARKER.sub("", f[4 + 2 * k]).lower(), int(f[5 + 2 * k], 16)) for k in range(w_cnt)]
                i = 4 + 2 * w_cnt
                head = None
                if f[2] == "s":  # satellite: its head is the first 'similar to' adjective
                    for k in range(int(f[i])):
                        sym, off, ptr_pos = f[i + 1 + 4 * k : i + 4 + 4 * k]
                        if sym == "&" and ptr_pos == "a":
                            head = off
                            break
                synsets[(pos, f[0])] = (int(f[1]), f[2], words, head)
    return synsets


def sense_index_lines(source: Path) -> list[str]:
    """Derive WordNet 3.0's ``index.sense`` (``senseidx(5WN)``) from the data, index and count files.

    Equal line for line to Debian's ``wordnet-sense-index`` (checked in the tests when installed).
    """
    synsets = _read_synsets(source)
    sense_number: dict[tuple[str, str, str], int] = {}
    for pos in _POS_FILES:
        with open(source / f"index.{pos}", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("  "):
                    continue
                f = line.split()
                offsets = f[len(f) - int(f[2]):]
                for k, off in enumerate(offsets, start=1):
                    sense_number[(pos, f[0], off)] = k
    tag_counts: dict[str, str] = {}
    if (source / "cntlist.rev").is_file():
        with open(source / "cntlist.rev", encoding="utf-8") as fh:
            for line in fh:
                key, _, count = line.split()
                tag_counts[_ADJ_MARKER.sub("", key)] = count
    lines = []
    for (pos, off), (lex_filenum, ss_type, words, head) in synsets.items():
        head_part = ":"
        if ss_type == "s" and head is not None:
            head_word, head_id = synsets[("adj", head)][2][0]
            head_part = f"{head_word}:{head_id:02d}"
        seen: set[str] = set()
        for lemma, lex_id in words:
            if lemma in seen:  # 'Earth'/'earth' in one synset share one sense key (the first)
                continue
            seen.add(lemma)
            key = f"{lemma}%{_SS_TYPE_NUMBER[ss_type]}:{lex_filenum:02d}:{lex_id:02d}:{head_part}"
            lines.append(f"{key} {off} {sense_number.get((pos, lemma, off), 0)} {tag_counts.get(key, '0')}\n")
    lines.sort()
    return lines


def _source_dir() -> Path:
    return Path(os.environ.get("MEIT_WORDNET_SOURCE") or DEFAULT_SOURCE)


def _missing_error(source: Path, missing: list[str]) -> OfflineError:
    return OfflineError(
        f"WordNet 3.0 (needed by METEOR) not found: {source} lacks {', '.join(missing)}. "
        "Install it from the system package registry with `apt-get install wordnet-base` "
        "(or point MEIT_WORDNET_SOURCE at a directory holding the WordNet 3.0 dict files), "
        "or skip METEOR with `--no-meteor` (meteor=False in compute_metrics)."
    )


def _build(folder: Path, source: Path) -> None:
    """Fill a staged cache folder with NLTK's WordNet layout, from the dictionary files in ``source``."""
    missing = [name for name in REQUIRED_FILES if not (source / name).is_file()]
    if missing:
        raise _missing_error(source, missing)
    for name in REQUIRED_FILES + OPTIONAL_FILES:
        if (source / name).is_file():
            shutil.copyfile(source / name, folder / name)
    (folder / "lexnames").write_text(lexnames_text(), encoding="utf-8")
    if not (folder / "index.sense").is_file():
        (folder / "index.sense").write_text("".join(sense_index_lines(source)), encoding="utf-8")


def ensure_wordnet() -> Path:
    """Set up WordNet for NLTK (once) and return the ``.../corpora/wordnet`` directory.

    Raises :class:`OfflineError` with install instructions when the source files are missing.
    """
    import nltk

    source = _source_dir()
    target = cached_build("wordnet", {"source": str(source), "version": _VERSION}, lambda out: _build(out, source),
                          group="nltk_data/corpora", legacy_markers=(_LEGACY_MARKER,))
    root = target.parent.parent
    if str(root) not in nltk.data.path:
        nltk.data.path.insert(0, str(root))
    return target
