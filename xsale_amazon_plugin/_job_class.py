"""An RQ job class bound to one Flask app: every job runs inside a fresh app context."""

from __future__ import annotations

import os
import weakref
from functools import update_wrapper
from typing import Any

from flask import Flask
from rq.job import Job
from rq.utils import import_attribute

#: Dotted names of the plugin's job functions and callbacks before the modules moved into
#: capability packages (0.2) -> their names now. Jobs queued by an older release carry the old
#: names in Redis; :class:`FlaskJob` resolves them through this map, so they still run after
#: the upgrade. Kept for one release.
RENAMED_JOB_FUNCTIONS: dict[str, str] = {
    "xsale_amazon_plugin.import_job.import_step":
        "xsale_amazon_plugin.importing.step_job.import_step",
    "xsale_amazon_plugin.import_job.on_job_failure":
        "xsale_amazon_plugin.importing.step_job.on_job_failure",
    "xsale_amazon_plugin.suggest_job.compute_suggestions":
        "xsale_amazon_plugin.suggest.jobs.compute_suggestions",
    "xsale_amazon_plugin.suggest_refresh.check_catalog":
        "xsale_amazon_plugin.suggest.auto_refresh.check_catalog",
    "xsale_amazon_plugin.autolink_runs.run_autolink_job":
        "xsale_amazon_plugin.linking.autolink_job.run_autolink_job",
}


def current_name(name: str | None) -> str | None:
    """The dotted name a job function or callback has now (``name`` itself unless renamed)."""
    return RENAMED_JOB_FUNCTIONS.get(name, name) if name else name


class FlaskJob(Job):
    """An RQ job whose function runs inside an app context of the app the class is bound to."""
    _flask_app: weakref.ref[Flask]
    #: The process whose database connections the app's engines may hold.
    _connections_pid: int

    @property
    def func(self) -> Any:
        renamed = None if self.instance else RENAMED_JOB_FUNCTIONS.get(self.func_name or "")
        func = import_attribute(renamed) if renamed else super().func
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

    @property
    def failure_callback(self) -> Any:
        self._failure_callback_name = current_name(self._failure_callback_name)
        return super().failure_callback

    @property
    def success_callback(self) -> Any:
        self._success_callback_name = current_name(self._success_callback_name)
        return super().success_callback

    @property
    def stopped_callback(self) -> Any:
        self._stopped_callback_name = current_name(self._stopped_callback_name)
        return super().stopped_callback


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
