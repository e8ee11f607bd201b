# C types for delivery.py, compiled by Cython in "pure Python mode" (see
# wsjet/core/connection.pxd and wsjet/engine.pxd). Every attribute the sink
# touches per message is a C field here; Client (a Python subclass) keeps the
# others in its __dict__.

cimport cython
from wsjet.core.events cimport DataReceived
from wsjet.stream.reader cimport FlowControl, WebSocketReader, whole_message

cdef object _copy_context, _send_in_context, _FINISHED


cdef class MessageDelivery:
    cdef public object _loop
    cdef public object _on_message
    cdef public FlowControl _flow
    cdef public WebSocketReader _receiving
    cdef public object _queue
    cdef public bint _busy
    cdef public object _current
    cdef public object _task
    cdef public bint _failed
    cdef public bint _dropping

    @cython.locals(reader=WebSocketReader, flow=FlowControl)
    cpdef _receive(self, DataReceived event)
    @cython.locals(flow=FlowControl)
    cpdef _start(self)
    cpdef WebSocketReader _dequeue(self)
    cpdef _deliver(self, WebSocketReader reader)
    cpdef bint _run_message(self, object callback, WebSocketReader reader) except -1
