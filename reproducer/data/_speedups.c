/* The copy's per-key hot paths in C, each the twin of a Python function that stays the reference (a build
 * without a C compiler runs those); tests/unit/test_speedups.py compares each pair on random, cut and corrupted
 * input.
 *
 * small_run, the snapshot reader's common case (snapshot._small_run): up to `most` keys in a row from the
 * buffer, each [expiry] a short value (one string of a length of one or two bytes, or a list of one listpack) or
 * a stream whose bytes the buffer holds (which the Python reader reads on its general path, to the same entry),
 * passing over a cluster node's slot notes between keys (an opcode of three lengths, or, from Valkey 8.0, an
 * auxiliary field "slot-info": any auxiliary field whose name and value are each a length and its bytes).
 * It returns (entries, position after them, bytes their values take, need) and stops, reading nothing more, at
 * the first key it cannot take whole: the Python reader takes over there, or, when `need` is not 0 (the key is one
 * it takes, cut by the buffer's end), reads until `need` bytes lie past the position and calls it again. Every
 * index into the buffer is checked against its end before it is read.
 *
 * snapshot_items (copy._python_snapshot_items), writes (copy._python_writes) and route (copy._python_by_node): a
 * batch's items, their SET or RESTORE commands, and the primary each goes to in a cluster; describe
 * (verify._python_describe): what a group's replies say of each key.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>

#define EXPIRETIME_MS 0xFC
#define SLOT_INFO 0xF4
#define AUX 0xFA
#define LIST_QUICKLIST_2 18

/* CRC-64/Jones as Valkey computes it (reflected, no final xor), eight bytes a step ("slicing by 8"). */
static uint64_t crc_table[8][256];

static void crc_init(void) {
    const uint64_t poly = 0x95AC9329AC4BC9B5ULL;
    for (int byte = 0; byte < 256; byte++) {
        uint64_t crc = (uint64_t)byte;
        for (int bit = 0; bit < 8; bit++) crc = (crc & 1) ? (crc >> 1) ^ poly : crc >> 1;
        crc_table[0][byte] = crc;
    }
    for (int byte = 0; byte < 256; byte++)
        for (int k = 1; k < 8; k++)
            crc_table[k][byte] = (crc_table[k - 1][byte] >> 8) ^ crc_table[0][crc_table[k - 1][byte] & 0xFF];
}

/* Eight bytes as a little-endian number, in one load. */
static uint64_t load_le64(const unsigned char *data) {
    uint64_t word;
    memcpy(&word, data, sizeof word);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    word = __builtin_bswap64(word);
#endif
    return word;
}

static uint64_t crc64(uint64_t crc, const unsigned char *data, Py_ssize_t size) {
    Py_ssize_t i = 0;
    for (; i + 8 <= size; i += 8) {
        crc ^= load_le64(data + i);
        crc = crc_table[7][crc & 0xFF] ^ crc_table[6][(crc >> 8) & 0xFF] ^ crc_table[5][(crc >> 16) & 0xFF] ^
              crc_table[4][(crc >> 24) & 0xFF] ^ crc_table[3][(crc >> 32) & 0xFF] ^
              crc_table[2][(crc >> 40) & 0xFF] ^ crc_table[1][(crc >> 48) & 0xFF] ^ crc_table[0][crc >> 56];
    }
    for (; i < size; i++) crc = crc_table[0][(crc ^ data[i]) & 0xFF] ^ (crc >> 8);
    return crc;
}

/* Object types _small_run reads: one string (0, 9-13, 16, 17, 20) or a quicklist 2 (18); this reader also takes
 * streams (15, 19, 21), which the Python reader reads on its general path. */
static int small_kind(unsigned int kind) {
    return kind == 0 || (kind >= 9 && kind <= 13) || kind == 16 || kind == 17 || kind == 18 || kind == 20;
}

static int stream_kind(unsigned int kind) { return kind == 15 || kind == 19 || kind == 21; }

/* A bounded cursor over the buffer: any read past its end, or anything the Python reader would refuse (a special
 * encoding where a length is expected), clears `ok`, and the key is left to the Python reader, which reads more
 * of the stream or raises. (Its fixed-size fields are never over the limit: the value they are in is not.) */
typedef struct {
    const unsigned char *buf;
    Py_ssize_t at, end;
    int ok;
} cursor_t;

static int cursor_has(cursor_t *c, Py_ssize_t count) {
    if (c->ok && c->end - c->at >= count) return 1;
    c->ok = 0;
    return 0;
}

static void cursor_skip(cursor_t *c, unsigned long long count) {
    if (c->ok && count <= (unsigned long long)(c->end - c->at))
        c->at += (Py_ssize_t)count;
    else
        c->ok = 0;
}

/* An RDB length: 6, 14, 32 or 64 bits (snapshot._Reader.length). */
static unsigned long long cursor_length(cursor_t *c) {
    if (!cursor_has(c, 1)) return 0;
    unsigned int first = c->buf[c->at];
    Py_ssize_t width = first < 0x40 ? 1 : first < 0x80 ? 2 : first == 0x80 ? 5 : first == 0x81 ? 9 : 0;
    if (width == 0 || !cursor_has(c, width)) {
        c->ok = 0;
        return 0;
    }
    unsigned long long value = width == 1 ? first : width == 2 ? first & 0x3F : 0;
    for (Py_ssize_t i = 1; i < width; i++) value = (value << 8) | c->buf[c->at + i];
    c->at += width;
    return value;
}

/* One RDB string, whatever its encoding (snapshot._Reader.skip_string). */
static void cursor_skip_string(cursor_t *c) {
    if (!cursor_has(c, 1)) return;
    unsigned int first = c->buf[c->at];
    if (first < 0xC0) {
        unsigned long long size = cursor_length(c);
        cursor_skip(c, size);
        return;
    }
    c->at += 1;
    unsigned int special = first & 0x3F;
    if (special == 3) { /* LZF: compressed length, plain length, compressed bytes */
        unsigned long long compressed = cursor_length(c);
        cursor_length(c);
        cursor_skip(c, compressed);
    } else if (special <= 2) {
        cursor_skip(c, special == 0 ? 1 : special == 1 ? 2 : 4);
    } else {
        c->ok = 0;
    }
}

