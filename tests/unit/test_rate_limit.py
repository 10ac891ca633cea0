from reproducer.data.copy import RateLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_keys_per_second_limit_sleeps_the_difference():
    clock = FakeClock()
    limiter = RateLimiter(1000, None, clock=clock, sleep=clock.sleep)
    limiter.wait(500, 0)
    assert clock.slept == [0.5]
    clock.now += 1.0
    limiter.wait(1000, 0)
    assert clock.slept == [0.5]


def test_the_stricter_limit_wins():
    clock = FakeClock()
    limiter = RateLimiter(10_000, 1_000_000, clock=clock, sleep=clock.sleep)
    limiter.wait(100, 2_000_000)
    assert clock.slept == [2.0]


def test_no_limit_never_sleeps():
    clock = FakeClock()
    RateLimiter(None, None, clock=clock, sleep=clock.sleep).wait(10**9, 10**12)
    assert clock.slept == []


def test_counters_gone_back_after_a_restart_are_paced_not_burst():
    """A copy that starts a node again (a new snapshot, a rewound scan) reads its keys again at the rate."""
    clock = FakeClock()
    limiter = RateLimiter(1000, None, clock=clock, sleep=clock.sleep)
    limiter.wait(2000, 0)  # two seconds of keys: on time after sleeping two seconds
    limiter.restart(0, 0)  # the counters went back to zero
    limiter.wait(500, 0)
    assert clock.slept == [2.0, 0.5]
