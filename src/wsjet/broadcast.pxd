# C types for broadcast.py, compiled by Cython in "pure Python mode" (see
# wsjet/core/connection.pxd). broadcast.py stays the specification and the
# pure-Python path; this file only types the loop that runs once per receiver
# of every broadcast, so that what it reads of each connection are C fields
# of the engine and the connection.

cimport cython
from wsjet.core.connection cimport Connection
from wsjet.engine cimport Engine


@cython.locals(protocol=Engine, connection=Connection, pending=dict, compressed=dict,
               size=Py_ssize_t, max_buffer=Py_ssize_t, backlog=Py_ssize_t,
               delivered=Py_ssize_t, skipped=Py_ssize_t, closed=Py_ssize_t,
               may_compress=bint, is_client=bint)
cpdef tuple _queue_everywhere(object connections, int opcode, object payload, object fixed, object compress)

@cython.locals(protocol=Engine)
cpdef _flush_pending(object loop)