/* A stream's value (snapshot._skip_stream): every loop reads a byte or more, or stops the cursor. */
static void cursor_skip_stream(cursor_t *c, unsigned int kind) {
    unsigned long long listpacks = cursor_length(c);
    for (unsigned long long i = 0; i < listpacks && c->ok; i++) {
        cursor_skip_string(c); /* master id */
        cursor_skip_string(c); /* listpack */
    }
    for (int i = 0; i < 3 + (kind >= 19 ? 5 : 0); i++) cursor_length(c); /* items, last id[, first, max deleted, added] */
    unsigned long long groups = cursor_length(c);
    for (unsigned long long g = 0; g < groups && c->ok; g++) {
        cursor_skip_string(c);
        for (int i = 0; i < (kind >= 19 ? 3 : 2); i++) cursor_length(c); /* last id[, entries read] */
        unsigned long long pending = cursor_length(c);
        for (unsigned long long p = 0; p < pending && c->ok; p++) {
            cursor_skip(c, 24); /* id, delivery time */
            cursor_length(c);   /* delivery count */
        }
        unsigned long long consumers = cursor_length(c);
        for (unsigned long long k = 0; k < consumers && c->ok; k++) {
            cursor_skip_string(c);
            cursor_skip(c, kind >= 21 ? 16 : 8); /* seen time[, active time] */
            unsigned long long ids = cursor_length(c);
            for (unsigned long long n = 0; n < ids && c->ok; n++) cursor_skip(c, 16);
        }
    }
}

static PyObject *new_entry(PyTypeObject *entry_type, PyObject *db, PyObject *key, long long expire,
                           PyObject *payload, Py_ssize_t size) {
    PyObject *expire_obj = PyLong_FromLongLong(expire);
    PyObject *size_obj = PyLong_FromSsize_t(size);
    PyObject *entry = expire_obj && size_obj ? entry_type->tp_alloc(entry_type, 5) : NULL;
    if (entry == NULL) {
        Py_XDECREF(expire_obj);
        Py_XDECREF(size_obj);
        return NULL;
    }
    Py_INCREF(db);
    Py_INCREF(key);
    Py_INCREF(payload);
    PyTuple_SET_ITEM(entry, 0, db);
    PyTuple_SET_ITEM(entry, 1, key);
    PyTuple_SET_ITEM(entry, 2, expire_obj);
    PyTuple_SET_ITEM(entry, 3, payload);
    PyTuple_SET_ITEM(entry, 4, size_obj);
    return entry;
}

/* A Plain (a subclass of bytes) holding a copy of `data`, built as CPython's bytes_subtype_new builds one. */
static PyObject *new_plain(PyTypeObject *plain_type, const char *data, Py_ssize_t size) {
    PyObject *plain = plain_type->tp_alloc(plain_type, size);
    if (plain == NULL) return NULL;
    memcpy(PyBytes_AS_STRING(plain), data, (size_t)size);
    PyBytes_AS_STRING(plain)[size] = '\0';
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif
    ((PyBytesObject *)plain)->ob_shash = -1; /* not hashed yet */
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
    return plain;
}

static PyObject *payload_of(unsigned int kind, const unsigned char *value, Py_ssize_t length, PyObject *stamp) {
    Py_ssize_t total = 1 + length + 2 + 8;
    PyObject *payload = PyBytes_FromStringAndSize(NULL, total);
    if (payload == NULL) return NULL;
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(payload);
    out[0] = (unsigned char)kind;
    memcpy(out + 1, value, (size_t)length);
    memcpy(out + 1 + length, PyBytes_AS_STRING(stamp), 2);
    uint64_t crc = crc64(0, out, 1 + length + 2);
    for (int i = 0; i < 8; i++) out[1 + length + 2 + i] = (unsigned char)(crc >> (8 * i));
    return payload;
}

