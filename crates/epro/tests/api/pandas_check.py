"""Reads epro exports back with pandas and prints what it found as JSON.

Usage: pandas_check.py EXPORT.csv EXPORT.ndjson EXPORT.fhir.ndjson

The Rust test `export_reads_back_in_pandas` runs this script and checks the
report: row counts, column dtypes, text with Chinese characters and emoji,
decimal precision and UTC timestamps.
"""

import json
import sys

import pandas as pd


def utc_report(series):
    parsed = pd.to_datetime(series, utc=True)
    return {"completed_at": parsed.iloc[0].isoformat(), "completed_at_tz": str(parsed.dt.tz)}


def main(csv_path, ndjson_path, fhir_path):
    report = {}

    # utf-8-sig drops the byte-order mark that bom=true writes.
    frame = pd.read_csv(csv_path, encoding="utf-8-sig")
    report["csv"] = {
        "rows": len(frame),
        "change_dtype": str(frame["change"].dtype),
        "changes": sorted(int(value) for value in frame["change"]),
        "weight_dtype": str(frame["weight"].dtype),
        "weight": float(frame["weight"].iloc[0]),
        "note": frame["note"].iloc[0],
        **utc_report(frame["completedAt"]),
    }

    lines = pd.read_json(ndjson_path, lines=True, dtype=False)
    answers = pd.json_normalize(lines["answers"].tolist())
    report["ndjson"] = {
        "rows": len(lines),
        "change_dtype": str(answers["change"].dtype),
        "note": answers["note"].iloc[0],
        **utc_report(lines["completedAt"]),
    }

    resources = pd.read_json(fhir_path, lines=True, dtype=False)
    report["fhir"] = {
        "rows": len(resources),
        "resource_types": sorted(set(resources["resourceType"])),
    }

    json.dump(report, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main(*sys.argv[1:4])
