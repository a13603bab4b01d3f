"""How a call can fail in the runtime. The HTTP layer maps each to a status and error code."""


class RuntimeFailure(Exception):
    """Base class; ``str()`` is a message fit for the caller."""


class ScriptFailed(RuntimeFailure):
    """The script raised, or returned something that is not a DataFrame (Error 0085)."""

    def __init__(self, message: str, traceback: str = "", log: str = "", at_load: bool = False):
        super().__init__(message)
        self.traceback = traceback
        self.log = log
        self.at_load = at_load


class CallTimedOut(RuntimeFailure):
    """The call ran past the service's ``timeout_s``; its worker was killed."""


class MemoryExceeded(RuntimeFailure):
    """The worker went over the service's ``memory_mb``."""


class WorkerCrashed(RuntimeFailure):
    """The worker died (a signal, an exit) or broke the wire protocol."""


class OutputTooLarge(RuntimeFailure):
    """The returned table (or log and plots) is larger than the runtime accepts."""


class NoWorkerAvailable(RuntimeFailure):
    """Every worker stayed busy (or failed to start) for as long as the caller could wait."""


class PoolClosed(RuntimeFailure):
    """The pool was closed between finding it and using it (the runtime retries on a fresh one)."""


class RuntimeUnavailable(RuntimeFailure):
    """This replica's pool host is not answering (it is being restarted)."""


class EnvironmentBuilding(RuntimeFailure):
    """The version's environment is being built on this replica (from its lock); try again shortly."""


class EnvironmentUnavailable(RuntimeFailure):
    """Building the version's environment on this replica failed (it is tried again later)."""


_WIRE = {cls.__name__: cls for cls in (ScriptFailed, CallTimedOut, MemoryExceeded, WorkerCrashed, OutputTooLarge,
                                       NoWorkerAvailable, PoolClosed, RuntimeUnavailable, EnvironmentBuilding,
                                       EnvironmentUnavailable)}


def failure_to_wire(exc: RuntimeFailure) -> dict:
    """A failure as a message field, for the pool host to tell a web process what went wrong."""
    wire = {"failure": type(exc).__name__, "message": str(exc)}
    if isinstance(exc, ScriptFailed):
        wire.update(traceback=exc.traceback, log=exc.log, at_load=exc.at_load)
    return wire


def failure_from_wire(wire: dict) -> RuntimeFailure:
    cls = _WIRE.get(wire.get("failure"), WorkerCrashed)
    message = str(wire.get("message", ""))
    if cls is ScriptFailed:
        return ScriptFailed(message, str(wire.get("traceback", "")), str(wire.get("log", "")),
                            bool(wire.get("at_load")))
    return cls(message)