static PyObject *small_run(PyObject *Py_UNUSED(module), PyObject *args) {
    Py_buffer view;
    Py_ssize_t pos, limit, most;
    long long expire;
    PyObject *db, *stamps, *plain_type;
    PyTypeObject *entry_type;
    if (!PyArg_ParseTuple(args, "y*nOLO!nnO!O", &view, &pos, &db, &expire, &PyTuple_Type, &stamps, &limit, &most,
                          &PyType_Type, &entry_type, &plain_type))
        return NULL;
    const unsigned char *buf = (const unsigned char *)view.buf;
    Py_ssize_t end = view.len;
    PyObject *run = PyList_New(0);
    Py_ssize_t taken = 0, need = 0;
    if (run == NULL) goto fail;
    if (PyTuple_GET_SIZE(stamps) < 256 || pos < 0 || pos > end || !PyType_IsSubtype(entry_type, &PyTuple_Type) ||
        entry_type->tp_basicsize != PyTuple_Type.tp_basicsize || !PyType_Check(plain_type) ||
        !PyType_IsSubtype((PyTypeObject *)plain_type, &PyBytes_Type)) {
        PyErr_SetString(PyExc_ValueError, "small_run(buffer, position, db, expiry, 256 stamps, limit, most, "
                                          "a NamedTuple of 5 fields, Plain)");
        goto fail;
    }
    while (end - pos >= 16 && PyList_GET_SIZE(run) < most) {
        Py_ssize_t head = pos;
        unsigned int kind = buf[head];
        if (kind == SLOT_INFO || kind == AUX) { /* a cluster node's note before each slot's keys: skipped here */
            cursor_t cursor = {buf, head + 1, end, 1};
            if (kind == SLOT_INFO)
                for (int i = 0; i < 3; i++) cursor_length(&cursor);
            else
                for (int i = 0; i < 2; i++) cursor_skip(&cursor, cursor_length(&cursor));
            if (!cursor.ok) break;
            pos = cursor.at;
            continue;
        }
        if (kind == EXPIRETIME_MS) {
            int64_t when = (int64_t)load_le64(buf + head + 1);
            expire = when > 0 ? when : 0;
            head += 9;
            kind = head < end ? buf[head] : 0xFF;
        }
        head += 1;
        if (!(small_kind(kind) || stream_kind(kind)) || head + 3 > end || buf[head] >= 0x40 || buf[head] > limit) break;
        Py_ssize_t value = head + 1 + buf[head];
        Py_ssize_t blob = value;
        unsigned int first = 0xFF;
        Py_ssize_t stop;
        if (stream_kind(kind)) { /* the Python reader's general path reads these; the same entry comes out */
            if (value > end) break;
            cursor_t cursor = {buf, value, end, 1};
            cursor_skip_stream(&cursor, kind);
            if (!cursor.ok) break;
            stop = cursor.at;
        } else {
            if (kind == LIST_QUICKLIST_2) {
                if (value + 4 > end || buf[value] != 1 || buf[value + 1] != 2) break;
                blob += 2;
            }
            first = blob + 2 <= end ? buf[blob] : 0xFF;
            if (first < 0x40)
                stop = blob + 1 + first;
            else if (first < 0x80)
                stop = blob + 2 + (((first & 0x3F) << 8) | buf[blob + 1]);
            else
                break;
        }
        if (stop - value > limit) break;
        if (stop > end) { /* whole but for the buffer's end: the caller reads this much and comes back */
            need = stop - pos;
            break;
        }
        Py_ssize_t size = stop - value + 1;
        PyObject *key = PyBytes_FromStringAndSize((const char *)buf + head + 1, value - head - 1);
        if (key == NULL) goto fail;
        PyObject *payload;
        if (kind == 0) {
            Py_ssize_t from = value + 1 + (first >= 0x40);
            payload = new_plain((PyTypeObject *)plain_type, (const char *)buf + from, stop - from);
        } else {
            PyObject *stamp = PyTuple_GET_ITEM(stamps, kind);
            if (!PyBytes_Check(stamp) || PyBytes_GET_SIZE(stamp) != 2) {
                PyErr_SetString(PyExc_ValueError, "a stamp is two bytes");
                payload = NULL;
            } else {
                payload = payload_of(kind, buf + value, stop - value, stamp);
            }
        }
        PyObject *entry = payload ? new_entry(entry_type, db, key, expire, payload, size) : NULL;
        Py_DECREF(key);
        Py_XDECREF(payload);
        if (entry == NULL) goto fail;
        int failed = PyList_Append(run, entry);
        Py_DECREF(entry);
        if (failed) goto fail;
        pos = stop;
        expire = -1;
        taken += size;
    }
    PyBuffer_Release(&view);
    return Py_BuildValue("(Nnnn)", run, pos, taken, need);
fail:
    Py_XDECREF(run);
    PyBuffer_Release(&view);
    return NULL;
}

/* ---- The target's writes: reproducer/data/copy.py's _python_writes, byte for byte on the wire. ---- */

static Py_ssize_t digits(unsigned long long value) {
    Py_ssize_t count = 1;
    while (value >= 10) {
        value /= 10;
        count++;
    }
    return count;
}

static char *put_number(char *out, unsigned long long value) {
    char *end = out + digits(value);
    char *at = end;
    do {
        *--at = (char)('0' + value % 10);
        value /= 10;
    } while (value);
    return end;
}

static char *put(char *out, const char *text, Py_ssize_t size) {
    memcpy(out, text, (size_t)size);
    return out + size;
}

/* "$<size>\r\n" then, unless head_only, the bytes and "\r\n". */
static char *put_bulk(char *out, const char *data, Py_ssize_t size, int head_only) {
    *out++ = '$';
    out = put_number(out, (unsigned long long)size);
    out = put(out, "\r\n", 2);
    if (head_only) return out;
    out = put(out, data, size);
    return put(out, "\r\n", 2);
}

static Py_ssize_t bulk_size(Py_ssize_t size) { return 1 + digits((unsigned long long)size) + 2 + size + 2; }

/* One write: SET [PX ttl] [NX] of a Plain string, or RESTORE key ttl payload [REPLACE]. */
typedef struct {
    const char *key, *data;
    Py_ssize_t key_size, data_size;
    unsigned long long ttl; /* ms; 0: no expiry */
    int plain;
} write_t;

/* The bytes of the write before its value's bytes, and after them. */
static Py_ssize_t head_size(const write_t *w) {
    Py_ssize_t value_head = 1 + digits((unsigned long long)w->data_size) + 2;
    if (w->plain) return 13 + bulk_size(w->key_size) + value_head; /* "*N\r\n$3\r\nSET\r\n" */
    return 17 + bulk_size(w->key_size) + bulk_size(digits(w->ttl)) + value_head; /* "*N\r\n$7\r\nRESTORE\r\n" */
}

static Py_ssize_t tail_size(const write_t *w, int replace) {
    if (!w->plain) return replace ? 2 + 13 : 2;
    return 2 + (w->ttl ? 8 + bulk_size(digits(w->ttl)) : 0) + (replace ? 0 : 8);
}

static char *put_head(char *out, const write_t *w, int replace) {
    if (w->plain) {
        out = put(out, "*", 1);
        out = put_number(out, (unsigned long long)(3 + !replace + (w->ttl ? 2 : 0)));
        out = put(out, "\r\n$3\r\nSET\r\n", 11);
    } else {
        out = put(out, replace ? "*5" : "*4", 2);
        out = put(out, "\r\n$7\r\nRESTORE\r\n", 15);
    }
    out = put_bulk(out, w->key, w->key_size, 0);
    if (!w->plain) {
        char ttl[24];
        char *end = put_number(ttl, w->ttl);
        out = put_bulk(out, ttl, end - ttl, 0);
    }
    return put_bulk(out, NULL, w->data_size, 1);
}

static char *put_tail(char *out, const write_t *w, int replace) {
    out = put(out, "\r\n", 2);
    if (!w->plain) return replace ? put(out, "$7\r\nREPLACE\r\n", 13) : out;
    if (w->ttl) {
        char ttl[24];
        char *end = put_number(ttl, w->ttl);
        out = put(out, "$2\r\nPX\r\n", 8);
        out = put_bulk(out, ttl, end - ttl, 0);
    }
    return replace ? out : put(out, "$2\r\nNX\r\n", 8);
}

