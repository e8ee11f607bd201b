/*
 * The C entry points of wsjet.core._speedups, for the Cython-compiled modules.
 *
 * Called from Python, extract_payload() takes its three offsets as Python
 * integers: the compiled connection would make one for every offset past 256
 * (a 1 KiB frame's end), about 300 instructions per message. Declared to Cython
 * by wsjet/core/mask.pxd, these functions take C integers instead.
 *
 * _speedups publishes them in the capsule wsjet.core._speedups._C_API (module
 * state: one per interpreter). The first call imports it and keeps a reference
 * to the module, whose state the functions use. If the extension is missing
 * (an installation whose C build failed while Cython's succeeded), the calls
 * go to the pure-Python twins in wsjet.core._mask instead, with the same
 * results: a compiled module never depends on another's build.
 */
#ifndef WSJET_SPEEDUPS_API_H
#define WSJET_SPEEDUPS_API_H

#include <Python.h>

#define WSJET_SPEEDUPS_CAPSULE "wsjet.core._speedups._C_API"

/* Each function takes the _speedups module first (its state: see new_bytes). */
typedef struct {
    PyObject *(*extract_payload)(PyObject *module, PyObject *buffer, Py_ssize_t start,
                                 Py_ssize_t stop, Py_ssize_t key_at);
} wsjet_speedups_api;

#ifndef WSJET_SPEEDUPS_MODULE /* the rest is for the modules that call them */

static const wsjet_speedups_api *wsjet_speedups;
/* The module the capsule belongs to, held for good: the functions' state is its. */
static PyObject *wsjet_speedups_owner;
static PyObject *wsjet_pure_extract_payload; /* the fallback, when the extension is missing */

static int
wsjet_speedups_import(void)
{
    PyObject *twin, *capsule;

    wsjet_speedups_owner = PyImport_ImportModule("wsjet.core._speedups");
    if (wsjet_speedups_owner != NULL) {
        capsule = PyObject_GetAttrString(wsjet_speedups_owner, "_C_API");
        if (capsule == NULL) {
            return -1;
        }
        wsjet_speedups =
            (const wsjet_speedups_api *)PyCapsule_GetPointer(capsule, WSJET_SPEEDUPS_CAPSULE);
        Py_DECREF(capsule);
        return wsjet_speedups == NULL ? -1 : 0;
    }
    if (!PyErr_ExceptionMatches(PyExc_ImportError)) {
        return -1;
    }
    PyErr_Clear();
    twin = PyImport_ImportModule("wsjet.core._mask");
    if (twin == NULL) {
        return -1;
    }
    wsjet_pure_extract_payload = PyObject_GetAttrString(twin, "extract_payload");
    Py_DECREF(twin);
    return wsjet_pure_extract_payload == NULL ? -1 : 0;
}

/* wsjet.core.mask.extract_payload(buffer, start, stop, key_at) */
static PyObject *
wsjet_speedups_extract_payload(PyObject *buffer, Py_ssize_t start, Py_ssize_t stop,
                               Py_ssize_t key_at)
{
    if (wsjet_speedups == NULL && wsjet_pure_extract_payload == NULL &&
        wsjet_speedups_import() < 0) {
        return NULL;
    }
    if (wsjet_speedups != NULL) {
        return wsjet_speedups->extract_payload(wsjet_speedups_owner, buffer, start, stop,
                                               key_at);
    }
    return PyObject_CallFunction(wsjet_pure_extract_payload, "Onnn", buffer, start, stop,
                                 key_at);
}

#endif /* WSJET_SPEEDUPS_MODULE */
#endif /* WSJET_SPEEDUPS_API_H */
