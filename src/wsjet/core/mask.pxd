# What the Cython-compiled modules call of wsjet.core.mask as C functions (see
# _speedups_api.h): they cimport this and import mask.py under the same name
# (`masking`), so `masking.extract_payload(...)` is a C call with C integers
# when compiled and the Python function on the pure-Python path. mask.py
# itself is not compiled.

cdef extern from "wsjet/core/_speedups_api.h":
    object extract_payload "wsjet_speedups_extract_payload" (
        object buffer, Py_ssize_t start, Py_ssize_t stop, Py_ssize_t key_at
    )
