"""Issue 14, item 8: the benchmark's memory phase fills its identities through
the new-identity limit (retrying 429s like an SDK) instead of crashing on it."""

import os

from benchmarks import agent_bench
from tests.agent.conftest import Setup, StartAgent


def test_the_benchmark_fills_identities_through_the_rate_limit(
    setup: Setup, start_agent: StartAgent
) -> None:
    setup.associate("api", "bench")
    # Given an agent whose new-identity limit the fill is bound to meet
    agent = start_agent(new_identities_per_second=40, new_identity_burst=5)
    # When the benchmark's memory phase fills 60 identities
    agent_bench.memory(os.getpid(), agent.ports[0], agent.ports[-1], setup.identity, 60)
    # Then all of them are cached, and the limit did bite on the way
    assert len(agent.cache) == 60
    assert agent.cache.stats.rate_limited > 0
