"""The outcome rules (SPEC §3.3): how a job ended -> the one change to record."""

from __future__ import annotations

import pytest

from minion_daemon.model import ExitReason
from minion_daemon.outcome import NOTHING, Ending, Handed, Verdict, verdict

KILLED = ExitReason(0, 9)
TIMED_OUT = "Job timed out after 0.5 seconds"
FINAL = Handed("error", "never", final=True)


@pytest.mark.parametrize(
    ("ending", "expected"),
    [
        (Ending(handed=Handed("result", {"a": 1})), Verdict("finish", {"a": 1})),
        (Ending(handed=Handed("error", "boom")), Verdict("fail", "boom")),
        (Ending(handed=FINAL), Verdict("fail", "never", retry=False)),
        (Ending(handed=FINAL, exit=KILLED), Verdict("fail", "never", retry=False)),
        (Ending(recorded=True, exit=KILLED), NOTHING),
        (Ending(timed_out_after=0.5, exit=KILLED), Verdict("fail", TIMED_OUT)),
        (Ending(exit=KILLED), Verdict("fail", f"Job terminated unexpectedly ({KILLED})")),
        (Ending(exit=ExitReason(0, 0)), Verdict("finish", None)),
        (Ending(), Verdict("finish", None)),
    ],
)
def test_verdicts(ending: Ending, expected: Verdict) -> None:
    assert verdict(ending) == expected


def test_only_an_error_made_final_by_its_policy_fails_without_retry() -> None:
    assert verdict(Ending(handed=Handed("error", "x", final=True))).retry is False
    assert verdict(Ending(timed_out_after=1, exit=KILLED)).retry is True
