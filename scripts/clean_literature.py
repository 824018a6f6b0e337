"""Rebuild shrink/report/data/literature.csv from the survey's raw results.csv.

Usage: python scripts/clean_literature.py ../shared/literature/results.csv
"""

import sys
from pathlib import Path

import pandas as pd

from shrink.report.literature import clean_results

DESTINATION = Path(__file__).resolve().parents[1] / "shrink" / "report" / "data" / "literature.csv"

if __name__ == "__main__":
    raw = pd.read_csv(sys.argv[1], encoding="utf-8-sig")
    clean = clean_results(raw)
    clean.to_csv(DESTINATION, index=False)
    print(f"{len(clean)} of {len(raw)} rows -> {DESTINATION}")