/* Bytes being filled, handed to `parts` when full or before a big value. */
typedef struct {
    PyObject *parts, *block;
    Py_ssize_t used, gather;
} blocks_t;

static int blocks_flush(blocks_t *b) {
    if (b->block == NULL) return 0;
    PyObject *block = b->block;
    b->block = NULL;
    if (_PyBytes_Resize(&block, b->used) < 0) return -1;
    int failed = PyList_Append(b->parts, block);
    Py_DECREF(block);
    return failed;
}

/* Where `size` more bytes go: the current block, or a new one. */
static char *blocks_room(blocks_t *b, Py_ssize_t size) {
    if (b->block != NULL && b->used + size > PyBytes_GET_SIZE(b->block) && blocks_flush(b) < 0) return NULL;
    if (b->block == NULL) {
        b->block = PyBytes_FromStringAndSize(NULL, size > b->gather ? size : b->gather);
        if (b->block == NULL) return NULL;
        b->used = 0;
    }
    return PyBytes_AS_STRING(b->block) + b->used;
}

static int read_write(PyObject *item, long long now, PyObject *plain_type, write_t *w, PyObject **data) {
    if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 3 || !PyBytes_Check(PyTuple_GET_ITEM(item, 0)) ||
        !PyBytes_Check(PyTuple_GET_ITEM(item, 2))) {
        PyErr_SetString(PyExc_TypeError, "an item is (key: bytes, deadline: int, value: bytes)");
        return -1;
    }
    PyObject *key = PyTuple_GET_ITEM(item, 0);
    long long deadline = PyLong_AsLongLong(PyTuple_GET_ITEM(item, 1));
    if (deadline == -1 && PyErr_Occurred()) return -1;
    *data = PyTuple_GET_ITEM(item, 2);
    w->key = PyBytes_AS_STRING(key);
    w->key_size = PyBytes_GET_SIZE(key);
    w->data = PyBytes_AS_STRING(*data);
    w->data_size = PyBytes_GET_SIZE(*data);
    w->plain = Py_IS_TYPE(*data, (PyTypeObject *)plain_type);
    if (deadline == 0) {
        w->ttl = 0;
    } else if (deadline < LLONG_MIN / 2 || deadline > LLONG_MAX / 2 || now < 0 || now > LLONG_MAX / 2) {
        PyErr_SetString(PyExc_OverflowError, "a deadline out of range");
        return -1;
    } else {
        w->ttl = deadline - now > 1 ? (unsigned long long)(deadline - now) : 1;
    }
    return 0;
}

static PyObject *writes(PyObject *Py_UNUSED(module), PyObject *args) {
    PyObject *items, *indexes, *plain_type;
    long long now;
    int replace;
    Py_ssize_t direct_send, gather;
    if (!PyArg_ParseTuple(args, "O!O!LpO!nn", &PyList_Type, &items, &PyList_Type, &indexes, &now, &replace,
                          &PyType_Type, &plain_type, &direct_send, &gather))
        return NULL;
    blocks_t b = {PyList_New(0), NULL, 0, gather > 0 ? gather : 1};
    if (b.parts == NULL) return NULL;
    Py_ssize_t count = PyList_GET_SIZE(indexes);
    for (Py_ssize_t i = 0; i < count; i++) {
        Py_ssize_t index = PyLong_AsSsize_t(PyList_GET_ITEM(indexes, i));
        if (index == -1 && PyErr_Occurred()) goto fail;
        if (index < 0 || index >= PyList_GET_SIZE(items)) {
            PyErr_SetString(PyExc_IndexError, "an index past the items");
            goto fail;
        }
        write_t w;
        PyObject *data;
        if (read_write(PyList_GET_ITEM(items, index), now, plain_type, &w, &data) < 0) goto fail;
        Py_ssize_t head = head_size(&w), tail = tail_size(&w, replace);
        if (w.data_size < direct_send) {
            char *out = blocks_room(&b, head + w.data_size + tail);
            if (out == NULL || put_tail(put(put_head(out, &w, replace), w.data, w.data_size), &w, replace) !=
                                   out + head + w.data_size + tail)
                goto fail;
            b.used += head + w.data_size + tail;
            continue;
        }
        /* a big value is its own part, never copied: the head ends the block, the tail starts the next */
        char *out = blocks_room(&b, head);
        if (out == NULL || put_head(out, &w, replace) != out + head) goto fail;
        b.used += head;
        if (blocks_flush(&b) < 0 || PyList_Append(b.parts, data) < 0) goto fail;
        out = blocks_room(&b, tail);
        if (out == NULL || put_tail(out, &w, replace) != out + tail) goto fail;
        b.used += tail;
    }
    if (blocks_flush(&b) < 0) goto fail;
    return b.parts;
fail:
    if (!PyErr_Occurred()) PyErr_SetString(PyExc_SystemError, "a write's size was computed wrong");
    Py_XDECREF(b.block);
    Py_DECREF(b.parts);
    return NULL;
}

/* ---- A snapshot batch's items: reproducer/data/copy.py's _python_snapshot_items. ---- */

/* An entry's key, payload (borrowed) and expiry; -1 with an exception when it is no (db, key, expire_ms, payload,
   size). */
static int entry_fields(PyObject *entry, PyObject **key, PyObject **payload, long long *expire) {
    if (!PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) != 5) {
        PyErr_SetString(PyExc_TypeError, "an entry is (db, key, expire_ms, payload, size)");
        return -1;
    }
    *key = PyTuple_GET_ITEM(entry, 1);
    *payload = PyTuple_GET_ITEM(entry, 3);
    *expire = PyLong_AsLongLong(PyTuple_GET_ITEM(entry, 2));
    return *expire == -1 && PyErr_Occurred() ? -1 : 0;
}


