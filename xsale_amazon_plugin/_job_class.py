"""An RQ job class bound to one Flask app: every job runs inside a fresh app context."""

from __future__ import annotations

import weakref
from functools import update_wrapper
from typing import Any

from flask import Flask
from rq.job import Job


class FlaskJob(Job):
    """An RQ job whose function runs inside an app context of the app the class is bound to."""
    _flask_app: weakref.ref[Flask]

    @property
    def func(self) -> Any:
        func = super().func
        app = self._flask_app()
        if app is None:  # pragma: no cover - the app was garbage collected
            raise RuntimeError("The Flask app this job class was bound to no longer exists.")

        def run_in_app_context(*args: Any, **kwargs: Any) -> Any:
            with app.app_context():
                return func(*args, **kwargs)

        return update_wrapper(run_in_app_context, func)


def make_job_class(app: Flask) -> type[FlaskJob]:
    return type("BoundFlaskJob", (FlaskJob,), {"_flask_app": weakref.ref(app)})
