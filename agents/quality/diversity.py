"""How different a run's conversations are from each other (docs/quality.md, "Diversity").

    figures = lexical(user_texts, whole_texts)            # distinct-1/2, near-duplicate rate
    figures += semantic(conversation_vectors, persona_vectors)   # embedding distance, Vendi score, …

Lexical figures need no model. Semantic ones take unit vectors from an embeddings endpoint, as they
come: their figures compare runs scored with the same embedding model, not across models (a small
language model's vectors all point much the same way, so its distances are small for any texts).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from storage import minhash
from storage.minhash import NearDuplicates

_WORD = re.compile(r"\w+")
SEMANTIC = ("embedding_distance", "vendi_score", "persona_similarity_correlation")  # the figures from vectors
MAX_PAIRS_OF = 2_000  # conversations whose pairs the correlation reads (2 million pairs): a sample beyond


@dataclass(frozen=True)
class Figure:
    metric: str
    value: float | None  # None: not enough to work it out (see detail)
    n: int
    detail: str


def distinct(texts: list[str], n: int) -> Figure:
    """distinct-n (Li et al., 2016): distinct word n-grams over all word n-grams of the texts."""
    grams: list[tuple[str, ...]] = []
    for text in texts:
        words = _WORD.findall(text.lower())
        grams += zip(*(words[i:] for i in range(n)), strict=False)
    if not grams:
        return Figure(f"distinct_{n}", None, len(texts), "no words")
    return Figure(f"distinct_{n}", len(set(grams)) / len(grams), len(texts),
                  f"{len(set(grams)):,} distinct word {n}-grams of {len(grams):,} in the user turns")  # fmt: skip


def near_duplicate_rate(texts: list[str]) -> Figure:
    """Share of conversations that are a near copy of an earlier one, as `swarm export --dedup` finds them."""
    shingling = minhash.CONVERSATIONS
    index: NearDuplicates[int] = NearDuplicates(shingling)
    copies = 0
    for i, text in enumerate(texts):
        signature = minhash.signature(text, shingling)
        if index.match(signature) is not None:
            copies += 1
        else:
            index.add(i, signature)
    detail = f"{copies} of {len(texts)} at Jaccard ≥ {shingling.threshold:g} of word {shingling.ngram}-grams"
    return Figure("near_duplicate_rate", copies / len(texts) if texts else None, len(texts), detail)


def lexical(user_texts: list[str], whole_texts: list[str]) -> list[Figure]:
    return [distinct(user_texts, 1), distinct(user_texts, 2), near_duplicate_rate(whole_texts)]


def _unit(vectors: list[list[float]]) -> np.ndarray:
    matrix = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms > 0, norms, 1.0)


def semantic(conversations: list[list[float]], personas: list[list[float]] | None = None) -> list[Figure]:
    """Mean pairwise cosine distance and Vendi score of the conversations' vectors; with the personas'
    vectors (in the same order), the correlation of persona and conversation similarity over pairs."""
    n = len(conversations)
    if n < 3:
        why = f"{n} conversations: too few to compare"
        return [Figure(m, None, n, why) for m in ("embedding_distance", "vendi_score")] + (
            [Figure("persona_similarity_correlation", None, n, why)] if personas is not None else []
        )
    x = _unit(conversations)
    total = x.sum(axis=0)
    mean_cosine = (float(total @ total) - float((x * x).sum())) / (n * (n - 1))
    # Vendi score (Friedman & Dieng, 2023): exp of the entropy of the eigenvalues of K/n, K = X Xᵀ. Those
    # of Xᵀ X / n are the same (but zeros): the smaller of the two matrices is the one decomposed
    eigenvalues = np.linalg.eigvalsh((x @ x.T if n < x.shape[1] else x.T @ x) / n)
    eigenvalues = eigenvalues[eigenvalues > 1e-12]
    vendi = float(np.exp(-(eigenvalues * np.log(eigenvalues)).sum()))
    figures = [
        Figure("embedding_distance", 1 - mean_cosine, n, "1 − mean cosine of pairs of conversations"),
        Figure("vendi_score", vendi, n, f"the effective number of distinct conversations, of {n}"),
    ]
    if personas is not None:
        figures.append(_correlation(x, _unit(personas)))
    return figures


def _correlation(conversations: np.ndarray, personas: np.ndarray) -> Figure:
    """PersonaHub's check that more different personas make more different conversations: Pearson's r of
    persona similarity and conversation similarity over pairs."""
    n = len(conversations)
    if n > MAX_PAIRS_OF:
        keep = np.random.default_rng(0).choice(n, MAX_PAIRS_OF, replace=False)
        conversations, personas = conversations[keep], personas[keep]
    upper = np.triu_indices(len(conversations), k=1)
    a, b = (personas @ personas.T)[upper], (conversations @ conversations.T)[upper]
    if a.std() == 0 or b.std() == 0:
        return Figure("persona_similarity_correlation", None, n, "no spread in one of the similarities")
    r = float(np.corrcoef(a, b)[0, 1])
    return Figure("persona_similarity_correlation", r, n, f"Pearson's r over {len(a):,} pairs of conversations")
