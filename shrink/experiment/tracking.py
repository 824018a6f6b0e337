"""Where results are recorded: one rule for the MLflow tracking URI, shared by every command, and the probe
that checks a store can take a sweep's runs before any work starts."""

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit
from urllib.request import url2pathname

from shrink.experiment.errors import ConfigError

DEFAULT_EXPERIMENT = "shrink"
# MLflow 3's UI opens an experiment without this tag in its GenAI view (traces, "Evaluations"); with it,
# the model-training view (runs table, metrics).
EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"
_REPLACED_KINDS = ("", "genai_development", "genai_development_inferred", "custom_model_development_inferred",
                   "no_inferred_type")


def resolve_tracking_uri(uri: str | None = None) -> str:
    """The tracking URI to use: ``uri`` if given, else ``$MLFLOW_TRACKING_URI``, else a local
    sqlite store ``mlflow.db`` in the working directory (MLflow's own default, made absolute so
    that Ray workers, which run elsewhere, write to the same file)."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    return f"sqlite:///{Path.cwd().resolve() / 'mlflow.db'}"


def ensure_experiment(uri: str, name: str = DEFAULT_EXPERIMENT) -> str:
    """Create the store and the experiment once, in the calling process, and return its id.

    The experiment is tagged as model training (:data:`EXPERIMENT_KIND`), created or found; a found one
    keeps a kind someone chose unless it is a GenAI or inferred one. Call this in the driver before
    trials start: trials that create a fresh sqlite store concurrently race on its schema migration and
    corrupt it.
    """
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        return client.create_experiment(name, tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
    if experiment.tags.get(EXPERIMENT_KIND_TAG, "") in _REPLACED_KINDS:
        client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    return experiment.experiment_id


# How long the probe waits for a server or database to answer (MLflow's own client retries for minutes).
PROBE_TIMEOUT_S = 5
# The databases MLflow stores runs in, each with its drivers' connect argument that bounds the wait.
_DATABASES = {"postgresql": "connect_timeout", "mysql": "connect_timeout", "mssql": None}


def probe_tracking(uri: str, experiment: str = DEFAULT_EXPERIMENT, *, timeout_s: int = PROBE_TIMEOUT_S,
                   write: bool = True) -> None:
    """Fail fast (``ConfigError``, one line naming the address and the reason, key ``tracking_uri``) unless the
    store at ``uri`` answers (a local one: can be written), and the local artifact folder the experiment's runs
    will write to can be written. Writes nothing to the store; each network wait is bounded by ``timeout_s``.
    Without ``write`` (a command that reads runs), only whether a server or database answers.

    An HTTP store must answer an MLflow request (no retries); a SQL database must accept one connection;
    a SQLite file's folder (or the nearest one that exists: MLflow makes the rest) must be writable. The
    artifact folder is the experiment's location when it exists, else MLflow's default ``./mlruns`` for a
    database store (a server chooses its own); locations that are not local files are left to their store.
    """
    scheme = urlsplit(uri).scheme
    if scheme in ("http", "https"):
        location = _probe_server(uri, experiment, timeout_s)
    elif _database(uri) in _DATABASES:
        location = _probe_database(uri, experiment, timeout_s)
    elif not write:  # a local file or folder: reading it makes no network wait
        return
    elif scheme == "sqlite":
        location = _probe_sqlite(uri, experiment)
    elif scheme in ("", "file"):
        location = _probe_folder(uri)
    else:  # Databricks, a plug-in store: MLflow's to check
        return
    if write and location is not None and urlsplit(location).scheme in ("", "file"):
        folder = Path(url2pathname(urlsplit(location).path))
        problem = _unwritable(folder)
        if problem:
            raise ConfigError(f"artifact folder {folder} of experiment {experiment!r} (tracking store "
                              f"{shown_uri(uri)}) {problem}", key="tracking_uri")


def shown_uri(uri: str) -> str:
    """``uri`` with any password in it replaced by ``***``, for messages."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)))


def _failed(uri: str, what: str) -> ConfigError:
    return ConfigError(f"tracking store {shown_uri(uri)}: {what}", key="tracking_uri")


