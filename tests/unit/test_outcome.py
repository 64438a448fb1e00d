"""The outcome rules (SPEC §3.3) as one table: how a job ended -> what its worker records."""

from __future__ import annotations

import pytest

from minion_daemon.model import ExitReason
from minion_daemon.outcome import Ending, Handed, Verdict, verdict

CLEAN = ExitReason(0, 0)
KILLED = ExitReason(0, 9)
EXITED_3 = ExitReason(3, 0)

TABLE = [
    # (what happened, ending, verdict)
    ("returned a value", Ending(Handed("result", {"n": 1}), exit=CLEAN),
     Verdict("finish", {"n": 1})),
    ("returned None, inline", Ending(Handed("result", None)), Verdict("finish", None)),
    ("raised, inline", Ending(Handed("error", "boom")), Verdict("fail", "boom")),
    ("handed a result, then killed", Ending(Handed("result", 2), exit=KILLED),
     Verdict("finish", 2)),
    ("handed an error, then timed out",
     Ending(Handed("error", "boom"), timed_out_after=2, exit=KILLED), Verdict("fail", "boom")),
    ("recorded by the task itself", Ending(recorded=True, exit=CLEAN), Verdict("nothing")),
    ("recorded, then killed", Ending(recorded=True, exit=KILLED), Verdict("nothing")),
    ("timed out in its process", Ending(timed_out_after=2.5, exit=KILLED),
     Verdict("fail", "Job timed out after 2.5 seconds")),
    ("timed out inline", Ending(timed_out_after=3),
     Verdict("fail", "Job timed out after 3 seconds")),
    ("killed by a signal", Ending(exit=KILLED),
     Verdict("fail", "Job terminated unexpectedly (exit code: 0, signal: 9)")),
    ("exited non-zero", Ending(exit=EXITED_3),
     Verdict("fail", "Job terminated unexpectedly (exit code: 3, signal: 0)")),
    ("exited cleanly, nothing handed over", Ending(exit=CLEAN), Verdict("finish", None)),
    ("raised what its retry policy makes final", Ending(Handed("error", "no", final=True)),
     Verdict("fail", "no", retry=False)),
    ("raised a final error, then killed", Ending(Handed("error", "no", final=True), exit=KILLED),
     Verdict("fail", "no", retry=False)),
]  # fmt: skip


@pytest.mark.parametrize(("ending", "expected"), [row[1:] for row in TABLE],
                         ids=[row[0] for row in TABLE])  # fmt: skip
def test_each_ending_has_one_verdict(ending: Ending, expected: Verdict) -> None:
    assert verdict(ending) == expected


def test_only_an_error_made_final_by_its_policy_fails_without_retry() -> None:
    assert verdict(Ending(Handed("error", "x", final=True))).retry is False
    assert verdict(Ending(timed_out_after=1, exit=KILLED)).retry is True
    assert verdict(Ending(exit=KILLED)).retry is True
