from reproducer.data.dumpfmt import crc64, rdb_version, with_version


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
