# C types for buffer.py, compiled by Cython in "pure Python mode" (see
# wsjet/core/connection.pxd). buffer.py stays the specification and the
# pure-Python path; this file only adds C types.

cimport cython



cdef class Buffer:
    cdef object _chunks
    cdef bint _eof
    cdef object _exception
    cdef Py_ssize_t _limit
    cdef Py_ssize_t _pos
    cdef Py_ssize_t _size
    cdef object _waiter

    cpdef _wake(self)
    @cython.locals(pos=Py_ssize_t, available=Py_ssize_t, need=Py_ssize_t)
    cpdef _take(self, Py_ssize_t n)  # bytes, or what was fed (bytearray, ...)
    cpdef _prepare(self)
    cpdef _consumed(self, Py_ssize_t n)
    cpdef _waiting(self, Py_ssize_t wanted)
