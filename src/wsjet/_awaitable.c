/*
 * wsjet._awaitable: Completed, an awaitable whose result is already known, and
 * send_in_context(), which starts a coroutine in a contextvars.Context.
 *
 * The pure-Python specification is wsjet/awaitable.py (PureCompleted,
 * pure_send_in_context); tests/test_awaitable.py runs the same checks on both.
 *
 * Why: reader.get() of a message that has arrived and writer.send() of a
 * message the transport took at once have nothing left to wait for. Handing
 * out a compiled coroutine for them costs a coroutine object, an await
 * wrapper and a StopIteration per call. Completed costs one small object:
 * awaiting it returns the value through am_send (PEP 590-era slot, Python
 * 3.10+), which the interpreter's SEND opcode and asyncio's C Task call
 * directly, so no exception is ever raised on that path.
 *
 * It also answers the coroutine protocol (send, throw, close; registered as a
 * collections.abc.Coroutine by wsjet.awaitable), so asyncio.create_task()
 * accepts it like the coroutine it stands for.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

typedef struct {
    PyObject_HEAD
    PyObject *value;
} CompletedObject;

static PyTypeObject Completed_Type;

static PyObject *
completed_make(PyObject *value)
{
    CompletedObject *self = PyObject_New(CompletedObject, &Completed_Type);
    if (self == NULL) {
        return NULL;
    }
    Py_INCREF(value);
    self->value = value;
    return (PyObject *)self;
}

static PyObject *
completed_vectorcall(PyObject *Py_UNUSED(type), PyObject *const *args, size_t nargsf,
                     PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (kwnames != NULL && PyTuple_GET_SIZE(kwnames) != 0) {
        PyErr_SetString(PyExc_TypeError, "Completed() takes no keyword arguments");
        return NULL;
    }
    if (nargs > 1) {
        PyErr_Format(PyExc_TypeError,
                     "Completed() takes at most 1 argument (%zd given)", nargs);
        return NULL;
    }
    return completed_make(nargs == 1 ? args[0] : Py_None);
}

static PyObject *
completed_new(PyTypeObject *Py_UNUSED(type), PyObject *args, PyObject *kwargs)
{
    PyObject *value = Py_None;
    if (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0) {
        PyErr_SetString(PyExc_TypeError, "Completed() takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_UnpackTuple(args, "Completed", 0, 1, &value)) {
        return NULL;
    }
    return completed_make(value);
}

static void
completed_dealloc(CompletedObject *self)
{
    Py_XDECREF(self->value);
    PyObject_Free(self);
}

/* Awaiting: the object is its own iterator. */
static PyObject *
completed_await(PyObject *self)
{
    Py_INCREF(self);
    return self;
}

/* The fast path: the result, with no StopIteration. */
static PySendResult
completed_am_send(CompletedObject *self, PyObject *Py_UNUSED(arg), PyObject **result)
{
    Py_INCREF(self->value);
    *result = self->value;
    return PYGEN_RETURN;
}

/* Raise StopIteration carrying the value, as a returning coroutine does. */
static PyObject *
completed_stop(CompletedObject *self)
{
    if (self->value == Py_None) {
        PyErr_SetNone(PyExc_StopIteration);
        return NULL;
    }
    /* Built explicitly: PyErr_SetObject would unpack a tuple value. */
    PyObject *exc = PyObject_CallOneArg(PyExc_StopIteration, self->value);
    if (exc != NULL) {
        PyErr_SetObject(PyExc_StopIteration, exc);
        Py_DECREF(exc);
    }
    return NULL;
}

static PyObject *
completed_iternext(CompletedObject *self)
{
    return completed_stop(self);
}

static PyObject *
completed_send(CompletedObject *self, PyObject *Py_UNUSED(arg))
{
    return completed_stop(self);
}

/* throw(exc) or throw(type[, value[, traceback]]): there is nothing left to
 * run that could catch it, so it is raised as given. */
static PyObject *
completed_throw(CompletedObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 3) {
        PyErr_Format(PyExc_TypeError, "throw expected 1 to 3 arguments, got %zd", nargs);
        return NULL;
    }
    PyObject *typ = args[0];
    PyObject *val = nargs > 1 ? args[1] : Py_None;
    PyObject *tb = nargs > 2 ? args[2] : Py_None;
    PyObject *exc;
    if (PyExceptionInstance_Check(typ)) {
        if (val != Py_None) {
            PyErr_SetString(PyExc_TypeError,
                            "instance exception may not have a separate value");
            return NULL;
        }
        exc = Py_NewRef(typ);
    }
    else if (PyExceptionClass_Check(typ)) {
        if (PyExceptionInstance_Check(val) && PyObject_IsInstance(val, typ) == 1) {
            exc = Py_NewRef(val);
        }
        else if (val == Py_None) {
            exc = PyObject_CallNoArgs(typ);
        }
        else if (PyTuple_Check(val)) {
            exc = PyObject_Call(typ, val, NULL);
        }
        else {
            exc = PyObject_CallOneArg(typ, val);
        }
        if (exc == NULL) {
            return NULL;
        }
    }
    else {
        PyErr_Format(PyExc_TypeError,
                     "exceptions must be classes or instances deriving from "
                     "BaseException, not %.100s", Py_TYPE(typ)->tp_name);
        return NULL;
    }
    if (tb != Py_None) {
        if (!PyTraceBack_Check(tb)) {
            Py_DECREF(exc);
            PyErr_SetString(PyExc_TypeError, "throw() third argument must be a traceback");
            return NULL;
        }
        if (PyException_SetTraceback(exc, tb) < 0) {
            Py_DECREF(exc);
            return NULL;
        }
    }
    PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    Py_DECREF(exc);
    return NULL;
}

