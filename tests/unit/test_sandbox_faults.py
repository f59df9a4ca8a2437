"""The emulation's fault injector: a fault belongs to the calls that arrive after
it was injected, so a call of an earlier test still sleeping out its delay cannot
take the next test's fault."""

from __future__ import annotations

import threading

import pytest

from sandbox.eks_emulation import faults as faults_module
from sandbox.eks_emulation.errors import EmulatedError
from sandbox.eks_emulation.faults import FaultInjector


class HeldSleep:
    """Stands in for time.sleep: says when a call is sleeping, wakes it on demand."""

    def __init__(self) -> None:
        self.sleeping = threading.Event()
        self.wake = threading.Event()

    def sleep(self, _seconds: float) -> None:
        self.sleeping.set()
        self.wake.wait(5)


def test_a_call_sleeping_out_its_delay_does_not_take_a_fault_injected_after_it_arrived(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    held = HeldSleep()
    monkeypatch.setattr(faults_module, "time", held)
    faults = FaultInjector()
    faults.slow_down("AssumeRoleForPodIdentity", 4.0)
    outcome: list[str] = []

    def call() -> None:
        try:
            faults.check("AssumeRoleForPodIdentity")
            outcome.append("answered")
        except EmulatedError as error:
            outcome.append(f"failed with {error.code}")

    # Given a slowed call still sleeping when its test ends
    late = threading.Thread(target=call)
    late.start()
    assert held.sleeping.wait(5)
    # When the next test clears the faults and injects its own
    faults.clear()
    faults.inject("AssumeRoleForPodIdentity", "ThrottlingException", status=429)
    held.wake.set()
    late.join(5)
    # Then the late call is answered as it was when it arrived, and the fault waits
    # for the next test's own call
    assert outcome == ["answered"]
    with pytest.raises(EmulatedError):
        faults.check("AssumeRoleForPodIdentity")
    assert faults.fired == {"AssumeRoleForPodIdentity": 1}
