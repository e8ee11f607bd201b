/*
 * wsjet.core._speedups: compiled WebSocket masking (RFC 6455 section 5.3).
 *
 * Octet i of the output is octet i of the input XOR octet (i % 4) of the
 * 4-byte masking key. The pure-Python specification is wsjet/core/_mask.py;
 * tests/core/test_speedups_parity.py checks that both agree.
 *
 * Speed: the key is broadcast into a 16-byte SSE2 register and into a 64-bit
 * word, so the payload is processed 64 (four registers), 16 and then 8 bytes
 * per step; only the last 0-7 bytes are handled one by one. On a CPU with
 * AVX2 (detected at import; WSJET_NO_AVX2 turns it off), payloads of 256 bytes
 * or more first go 128 and then 32 bytes a step in 32-byte registers: about
 * twice the speed at 64 KiB. Every chunk length is a multiple of 4, so the key
 * phase is (i & 3) throughout. Unaligned
 * loads and stores go through _mm_loadu/_mm_storeu or memcpy, which keeps
 * the code free of alignment and strict-aliasing undefined behaviour.
 *
 * Arguments: METH_FASTCALL | METH_KEYWORDS with buffers taken by
 * PyObject_GetBuffer(PyBUF_SIMPLE), which is what the "y*" converter does
 * (any C-contiguous bytes-like object, len in bytes) without the cost of an
 * argument tuple and a format string on every call; keywords are accepted
 * like in the pure-Python twin.
 *
 * The GIL is released for payloads of GIL_RELEASE_THRESHOLD bytes or more:
 * the input buffers are held (exported) for the whole call and, for
 * apply_mask, the output is a fresh bytes object nobody else can see yet.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#define WSJET_SPEEDUPS_MODULE
#include "_speedups_api.h"

#include <stdint.h>
#include <string.h>

#if defined(__SSE2__) || defined(_M_X64) || defined(_M_AMD64) || \
    (defined(_M_IX86_FP) && _M_IX86_FP >= 2)
#include <emmintrin.h>
#define WSJET_HAVE_SSE2 1
#endif

#define GIL_RELEASE_THRESHOLD ((Py_ssize_t)64 * 1024)

/* AVX2, where the CPU has it (checked once, at import): 32-byte registers,
 * 128 bytes a step. Compiled for that target alone, so the module still loads
 * on any x86-64; below AVX2_MIN_LENGTH the SSE2 loop is as fast. */
#if defined(WSJET_HAVE_SSE2) && defined(__GNUC__) && \
    (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>
#define WSJET_HAVE_AVX2_DISPATCH 1
#define AVX2_MIN_LENGTH ((Py_ssize_t)256)

static int use_avx2;

/* XOR the first (len rounded down to 32) bytes; return how many were done. */
__attribute__((target("avx2"))) static Py_ssize_t
xor_mask_avx2(const unsigned char *src, unsigned char *dst, Py_ssize_t len,
              int32_t key32)
{
    Py_ssize_t i = 0;
    __m256i k = _mm256_set1_epi32(key32);

    for (; i + 128 <= len; i += 128) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(const void *)(src + i));
        __m256i b = _mm256_loadu_si256((const __m256i *)(const void *)(src + i + 32));
        __m256i c = _mm256_loadu_si256((const __m256i *)(const void *)(src + i + 64));
        __m256i d = _mm256_loadu_si256((const __m256i *)(const void *)(src + i + 96));
        _mm256_storeu_si256((__m256i *)(void *)(dst + i), _mm256_xor_si256(a, k));
        _mm256_storeu_si256((__m256i *)(void *)(dst + i + 32), _mm256_xor_si256(b, k));
        _mm256_storeu_si256((__m256i *)(void *)(dst + i + 64), _mm256_xor_si256(c, k));
        _mm256_storeu_si256((__m256i *)(void *)(dst + i + 96), _mm256_xor_si256(d, k));
    }
    for (; i + 32 <= len; i += 32) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(const void *)(src + i));
        _mm256_storeu_si256((__m256i *)(void *)(dst + i), _mm256_xor_si256(a, k));
    }
    return i;
}
#endif

