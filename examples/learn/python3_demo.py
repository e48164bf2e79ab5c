"""Small program used to learn profiles/learned/python3.toml (see profiles/README.md).

Reads stdin. First line "json": parse the rest as JSON and print a summary;
"words": count words and print the top ones; anything else: exit 2 with a
message on stderr. Exercises what typical judge/teaching scripts use: the
standard library's text, collections, json, re, math, hashlib, datetime.
"""

import collections
import datetime
import hashlib
import json
import math
import re
import sys


def words(text: str) -> None:
    counts = collections.Counter(re.findall(r"[a-z']+", text.lower()))
    for word, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:5]:
        print(f"{word} {n}")
    print("distinct", len(counts), "entropy", round(entropy(counts), 3))


def entropy(counts: collections.Counter[str]) -> float:
    total = sum(counts.values())
    return -sum(n / total * math.log2(n / total) for n in counts.values())


def summary(text: str) -> None:
    data = json.loads(text)
    digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
    day = datetime.date.fromisoformat(data.get("date", "2024-01-01"))
    print(json.dumps({"keys": sorted(data), "sha256": digest[:16], "weekday": day.strftime("%A")}))


def main() -> int:
    mode, _, rest = sys.stdin.read().partition("\n")
    if mode == "words":
        words(rest)
    elif mode == "json":
        summary(rest)
    else:
        print(f"unknown mode {mode!r}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