static PyObject *snapshot_items(PyObject *Py_UNUSED(module), PyObject *args) {
    PyObject *entries;
    long long source_now, offset;
    if (!PyArg_ParseTuple(args, "O!LL", &PyList_Type, &entries, &source_now, &offset)) return NULL;
    PyObject *items = PyList_New(0), *oversized = PyList_New(0);
    Py_ssize_t expired = 0, bytes = 0;
    if (items == NULL || oversized == NULL) goto fail;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(entries); i++) {
        PyObject *entry = PyList_GET_ITEM(entries, i), *key, *payload;
        long long expire;
        if (entry_fields(entry, &key, &payload, &expire) < 0) goto fail;
        Py_ssize_t size = PyLong_AsSsize_t(PyTuple_GET_ITEM(entry, 4));
        if (PyErr_Occurred()) goto fail;
        if (expire >= 0 && expire <= source_now) {
            expired++;
            continue;
        }
        if (payload == Py_None) {
            if (PyList_Append(oversized, key) < 0) goto fail;
            continue;
        }
        long long deadline = 0;
        if (expire >= 0 && __builtin_sub_overflow(expire, offset, &deadline)) {
            PyErr_SetString(PyExc_OverflowError, "a deadline out of range");
            goto fail;
        }
        if (__builtin_add_overflow(bytes, size, &bytes)) {
            PyErr_SetString(PyExc_OverflowError, "a batch's bytes out of range");
            goto fail;
        }
        PyObject *deadline_obj = PyLong_FromLongLong(deadline);
        PyObject *item = deadline_obj ? PyTuple_Pack(3, key, deadline_obj, payload) : NULL;
        Py_XDECREF(deadline_obj);
        if (item == NULL) goto fail;
        int failed = PyList_Append(items, item);
        Py_DECREF(item);
        if (failed) goto fail;
    }
    return Py_BuildValue("(NnnN)", items, expired, bytes, oversized);
fail:
    Py_XDECREF(items);
    Py_XDECREF(oversized);
    return NULL;
}

/* ---- A cluster target's item indexes per primary: reproducer/data/copy.py's _python_by_node. ---- */

static uint16_t crc16_table[256]; /* CRC-16/XMODEM, the cluster's key hash (binascii.crc_hqx(key, 0)) */

static void crc16_init(void) {
    for (int byte = 0; byte < 256; byte++) {
        uint16_t crc = (uint16_t)(byte << 8);
        for (int bit = 0; bit < 8; bit++) crc = (uint16_t)((crc & 0x8000) ? (crc << 1) ^ 0x1021 : crc << 1);
        crc16_table[byte] = crc;
    }
}

/* The hash slot of a key: of its {hash tag} when it has a non-empty one (topology.key_slot). */
static unsigned int key_slot(const char *key, Py_ssize_t size) {
    const char *open = memchr(key, '{', (size_t)size);
    if (open != NULL) {
        const char *close = memchr(open + 1, '}', (size_t)(key + size - open - 1));
        if (close != NULL && close > open + 1) {
            key = open + 1;
            size = close - open - 1;
        }
    }
    uint16_t crc = 0;
    for (Py_ssize_t i = 0; i < size; i++)
        crc = (uint16_t)((crc << 8) ^ crc16_table[((crc >> 8) ^ (unsigned char)key[i]) & 0xFF]);
    return crc & 16383;
}

/* The indexes a batch's items route by, made once: route() hands out references, not a new int per key. */
#define KEPT_INDEXES 4096
static PyObject *kept_index[KEPT_INDEXES];

static PyObject *index_object(Py_ssize_t i) {
    if (i >= KEPT_INDEXES) return PyLong_FromSsize_t(i);
    if (kept_index[i] == NULL && (kept_index[i] = PyLong_FromSsize_t(i)) == NULL) return NULL;
    Py_INCREF(kept_index[i]);
    return kept_index[i];
}

/* The primary of each item's key into `owners`; -1 with an exception when an item or a slot's owner is wrong. */
static int item_owners(PyObject *items, PyObject *slot_owner, Py_ssize_t nodes, Py_ssize_t *owners) {
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(items); i++) {
        PyObject *item = PyList_GET_ITEM(items, i);
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) < 1 || !PyBytes_Check(PyTuple_GET_ITEM(item, 0))) {
            PyErr_SetString(PyExc_TypeError, "an item is (key: bytes, ...)");
            return -1;
        }
        PyObject *key = PyTuple_GET_ITEM(item, 0);
        unsigned int slot = key_slot(PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key));
        Py_ssize_t owner = PyLong_AsSsize_t(PyList_GET_ITEM(slot_owner, slot));
        if (owner == -1 && PyErr_Occurred()) return -1;
        if (owner < 0 || owner >= nodes) {
            PyErr_Format(PyExc_ValueError, "slot %u has no primary (%zd)", slot, owner);
            return -1;
        }
        owners[i] = owner;
    }
    return 0;
}

/* Each primary's list of item indexes, made at its final size from `owners`. */
static PyObject *owner_groups(const Py_ssize_t *owners, Py_ssize_t count, Py_ssize_t nodes) {
    Py_ssize_t *sizes = PyMem_Calloc((size_t)nodes, sizeof(Py_ssize_t));
    PyObject *groups = sizes == NULL ? NULL : PyList_New(nodes);
    if (groups == NULL) goto done;
    for (Py_ssize_t i = 0; i < count; i++) sizes[owners[i]]++;
    for (Py_ssize_t n = 0; n < nodes; n++) {
        PyObject *group = PyList_New(sizes[n]);
        if (group == NULL) goto fail;
        PyList_SET_ITEM(groups, n, group);
        sizes[n] = 0; /* from here: how many each group holds so far */
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *index = index_object(i);
        if (index == NULL) goto fail;
        PyList_SET_ITEM(PyList_GET_ITEM(groups, owners[i]), sizes[owners[i]]++, index);
    }
    goto done;
fail:
    Py_CLEAR(groups); /* a group's slots not yet filled are NULL, which list_dealloc skips */
done:
    if (sizes == NULL) PyErr_NoMemory();
    PyMem_Free(sizes);
    return groups;
}