/* --- Recycled bytes objects ------------------------------------------------
 * A message and its reply are most often as long as the ones before them (an
 * echo, a stream of same-sized records). A bytes object over 512 bytes does
 * not come from CPython's small-object pools but from malloc(), and for a
 * 1 KiB message malloc() and free() cost more than unmasking it. So the
 * module keeps the last RECYCLE_SLOTS payloads and frames it made of
 * RECYCLE_MIN to RECYCLE_MAX bytes, and when it needs one of the same length
 * again while nobody else holds an old one (its reference count is 1: the
 * slot's own reference), it writes into that one instead of allocating.
 * That is sound for the reason CPython's in-place string concatenation is:
 * an object nobody else refers to can change without anyone seeing it change.
 * Its cached hash is reset. The slots hold at most RECYCLE_SLOTS * RECYCLE_MAX
 * bytes per interpreter (module state, so subinterpreters never share one).
 * Without the GIL a reference count of 1 proves nothing: not done there. */

#define RECYCLE_SLOTS 4
/* Smaller objects come from pymalloc, which is already cheap. */
#define RECYCLE_MIN ((Py_ssize_t)(512 - (Py_ssize_t)offsetof(PyBytesObject, ob_sval)))
/* A 64 KiB payload with the longest header (14 bytes). */
#define RECYCLE_MAX ((Py_ssize_t)64 * 1024 + 14)

typedef struct {
    PyObject *slots[RECYCLE_SLOTS];
    int next; /* the slot a new object replaces: the oldest */
    wsjet_speedups_api api; /* what the capsule _C_API points to */
} speedups_state;

static inline speedups_state *
get_state(PyObject *module)
{
    return (speedups_state *)PyModule_GetState(module);
}

/* A bytes object of size bytes whose contents the caller writes: a new one, or
 * a recycled one of the same size that nobody else holds. */
static PyObject *
new_bytes(PyObject *module, Py_ssize_t size)
{
#ifndef Py_GIL_DISABLED
    if (size >= RECYCLE_MIN && size <= RECYCLE_MAX) {
        speedups_state *state = get_state(module);
        PyObject *result;

        for (int i = 0; i < RECYCLE_SLOTS; i++) {
            PyObject *old = state->slots[i];

            if (old != NULL && Py_SIZE(old) == size && Py_REFCNT(old) == 1) {
                /* The hash bytes_hash() cached, if any: deprecated for
                 * extensions since 3.11, but still read and written by it. */
                _Py_COMP_DIAG_PUSH
                _Py_COMP_DIAG_IGNORE_DEPR_DECLS
                ((PyBytesObject *)old)->ob_shash = -1;
                _Py_COMP_DIAG_POP
                Py_INCREF(old);
                return old;
            }
        }
        result = PyBytes_FromStringAndSize(NULL, size);
        if (result != NULL) {
            Py_INCREF(result);
            Py_XSETREF(state->slots[state->next], result);
            state->next = (state->next + 1) % RECYCLE_SLOTS;
        }
        return result;
    }
#else
    (void)module;
#endif
    return PyBytes_FromStringAndSize(NULL, size);
}

/* XOR len bytes of src with the repeated 4-byte key into dst.
 * dst may be src itself (in-place); it must not partially overlap src. */
