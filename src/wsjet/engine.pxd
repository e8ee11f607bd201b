# C types for engine.py, compiled by Cython in "pure Python mode" (see
# wsjet/core/connection.pxd). engine.py stays the specification and the
# pure-Python path; this file only adds C types. Every attribute the engine
# touches per message is a C field here; the protocol (a Python subclass)
# keeps the others in its __dict__.

cimport cython
from wsjet.core.connection cimport Connection
from wsjet.core.events cimport DataReceived

cdef Py_ssize_t _CORK_LIMIT, _SMALL_PIECE, _SMALL_BATCH, _SMALL_JOIN
cdef int _TEXT, _BINARY
cdef object _OPEN, _SENT


cdef class Engine:
    cdef public Connection connection
    cdef public object transport
    cdef public object loop
    cdef public object logger
    cdef public object max_queue
    cdef public double close_timeout
    cdef public bint _lost
    cdef public double _last_data
    cdef public bint _awaiting_pong
    cdef public int _paused_reading
    cdef public bint _writing_paused
    cdef public bint _corked
    cdef public bint _eof_written
    cdef public bint _writelines_joins
    cdef public object _write_target
    cdef public object _write
    cdef public bint _logged_failure
    cdef public object _close_timer
    cdef public object _sink
    cdef public object _messages
    cdef public list _pieces
    cdef public list _small
    cdef public object _recv_waiter
    cdef public bytearray _read_buffer
    cdef public object _read_view
    cdef public bint _sending_fragments
    cdef public object _fragment_lock

    @cython.locals(connection=Connection, corked=bint)
    cpdef _process(self)
    cpdef _assemble(self, DataReceived event)
    @cython.locals(connection=Connection)
    cpdef bint _send_message(self, object message, object compress) except -1
    @cython.locals(connection=Connection)
    cdef inline bint _can_send(self)
    @cython.locals(connection=Connection)
    cpdef Connection _open_connection(self)
    cpdef object send_now(self, object message, object compress=*)
    cdef _cork_if_behind(self)
    @cython.locals(connection=Connection, output=list)
    cpdef _flush(self)