def _probe_server(uri: str, experiment: str, timeout_s: int) -> str | None:
    """Ask the server for the experiment once, without MLflow's retries; its artifact location, if it exists."""
    from mlflow import MlflowClient
    from mlflow.environment_variables import MLFLOW_HTTP_REQUEST_MAX_RETRIES, MLFLOW_HTTP_REQUEST_TIMEOUT
    from mlflow.exceptions import MlflowException

    try:
        # MLflow reads these on each request: this one alone goes without retries.
        bounded = {MLFLOW_HTTP_REQUEST_MAX_RETRIES.name: "0", MLFLOW_HTTP_REQUEST_TIMEOUT.name: str(timeout_s)}
        with _environment(bounded):
            found = MlflowClient(tracking_uri=uri).get_experiment_by_name(experiment)
    except MlflowException as error:
        reason = _root_cause(error)
        if isinstance(reason, OSError):
            raise _failed(uri, f"no MLflow server answers ({_os_reason(reason, timeout_s)}); start it, or give "
                               "the address of one") from None
        raise _failed(uri, f"the server answers with an error ({_first_line(str(error))})") from None
    return found.artifact_location if found is not None else None


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """``values`` set in the environment while the block runs, the old ones restored after it."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _probe_database(uri: str, experiment: str, timeout_s: int) -> str:
    """Connect once, waiting at most ``timeout_s``; the experiment's artifact location (MLflow's default
    root for a new one)."""
    import sqlalchemy

    timeout = _DATABASES[_database(uri)]
    try:
        engine = sqlalchemy.create_engine(uri, connect_args={timeout: timeout_s} if timeout else {})
    except (ImportError, sqlalchemy.exc.ArgumentError) as error:
        raise _failed(uri, f"no driver for this database here ({error})") from None
    try:
        with engine.connect() as connection:  # an empty database gets MLflow's tables later, not now
            has_tables = sqlalchemy.inspect(connection).has_table("experiments")
    except sqlalchemy.exc.SQLAlchemyError as error:
        reason = _first_line(str(getattr(error, "orig", None) or error))
        raise _failed(uri, f"the database refuses the connection ({reason})") from None
    finally:
        engine.dispose()
    return _artifact_location(uri, experiment) if has_tables else _default_artifact_root()


def _database(uri: str) -> str:
    """The database of a SQLAlchemy URI (``postgresql`` of ``postgresql+psycopg://...``)."""
    return urlsplit(uri).scheme.partition("+")[0]


def _probe_sqlite(uri: str, experiment: str) -> str:
    """The file (when it exists) and the folder it is in (or would be made in) must be writable."""
    if uri == "sqlite://" or uri.startswith("sqlite:///:memory:"):
        return _default_artifact_root()
    path = Path(uri.removeprefix("sqlite:///")).expanduser().resolve()
    problem = _unwritable(path.parent)
    if problem:
        raise _failed(uri, f"{path.parent}, where the database file goes, {problem}")
    if not path.exists():
        return _default_artifact_root()
    try:
        open(path, "ab").close()  # opened for writing, nothing written
    except OSError as error:
        raise _failed(uri, f"{path} cannot be written ({error.strerror})") from None
    return _artifact_location(uri, experiment)


def _probe_folder(uri: str) -> str:
    """A folder store (``./mlruns``): refused, as MLflow 3 does, unless ``$MLFLOW_ALLOW_FILE_STORE`` opts in;
    then it must be writable. Its runs' artifacts go inside it."""
    from mlflow.environment_variables import MLFLOW_ALLOW_FILE_STORE

    if not MLFLOW_ALLOW_FILE_STORE.get():
        raise _failed(uri, f"a folder store, which MLflow 3 no longer writes to (unless ${MLFLOW_ALLOW_FILE_STORE.name}"
                           "=true); give sqlite:///PATH/mlflow.db or an MLflow server's http:// address")
    folder = Path(url2pathname(urlsplit(uri).path)).expanduser().resolve()
    problem = _unwritable(folder)
    if problem:
        raise _failed(uri, f"the folder {folder} {problem}")
    return str(folder)


def _artifact_location(uri: str, experiment: str) -> str:
    """Where the experiment's runs write artifacts: its location if it exists, else MLflow's default root."""
    import sqlalchemy
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        found = MlflowClient(tracking_uri=uri).get_experiment_by_name(experiment)
    except (MlflowException, sqlalchemy.exc.SQLAlchemyError) as error:
        reason = _first_line(str(getattr(error, "orig", None) or error))
        raise _failed(uri, f"not a store MLflow can read ({reason})") from None
    return found.artifact_location if found is not None else _default_artifact_root()


def _default_artifact_root() -> str:
    """Where a database store puts a new experiment's artifacts (``./mlruns``, as MLflow resolves it)."""
    from mlflow.store.tracking import DEFAULT_LOCAL_FILE_AND_ARTIFACT_PATH

    return str(Path(DEFAULT_LOCAL_FILE_AND_ARTIFACT_PATH).resolve())


def _unwritable(folder: Path) -> str | None:
    """Why files cannot be made in ``folder`` (or, when it does not exist yet, the nearest folder above it
    that does); None when they can. Tried by making an unnamed temporary file there."""
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir():
        return "is not a folder" if existing == folder else f"cannot be made ({existing} is not a folder)"
    try:
        tempfile.TemporaryFile(dir=existing).close()
    except OSError as error:
        reason = error.strerror or str(error)
        return f"cannot be written ({reason})" if existing == folder else f"cannot be made in {existing} ({reason})"
    return None


def _root_cause(error: BaseException) -> BaseException:
    while (cause := error.__cause__ or error.__context__) is not None:
        error = cause
    return error


def _os_reason(error: OSError, timeout_s: int) -> str:
    if isinstance(error, TimeoutError) or "timed out" in str(error):
        return f"no answer within {timeout_s} s"
    return error.strerror or _first_line(str(error))


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "no reason given"