static void
xor_mask(const unsigned char *src, unsigned char *dst, Py_ssize_t len,
         const unsigned char key[4])
{
    Py_ssize_t i = 0;
    unsigned char key8[8];
    uint64_t key64;

#ifdef WSJET_HAVE_SSE2
    if (len >= 16) {
        int32_t key32;
        __m128i k;

        memcpy(&key32, key, 4);
#ifdef WSJET_HAVE_AVX2_DISPATCH
        /* i stays a multiple of 4 (of 32): the key phase is unchanged. */
        if (use_avx2 && len >= AVX2_MIN_LENGTH) {
            i = xor_mask_avx2(src, dst, len, key32);
        }
#endif
        /* x86 is little-endian, so the lanes hold the key bytes in order. */
        k = _mm_set1_epi32(key32);
        for (; i + 64 <= len; i += 64) {
            __m128i a = _mm_loadu_si128((const __m128i *)(const void *)(src + i));
            __m128i b = _mm_loadu_si128((const __m128i *)(const void *)(src + i + 16));
            __m128i c = _mm_loadu_si128((const __m128i *)(const void *)(src + i + 32));
            __m128i d = _mm_loadu_si128((const __m128i *)(const void *)(src + i + 48));
            _mm_storeu_si128((__m128i *)(void *)(dst + i), _mm_xor_si128(a, k));
            _mm_storeu_si128((__m128i *)(void *)(dst + i + 16), _mm_xor_si128(b, k));
            _mm_storeu_si128((__m128i *)(void *)(dst + i + 32), _mm_xor_si128(c, k));
            _mm_storeu_si128((__m128i *)(void *)(dst + i + 48), _mm_xor_si128(d, k));
        }
        for (; i + 16 <= len; i += 16) {
            __m128i a = _mm_loadu_si128((const __m128i *)(const void *)(src + i));
            _mm_storeu_si128((__m128i *)(void *)(dst + i), _mm_xor_si128(a, k));
        }
    }
#endif

    /* Portable word loop (gcc/clang -O3 vectorize it where SSE2 is absent). */
    memcpy(key8, key, 4);
    memcpy(key8 + 4, key, 4);
    memcpy(&key64, key8, 8);
    for (; i + 8 <= len; i += 8) {
        uint64_t word;
        memcpy(&word, src + i, 8);
        word ^= key64;
        memcpy(dst + i, &word, 8);
    }

    for (; i < len; i++) {
        dst[i] = (unsigned char)(src[i] ^ key[i & 3]);
    }
}

/* Fill out[0..n) with the arguments of a METH_FASTCALL | METH_KEYWORDS call,
 * all required, given by position or by the names in names[]. The result
 * holds borrowed references. */
static int
parse_args(const char *fname, PyObject *const *args, Py_ssize_t nargs,
           PyObject *kwnames, const char *const *names, Py_ssize_t n,
           PyObject **out)
{
    Py_ssize_t i, k, nkw;

    if (nargs > n) {
        PyErr_Format(PyExc_TypeError,
                     "%s() takes %zd positional arguments but %zd were given",
                     fname, n, nargs);
        return -1;
    }
    for (i = 0; i < n; i++) {
        out[i] = i < nargs ? args[i] : NULL;
    }
    nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    for (k = 0; k < nkw; k++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, k);

        for (i = 0; i < n; i++) {
            if (PyUnicode_CompareWithASCIIString(key, names[i]) == 0) {
                break;
            }
        }
        if (i == n) {
            PyErr_Format(PyExc_TypeError,
                         "%s() got an unexpected keyword argument '%U'", fname, key);
            return -1;
        }
        if (out[i] != NULL) {
            PyErr_Format(PyExc_TypeError,
                         "%s() got multiple values for argument '%s'", fname, names[i]);
            return -1;
        }
        out[i] = args[nargs + k];
    }
    for (i = 0; i < n; i++) {
        if (out[i] == NULL) {
            PyErr_Format(PyExc_TypeError,
                         "%s() missing required argument '%s' (pos %zd)",
                         fname, names[i], i + 1);
            return -1;
        }
    }
    return 0;
}

static int
check_key(const Py_buffer *mask)
{
    if (mask->len != 4) {
        PyErr_SetString(PyExc_ValueError, "mask must contain 4 bytes");
        return -1;
    }
    return 0;
}

PyDoc_STRVAR(apply_mask_doc,
"apply_mask($module, /, data, mask)\n"
"--\n"
"\n"
"Return data XORed with the 4-byte mask repeated (RFC 6455 section 5.3).\n"
"\n"
"data is any C-contiguous bytes-like object; the result is a new bytes\n"
"object. Raise ValueError if mask is not exactly 4 bytes long.");

