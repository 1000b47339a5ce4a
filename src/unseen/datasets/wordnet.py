"""WordNet open-set text benchmark: classify a noun's definition by its supersense; unknown supersenses are near-OOD.

Data: the Debian package ``wordnet-base`` (``/usr/share/wordnet/data.noun``, ``data.verb``; WordNet 3.0
licence, Princeton University). Each synset line holds its lexicographer file number (field 2: the
*supersense*, e.g. 05 = ``noun.animal``) and, after `` | ``, its gloss: a definition, then optional
example sentences in double quotes. The text of a row is the definition alone (the examples often
repeat the headword, and many synsets have none). Definitions that occur more than once are dropped, so
no text is both known and unknown.

Known / held-out supersenses (the same for every seed; seeds draw different rows)
    Known: artifact, person, plant, animal, substance, location — concrete categories with crisp
    definitions. Held out (near-OOD): act, communication, state, attribute, cognition, group — abstract
    nouns, still noun definitions in the same style. These are the 12 largest noun supersenses (2,600 to
    11,600 definitions each). The split is fixed because the boundaries between the abstract
    supersenses are fuzzy (``act`` vs ``state`` vs ``attribute``): a random partition that puts some of
    them on each side measures label ambiguity more than novelty (in a check with MiniLM, 12 random
    partitions averaged kNN AUROC 0.74, this split 0.87).

Sets (default size; ``size="small"`` in brackets)
    train 500 [40], val 100 [10], test 200 [20] definitions per known supersense;
    ``near: held-out supersenses`` 1,000 [60] definitions spread evenly over the six held-out ones;
    ``far: verb glosses`` 1,000 [60] verb definitions (``data.verb``).

Representation ``"minilm"``: 384-d all-MiniLM-L6-v2 sentence embeddings; the head is a logistic-regression
probe on the training embeddings.
"""

from __future__ import annotations

import functools
import os
from collections import Counter
from pathlib import Path

import numpy as np

from . import _encoders
from ._base import MissingDataError, OpenSetData
from ._util import rng_for, sample_mixed, sample_per_class
from .classifier import linear_probe

__all__ = ["DATA_DIR", "LEXNAMES", "parse_line", "read_glosses", "load_wordnet", "KNOWN", "HELD_OUT"]

DATA_DIR = Path("/usr/share/wordnet")
REPRESENTATIONS = ("minilm",)
INSTALL_HINT = 'WordNet is not installed: run "sudo apt-get install -y wordnet-base" (Debian/Ubuntu) or "make data".'
# Lexicographer file numbers (WordNet's lexnames file).
LEXNAMES = {
    3: "noun.Tops",
    4: "noun.act",
    5: "noun.animal",
    6: "noun.artifact",
    7: "noun.attribute",
    8: "noun.body",
    9: "noun.cognition",
    10: "noun.communication",
    11: "noun.event",
    12: "noun.feeling",
    13: "noun.food",
    14: "noun.group",
    15: "noun.location",
    16: "noun.motive",
    17: "noun.object",
    18: "noun.person",
    19: "noun.phenomenon",
    20: "noun.plant",
    21: "noun.possession",
    22: "noun.process",
    23: "noun.quantity",
    24: "noun.relation",
    25: "noun.shape",
    26: "noun.state",
    27: "noun.substance",
    28: "noun.time",
}
KNOWN = (6, 18, 20, 5, 27, 15)  # artifact, person, plant, animal, substance, location
HELD_OUT = (4, 10, 26, 7, 9, 14)  # act, communication, state, attribute, cognition, group
SIZES = {
    "default": {"train": 500, "val": 100, "test": 200, "ood": 1000},
    "small": {"train": 40, "val": 10, "test": 20, "ood": 60},
}


def parse_line(line: str) -> tuple[int, str] | None:
    """``(lexicographer file number, definition)`` of one ``data.*`` line; None for licence header lines.

    >>> parse_line('02084071 05 n 03 dog 0 domestic_dog 0 Canis_familiaris 0 000 | a member of the genus '
    ...            'Canis; "the dog barked all night"  ')
    (5, 'a member of the genus Canis')
    >>> parse_line("  1 This software and database is being provided to you") is None
    True
    """
    if not line or line[0] == " " or " | " not in line:
        return None
    head, gloss = line.split(" | ", 1)
    fields = head.split(" ", 2)
    if len(fields) < 3 or not fields[1].isdigit():
        return None
    definition = gloss.strip().split('; "', 1)[0].strip()
    if definition.startswith('"'):  # a gloss made only of an example: no definition
        return None
    return int(fields[1]), definition


