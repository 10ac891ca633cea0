/* The snapshot reader's common case in C: reproducer/data/snapshot.py's _small_run, result for result
 * (tests/unit/test_rdbscan.py compares the two on random and broken streams).
 *
 * Reads up to `most` keys in a row from the buffer, each [expiry] a short value (one string of a length of one
 * or two bytes, or a list of one listpack), and returns (entries, position after them, bytes their values
 * take). It stops, reading nothing more, at the first key it cannot take whole: the Python reader takes over
 * there. Every index into the buffer is checked against its end before it is read.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define EXPIRETIME_MS 0xFC
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

static uint64_t load_le64(const unsigned char *data) {
    uint64_t word = 0;
    for (int i = 7; i >= 0; i--) word = (word << 8) | data[i];
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

/* Object types read here: one string (0, 9-13, 16, 17, 20) or a quicklist 2 (18). */
static int small_kind(unsigned int kind) {
    return kind == 0 || (kind >= 9 && kind <= 13) || kind == 16 || kind == 17 || kind == 18 || kind == 20;
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
    Py_ssize_t taken = 0;
    if (run == NULL) goto fail;
    if (PyTuple_GET_SIZE(stamps) < 256 || pos < 0 || pos > end || !PyType_IsSubtype(entry_type, &PyTuple_Type) ||
        entry_type->tp_basicsize != PyTuple_Type.tp_basicsize) {
        PyErr_SetString(PyExc_ValueError, "small_run(buffer, position, db, expiry, 256 stamps, limit, most, "
                                          "a NamedTuple of 5 fields, Plain)");
        goto fail;
    }
    while (end - pos >= 16 && PyList_GET_SIZE(run) < most) {
        Py_ssize_t head = pos;
        unsigned int kind = buf[head];
        if (kind == EXPIRETIME_MS) {
            int64_t when = (int64_t)load_le64(buf + head + 1);
            expire = when > 0 ? when : 0;
            head += 9;
            kind = head < end ? buf[head] : 0xFF;
        }
        head += 1;
        if (!small_kind(kind) || head + 3 > end || buf[head] >= 0x40) break;
        Py_ssize_t value = head + 1 + buf[head];
        Py_ssize_t blob = value;
        if (kind == LIST_QUICKLIST_2) {
            if (value + 4 > end || buf[value] != 1 || buf[value + 1] != 2) break;
            blob += 2;
        }
        unsigned int first = blob + 2 <= end ? buf[blob] : 0xFF;
        Py_ssize_t stop;
        if (first < 0x40)
            stop = blob + 1 + first;
        else if (first < 0x80)
            stop = blob + 2 + (((first & 0x3F) << 8) | buf[blob + 1]);
        else
            break;
        if (stop > end || stop - value > limit) break;
        Py_ssize_t size = stop - value + 1;
        PyObject *key = PyBytes_FromStringAndSize((const char *)buf + head + 1, value - head - 1);
        if (key == NULL) goto fail;
        PyObject *payload;
        if (kind == 0) {
            Py_ssize_t from = value + 1 + (first >= 0x40);
            PyObject *plain = PyBytes_FromStringAndSize((const char *)buf + from, stop - from);
            payload = plain ? PyObject_CallOneArg(plain_type, plain) : NULL;
            Py_XDECREF(plain);
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
    return Py_BuildValue("(Nnn)", run, pos, taken);
fail:
    Py_XDECREF(run);
    PyBuffer_Release(&view);
    return NULL;
}

static PyMethodDef methods[] = {
    {"small_run", small_run, METH_VARARGS,
     "small_run(buffer, position, db, expiry, stamps, limit, most, Entry, Plain) -> (entries, position, bytes)\n\n"
     "The common case of the snapshot reader, as reproducer.data.snapshot._small_run."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "reproducer.data._rdbscan", "The snapshot reader's common case in C.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__rdbscan(void) {
    crc_init();
    return PyModule_Create(&module);
}