static PyObject *
apply_mask(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
           PyObject *kwnames)
{
    static const char *const names[] = {"data", "mask"};
    PyObject *argv[2];
    Py_buffer data, mask;
    PyObject *result = NULL;

    if (kwnames == NULL && nargs == 2) {
        argv[0] = args[0];
        argv[1] = args[1];
    }
    else if (parse_args("apply_mask", args, nargs, kwnames, names, 2, argv) < 0) {
        return NULL;
    }
    if (PyObject_GetBuffer(argv[0], &data, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (PyObject_GetBuffer(argv[1], &mask, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&data);
        return NULL;
    }
    if (check_key(&mask) < 0) {
        goto done;
    }

    result = new_bytes(module, data.len);
    if (result == NULL) {
        goto done;
    }
    {
        const unsigned char *src = (const unsigned char *)data.buf;
        unsigned char *dst = (unsigned char *)PyBytes_AS_STRING(result);
        const unsigned char *key = (const unsigned char *)mask.buf;
        Py_ssize_t len = data.len;

        if (len >= GIL_RELEASE_THRESHOLD) {
            Py_BEGIN_ALLOW_THREADS
            xor_mask(src, dst, len, key);
            Py_END_ALLOW_THREADS
        }
        else {
            xor_mask(src, dst, len, key);
        }
    }

done:
    PyBuffer_Release(&mask);
    PyBuffer_Release(&data);
    return result;
}

PyDoc_STRVAR(apply_mask_into_doc,
"apply_mask_into($module, /, data, mask, out)\n"
"--\n"
"\n"
"Write data XORed with the 4-byte mask repeated into the writable buffer out.\n"
"\n"
"out must have the same length as data. It may be data itself (in-place\n"
"unmasking) but must not otherwise overlap it. Raise ValueError if mask is\n"
"not exactly 4 bytes long, if the lengths differ or on partial overlap.");

static PyObject *
apply_mask_into(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs,
                PyObject *kwnames)
{
    static const char *const names[] = {"data", "mask", "out"};
    PyObject *argv[3];
    Py_buffer data, mask, out;
    PyObject *result = NULL;

    if (parse_args("apply_mask_into", args, nargs, kwnames, names, 3, argv) < 0) {
        return NULL;
    }
    if (PyObject_GetBuffer(argv[0], &data, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (PyObject_GetBuffer(argv[1], &mask, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&data);
        return NULL;
    }
    if (PyObject_GetBuffer(argv[2], &out, PyBUF_WRITABLE) < 0) {
        /* Like the "w*" converter: one TypeError for every unusable out. */
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError,
                     "out must be a writable bytes-like object, not '%.100s'",
                     Py_TYPE(argv[2])->tp_name);
        PyBuffer_Release(&mask);
        PyBuffer_Release(&data);
        return NULL;
    }
    if (check_key(&mask) < 0) {
        goto done;
    }
    if (out.len != data.len) {
        PyErr_Format(PyExc_ValueError,
                     "out must have the same length as data (%zd != %zd)",
                     out.len, data.len);
        goto done;
    }
    {
        const unsigned char *src = (const unsigned char *)data.buf;
        unsigned char *dst = (unsigned char *)out.buf;
        const unsigned char *key = (const unsigned char *)mask.buf;
        Py_ssize_t len = data.len;
        uintptr_t s = (uintptr_t)src, d = (uintptr_t)dst;

        if (len > 0 && s != d && s < d + (uintptr_t)len && d < s + (uintptr_t)len) {
            PyErr_SetString(PyExc_ValueError, "out must not partially overlap data");
            goto done;
        }
        if (len >= GIL_RELEASE_THRESHOLD) {
            Py_BEGIN_ALLOW_THREADS
            xor_mask(src, dst, len, key);
            Py_END_ALLOW_THREADS
        }
        else {
            xor_mask(src, dst, len, key);
        }
    }
    result = Py_NewRef(Py_None);

done:
    PyBuffer_Release(&out);
    PyBuffer_Release(&mask);
    PyBuffer_Release(&data);
    return result;
}

PyDoc_STRVAR(extract_payload_doc,
"extract_payload($module, buffer, start, stop, key_at, /)\n"
"--\n"
"\n"
"Return buffer[start:stop] as bytes, unmasked with the 4-byte key found at\n"
"buffer[key_at:key_at + 4], or copied as is when key_at is -1.\n"
"\n"
"One call and one copy for a frame payload still in the receive buffer.\n"
"Raise ValueError if the range or the key lies outside the buffer.");

/* Also the C entry point of the capsule (_speedups_api.h). */
static PyObject *
extract_payload_impl(PyObject *module, PyObject *buffer, Py_ssize_t start, Py_ssize_t stop,
                     Py_ssize_t key_at)
{
    Py_buffer view;
    PyObject *result = NULL;

    if (PyObject_GetBuffer(buffer, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (start < 0 || stop < start || stop > view.len) {
        PyErr_SetString(PyExc_ValueError, "payload range outside the buffer");
        goto done;
    }
    if (key_at != -1 && (key_at < 0 || key_at > view.len - 4)) {
        PyErr_SetString(PyExc_ValueError, "masking key outside the buffer");
        goto done;
    }
    result = new_bytes(module, stop - start);
    if (result == NULL) {
        goto done;
    }
    {
        const unsigned char *src = (const unsigned char *)view.buf;
        unsigned char *dst = (unsigned char *)PyBytes_AS_STRING(result);
        Py_ssize_t len = stop - start;

        if (key_at == -1) {
            memcpy(dst, src + start, (size_t)len);
        }
        else {
            unsigned char key[4];

            /* A copy: with the GIL released, the key must not be read from
             * a buffer the payload's destination could alias. */
            memcpy(key, src + key_at, 4);
            if (len >= GIL_RELEASE_THRESHOLD) {
                Py_BEGIN_ALLOW_THREADS
                xor_mask(src + start, dst, len, key);
                Py_END_ALLOW_THREADS
            }
            else {
                xor_mask(src + start, dst, len, key);
            }
        }
    }

done:
    PyBuffer_Release(&view);
    return result;
}

static PyObject *
extract_payload(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t start, stop, key_at;

    if (nargs != 4) {
        PyErr_Format(PyExc_TypeError,
                     "extract_payload() takes 4 positional arguments but %zd were given",
                     nargs);
        return NULL;
    }
    start = PyLong_AsSsize_t(args[1]);
    stop = PyLong_AsSsize_t(args[2]);
    key_at = PyLong_AsSsize_t(args[3]);
    if (PyErr_Occurred()) {
        return NULL;
    }
    return extract_payload_impl(module, args[0], start, stop, key_at);
}

/* Section 5.2: 7 bits of length, or 126 and 16 bits, or 127 and 64 bits,
 * always the shortest form; with a mask, the MASK bit (the second octet's high
 * bit) and the 4-byte key. Writes at most 14 bytes; returns how many. */
static Py_ssize_t
write_header(unsigned char header[14], unsigned char first, unsigned long long length,
             const unsigned char *mask)
{
    Py_ssize_t header_len;

    header[0] = first;
    if (length < 126) {
        header[1] = (unsigned char)length;
        header_len = 2;
    }
    else if (length < 65536) {
        header[1] = 126;
        header[2] = (unsigned char)(length >> 8);
        header[3] = (unsigned char)length;
        header_len = 4;
    }
    else {
        header[1] = 127;
        for (int i = 9; i >= 2; i--) {
            header[i] = (unsigned char)length;
            length >>= 8;
        }
        header_len = 10;
    }
    if (mask != NULL) {
        header[1] |= 0x80;
        memcpy(header + header_len, mask, 4);
        header_len += 4;
    }
    return header_len;
}

/* The octet of FIN, RSV and opcode bits; -1 with an exception if out of range. */
static long
first_octet(PyObject *arg)
{
    long first = PyLong_AsLong(arg);

    if (first == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (first < 0 || first > 255) {
        PyErr_SetString(PyExc_ValueError, "first must be an octet (0-255)");
        return -1;
    }
    return first;
}

PyDoc_STRVAR(encode_header_doc,
"encode_header($module, first, length, mask, /)\n"
"--\n"
"\n"
"Return the header of a frame with a payload of length bytes (RFC 6455\n"
"section 5.2): the octet first, the length in its shortest form, and with a\n"
"4-byte mask (None for none) the MASK bit and the key.");

static PyObject *
encode_header(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer mask;
    long first;
    long long length;
    unsigned char header[14];
    Py_ssize_t header_len;

    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError,
                     "encode_header() takes 3 positional arguments but %zd were given", nargs);
        return NULL;
    }
    first = first_octet(args[0]);
    if (first < 0) {
        return NULL;
    }
    length = PyLong_AsLongLong(args[1]);
    if (length == -1 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError)) {
            return NULL;
        }
        PyErr_Clear();
        length = -1;
    }
    if (length < 0) {
        /* Section 5.2: the most significant bit of a 64-bit length MUST be 0. */
        PyErr_SetString(PyExc_ValueError, "length must be between 0 and 2**63 - 1");
        return NULL;
    }
    if (args[2] == Py_None) {
        header_len = write_header(header, (unsigned char)first,
                                  (unsigned long long)length, NULL);
        return PyBytes_FromStringAndSize((const char *)header, header_len);
    }
    if (PyObject_GetBuffer(args[2], &mask, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (check_key(&mask) < 0) {
        PyBuffer_Release(&mask);
        return NULL;
    }
    header_len = write_header(header, (unsigned char)first, (unsigned long long)length,
                              (const unsigned char *)mask.buf);
    PyBuffer_Release(&mask);
    return PyBytes_FromStringAndSize((const char *)header, header_len);
}

PyDoc_STRVAR(encode_frame_doc,
"encode_frame($module, first, data, mask, /)\n"
"--\n"
"\n"
"Return a whole frame (RFC 6455 section 5.2): the octet first (FIN, RSV and\n"
"opcode bits), the payload length in its shortest form, then data; with a\n"
"4-byte mask, the MASK bit, the key and data XORed with it (section 5.3).\n"
"mask is None for an unmasked frame. One allocation, one pass over data.");

static PyObject *
encode_frame(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer data, mask;
    long first;
    int masked;
    unsigned char header[14];
    Py_ssize_t header_len;
    PyObject *result = NULL;

    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError,
                     "encode_frame() takes 3 positional arguments but %zd were given", nargs);
        return NULL;
    }
    first = first_octet(args[0]);
    if (first < 0) {
        return NULL;
    }
    masked = args[2] != Py_None;
    if (PyObject_GetBuffer(args[1], &data, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (masked) {
        if (PyObject_GetBuffer(args[2], &mask, PyBUF_SIMPLE) < 0) {
            PyBuffer_Release(&data);
            return NULL;
        }
        if (check_key(&mask) < 0) {
            goto done;
        }
    }
    header_len = write_header(header, (unsigned char)first, (unsigned long long)data.len,
                              masked ? (const unsigned char *)mask.buf : NULL);
    if (data.len > PY_SSIZE_T_MAX - header_len) {
        PyErr_NoMemory();
        goto done;
    }
    result = new_bytes(module, header_len + data.len);
    if (result == NULL) {
        goto done;
    }
    {
        unsigned char *dst = (unsigned char *)PyBytes_AS_STRING(result);

        memcpy(dst, header, (size_t)header_len);
        if (!masked) {
            memcpy(dst + header_len, data.buf, (size_t)data.len);
        }
        else if (data.len >= GIL_RELEASE_THRESHOLD) {
            Py_BEGIN_ALLOW_THREADS
            xor_mask((const unsigned char *)data.buf, dst + header_len, data.len,
                     header + header_len - 4);
            Py_END_ALLOW_THREADS
        }
        else {
            xor_mask((const unsigned char *)data.buf, dst + header_len, data.len,
                     header + header_len - 4);
        }
    }

done:
    if (masked) {
        PyBuffer_Release(&mask);
    }
    PyBuffer_Release(&data);
    return result;
}

/* --- Messages assembled in place --------------------------------------------
 * A large binary frame that arrives over several reads is unmasked straight
 * into the bytes object that will be the message: new_payload() allocates it,
 * fill_payload() writes each piece, finish_payload() hands it over. The object
 * is private to the parser until finished (nobody else holds or hashes it),
 * which is what makes writing into a bytes object sound, as CPython itself
 * does when it builds one. Lengths below 2 are refused: CPython shares the
 * empty and one-byte bytes objects. */

PyDoc_STRVAR(new_payload_doc,
"new_payload($module, length, /)\n"
"--\n"
"\n"
"Return a new message buffer of length bytes (length >= 2), to be filled by\n"
"fill_payload() and handed over by finish_payload().");

static PyObject *
new_payload(PyObject *module, PyObject *arg)
{
    Py_ssize_t length = PyLong_AsSsize_t(arg);

    if (length == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (length < 2) {
        PyErr_SetString(PyExc_ValueError, "a message buffer holds at least 2 bytes");
        return NULL;
    }
    return new_bytes(module, length);
}

PyDoc_STRVAR(fill_payload_doc,
"fill_payload($module, target, at, source, start, stop, key, /)\n"
"--\n"
"\n"
"Write source[start:stop] into the message buffer target at offset at,\n"
"unmasked with the 4-byte key (None: copied as is). The key is the one of\n"
"payload octet `at` onwards: the caller rotates the frame's key by at % 4.");

static PyObject *
fill_payload(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *target, *result = NULL;
    Py_ssize_t at, start, stop;
    Py_buffer source, key;
    int masked;

    if (nargs != 6) {
        PyErr_Format(PyExc_TypeError,
                     "fill_payload() takes 6 positional arguments but %zd were given", nargs);
        return NULL;
    }
    target = args[0];
    if (!PyBytes_CheckExact(target) || PyBytes_GET_SIZE(target) < 2) {
        PyErr_SetString(PyExc_TypeError, "target must come from new_payload()");
        return NULL;
    }
    at = PyLong_AsSsize_t(args[1]);
    start = PyLong_AsSsize_t(args[3]);
    stop = PyLong_AsSsize_t(args[4]);
    if (PyErr_Occurred()) {
        return NULL;
    }
    masked = args[5] != Py_None;
    if (PyObject_GetBuffer(args[2], &source, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (masked && PyObject_GetBuffer(args[5], &key, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&source);
        return NULL;
    }
    if (masked && check_key(&key) < 0) {
        goto done;
    }
    if (start < 0 || stop < start || stop > source.len) {
        PyErr_SetString(PyExc_ValueError, "source range outside the buffer");
        goto done;
    }
    if (at < 0 || at > PyBytes_GET_SIZE(target) - (stop - start)) {
        PyErr_SetString(PyExc_ValueError, "piece outside the message buffer");
        goto done;
    }
    {
        const unsigned char *src = (const unsigned char *)source.buf + start;
        unsigned char *dst = (unsigned char *)PyBytes_AS_STRING(target) + at;

        if (masked) {
            xor_mask(src, dst, stop - start, (const unsigned char *)key.buf);
        }
        else {
            memcpy(dst, src, (size_t)(stop - start));
        }
    }
    result = Py_None;
    Py_INCREF(result);

done:
    if (masked) {
        PyBuffer_Release(&key);
    }
    PyBuffer_Release(&source);
    return result;
}

PyDoc_STRVAR(finish_payload_doc,
"finish_payload($module, target, /)\n"
"--\n"
"\n"
"Return the filled message buffer as the message (here: target itself).");

static PyObject *
finish_payload(PyObject *Py_UNUSED(module), PyObject *target)
{
    if (!PyBytes_CheckExact(target)) {
        PyErr_SetString(PyExc_TypeError, "target must come from new_payload()");
        return NULL;
    }
    Py_INCREF(target);
    return target;
}

static PyMethodDef speedups_methods[] = {
    {"encode_header", (PyCFunction)(void (*)(void))encode_header, METH_FASTCALL,
     encode_header_doc},
    {"encode_frame", (PyCFunction)(void (*)(void))encode_frame, METH_FASTCALL,
     encode_frame_doc},
    {"new_payload", (PyCFunction)new_payload, METH_O, new_payload_doc},
    {"fill_payload", (PyCFunction)(void (*)(void))fill_payload, METH_FASTCALL,
     fill_payload_doc},
    {"finish_payload", (PyCFunction)finish_payload, METH_O, finish_payload_doc},
    {"extract_payload", (PyCFunction)(void (*)(void))extract_payload,
     METH_FASTCALL, extract_payload_doc},
    {"apply_mask", (PyCFunction)(void (*)(void))apply_mask,
     METH_FASTCALL | METH_KEYWORDS, apply_mask_doc},
    {"apply_mask_into", (PyCFunction)(void (*)(void))apply_mask_into,
     METH_FASTCALL | METH_KEYWORDS, apply_mask_into_doc},
    {NULL, NULL, 0, NULL},
};

static int
speedups_exec(PyObject *module)
{
    speedups_state *state = get_state(module);
    PyObject *capsule;
    int added;

    state->api.extract_payload = extract_payload_impl;
    capsule = PyCapsule_New(&state->api, WSJET_SPEEDUPS_CAPSULE, NULL);
    if (capsule == NULL) {
        return -1;
    }
    added = PyModule_AddObjectRef(module, "_C_API", capsule);
    Py_DECREF(capsule);
    if (added < 0) {
        return -1;
    }
#ifdef WSJET_HAVE_AVX2_DISPATCH
    /* WSJET_NO_AVX2 (any value) keeps the SSE2 loop, to test or compare it. */
    const char *off = getenv("WSJET_NO_AVX2");
    __builtin_cpu_init();
    use_avx2 = __builtin_cpu_supports("avx2") && (off == NULL || off[0] == '\0');
#endif
    return PyModule_AddIntConstant(module, "AVX2",
#ifdef WSJET_HAVE_AVX2_DISPATCH
                                   use_avx2
#else
                                   0
#endif
    );
}

static int
speedups_traverse(PyObject *module, visitproc visit, void *arg)
{
    speedups_state *state = get_state(module);

    for (int i = 0; i < RECYCLE_SLOTS; i++) {
        Py_VISIT(state->slots[i]);
    }
    return 0;
}

static int
speedups_clear(PyObject *module)
{
    speedups_state *state = get_state(module);

    for (int i = 0; i < RECYCLE_SLOTS; i++) {
        Py_CLEAR(state->slots[i]);
    }
    return 0;
}

static void
speedups_free(void *module)
{
    (void)speedups_clear((PyObject *)module);
}

static PyModuleDef_Slot speedups_slots[] = {
    {Py_mod_exec, speedups_exec},
#ifdef Py_mod_multiple_interpreters
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
#ifdef Py_mod_gil
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, NULL},
};

PyDoc_STRVAR(speedups_doc,
"Compiled WebSocket masking; see wsjet.core._mask for the specification.");

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "wsjet.core._speedups",
    .m_doc = speedups_doc,
    .m_size = sizeof(speedups_state),
    .m_methods = speedups_methods,
    .m_slots = speedups_slots,
    .m_traverse = speedups_traverse,
    .m_clear = speedups_clear,
    .m_free = speedups_free,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModuleDef_Init(&speedups_module);
}
