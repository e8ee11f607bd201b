# C types for writer.py (see buffer.pxd). Compiled, WebSocketWriter.send()
# hands the engine's coroutine over from C: no Python frame per message sent
# by a callback.


cdef class WebSocketWriter:
    cdef object _protocol
