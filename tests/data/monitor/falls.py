"""How far each recording's intra-class diversity and recall fall below their best so far (the numbers behind the
decline thresholds in train/collapse.py).  Run: .venv/bin/python tests/data/monitor/falls.py"""

import json
from pathlib import Path

from ctrlgen.train.collapse import DECLINE_CHECKS as K
from ctrlgen.train.collapse import DECLINE_WARMUP as W
from ctrlgen.train.collapse import RECALL_MIN_PEAK


def falls(values: list[float], min_peak: float) -> tuple[float, float]:
    """(largest fall of one check below the best so far, largest fall held by K checks in a row), as shares."""
    one = max([1 - values[i] / b for i in range(W + 1, len(values)) if (b := max(values[W:i])) >= min_peak and b > 0], default=0.0)
    held = max([min(1 - x / b for x in values[i - K : i]) for i in range(W + K + 1, len(values) + 1)
                if (b := max(values[W : i - K])) >= min_peak and b > 0], default=0.0)
    return one, held


for path in sorted(Path(__file__).parent.glob("*.jsonl")):
    checks = [r for s in path.read_text().splitlines() if s.startswith("{") and (r := json.loads(s)).get("event") == "monitor"]
    cols = []
    for key, peak in (("intra_diversity", 0.0), ("recall", RECALL_MIN_PEAK)):
        one, held = falls([c[key] for c in checks], peak)
        cols.append(f"{key}: one check {one:6.1%}, {K} in a row {held:6.1%}")
    print(f"{path.name:44s} " + " | ".join(cols))
