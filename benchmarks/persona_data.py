"""Persona files for the benchmarks, written by DuckDB in seconds: the public datasets' shape at any size.

Each record has an `id`, a `persona` text of ~25 words drawn from word lists (two random personas share
about a sixth of their words, as real ones do), `age`, `occupation`, `country` (50 values), a list
of `hobbies`, and `city` ("None" in one record of seven, as pandas exports write it). Of every 100
lines, one repeats the text before it exactly (an exact copy) and one adds a word to it (a near copy:
word Jaccard ~0.96). Everything is a function of the line number, so a file is the same on any machine.

    python benchmarks/persona_data.py 1000000 /tmp/personas.jsonl [--start 0]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import duckdb


def _words(text: str) -> list[str]:
    return text.split(";")


NAMES = [
    "Amara",
    "Bilal",
    "Chen",
    "Dara",
    "Elif",
    "Femi",
    "Gita",
    "Hiro",
    "Ines",
    "Jonas",
    "Kwame",
    "Lena",
    "Malik",
    "Nadia",
    "Omar",
    "Priya",
    "Quinn",
    "Rosa",
    "Sami",
    "Tariq",
    "Uma",
    "Vera",
    "Wen",
    "Ximena",
    "Yusuf",
    "Zara",
    "Aiko",
    "Bruno",
    "Carmen",
    "Diego",
    "Esther",
    "Farid",
    "Greta",
    "Hamid",
    "Ivan",
    "Julia",
    "Kofi",
    "Leila",
    "Mateo",
    "Noor",
]
ADJECTIVES = [
    "patient",
    "curious",
    "meticulous",
    "outspoken",
    "retired",
    "ambitious",
    "cautious",
    "cheerful",
    "skeptical",
    "methodical",
    "restless",
    "thoughtful",
    "stubborn",
    "generous",
    "quiet",
    "energetic",
    "pragmatic",
    "idealistic",
    "frugal",
    "witty",
    "anxious",
    "calm",
    "devout",
    "rebellious",
    "shy",
    "talkative",
    "tireless",
    "humble",
    "proud",
    "nostalgic",
]
OCCUPATIONS = [
    "nurse", "welder", "teacher", "chef", "pilot", "farmer", "lawyer", "barista", "software developer", "plumber",
    "librarian", "electrician", "pharmacist", "bus driver", "architect", "journalist", "midwife", "carpenter",
    "data analyst", "social worker", "fisher", "translator", "paramedic", "baker", "tailor", "mechanic",
    "accountant", "veterinarian", "firefighter", "geologist", "dentist", "photographer", "musician", "potter",
    "beekeeper", "surveyor", "archivist", "chemist", "tour guide", "union organizer",
]  # fmt: skip
COUNTRIES = [
    "Kenya", "Brazil", "Japan", "Canada", "India", "Germany", "Mexico", "Norway", "Vietnam", "Ghana", "Peru",
    "Chile", "Egypt", "Spain", "Italy", "France", "Poland", "Turkey", "Iran", "Nepal", "Fiji", "Cuba", "Chad",
    "Mali", "Laos", "Oman", "Iraq", "Togo", "Niger", "Benin", "Ireland", "Iceland", "Jamaica", "Jordan",
    "Kazakhstan", "Latvia", "Lebanon", "Malta", "Mongolia", "Morocco", "Nigeria", "Pakistan", "Portugal",
    "Romania", "Rwanda", "Senegal", "Sweden", "Thailand", "Uganda", "Zambia",
]  # fmt: skip
INTERESTS = [
    "urban gardening",
    "jazz history",
    "tax law",
    "electric buses",
    "sourdough chemistry",
    "local elections",
    "bird migration",
    "open source firmware",
    "vaccine research",
    "medieval poetry",
    "solar roofs",
    "chess openings",
    "river restoration",
    "labor rights",
    "3D printing",
    "folk music",
    "rare diseases",
    "football tactics",
    "climate adaptation",
    "street photography",
    "microfinance",
    "quantum computing",
    "knitting patterns",
    "cycling infrastructure",
    "school reform",
    "astronomy news",
    "ancient languages",
    "food safety",
    "housing policy",
    "cybersecurity",
    "marathon training",
    "wine making",
    "coral reefs",
    "language learning",
    "mental health",
    "film restoration",
    "public libraries",
    "drone mapping",
    "water rights",
    "board games",
    "beekeeping",
    "volcanology",
    "stand-up comedy",
    "retro computing",
    "wildfire prevention",
    "tea ceremonies",
    "railway timetables",
    "sign language",
    "space launches",
    "mushroom foraging",
    "antique clocks",
    "hydroponics",
    "sailing",
    "podcasting",
    "kite surfing",
    "pottery glazes",
    "traditional medicine",
    "fashion upcycling",
    "origami",
    "genealogy",
]
HOBBIES = [
    "hiking",
    "baking bread",
    "fixing radios",
    "painting murals",
    "playing the oud",
    "running trails",
    "fishing",
    "rock climbing",
    "restoring bikes",
    "writing letters",
    "birdwatching",
    "practising yoga",
    "volunteering",
    "dancing salsa",
    "woodworking",
    "brewing beer",
    "swimming",
    "sketching",
    "playing chess",
    "coaching kids",
    "camping",
    "singing in a choir",
    "keeping bees",
    "collecting stamps",
    "skateboarding",
    "gardening",
    "building models",
    "reading novels",
    "cooking stews",
    "stargazing",
]
GOALS = [
    "open a small clinic",
    "write a cookbook",
    "learn to code",
    "run for city council",
    "visit every national park",
    "start a cooperative",
    "teach adults to read",
    "build a tiny house",
    "record an album",
    "train an apprentice",
    "publish a field guide",
    "retire by the sea",
    "cut the family's energy bill",
    "translate a novel",
    "coach a youth team",
    "finish a degree",
    "save a local theatre",
    "map the old trade routes",
    "breed rare tomatoes",
    "understand the new tax rules",
]


def _pick(words: list[str], column: str, salt: int) -> str:
    """A word from `words`, spread evenly over the line numbers by a fixed multiplicative hash."""
    literal = "[" + ", ".join("'" + w.replace("'", "''") + "'" for w in words) + "]"
    h = f"((({column} + 1)::UBIGINT * 2654435761 + {salt * 97531}) % 4294967291)"
    return f"{literal}[(xor({h}, {h} >> 13) * 2246822519 % 4294967291 % {len(words)})::BIGINT + 1]"


def records_sql(count: int, start: int = 0) -> str:
    """SQL for `count` records numbered from `start` (line `start + 1` is record `start`)."""
    j = "j"
    # few words every text has (as in real persona sets, whose texts share a function word or two):
    # two random texts share about a sixth of their words
    text = (
        f"{_pick(NAMES, j, 1)} || ', ' || age || ', ' || {_pick(ADJECTIVES, j, 2)} || ' ' || occupation"
        f" || ' in ' || country || ': follows ' || {_pick(INTERESTS, j, 3)} || ', ' || {_pick(INTERESTS, j, 4)}"
        f" || ', ' || {_pick(INTERESTS, j, 5)} || '; weekends ' || {_pick(HOBBIES, j, 6)}"
        f" || '; hopes to ' || {_pick(GOALS, j, 7)} || '.'"
    )
    return f"""
        SELECT 'fp-' || r AS id,
               {text} || CASE WHEN r % 100 = 98 THEN ' Really.' ELSE '' END AS persona,
               age, occupation, country, [{_pick(HOBBIES, j, 8)}, {_pick(HOBBIES, j, 9)}] AS hobbies,
               CASE WHEN j % 7 = 0 THEN 'None' ELSE city_name END AS city
        FROM (
            SELECT r, j, 18 + (((j + 10) * 2654435761) % 4294967291 % 68)::BIGINT AS age,
                   {_pick(OCCUPATIONS, "j", 11)} AS occupation, {_pick(COUNTRIES, "j", 12)} AS country,
                   'City ' || (j % 9973) AS city_name
            FROM (SELECT r, CASE r % 100 WHEN 98 THEN r - 1 WHEN 99 THEN r - 2 ELSE r END AS j
                  FROM range({int(start)}, {int(start) + int(count)}) AS t(r))
        )  -- in the order of r: DuckDB keeps a range's order, and sorting would hold every record
    """


def write(path: str | Path, count: int, start: int = 0) -> None:
    """Write `count` records to `path` (.jsonl or .parquet), through a temporary name."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    options = "(FORMAT json)" if path.suffix == ".jsonl" else "(FORMAT parquet)"
    with duckdb.connect() as con:
        con.execute("SET enable_progress_bar = false")
        con.execute(f"COPY ({records_sql(count, start)}) TO '{tmp}' {options}")
    tmp.rename(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("count", type=int)
    parser.add_argument("path", type=Path)
    parser.add_argument("--start", type=int, default=0, help="number of the first record")
    args = parser.parse_args()
    write(args.path, args.count, args.start)


if __name__ == "__main__":
    main()
