"""OVH catalog mappings and the retry policy."""

from reproducer import catalog
from reproducer.sources.ovh import RetryPolicy


def test_advanced_parameters_map_to_valkey_directives():
    assert catalog.to_valkey("redis_notify_keyspace_events", "Ex") == ("notify-keyspace-events", "Ex")
    assert catalog.to_valkey("valkey_timeout", "30") == ("timeout", "30")
    assert catalog.to_valkey("redis_persistence", "off") == ("save", "")
    assert catalog.to_valkey("redis_persistence", "rdb") == ("save", catalog.RDB_SAVE_SCHEDULE)
    assert catalog.to_valkey("redis_pubsub_client_output_buffer_limit", "64") == (
        "client-output-buffer-limit",
        "pubsub 64mb 64mb 60",
    )
    assert catalog.to_valkey("redis_ssl", "true") is None
    assert catalog.to_valkey("nonsense", "1") is None


def test_retry_after_wins_and_is_capped():
    policy = RetryPolicy(base_delay=0.5, max_delay=10)
    assert policy.delay(0, "3") == 3
    assert policy.delay(0, "999") == 10
    assert [policy.delay(n, None) for n in range(4)] == [0.5, 1, 2, 4]
    assert policy.delay(10, None) == 10
    assert policy.delay(1, "soon") == 1
