# Declarations that let Cython compile connection.py into a C extension
# (Cython's "pure Python mode" with an augmenting .pxd). connection.py stays
# the specification and the pure-Python path; this file only adds C types.
# Every attribute of Connection must be declared here: a compiled instance has
# no __dict__. "public" ones are read or set by the I/O layer and tests.

cimport cython
from wsjet.core.events cimport DataReceived
from wsjet.core cimport mask as masking

# Module constants used on every frame (see connection.py).
cdef int _FIN, _RSV1, _RSV23, _OPCODE, _MASKED, _FIN_OR_RSV1
cdef Py_ssize_t _ASSEMBLY_MIN, _MAX_PENDING_PIECES, _COPY_FRAME_LIMIT, _LONGEST_FRAME
cdef int _CONT, _TEXT, _BINARY, _CLOSE, _PING, _PONG
cdef long _KNOWN_OPCODE_BITS
cdef object _OPEN, _CLOSING, _CLOSED


cdef class Connection:
    cdef public object side
    cdef public object state
    cdef object _max_size
    cdef Py_ssize_t _frame_size_limit
    cdef public Py_ssize_t max_fragments
    cdef public object codec
    cdef public Py_ssize_t compression_threshold
    cdef public Py_ssize_t whole_frame_limit
    cdef public object logger
    cdef bint _debug
    cdef object _mask_key
    cdef bint _expect_masked

    cdef public object close_rcvd
    cdef public object close_sent
    cdef public object close_rcvd_then_sent
    cdef public object failure
    cdef public bint eof_received

    cdef bytearray _buffer
    cdef Py_ssize_t _parsed
    cdef list _events
    cdef list _output
    cdef Py_ssize_t _output_size
    cdef bint _parsing
    cdef bint _eof_wanted

    cdef object _assembly
    cdef Py_ssize_t _assembly_pos
    cdef object _assembly_key
    cdef int _assembly_opcode

    cdef Py_ssize_t _frame_remaining
    cdef bint _frame_fin
    cdef object _frame_mask
    cdef Py_ssize_t _frame_offset
    cdef int _frame_opcode
    cdef Py_ssize_t _frame_length

    cdef object _msg_opcode
    cdef Py_ssize_t _msg_size
    cdef Py_ssize_t _msg_frames
    cdef bint _msg_compressed
    cdef Py_ssize_t _msg_wire
    cdef Py_ssize_t _msg_pieces

    cdef public bint pause_after_message
    cdef bint _held
    cdef public bint defer_pongs
    cdef object _pending_pong
    cdef object _decoder
    cdef object _out_msg

    # The engine (wsjet/engine.py) calls these as C functions, once per read or message.
    cpdef receive_data(self, object data)
    # size is checked against the buffer before it becomes a C integer.
    @cython.locals(end=Py_ssize_t)
    cpdef receive_from(self, bytearray buffer, object size)
    cpdef list events_received(self)
    cpdef list data_to_send(self)
    cpdef Py_ssize_t output_size(self)
    cpdef bint close_expected(self)
    cpdef bint wants_eof(self)
    # wsjet.broadcast calls it once per receiver.
    cpdef bint send_frame_bytes(self, object data, int opcode) except -1

    cdef _send_data(self, int opcode, object data, bint fin, object compress)
    @cython.locals(length=Py_ssize_t, first=int, frame=bytes)
    cdef _write_frame(self, int opcode, object data, bint fin, bint rsv1)
    cdef _fail(self, object exc)

    @cython.locals(buf=bytearray)
    cdef _parse(self)
    @cython.locals(
        pos=Py_ssize_t,
        n=Py_ssize_t,
        first=int,
        second=int,
        opcode=int,
        length=Py_ssize_t,
        header_size=Py_ssize_t,
        start=Py_ssize_t,
        key_at=Py_ssize_t,
        at=Py_ssize_t,
    )
    cdef _parse_from(self, bytearray buf, Py_ssize_t end)
    @cython.locals(filled=Py_ssize_t, n=Py_ssize_t)
    cdef Py_ssize_t _assemble(self, object source, Py_ssize_t start, Py_ssize_t end) except -1
    cdef _check_header(self, int first, int second, int opcode, Py_ssize_t length)
    @cython.locals(frames=Py_ssize_t, size=Py_ssize_t, compressed=bint, wire=Py_ssize_t)
    cdef _check_size(self, int first, int opcode, Py_ssize_t length)
    cdef _start_data_frame(self, int first, int opcode, Py_ssize_t length, object mask)
    cdef _receive_message(self, int opcode, bytes payload)
    @cython.locals(offset=Py_ssize_t, end=bint)
    cdef _receive_payload(self, object chunk)
    cdef _receive_control(self, int opcode, bytes payload)
