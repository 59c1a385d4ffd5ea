"""age encryption: keys, the streaming EncryptingSink, decryption — and interoperability with
Debian's ``age`` CLI both ways."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from ops.archive import ArchiveReader, ArchiveWriter, verify_archive
from ops.crypto import (
    EncryptingSink,
    decrypt_to_file,
    generate_identity,
    load_identities,
    parse_recipients,
)
from ops.errors import ArchiveError, ConfigError, RepositoryError
from tests.conftest import require

AGE = shutil.which("age")
AGE_KEYGEN = shutil.which("age-keygen")


@pytest.fixture(scope="module")
def age_cli() -> str:
    require(AGE is not None and AGE_KEYGEN is not None, "the age CLI (apt-get install age)")
    assert AGE is not None
    return AGE


class FileSink:
    """A plain local Sink for these tests: writes ``path`` on commit, nothing on abort."""

    def __init__(self, path: Path) -> None:
        self.name = path.name
        self.path = path
        self.partial = path.with_name(path.name + ".partial")
        self._out = open(self.partial, "wb")  # noqa: SIM115
        self.state = "open"
        self.fail_on_write = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.fail_on_write:
            raise RepositoryError("The store refused the upload.")
        self._out.write(data)

    def commit(self) -> None:
        self._out.close()
        self.partial.rename(self.path)
        self.state = "committed"

    def abort(self) -> None:
        self._out.close()
        self.partial.unlink(missing_ok=True)
        self.state = "aborted"


def data(size: int) -> bytes:
    out = bytearray()
    i = 0
    while len(out) < size:
        out += hashlib.sha256(str(i).encode()).digest()
        i += 1
    return bytes(out[:size])


def encrypt_with_sink(dest: Path, plain: bytes, recipients: list) -> FileSink:
    inner = FileSink(dest)
    sink = EncryptingSink(inner, recipients)
    for start in range(0, len(plain), 100_000):
        sink.write(memoryview(plain)[start : start + 100_000])
    sink.commit()
    return inner


def test_generated_identity_is_0600_and_its_recipient_matches_age_keygen(
    tmp_path: Path, age_cli: str
) -> None:
    key = tmp_path / "key.txt"
    recipient = generate_identity(key)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert recipient.startswith("age1")
    assert subprocess.run(
        [AGE_KEYGEN, "-y", str(key)], capture_output=True, text=True, check=True
    ).stdout.strip() == recipient
    with pytest.raises(ConfigError, match="refusing to overwrite"):
        generate_identity(key)


def test_identity_is_0600_even_with_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        generate_identity(tmp_path / "k")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o600


def test_encrypting_sink_output_is_decrypted_by_the_age_cli(tmp_path: Path, age_cli: str) -> None:
    key = tmp_path / "key.txt"
    recipient = generate_identity(key)
    plain = data(3_000_000)
    encrypt_with_sink(tmp_path / "b.mmops.age", plain, parse_recipients(recipient))
    out = subprocess.run(
        [age_cli, "-d", "-i", str(key), str(tmp_path / "b.mmops.age")],
        capture_output=True, check=True,
    ).stdout
    assert out == plain


def test_age_cli_output_is_decrypted_by_decrypt_to_file(tmp_path: Path, age_cli: str) -> None:
    subprocess.run([AGE_KEYGEN, "-o", str(tmp_path / "k")], capture_output=True, check=True)
    recipient = subprocess.run(
        [AGE_KEYGEN, "-y", str(tmp_path / "k")], capture_output=True, text=True, check=True
    ).stdout.strip()
    plain = data(2_500_000)
    (tmp_path / "plain").write_bytes(plain)
    subprocess.run(
        [age_cli, "-r", recipient, "-o", str(tmp_path / "x.age"), str(tmp_path / "plain")],
        check=True,
    )
    out = decrypt_to_file(tmp_path / "x.age", tmp_path / "x", load_identities(tmp_path / "k"))
    assert out.read_bytes() == plain
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_ssh_ed25519_keys_work_both_ways_with_the_age_cli(tmp_path: Path, age_cli: str) -> None:
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    public = (tmp_path / "id_ed25519.pub").read_text()
    plain = data(200_000)
    encrypt_with_sink(tmp_path / "a.age", plain, parse_recipients(public))
    assert subprocess.run(
        [age_cli, "-d", "-i", str(key), str(tmp_path / "a.age")], capture_output=True, check=True
    ).stdout == plain

    (tmp_path / "plain").write_bytes(plain)
    subprocess.run(
        [age_cli, "-R", str(tmp_path / "id_ed25519.pub"), "-o", str(tmp_path / "b.age"),
         str(tmp_path / "plain")],
        check=True,
    )
    out = decrypt_to_file(tmp_path / "b.age", tmp_path / "b", load_identities(key))
    assert out.read_bytes() == plain


def test_recipients_file_with_comments_encrypts_to_every_recipient(tmp_path: Path) -> None:
    first, second = generate_identity(tmp_path / "k1"), generate_identity(tmp_path / "k2")
    (tmp_path / "recipients.txt").write_text(f"# team\n{first}\n\n# backup key\n{second}\n")
    recipients = parse_recipients(str(tmp_path / "recipients.txt"))
    assert len(recipients) == 2
    encrypt_with_sink(tmp_path / "x.age", b"secret rows", recipients)
    for name in ("k1", "k2"):
        out = decrypt_to_file(tmp_path / "x.age", tmp_path / f"x-{name}",
                              load_identities(tmp_path / name))
        assert out.read_bytes() == b"secret rows"
    assert len(parse_recipients(f"{first}, {second}")) == 2


def test_invalid_recipient_is_a_config_error(tmp_path: Path) -> None:
    for bad in ("age1notakey", "hello", str(tmp_path / "missing-file")):
        with pytest.raises(ConfigError) as caught:
            parse_recipients(bad)
        assert caught.value.exit_code == 3


def test_wrong_identity_is_one_clear_sentence_and_writes_nothing(tmp_path: Path) -> None:
    recipient = generate_identity(tmp_path / "right")
    generate_identity(tmp_path / "wrong")
    encrypt_with_sink(tmp_path / "x.mmops.age", b"rows", parse_recipients(recipient))
    with pytest.raises(ConfigError) as caught:
        decrypt_to_file(tmp_path / "x.mmops.age", tmp_path / "x.mmops",
                        load_identities(tmp_path / "wrong"))
    message = str(caught.value)
    assert "does not match any recipient" in message and "x.mmops.age" in message
    assert "\n" not in message and "AGE-SECRET-KEY" not in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["right", "wrong", "x.mmops.age"]


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_tampered_or_truncated_file_is_refused_and_nothing_is_kept(
    tmp_path: Path, damage: str
) -> None:
    recipient = generate_identity(tmp_path / "k")
    encrypt_with_sink(tmp_path / "x.age", data(300_000), parse_recipients(recipient))
    blob = bytearray((tmp_path / "x.age").read_bytes())
    if damage == "truncate":
        del blob[-1000:]
    else:
        blob[150_000] ^= 0x01
    (tmp_path / "x.age").write_bytes(bytes(blob))
    with pytest.raises(ArchiveError, match="damaged or truncated") as caught:
        decrypt_to_file(tmp_path / "x.age", tmp_path / "x", load_identities(tmp_path / "k"))
    assert caught.value.exit_code == 6
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k", "x.age"]


def test_identity_file_errors_never_echo_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "k"
    bad.write_text("AGE-SECRET-KEY-1THISISNOTVALIDBUTSECRETLOOKING\n")
    with pytest.raises(ConfigError, match="Line 1 of the age identity file") as caught:
        load_identities(bad)
    assert "SECRETLOOKING" not in str(caught.value)
    with pytest.raises(ConfigError, match="does not exist"):
        load_identities(tmp_path / "nope")


def test_aborting_the_encrypting_sink_aborts_the_inner_sink(tmp_path: Path) -> None:
    recipient = generate_identity(tmp_path / "k")
    inner = FileSink(tmp_path / "x.age")
    sink = EncryptingSink(inner, parse_recipients(recipient))
    sink.write(data(5_000_000))
    sink.abort()
    sink.abort()
    assert inner.state == "aborted"
    assert not (tmp_path / "x.age").exists() and not inner.partial.exists()


def test_a_failing_inner_sink_surfaces_its_own_error(tmp_path: Path) -> None:
    recipient = generate_identity(tmp_path / "k")
    inner = FileSink(tmp_path / "x.age")
    inner.fail_on_write = True
    sink = EncryptingSink(inner, parse_recipients(recipient))
    with pytest.raises(RepositoryError, match="refused the upload"):
        for _ in range(100):
            sink.write(data(1 << 20))
        sink.commit()
    assert inner.state == "aborted"


def test_encrypted_backup_archive_round_trips_through_stock_age(
    tmp_path: Path, age_cli: str
) -> None:
    key = tmp_path / "key.txt"
    recipient = generate_identity(key)
    inner = FileSink(tmp_path / "db-20260101T000000Z.mmops.age")
    with ArchiveWriter.to_sink(EncryptingSink(inner, parse_recipients(recipient))) as writer:
        writer.add_member("data/public.t", "table-data", data(1_500_000))
        writer.commit({"database": "db"})
    plain = subprocess.run(
        [age_cli, "-d", "-i", str(key), str(inner.path)], capture_output=True, check=True
    ).stdout
    (tmp_path / "db.mmops").write_bytes(plain)
    assert verify_archive(tmp_path / "db.mmops").ok
    with ArchiveReader(tmp_path / "db.mmops") as reader:
        assert reader.read_member("data/public.t") == data(1_500_000)
