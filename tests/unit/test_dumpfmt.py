from reproducer.data.dumpfmt import crc64, downgrade, rdb_version, restamp, version_of_server, with_version


def test_crc64_jones_check_value():
    assert crc64(b"123456789") == 0xE9C6D914C4B8D9CA


def test_with_version_restamps_and_keeps_a_valid_checksum():
    body = b"\x00\x03abc" + b"\x0b\x00"
    payload = body + crc64(body).to_bytes(8, "little")
    assert rdb_version(payload) == 11
    patched = with_version(payload, 12)
    assert rdb_version(patched) == 12
    assert crc64(patched[:-8]).to_bytes(8, "little") == patched[-8:]
    assert patched[:-10] == payload[:-10]


def test_crc64_can_be_computed_in_chunks():
    data = bytes(range(256)) * 37
    crc = 0
    for start in range(0, len(data), 1000):
        crc = crc64(data[start : start + 1000], crc)
    assert crc == crc64(data)


def payload(kind: int, version: int, value: bytes = b"\x03abc") -> bytes:
    body = bytes([kind]) + value + version.to_bytes(2, "little")
    return body + crc64(body).to_bytes(8, "little")


def test_restamp_agrees_with_a_full_crc_recomputation():
    import random

    rng = random.Random(3)
    for _ in range(200):
        original = payload(rng.randrange(22), rng.choice([9, 10, 11, 12, 80]), rng.randbytes(rng.randrange(0, 300)))
        for version in (6, 9, 10, 11, 12, 80, 0xFFFF):
            assert restamp(original, version) == with_version(original, version)


def test_restamp_keeps_a_wrong_crc_wrong():
    broken = bytearray(payload(0, 11))
    broken[1] ^= 0x40  # the value changed after the CRC was taken
    patched = restamp(bytes(broken), 10)
    assert crc64(patched[:-8]).to_bytes(8, "little") != patched[-8:]


def test_downgrade_restamps_only_types_the_older_version_knows():
    for kind in range(20):  # strings ... stream listpacks 2: all known to RDB 10
        converted = downgrade(payload(kind, 11), 10)
        assert converted is not None and rdb_version(converted) == 10 and converted[:-10] == payload(kind, 11)[:-10]
    for kind in (20, 21, 22, 200):  # listpack sets, stream listpacks 3, Valkey 9's HASH_2, garbage
        assert downgrade(payload(kind, 11), 10) is None
    assert downgrade(payload(16, 10), 9) is None and downgrade(payload(15, 10), 9) is not None


def test_downgrade_never_converts_newer_or_unknown_stamps_and_keeps_what_the_target_takes():
    same = payload(20, 11)
    assert downgrade(same, 11) is same and downgrade(same, 80) is same and downgrade(same, None) is same
    for stamp in (12, 13, 80, 81, 0xFFFF):  # Redis 7.4+ and Valkey 9 encodings are not assumed compatible
        assert downgrade(payload(0, stamp), 11) is None and downgrade(payload(0, stamp), 10) is None
    assert downgrade(payload(0, 11), 8) is None  # no table for RDB 8: rebuild


def test_version_of_server_from_info_text():
    assert version_of_server(b"# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\n") == 10
    assert version_of_server(b"redis_version:7.2.4\r\nserver_name:valkey\r\nvalkey_version:8.0.1\r\n") == 11
    assert version_of_server(b"redis_version:7.2.4\r\nserver_name:valkey\r\n") == 11  # Valkey 7.2
    assert version_of_server(b"redis_version:7.2.4\r\nvalkey_version:9.0.0\r\n") == 80
    assert version_of_server(b"redis_version:6.2.14\r\n") == 9
    assert version_of_server(b"redis_version:8.2.1\r\n") == 12
    for hostile in (
        b"",
        b"redis_version:\r\n",
        b"redis_version:7\r\n",
        b"redis_version:4.0.14\r\n",
        b"redis_version:99999999999999999999.0\r\n",
        b"redis_version:7.0.15; rm -rf /\r\n",
        b"x_redis_version:7.0.15\r\n",
        b"redis_version:8.6.0\r\n",
        b"valkey_version:banana\r\n",
        b"\xff\xfe\x00redis_version:7.0.0",
    ):
        assert version_of_server(hostile) is None, hostile
