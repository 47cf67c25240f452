"""Shareable checks run in one interpreter; what it cannot state exactly is run again, each check alone."""
import sys

from envcheck import together
from envcheck.isolated import CRASHED, FAILED, OK, TIMED_OUT, Check

PID = "import os; print('pid', os.getpid())"


def shared(name: str, code: str, timeout: float = 30.0) -> Check:
    return Check(name, code, timeout, shareable=True)


def run(checks: list[Check], jobs: int = 2):
    return together.run_all(checks, sys.executable, jobs=jobs)


def pid(verdict) -> str:
    return verdict.detail.split()[-1]


def test_results_keep_the_order_of_the_checks():
    checks = [Check(str(i), f"print({i})", shareable=i % 2 == 0) for i in range(7)]
    assert [v.detail for v in run(checks)] == [str(i) for i in range(7)]
    assert [v.name for v in run(checks, jobs=1)] == [str(i) for i in range(7)]


def test_shareable_checks_share_one_interpreter_and_the_others_run_alone():
    verdicts = run([shared("a", PID), shared("b", "import sys; print('second'); " + PID), Check("c", PID),
                    shared("d", PID), Check("e", PID)])
    assert all(v.status == OK for v in verdicts)
    a, b, c, d, e = map(pid, verdicts)
    assert a == b == d and len({a, c, e}) == 3
    assert verdicts[1].output.splitlines()[0] == "second"  # each check's own output, whole


def test_what_native_code_writes_to_stdout_does_not_disturb_the_records():
    code = "import os; os.write(1, b'{not json\\n'); print('mine')"
    verdicts = run([shared("noisy", code), shared("next", PID)])
    assert [(v.status, v.detail) for v in verdicts][0] == (OK, "mine")
    assert verdicts[1].status == OK


def test_an_exit_with_status_zero_is_ok_and_the_run_goes_on():
    verdicts = run([shared("a", PID), shared("exits", "import sys; print('done'); sys.exit(0)"), shared("c", PID)])
    assert [v.status for v in verdicts] == [OK, OK, OK] and verdicts[1].detail == "done"
    assert pid(verdicts[0]) == pid(verdicts[2])


def test_each_check_starts_from_globals_of_its_own():
    verdicts = run([shared("sets", "secret = 1; print('set')"), shared("reads", "print(secret)")])
    assert (verdicts[1].status, verdicts[1].detail) == (FAILED, "NameError: name 'secret' is not defined")


def test_a_crash_is_named_by_the_check_run_alone_and_the_rest_run_alone_too():
    crash = "import os, signal; os.kill(os.getpid(), signal.SIGILL)"
    verdicts = run([shared("before", PID), shared("crashes", crash), shared("after", PID), shared("last", PID)])
    assert [v.status for v in verdicts] == [OK, CRASHED, OK, OK]
    assert verdicts[1].signal == "SIGILL" and "an instruction this CPU lacks" in verdicts[1].detail
    assert len({pid(verdicts[0]), pid(verdicts[2]), pid(verdicts[3])}) == 3  # after the crash, each alone


def test_an_exception_is_reported_as_a_check_alone_reports_it():
    verdicts = run([shared("a", PID), shared("fails", "raise ImportError('libfoo.so: cannot open')"),
                    shared("exits", "raise SystemExit('no CUDA device')"), shared("d", PID)])
    assert [(v.status, v.detail) for v in verdicts[1:3]] == [
        (FAILED, "ImportError: libfoo.so: cannot open"), (FAILED, "no CUDA device")]
    assert verdicts[0].status == verdicts[3].status == OK


def test_a_check_that_fails_only_beside_another_is_not_reported_failed():
    # The first leaves a mark in a shared module; the second crashes where it finds it, as a check that depends on
    # another's leftovers would. Alone it passes, and alone is the verdict that counts.
    marks = "import json; json._ttsrig_mark = True; print('marked')"
    trips = ("import json, os, signal\n"
             "if getattr(json, '_ttsrig_mark', False): os.kill(os.getpid(), signal.SIGSEGV)\n"
             "print('clean')")
    verdicts = run([shared("marks", marks), shared("trips", trips)])
    assert [(v.status, v.detail) for v in verdicts] == [(OK, "marked"), (OK, "clean")]


def test_a_hang_in_the_shared_interpreter_times_out_on_its_own_limit_and_the_rest_still_run():
    verdicts = run([shared("a", PID), shared("hangs", "import time; time.sleep(60)", timeout=2), shared("c", PID)])
    assert [v.status for v in verdicts] == [OK, TIMED_OUT, OK]
    assert verdicts[1].detail == "no answer within 2 s" and 2 <= verdicts[1].seconds < 30
    assert pid(verdicts[0]) != pid(verdicts[2])


def test_a_shared_interpreter_that_cannot_start_leaves_every_check_to_run_alone(tmp_path):
    missing = str(tmp_path / "no-python")
    assert together.run_together([shared("a", PID), shared("b", PID)], missing) == [None, None]
    verdicts = together.run_all([shared("a", PID), shared("b", PID)], missing)
    assert [v.status for v in verdicts] == [FAILED, FAILED] and "cannot run" in verdicts[0].detail
