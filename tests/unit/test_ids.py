from __future__ import annotations

import re
import time

from wafile.ids import new_id


def test_ids_are_url_safe_unique_and_time_ordered() -> None:
    first = new_id("acc")
    time.sleep(0.002)
    ids = [new_id("acc") for _ in range(1000)]
    assert all(re.fullmatch(r"acc_[0-9a-hjkmnp-tv-z]{26}", i) for i in ids)
    assert len(set(ids)) == len(ids)
    assert all(first < i for i in ids)