static PyObject *route(PyObject *Py_UNUSED(module), PyObject *args) {
    PyObject *items, *slot_owner;
    Py_ssize_t nodes;
    if (!PyArg_ParseTuple(args, "O!O!n", &PyList_Type, &items, &PyList_Type, &slot_owner, &nodes)) return NULL;
    if (PyList_GET_SIZE(slot_owner) != 16384 || nodes < 1) {
        PyErr_SetString(PyExc_ValueError, "route(items, 16384 slot owners, primaries)");
        return NULL;
    }
    Py_ssize_t count = PyList_GET_SIZE(items);
    Py_ssize_t *owners = PyMem_Malloc((size_t)(count > 0 ? count : 1) * sizeof(Py_ssize_t));
    if (owners == NULL) return PyErr_NoMemory();
    PyObject *groups = item_owners(items, slot_owner, nodes, owners) < 0 ? NULL : owner_groups(owners, count, nodes);
    PyMem_Free(owners);
    return groups;
}

/* ---- Verify's description of a group's keys from their replies: reproducer/data/verify.py's _python_describe. ---- */

static PyObject *string_name, *none_name; /* b"string", b"none" */

/* (kind, pttl, value, size) as a new tuple, taking the references of `kind` and `value` (NULL: failed). */
static PyObject *info(PyObject *kind, PyObject *pttl, PyObject *value, Py_ssize_t size) {
    PyObject *size_obj = kind && value ? PyLong_FromSsize_t(size) : NULL;
    PyObject *result = size_obj ? PyTuple_Pack(4, kind, pttl, value, size_obj) : NULL;
    Py_XDECREF(kind);
    Py_XDECREF(value);
    Py_XDECREF(size_obj);
    return result;
}

static int bytes_equal(PyObject *left, PyObject *right) {
    return PyBytes_GET_SIZE(left) == PyBytes_GET_SIZE(right) &&
           memcmp(PyBytes_AS_STRING(left), PyBytes_AS_STRING(right), (size_t)PyBytes_GET_SIZE(left)) == 0;
}

/* Both TTLs absent, or both present and at most `slack` apart; 0 for anything else (an int past 64 bits too). */
static int ttl_same(PyObject *left, PyObject *right, long long slack) {
    if (!PyLong_CheckExact(left) || !PyLong_CheckExact(right)) return 0;
    int overflow_left = 0, overflow_right = 0;
    long long a = PyLong_AsLongLongAndOverflow(left, &overflow_left);
    long long b = PyLong_AsLongLongAndOverflow(right, &overflow_right);
    if (overflow_left || overflow_right) return 0;
    if (a < 0 || b < 0) return a < 0 && b < 0;
    return (a > b ? a - b : b - a) <= slack;
}

/* (b"string", pttl, the string or its digest, size) of a string as GET answers it (NULL: failed). */
static PyObject *string_info(PyObject *value, PyObject *pttl, Py_ssize_t digest_from, PyObject *digest) {
    Py_ssize_t size = PyBytes_GET_SIZE(value);
    PyObject *kept =
        size < digest_from ? Py_NewRef(value) : PyObject_CallFunction(digest, "On", value, (Py_ssize_t)0);
    return info(Py_NewRef(string_name), pttl, kept, size);
}

/* (its type, pttl, its body without the footer or a digest of it, size) of a DUMP payload (NULL: failed). */
static PyObject *payload_info(PyObject *payload, PyObject *pttl, PyObject *payload_types, Py_ssize_t digest_from,
                              Py_ssize_t footer, PyObject *digest) {
    Py_ssize_t size = PyBytes_GET_SIZE(payload);
    PyObject *body = footer <= size && size < digest_from
                         ? PyBytes_FromStringAndSize(PyBytes_AS_STRING(payload), size - footer)
                         : PyObject_CallFunction(digest, "On", payload, footer);
    PyObject *first = PyLong_FromLong(size ? (unsigned char)PyBytes_AS_STRING(payload)[0] : -1);
    PyObject *kind = first ? PyDict_GetItemWithError(payload_types, first) : NULL;
    Py_XDECREF(first);
    if (kind == NULL && !PyErr_Occurred()) kind = Py_None;
    if (kind == NULL) {
        Py_XDECREF(body);
        return NULL;
    }
    return info(Py_NewRef(kind), pttl, body, size);
}

static PyObject *describe(PyObject *Py_UNUSED(module), PyObject *args) {
    PyObject *keys, *replies, *reads, *big, *get, *payload_types, *misread, *big_marker, *digest, *members, *reply_error;
    Py_ssize_t digest_from, footer;
    if (!PyArg_ParseTuple(args, "O!O!O!OOO!OOnnOOO", &PyList_Type, &keys, &PyList_Type, &replies, &PyDict_Type,
                          &reads, &big, &get, &PyDict_Type, &payload_types, &misread, &big_marker, &digest_from,
                          &footer, &digest, &members, &reply_error))
        return NULL;
    Py_ssize_t count = PyList_GET_SIZE(keys);
    if (PyList_GET_SIZE(replies) != 2 * count || (big != Py_None && !PyDict_Check(big)) || footer < 0 ||
        digest_from < footer) {
        PyErr_SetString(PyExc_ValueError, "describe(keys, two replies a key, ...)");
        return NULL;
    }
    PyObject *described = PyDict_New();
    if (described == NULL) return NULL;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *key = PyList_GET_ITEM(keys, i), *pttl = PyList_GET_ITEM(replies, 2 * i);
        PyObject *value = PyList_GET_ITEM(replies, 2 * i + 1), *result = NULL;
        PyObject *size_of_big = big == Py_None ? NULL : PyDict_GetItemWithError(big, key);
        if (size_of_big == NULL && PyErr_Occurred()) goto fail;
        if (size_of_big != NULL) { /* its value's command was TYPE */
            Py_ssize_t size = PyLong_AsSsize_t(size_of_big);
            if (size == -1 && PyErr_Occurred()) goto fail;
            Py_INCREF(value);
            Py_INCREF(big_marker);
            result = info(value, pttl, big_marker, size);
        } else if (PyBytes_Check(value)) {
            PyObject *read = PyDict_GetItemWithError(reads, key);
            if (read == NULL && PyErr_Occurred()) goto fail;
            result = read == get ? string_info(value, pttl, digest_from, digest)
                                 : payload_info(value, pttl, payload_types, digest_from, footer, digest);
        } else {
            int is_error = PyObject_IsInstance(value, reply_error);
            if (is_error < 0) goto fail;
            if (is_error)
                result = info(Py_NewRef(Py_None), pttl, Py_NewRef(misread), 0);
            else if (PyList_Check(value) && PyList_GET_SIZE(value) > 0)
                result = PyObject_CallFunctionObjArgs(members, pttl, value, NULL);
            else /* nil, or no member: the key is gone */
                result = info(Py_NewRef(none_name), pttl, Py_NewRef(Py_None), 0);
        }
        if (result == NULL) goto fail;
        int failed = PyDict_SetItem(described, key, result);
        Py_DECREF(result);
        if (failed) goto fail;
    }
    return described;
