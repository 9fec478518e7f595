"""An RQ job class bound to one Flask app: every job runs inside a fresh app context."""

from __future__ import annotations

import os
import weakref
from functools import update_wrapper
from typing import Any

from flask import Flask
from rq.job import Job


class FlaskJob(Job):
    """An RQ job whose function runs inside an app context of the app the class is bound to."""
    _flask_app: weakref.ref[Flask]
    #: The process whose database connections the app's engines may hold.
    _connections_pid: int

    @property
    def func(self) -> Any:
        func = super().func
        app = self._flask_app()
        if app is None:  # pragma: no cover - the app was garbage collected
            raise RuntimeError("The Flask app this job class was bound to no longer exists.")
        job_class = type(self)

        def run_in_app_context(*args: Any, **kwargs: Any) -> Any:
            if os.getpid() != job_class._connections_pid:
                # A forked work horse: its pooled connections belong to the worker process
                # (same socket, same server-side prepared statements). Drop them unclosed.
                _forget_connections(app)
                job_class._connections_pid = os.getpid()
            with app.app_context():
                return func(*args, **kwargs)

        return update_wrapper(run_in_app_context, func)


def _forget_connections(app: Flask) -> None:
    db = app.extensions.get("sqlalchemy")
    if db is None:
        return
    with app.app_context():
        for engine in db.engines.values():
            engine.dispose(close=False)


def make_job_class(app: Flask) -> type[FlaskJob]:
    return type("BoundFlaskJob", (FlaskJob,),
                {"_flask_app": weakref.ref(app), "_connections_pid": os.getpid()})