static PyObject *
completed_close(PyObject *Py_UNUSED(self), PyObject *Py_UNUSED(ignored))
{
    Py_RETURN_NONE;
}

static PyObject *
completed_repr(CompletedObject *self)
{
    return PyUnicode_FromFormat("<Completed %R>", self->value);
}

static PyMethodDef completed_methods[] = {
    {"send", (PyCFunction)completed_send, METH_O,
     "send(value) -> raise StopIteration(result): the awaitable is complete."},
    {"throw", (PyCFunction)(void (*)(void))completed_throw, METH_FASTCALL,
     "throw(exc) -> raise exc: nothing is left to run that could catch it."},
    {"close", (PyCFunction)completed_close, METH_NOARGS, "close() -> None."},
    {NULL, NULL, 0, NULL},
};

static PyAsyncMethods completed_as_async = {
    .am_await = completed_await,
    .am_send = (sendfunc)completed_am_send,
};

PyDoc_STRVAR(completed_doc,
"Completed(value=None)\n"
"--\n"
"\n"
"An awaitable whose result is already known: awaiting it returns value\n"
"at once, without suspending.");

static PyTypeObject Completed_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "wsjet._awaitable.Completed",
    .tp_basicsize = sizeof(CompletedObject),
    .tp_dealloc = (destructor)completed_dealloc,
    .tp_as_async = &completed_as_async,
    .tp_repr = (reprfunc)completed_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = completed_doc,
    .tp_iternext = (iternextfunc)completed_iternext,
    .tp_methods = completed_methods,
    .tp_new = completed_new,
    .tp_vectorcall = completed_vectorcall,
};

/* --- send_in_context: start a coroutine in a context -------------------------- */

/* Returned when the coroutine finished (its result is dropped): a unique
 * object, since a coroutine may yield anything, None included. */
static PyObject *finished_marker;

PyDoc_STRVAR(send_in_context_doc,
"send_in_context($module, context, coro, /)\n"
"--\n"
"\n"
"Send None into coro with context entered, as context.run(coro.send, None)\n"
"does; return what coro yielded, or FINISHED if it returned (its result is\n"
"dropped). An exception coro raises propagates.");

static PyObject *
send_in_context(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError,
                     "send_in_context expected 2 arguments, got %zd", nargs);
        return NULL;
    }
    PyObject *context = args[0], *coro = args[1], *result = NULL;
    if (!PyContext_CheckExact(context)) {
        PyErr_Format(PyExc_TypeError, "send_in_context: a contextvars.Context is "
                     "required, not %.100s", Py_TYPE(context)->tp_name);
        return NULL;
    }
    if (PyContext_Enter(context) < 0) {
        return NULL;
    }
    /* PyIter_Send returns a coroutine's result without raising StopIteration
     * (am_send); it falls back to coro.send(None) for other coroutines. */
    PySendResult status = PyIter_Send(coro, Py_None, &result);
    if (PyContext_Exit(context) < 0) {
        Py_XDECREF(result);
        return NULL;
    }
    switch (status) {
    case PYGEN_RETURN:
        Py_DECREF(result);
        Py_INCREF(finished_marker);
        return finished_marker;
    case PYGEN_NEXT:
        return result;
    default:
        return NULL;
    }
}

static PyMethodDef awaitable_methods[] = {
    {"send_in_context", (PyCFunction)(void (*)(void))send_in_context, METH_FASTCALL,
     send_in_context_doc},
    {NULL, NULL, 0, NULL},
};

static int
awaitable_exec(PyObject *module)
{
    if (finished_marker == NULL) {
        finished_marker = PyObject_CallNoArgs((PyObject *)&PyBaseObject_Type);
        if (finished_marker == NULL) {
            return -1;
        }
    }
    Py_INCREF(finished_marker);
    if (PyModule_AddObject(module, "FINISHED", finished_marker) < 0) {
        Py_DECREF(finished_marker);
        return -1;
    }
    if (PyType_Ready(&Completed_Type) < 0) {
        return -1;
    }
    Py_INCREF(&Completed_Type);
    if (PyModule_AddObject(module, "Completed", (PyObject *)&Completed_Type) < 0) {
        Py_DECREF(&Completed_Type);
        return -1;
    }
    return 0;
}

static PyModuleDef_Slot awaitable_slots[] = {
    {Py_mod_exec, awaitable_exec},
    {0, NULL},
};

PyDoc_STRVAR(awaitable_doc,
"Compiled Completed and send_in_context; see wsjet.awaitable for the specification.");

static struct PyModuleDef awaitable_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "wsjet._awaitable",
    .m_doc = awaitable_doc,
    .m_size = 0,
    .m_methods = awaitable_methods,
    .m_slots = awaitable_slots,
};

PyMODINIT_FUNC
PyInit__awaitable(void)
{
    return PyModuleDef_Init(&awaitable_module);
}
