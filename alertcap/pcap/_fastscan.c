/* The common case of alertcap.pcap.decode.scan, in C: an optional accelerator.
 *
 * Boundary: counts the packets that scan()'s inline fast path would count, with
 * the same arithmetic, into the same Python objects (the Tables' flow dicts and
 * their state lists), and stops -- before touching anything -- at the first
 * packet it cannot take: scan() then handles that packet in Python exactly as
 * it always does and calls back in. So every rare case (a new flow, SYN/FIN/RST,
 * data out of order, a DNS response to read, anything but IPv4/IPv6 TCP/UDP
 * behind Ethernet and its tags, a timeline bucket boundary, a record cut short) has one
 * implementation, the Python one, and this file only has to agree with
 * decode.scan on the packets it takes; tests/pcap/test_native.py checks that it
 * does. Without a compiler the module is simply absent and scan() runs alone.
 *
 * run(buf, off, n, little, max_caplen, fast_min, be_sec, be_frac, tcp, udp, cur)
 *   -> (off, packets, bytes, last)
 * off: where to go on (the packet it stopped at, or the end); packets/bytes: what
 * it counted for the current timeline bucket; last: offset of the last record it
 * counted (-1: none).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

#define NEXT 2 /* tables.NEXT: next expected sequence number (TCP) / DNS flag (UDP) */

static inline uint32_t rd32(const unsigned char *b, int little)
{
    return little ? (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24
                  : (uint32_t)b[3] | (uint32_t)b[2] << 8 | (uint32_t)b[1] << 16 | (uint32_t)b[0] << 24;
}

static inline unsigned be16(const unsigned char *b) { return (unsigned)b[0] << 8 | b[1]; }

static inline uint32_t be32(const unsigned char *b) { return rd32(b, 0); }

/* st[i] += v for a state-list item that is an int; -1 with an exception set on failure */
static int add_to(PyObject *st, Py_ssize_t i, long long v)
{
    PyObject *item = PyList_GET_ITEM(st, i);
    long long old = PyLong_AsLongLong(item);
    if (old == -1 && PyErr_Occurred())
        return -1;
    PyObject *sum = PyLong_FromLongLong(old + v);
    if (sum == NULL)
        return -1;
    return PyList_SetItem(st, i, sum); /* steals sum, releases the old item */
}

static PyObject *run(PyObject *self, PyObject *args)
{
    Py_buffer view;
    Py_ssize_t off, n, max_caplen, fast_min, cur, last = -1;
    int little;
    long long be_sec, be_frac, packets = 0, bytes = 0;
    PyObject *tcp, *udp;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*nnpnnLLO!O!n", &view, &off, &n, &little, &max_caplen,
                          &fast_min, &be_sec, &be_frac, &PyDict_Type, &tcp, &PyDict_Type, &udp,
                          &cur))
        return NULL;
    const unsigned char *buf = view.buf;
    if (n > view.len)
        n = view.len;
    while (off <= n - 16) {
        const unsigned char *h = buf + off;
        long long ts_sec = rd32(h, little), ts_frac = rd32(h + 4, little);
        Py_ssize_t caplen = rd32(h + 8, little), wirelen = rd32(h + 12, little);
        Py_ssize_t p = off + 16, end = p + caplen;
        if (end > n || caplen > max_caplen || caplen < fast_min)
            break;
        if (ts_sec >= be_sec && (ts_sec > be_sec || ts_frac >= be_frac))
            break; /* a new timeline bucket: Tables.advance() */
        const unsigned char *q = buf + p + 14; /* the network header, past any tags */
        const unsigned char *stop = buf + end;
        unsigned et = be16(buf + p + 12);
        while ((et == 0x8100 || et == 0x88A8 || et == 0x9100) && q + 4 <= stop) {
            et = be16(q + 2); /* 802.1Q / QinQ (decode._reframe) */
            q += 4;
        }
        const unsigned char *key;
        Py_ssize_t key_len;
        long iplen;
        unsigned proto, doff, flags;
        uint32_t seq;
        if (et == 0x0800 && q + 40 <= stop) { /* IPv4 without options, not a fragment */
            if (q[0] != 0x45 || (be16(q + 6) & 0x1FFF))
                break;
            iplen = be16(q + 2);
            proto = q[9];
            key = q + 12, key_len = 12; /* addresses and ports (decode._FAST) */
            seq = be32(q + 24), doff = q[32], flags = q[33];
        } else if (et == 0x86DD && q + 60 <= stop) { /* IPv6, no extension header */
            iplen = (long)be16(q + 4) + 20; /* dressed up as IPv4, as _reframe does */
            proto = q[6];
            key = q + 8, key_len = 36; /* (decode._FAST6) */
            seq = be32(q + 44), doff = q[52], flags = q[53];
        } else {
            break;
        }
        if (proto != 6 && proto != 17)
            break;
        PyObject *k = PyBytes_FromStringAndSize((const char *)key, key_len);
        if (k == NULL)
            goto error;
        PyObject *st = PyDict_GetItemWithError(proto == 6 ? tcp : udp, k); /* borrowed */
        Py_DECREF(k);
        if (st == NULL) {
            if (PyErr_Occurred())
                goto error;
            break; /* a new flow: Tables.new_flow() */
        }
        if (!PyList_CheckExact(st) || PyList_GET_SIZE(st) <= cur)
            break;
        PyObject *next = PyList_GET_ITEM(st, NEXT);
        if (proto == 6) {
            long payload = iplen - (20 + ((doff >> 2) & 0x3C));
            if (flags & 7)
                break; /* SYN, FIN or RST: Tables.tcp_flags() */
            if (payload > 0) {
                if (!PyLong_CheckExact(next))
                    break; /* None: an aggregate row */
                int overflow;
                long long expected = PyLong_AsLongLongAndOverflow(next, &overflow);
                if (expected == -1 && PyErr_Occurred())
                    goto error;
                if (overflow || expected != (long long)seq)
                    break; /* out of order, or marked for inspection: track_seq() */
                PyObject *moved = PyLong_FromLongLong(expected + payload);
                if (moved == NULL || PyList_SetItem(st, NEXT, moved) < 0)
                    goto error;
            }
        } else {
            int dns = PyObject_IsTrue(next);
            if (dns < 0)
                goto error;
            if (dns)
                break; /* a DNS response whose payload is read: inspect() */
        }
        if (add_to(st, 0, wirelen) < 0 || add_to(st, cur, 1) < 0)
            goto error;
        packets += 1;
        bytes += wirelen;
        last = off;
        off = end;
    }
    PyBuffer_Release(&view);
    return Py_BuildValue("nLLn", off, packets, bytes, last);
error:
    PyBuffer_Release(&view);
    return NULL;
}

static PyMethodDef methods[] = {
    {"run", run, METH_VARARGS, "Count the fast-path packets from an offset on; see the module."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    .m_base = PyModuleDef_HEAD_INIT,
    .m_name = "_fastscan",
    .m_doc = "The common case of alertcap.pcap.decode.scan in C (optional).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__fastscan(void) { return PyModule_Create(&module); }
