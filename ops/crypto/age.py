"""age encryption of whole backup files, with pyrage (Rust ``rage`` bindings).

An encrypted backup is the plain ``.mmops`` file wrapped whole in age (``NAME.mmops.age``):
stock ``age -d -i key.txt NAME.mmops.age > NAME.mmops`` gives it back. Encryption needs only
public recipients (``age1…`` X25519 keys or ``ssh-ed25519``/``ssh-rsa`` public keys), so a
server can write backups it cannot read; decryption needs an identity file that stays with the
operator.

Streaming: pyrage's ``encrypt_io``/``decrypt_io`` pull from a reader and push to a writer in
64 KiB pieces. :class:`EncryptingSink` turns that pull model into a ``Sink`` (push) by running
``encrypt_io`` in one thread fed through a small bounded queue, so memory stays flat.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import queue
import secrets
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, BinaryIO, Protocol, TypeAlias, cast

import pyrage
from pyrage import ssh, x25519

from ops.errors import ArchiveError, ConfigError, OpsError

# pyrage ships no type stubs: x25519.Recipient | ssh.Recipient, x25519.Identity | ssh.Identity
Recipient: TypeAlias = Any
Identity: TypeAlias = Any

AGE_SUFFIX = ".age"
_QUEUE_ITEMS = 8  # pieces of up to ~1 MiB (the archive writer's buffer) waiting to be encrypted
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
_END = object()


class _SinkLike(Protocol):
    def write(self, data: bytes | bytearray | memoryview) -> None: ...

    def commit(self) -> None: ...

    def abort(self) -> None: ...


class _ReadAtLike(Protocol):
    @property
    def size(self) -> int: ...

    def read_at(self, offset: int, size: int) -> bytes: ...


# -- keys ---------------------------------------------------------------------------------------


def parse_recipient(text: str) -> Recipient:
    """One recipient: ``age1…`` or an OpenSSH public key line (``ssh-ed25519 AAAA… comment``)."""
    text = text.strip()
    try:
        if text.startswith("age1"):
            return x25519.Recipient.from_str(text)
        if text.startswith(("ssh-ed25519 ", "ssh-rsa ")):
            return ssh.Recipient.from_str(text)
    except (pyrage.RecipientError, ValueError) as exc:
        raise ConfigError(
            f"The encryption recipient {_short(text)} is not a valid age or SSH public key."
        ) from exc
    raise ConfigError(
        f"The encryption recipient {_short(text)} is neither an age1… key, an ssh-ed25519/"
        "ssh-rsa public key, nor a readable recipients file."
    )


def parse_recipients(spec: str | Path | Sequence[str]) -> list[Recipient]:
    """``ENCRYPT_TO``: recipient(s), or the path of a recipients file (one per line, ``#``).

    A string may hold several ``age1…`` keys separated by commas or spaces; an SSH key is
    one whole line.
    """
    lines: list[str]
    if isinstance(spec, (list, tuple)):
        lines = [str(item) for item in spec]
    else:
        text = str(spec).strip()
        candidate = Path(text).expanduser()
        if text and not text.startswith(("age1", "ssh-")) and candidate.is_file():
            try:
                lines = candidate.read_text().splitlines()
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(f"Cannot read the recipients file {candidate}: {exc}.") from exc
        elif text.startswith("age1"):
            lines = text.replace(",", " ").split()
        else:
            lines = text.splitlines()
    wanted = [line for line in lines if line.strip() and not line.lstrip().startswith("#")]
    recipients = [parse_recipient(line) for line in wanted]
    if not recipients:
        raise ConfigError(f"No encryption recipient found in {_short(str(spec))}.")
    return recipients


def load_identities(path: str | Path) -> list[Identity]:
    """Identities from ``AGE_IDENTITY``: an age key file (``AGE-SECRET-KEY-1…`` lines, as
    ``age-keygen`` writes) or an unencrypted OpenSSH private key."""
    path = Path(path).expanduser()
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise ConfigError(f"The age identity file {path} does not exist.") from exc
    except OSError as exc:
        raise ConfigError(f"Cannot read the age identity file {path}: {exc.strerror}.") from exc
    if data.lstrip().startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----"):
        try:
            return [ssh.Identity.from_buffer(data)]
        except (pyrage.IdentityError, ValueError) as exc:
            raise ConfigError(
                f"The SSH key {path} cannot be used as an age identity "
                "(passphrase-protected keys are not supported)."
            ) from exc
    identities: list[Identity] = []
    for number, raw in enumerate(data.decode("utf-8", "replace").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            identities.append(x25519.Identity.from_str(line))
        except (pyrage.IdentityError, ValueError) as exc:
            # Never echo the line: it may be a (mangled) secret key.
            raise ConfigError(
                f"Line {number} of the age identity file {path} is not an age secret key."
            ) from exc
    if not identities:
        raise ConfigError(f"The age identity file {path} holds no AGE-SECRET-KEY line.")
    return identities


def generate_identity(path: str | Path) -> str:
    """Write a new X25519 identity to ``path`` (mode 0600, never replacing a file) in
    ``age-keygen``'s format; return its public recipient (``age1…``)."""
    path = Path(path).expanduser()
    identity = x25519.Identity.generate()
    recipient = str(identity.to_public())
    created = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = f"# created: {created}\n# public key: {recipient}\n{identity}\n".encode()
    try:
        fd = os.open(path, _NEW_FILE, 0o600)
    except FileExistsError as exc:
        raise ConfigError(f"{path} already exists; refusing to overwrite an identity.") from exc
    except OSError as exc:
        raise ConfigError(f"Cannot create the identity file {path}: {exc.strerror}.") from exc
    try:
        os.fchmod(fd, 0o600)  # whatever the umask did
        with os.fdopen(fd, "wb") as out:
            out.write(body)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return recipient


def _short(text: str) -> str:
    text = text.strip().splitlines()[0] if text.strip() else "''"
    return repr(text if len(text) <= 40 else text[:37] + "...")


# -- encrypting ---------------------------------------------------------------------------------


class _QueueReader(io.RawIOBase):
    """The reading end handed to ``encrypt_io``: pieces from a queue, EOF at ``_END``."""

    def __init__(self, items: queue.Queue[Any]) -> None:
        super().__init__()
        self._items = items
        self._left = memoryview(b"")
        self._eof = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while not self._left:
            if self._eof:
                return 0
            item = self._items.get()
            if item is _END:
                self._eof = True
                return 0
            if isinstance(item, BaseException):
                raise item
            self._left = memoryview(item)
        count = min(len(view), len(self._left))
        view[:count] = self._left[:count]
        self._left = self._left[count:]
        return count


class _SinkWriter(io.RawIOBase):
    """The writing end handed to ``encrypt_io``: everything goes to the inner sink."""

    def __init__(self, sink: _SinkLike) -> None:
        super().__init__()
        self._sink = sink
        self.written = 0
        self.failure: BaseException | None = None  # pyrage keeps only the text of what it got

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        try:
            self._sink.write(bytes(view))
        except BaseException as exc:
            self.failure = exc
            raise
        self.written += len(view)
        return len(view)


class _Cancelled(Exception):
    """Fed to the encryptor's reader to stop it on abort."""


class EncryptingSink:
    """A ``Sink`` that age-encrypts everything written to it into ``inner`` (another Sink).

    ``commit`` finishes the age stream and commits ``inner``; ``abort`` (or any failure) aborts
    ``inner``, so nothing appears under the final name. Memory: a few MiB of queued pieces.
    """

    def __init__(self, inner: _SinkLike, recipients: Iterable[Recipient]) -> None:
        self.inner = inner
        self.name = getattr(inner, "name", None)
        self._recipients = list(recipients)
        if not self._recipients:
            raise ConfigError("Encryption needs at least one recipient.")
        self._items: queue.Queue[Any] = queue.Queue(maxsize=_QUEUE_ITEMS)
        self._writer = _SinkWriter(inner)
        self._error: BaseException | None = None
        self._state = "open"
        self._thread = threading.Thread(target=self._run, name="mmops-age", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            pyrage.encrypt_io(_QueueReader(self._items), self._writer, self._recipients)
        except BaseException as exc:  # reported by write/commit in the caller's thread
            self._error = exc

    @property
    def bytes_written(self) -> int:
        """Encrypted bytes handed to the inner sink so far."""
        return self._writer.written

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._state != "open":
            raise ArchiveError(f"The encrypted upload is already {self._state}.")
        piece = bytes(data)  # the caller may reuse its buffer
        while True:
            try:
                self._raise_failure()
            except BaseException:
                self.abort()
                raise
            try:
                self._items.put(piece, timeout=0.5)
                return
            except queue.Full:
                continue

    def commit(self) -> None:
        if self._state != "open":
            raise ArchiveError(f"The encrypted upload is already {self._state}.")
        try:
            while self._thread.is_alive():
                try:
                    self._items.put(_END, timeout=0.5)
                    break
                except queue.Full:
                    continue
            self._thread.join()
            self._raise_failure(finished=True)
            self.inner.commit()
            self._state = "committed"
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        if self._state in ("committed", "aborted"):
            return
        self._state = "aborted"
        while self._thread.is_alive():
            try:  # make room, then tell the reader to stop
                while True:
                    self._items.get_nowait()
            except queue.Empty:
                pass
            try:
                self._items.put(_Cancelled(), timeout=0.5)
            except queue.Full:
                continue
            self._thread.join(timeout=5)
        self.inner.abort()

    def _raise_failure(self, *, finished: bool = False) -> None:
        error = self._error
        if error is None:
            if finished or self._thread.is_alive():
                return
            error = RuntimeError("the encryption thread stopped")
        cause = self._writer.failure
        if isinstance(cause, OpsError):  # the inner sink's own sentence (e.g. RepositoryError)
            raise cause
        if isinstance(error, OpsError):
            raise error
        raise ArchiveError(f"Encrypting the backup failed: {error}.") from error


# -- decrypting ---------------------------------------------------------------------------------


class _ReadAtStream(io.RawIOBase):
    def __init__(self, source: _ReadAtLike) -> None:
        super().__init__()
        self._source = source
        self._pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self._source.read_at(self._pos, len(view))
        view[: len(data)] = data
        self._pos += len(data)
        return len(data)


def decrypt_stream(
    reader: BinaryIO, writer: BinaryIO, identities: Sequence[Identity], *, what: str
) -> None:
    """Decrypt age data from ``reader`` into ``writer``; one sentence when it cannot."""
    try:
        pyrage.decrypt_io(reader, writer, list(identities))
    except pyrage.DecryptError as exc:
        text = str(exc)
        if "No matching keys" in text:
            raise ConfigError(
                f"The age identity does not match any recipient of {what}; "
                "use the identity whose public key the backup was encrypted to."
            ) from exc
        raise ArchiveError(
            f"{what} is not a valid age-encrypted file ({text.rstrip('.')})."
        ) from exc
    except OSError as exc:
        if isinstance(exc.__cause__, OpsError):
            raise exc.__cause__ from exc
        raise ArchiveError(
            f"{what} is damaged or truncated: its age authentication failed; "
            "nothing from it was used."
        ) from exc


def decrypt_to_file(
    source: str | Path | BinaryIO | _ReadAtLike,
    dest: str | Path,
    identities: Sequence[Identity],
    *,
    what: str | None = None,
) -> Path:
    """Decrypt ``source`` (a path, a binary file, or a ReadAt such as ``repo.open(name)``)
    into ``dest``, atomically: a 0600 partial file renamed only when the age stream
    authenticated to its end. Never replaces an existing ``dest``."""
    dest = Path(dest)
    label = what or _label(source)
    if dest.exists():
        raise ConfigError(f"{dest} already exists; refusing to overwrite it.")
    partial = dest.parent / f".{dest.name}.partial-{secrets.token_hex(8)}"
    fd = os.open(partial, _NEW_FILE, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            if isinstance(source, (str, os.PathLike)):
                try:
                    reader = open(source, "rb")  # noqa: SIM115
                except OSError as exc:
                    raise ArchiveError(f"Cannot open {source}: {exc.strerror}.") from exc
                with reader:
                    decrypt_stream(reader, out, identities, what=label)
            elif hasattr(source, "read_at"):
                raw = _ReadAtStream(cast(_ReadAtLike, source))
                stream = cast(BinaryIO, io.BufferedReader(raw, buffer_size=8 << 20))
                decrypt_stream(stream, out, identities, what=label)
            else:
                decrypt_stream(cast(BinaryIO, source), out, identities, what=label)
            out.flush()
            os.fsync(out.fileno())
        os.link(partial, dest)
    except FileExistsError as exc:
        raise ConfigError(f"{dest} already exists; refusing to overwrite it.") from exc
    finally:
        partial.unlink(missing_ok=True)
    return dest


def _label(source: object) -> str:
    if isinstance(source, (str, os.PathLike)):
        return f"Backup file {source}"
    for attr in ("url", "name"):
        value = getattr(source, attr, None)
        if isinstance(value, str) and value:
            return value
    return "The encrypted backup"