fail:
    Py_DECREF(described);
    return NULL;
}

/* ---- Verify's source side from a snapshot batch: reproducer/data/verify.py's _python_snapshot_described. ---- */

static PyObject *snapshot_described(PyObject *Py_UNUSED(module), PyObject *args) {
    PyObject *entries, *get, *plain_type, *payload_types, *big_marker, *digest;
    long long source_now;
    Py_ssize_t digest_from, footer;
    if (!PyArg_ParseTuple(args, "O!LOOO!OnnO", &PyList_Type, &entries, &source_now, &get, &plain_type, &PyDict_Type,
                          &payload_types, &big_marker, &digest_from, &footer, &digest))
        return NULL;
    if (footer < 0 || digest_from < footer) {
        PyErr_SetString(PyExc_ValueError, "snapshot_described(..., digest_from >= footer >= 0, ...)");
        return NULL;
    }
    PyObject *group = PyList_New(0), *reads = PyDict_New(), *big = PyDict_New(), *described = PyDict_New();
    if (group == NULL || reads == NULL || big == NULL || described == NULL) goto fail;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(entries); i++) {
        PyObject *entry = PyList_GET_ITEM(entries, i), *key, *payload;
        long long expire, pttl = -1;
        if (entry_fields(entry, &key, &payload, &expire) < 0) goto fail;
        PyObject *size_obj = PyTuple_GET_ITEM(entry, 4);
        if (expire >= 0 && expire <= source_now) continue;
        if (expire >= 0 && __builtin_sub_overflow(expire, source_now, &pttl)) {
            PyErr_SetString(PyExc_OverflowError, "a TTL out of range");
            goto fail;
        }
        PyObject *pttl_obj = PyLong_FromLongLong(pttl), *result = NULL;
        if (pttl_obj == NULL || PyList_Append(group, key) < 0) {
            Py_XDECREF(pttl_obj);
            goto fail;
        }
        if (payload == Py_None) { /* over the bound: its type is asked */
            Py_ssize_t size = PyLong_AsSsize_t(size_obj);
            if ((size == -1 && PyErr_Occurred()) || PyDict_SetItem(big, key, size_obj) < 0) {
                Py_DECREF(pttl_obj);
                goto fail;
            }
            result = info(Py_NewRef(Py_None), pttl_obj, Py_NewRef(big_marker), size);
        } else if (!PyBytes_Check(payload)) {
            PyErr_SetString(PyExc_TypeError, "a payload is bytes or None");
        } else if (Py_IS_TYPE(payload, (PyTypeObject *)plain_type)) { /* compared with what GET answers */
            if (PyDict_SetItem(reads, key, get) == 0) result = string_info(payload, pttl_obj, digest_from, digest);
        } else {
            result = payload_info(payload, pttl_obj, payload_types, digest_from, footer, digest);
        }
        Py_DECREF(pttl_obj);
        if (result == NULL) goto fail;
        int failed = PyDict_SetItem(described, key, result);
        Py_DECREF(result);
        if (failed) goto fail;
    }
    return Py_BuildValue("(NNNN)", group, reads, big, described);
fail:
    Py_XDECREF(group);
    Py_XDECREF(reads);
    Py_XDECREF(big);
    Py_XDECREF(described);
    return NULL;
}

/* ---- Verify's PTTL and value commands for a group: reproducer/data/verify.py's _python_describe_commands. ---- */

static PyObject *describe_commands(PyObject *Py_UNUSED(module), PyObject *args) {
    PyObject *keys, *reads, *big, *dump, *type;
    if (!PyArg_ParseTuple(args, "O!O!OO!O!", &PyList_Type, &keys, &PyDict_Type, &reads, &big, &PyBytes_Type, &dump,
                          &PyBytes_Type, &type))
        return NULL;
    if (big != Py_None && !PyDict_Check(big)) {
        PyErr_SetString(PyExc_TypeError, "big is a dict or None");
        return NULL;
    }
    Py_ssize_t count = PyList_GET_SIZE(keys), total = 0;
    PyObject **names = PyMem_Malloc((size_t)(count ? count : 1) * sizeof(PyObject *));
    if (names == NULL) return PyErr_NoMemory();
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *key = PyList_GET_ITEM(keys, i), *name = NULL;
        if (!PyBytes_Check(key)) {
            PyErr_SetString(PyExc_TypeError, "a key is bytes");
            goto fail;
        }
        int is_big = big == Py_None ? 0 : PyDict_Contains(big, key);
        if (is_big < 0) goto fail;
        name = is_big ? type : PyDict_GetItemWithError(reads, key);
        if (name == NULL && PyErr_Occurred()) goto fail;
        if (name == NULL) name = dump;
        if (!PyBytes_Check(name)) {
            PyErr_SetString(PyExc_TypeError, "a command name is bytes");
            goto fail;
        }
        names[i] = name;
        /* *2 $4 PTTL, the key; *2, the name, the key */
        total += 4 + 10 + 2 * bulk_size(PyBytes_GET_SIZE(key)) + 4 + PyBytes_GET_SIZE(name) + 2;
    }
    PyObject *result = PyBytes_FromStringAndSize(NULL, total);
    if (result == NULL) goto fail;
    char *out = PyBytes_AS_STRING(result);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *key = PyList_GET_ITEM(keys, i);
        const char *data = PyBytes_AS_STRING(key);
        Py_ssize_t size = PyBytes_GET_SIZE(key);
        out = put(out, "*2\r\n$4\r\nPTTL\r\n", 14);
        out = put_bulk(out, data, size, 0);
        out = put(out, "*2\r\n", 4);
        out = put(out, PyBytes_AS_STRING(names[i]), PyBytes_GET_SIZE(names[i]));
        out = put(out, "\r\n", 2);
        out = put_bulk(out, data, size, 0);
    }
    PyMem_Free(names);
    return result;
