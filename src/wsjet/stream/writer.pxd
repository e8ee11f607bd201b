# C types for writer.py (see buffer.pxd). Compiled, WebSocketWriter.send()
# calls the engine's send_now() as a C method: no Python frame per message
# sent by a callback.


from wsjet.engine cimport Engine


cdef class WebSocketWriter:
    cdef Engine _protocol
