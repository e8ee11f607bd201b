# C types for reader.py (see buffer.pxd).

cimport cython
from wsjet.stream.buffer cimport Buffer


cdef class FlowControl:
    cdef object _pause
    cdef object _resume
    cdef public Py_ssize_t allowance
    cdef public Py_ssize_t buffered
    cdef public Py_ssize_t limit
    cdef public object max_queue
    cdef public bint paused
    cdef public Py_ssize_t queued

    cpdef add(self, Py_ssize_t n)
    cpdef remove(self, Py_ssize_t n)
    @cython.locals(buffered=Py_ssize_t)
    cpdef update(self)


cdef object _NO_CHUNKS


cdef class WebSocketReader(Buffer):
    cdef bint _discarded
    cdef FlowControl _flow
    cdef list _text
    cdef Py_ssize_t _text_size
    cdef public bint is_text
    cdef object _whole

    cpdef discard(self)
    cpdef object _take_message(self)


@cython.locals(self=WebSocketReader, size=Py_ssize_t)
cpdef WebSocketReader whole_message(object data, FlowControl flow)