@functools.lru_cache(maxsize=4)
def _read_cached(path: str) -> tuple[np.ndarray, tuple[str, ...]]:
    p = Path(path)
    if not p.exists():
        raise MissingDataError(f"{INSTALL_HINT} (looked for {p})")
    lex, texts = [], []
    with open(p, encoding="latin-1") as f:
        for line in f:
            parsed = parse_line(line)
            if parsed and parsed[1]:
                lex.append(parsed[0])
                texts.append(parsed[1])
    if not texts:
        raise MissingDataError(f"{p} holds no WordNet synsets; reinstall it. {INSTALL_HINT}")
    lex_arr = np.array(lex, dtype=np.int64)
    lex_arr.setflags(write=False)  # shared by every caller through the cache
    return lex_arr, tuple(texts)


def read_glosses(part: str = "noun", data_dir: str | os.PathLike | None = None) -> tuple[np.ndarray, list[str]]:
    """Supersense numbers and definitions of every synset in ``data.noun`` or ``data.verb`` (file order)."""
    lex, texts = _read_cached(str(Path(data_dir if data_dir is not None else DATA_DIR) / f"data.{part}"))
    return lex, list(texts)


def build_texts(seed: int, size: str, data_dir: str | os.PathLike | None = None) -> dict:
    """The texts and labels of every set of one split, before encoding."""
    n = SIZES[size]
    lex, texts = read_glosses("noun", data_dir)
    vlex, vtexts = read_glosses("verb", data_dir)
    counts = Counter(texts + vtexts)
    noun_ok = np.array([counts[t] == 1 for t in texts])
    verb_ok = np.array([counts[t] == 1 for t in vtexts])
    known, held_out = KNOWN, HELD_OUT
    lex_ok = np.where(noun_ok, lex, -1)
    i_tr = sample_per_class(lex_ok, known, n["train"], rng_for(seed, "wordnet", "train"))
    used = np.zeros(len(lex), bool)
    used[i_tr] = True
    i_val = sample_per_class(lex_ok, known, n["val"], rng_for(seed, "wordnet", "val"), exclude=used)
    used[i_val] = True
    i_te = sample_per_class(lex_ok, known, n["test"], rng_for(seed, "wordnet", "test"), exclude=used)
    i_near = sample_mixed(lex_ok, held_out, n["ood"], rng_for(seed, "wordnet", "near"))
    verb_rows = np.flatnonzero(verb_ok)
    i_far = np.sort(
        rng_for(seed, "wordnet", "far").choice(verb_rows, size=min(n["ood"], len(verb_rows)), replace=False)
    )
    remap = {c: i for i, c in enumerate(known)}

    def pick(idx: np.ndarray) -> list[str]:
        return [texts[i] for i in idx]

    return {
        "known": known,
        "held_out": held_out,
        "texts": {"train": pick(i_tr), "val": pick(i_val), "test": pick(i_te)},
        "labels": {
            k: np.array([remap[int(c)] for c in lex[idx]], dtype=np.int64)
            for k, idx in (("train", i_tr), ("val", i_val), ("test", i_te))
        },
        "ood": {"near: held-out supersenses": pick(i_near), "far: verb glosses": [vtexts[i] for i in i_far]},
    }


def load_wordnet(
    *,
    representation: str = "minilm",
    seed: int = 0,
    size: str = "default",
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    data_dir: str | os.PathLike | None = None,
) -> OpenSetData:
    """Build the WordNet supersense open-set benchmark (see the module docstring); use :func:`unseen.datasets.load`."""
    parts = build_texts(seed, size, data_dir)
    encoder = _encoders.text_encoder()
    everything = {**parts["texts"], **parts["ood"]}
    enc = _encoders.encode_sets(
        encoder,
        everything,
        key={"dataset": "wordnet", "size": size, "seed": seed},
        cache_dir=cache_dir,
        progress=progress,
        label=f"wordnet/{representation}-{size}-seed{seed}",
    )
    labels = parts["labels"]
    head = linear_probe(
        enc["train"],
        labels["train"],
        enc["val"],
        labels["val"],
        cache_dir=cache_dir,
        label=f"wordnet/probe-{representation}-{size}-seed{seed}",
    )
    known_names = [LEXNAMES[c].split(".", 1)[1] for c in parts["known"]]
    held_names = [LEXNAMES[c].split(".", 1)[1] for c in parts["held_out"]]
    return OpenSetData(
        name="wordnet",
        representation=representation,
        seed=seed,
        X_train=enc["train"],
        y_train=labels["train"],
        X_val=enc["val"],
        y_val=labels["val"],
        X_test=enc["test"],
        y_test=labels["test"],
        ood={k: enc[k] for k in parts["ood"]},
        ood_kind={"near: held-out supersenses": "near", "far: verb glosses": "far"},
        head=head,
        class_names=known_names,
        description=(
            f"WordNet noun definitions by supersense (seed {seed}, {size}): known {', '.join(known_names)}; "
            f"held-out {', '.join(held_names)} (near-OOD); verb definitions (far-OOD). Representation: "
            "all-MiniLM-L6-v2 sentence embeddings (384-d) with a logistic-regression probe."
        ),
    )