fail:
    PyMem_Free(names);
    return NULL;
}

/* ---- The keys identical on both sides, counted by type: reproducer/data/verify.py's _python_identical. ---- */

static PyObject *identical(PyObject *Py_UNUSED(module), PyObject *args) {
    PyObject *keys, *src_info, *dst_info, *misread, *big_marker;
    long long slack;
    if (!PyArg_ParseTuple(args, "O!O!O!LOO", &PyList_Type, &keys, &PyDict_Type, &src_info, &PyDict_Type, &dst_info,
                          &slack, &misread, &big_marker))
        return NULL;
    PyObject *counts = PyDict_New(), *others = PyList_New(0);
    if (counts == NULL || others == NULL) goto fail;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(keys); i++) {
        PyObject *key = PyList_GET_ITEM(keys, i);
        PyObject *src = PyDict_GetItemWithError(src_info, key), *dst = src ? PyDict_GetItemWithError(dst_info, key) : NULL;
        if (dst == NULL) {
            if (!PyErr_Occurred()) PyErr_SetObject(PyExc_KeyError, key);
            goto fail;
        }
        if (!PyTuple_Check(src) || PyTuple_GET_SIZE(src) != 4 || !PyTuple_Check(dst) || PyTuple_GET_SIZE(dst) != 4) {
            PyErr_SetString(PyExc_TypeError, "a description is (type, pttl, value, size)");
            goto fail;
        }
        PyObject *kind = PyTuple_GET_ITEM(src, 0), *value = PyTuple_GET_ITEM(src, 2);
        int same = value != misread && value != big_marker && PyBytes_Check(kind) && !bytes_equal(kind, none_name);
        same = same && ttl_same(PyTuple_GET_ITEM(src, 1), PyTuple_GET_ITEM(dst, 1), slack);
        if (same) same = PyObject_RichCompareBool(kind, PyTuple_GET_ITEM(dst, 0), Py_EQ);
        if (same > 0) same = PyObject_RichCompareBool(value, PyTuple_GET_ITEM(dst, 2), Py_EQ);
        if (same < 0) goto fail;
        if (!same) {
            if (PyList_Append(others, key) < 0) goto fail;
            continue;
        }
        PyObject *count = PyDict_GetItemWithError(counts, kind);
        if (count == NULL && PyErr_Occurred()) goto fail;
        PyObject *more = PyLong_FromSsize_t(count ? PyLong_AsSsize_t(count) + 1 : 1);
        if (more == NULL || PyDict_SetItem(counts, kind, more) < 0) {
            Py_XDECREF(more);
            goto fail;
        }
        Py_DECREF(more);
    }
    return Py_BuildValue("(NN)", counts, others);
fail:
    Py_XDECREF(counts);
    Py_XDECREF(others);
    return NULL;
}

static PyMethodDef methods[] = {
    {"small_run", small_run, METH_VARARGS,
     "small_run(buffer, position, db, expiry, stamps, limit, most, Entry, Plain) -> (entries, position, bytes)\n\n"
     "The common case of the snapshot reader, as reproducer.data.snapshot._small_run."},
    {"snapshot_items", snapshot_items, METH_VARARGS,
     "snapshot_items(entries, source_now, offset) -> (items, expired, bytes, oversized keys)\n\n"
     "A snapshot batch's keys as (key, deadline or 0, payload), as reproducer.data.copy._python_snapshot_items."},
    {"route", route, METH_VARARGS,
     "route(items, slot_owner, primaries) -> a list of item indexes per primary\n\n"
     "The primary of each item's key slot, as reproducer.data.copy._python_by_node."},
    {"describe", describe, METH_VARARGS,
     "describe(keys, replies, reads, big, GET, payload types, misread, big marker, digest from, footer, digest,\n"
     "members, ReplyError) -> {key: (type, pttl, value, size)}, as reproducer.data.verify._python_describe."},
    {"snapshot_described", snapshot_described, METH_VARARGS,
     "snapshot_described(entries, source_now, GET, Plain, payload types, big marker, digest from, footer, digest)\n"
     "-> (keys, reads, big, descriptions), as reproducer.data.verify._python_snapshot_described."},
    {"describe_commands", describe_commands, METH_VARARGS,
     "describe_commands(keys, reads, big, DUMP, TYPE) -> bytes, as reproducer.data.verify._python_describe_commands."},
    {"identical", identical, METH_VARARGS,
     "identical(keys, source descriptions, target descriptions, slack, misread, big marker) -> (counts by type,\n"
     "the other keys), as reproducer.data.verify._python_identical."},
    {"writes", writes, METH_VARARGS,
     "writes(items, indexes, now, replace, Plain, direct_send, gather) -> parts\n\n"
     "The SET or RESTORE of each item, as reproducer.data.copy._python_writes: the same bytes, gathered into\n"
     "parts of about `gather` bytes; a value of `direct_send` bytes or more is its own part, not copied."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "reproducer.data._speedups", "The copy's per-key hot paths in C.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__speedups(void) {
    crc_init();
    crc16_init();
    string_name = PyBytes_FromString("string");
    none_name = PyBytes_FromString("none");
    if (string_name == NULL || none_name == NULL) return NULL;
    return PyModule_Create(&module);
}
