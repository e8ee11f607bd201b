# C types for events.py (see connection.pxd): DataReceived, made once per
# message, is an extension type; the other events stay dataclasses.

cdef class DataReceived:
    cdef public object data
    cdef public bint first
    cdef public bint fin
