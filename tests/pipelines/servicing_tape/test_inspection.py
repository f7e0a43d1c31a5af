"""Whole-file checks and layout detection: each problem gets its own clear message."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import pytest

from pipelines.servicing_tape import inspection
from pipelines.servicing_tape.formats import file_kinds
from pipelines.servicing_tape.inspection import (
    StillUploading,
    check_text,
    decompress,
    detect_delimited,
    detect_kind,
    fingerprint,
)
from pipelines.servicing_tape.parser import TapeError
from servicervault.config import DelimitedSpec
from tests.pipelines.servicing_tape.test_parser import FREDDIE_SVCG, line, sflp


def write(tmp_path: Path, data: bytes, name: str = "tape.txt") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_fingerprint_is_the_sha256_and_spots_gzip(tmp_path: Path) -> None:
    text = (sflp() + "\n").encode()
    facts = fingerprint(write(tmp_path, text), "tape.txt")
    assert facts.sha256 == hashlib.sha256(text).hexdigest() and not facts.gzip
    zipped = write(tmp_path, gzip.compress(text), "tape.txt.gz")
    assert fingerprint(zipped, "tape.txt.gz").gzip
    assert decompress(zipped, tmp_path / "plain.txt", "tape.txt.gz").read_bytes() == text


def test_an_empty_file_and_a_broken_gzip_are_clear(tmp_path: Path) -> None:
    with pytest.raises(TapeError, match=r"tape\.txt: the file is empty \(0 bytes\)"):
        fingerprint(write(tmp_path, b""), "tape.txt")
    broken = write(tmp_path, gzip.compress(b"x" * 1000)[:20], "cut.gz")
    with pytest.raises(TapeError, match=r"cut\.gz: gzip-compressed but cannot be decompressed"):
        decompress(broken, tmp_path / "out.txt", "cut.gz")


def test_a_file_growing_while_read_is_left_for_a_later_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, (sflp() + "\n").encode())
    real = hashlib.sha256

    class Uploading:
        """Appends to the file the first time it is fed: an upload still in progress."""

        def __init__(self) -> None:
            self._hash, self._grown = real(), False

        def update(self, data: bytes) -> None:
            if not self._grown:
                with path.open("ab") as fh:
                    fh.write(b"more bytes arriving\n")
                self._grown = True
            self._hash.update(data)

        def hexdigest(self) -> str:
            return self._hash.hexdigest()

    monkeypatch.setattr(hashlib, "sha256", Uploading)
    with pytest.raises(StillUploading, match=r"tape\.txt: still being uploaded"):
        fingerprint(path, "tape.txt")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            b"|0001|022021\n|0002|\x00\x01\x02\n",
            r"binary content \(a NUL byte at byte 19, line 2\)",
        ),
        (b"|0001|022021\n|0002|caf\xe9\n", r"not UTF-8 text \(byte 22, line 2\)"),
        (b"|0001|caf\xc3", r"not UTF-8 text \(the last character is cut off\)"),
    ],
)
def test_binary_and_non_utf8_bytes_are_named_with_their_place(
    tmp_path: Path, data: bytes, message: str
) -> None:
    with pytest.raises(TapeError, match=message):
        check_text(write(tmp_path, data), "tape.txt")


def test_a_character_split_between_chunks_is_checked_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ASCII chunks skip the decoder, unless a character begun in the chunk before is open."""
    monkeypatch.setattr(inspection, "CHUNK", 4)
    assert check_text(write(tmp_path, b"|ca\xc3\xa9|ok\n|0002\n"), "t").lines == 2
    # The open character is cut off by an ASCII chunk, and a later byte must not complete it.
    with pytest.raises(TapeError, match=r"not UTF-8 text \(byte \d+, line 1\)"):
        check_text(write(tmp_path, b"|ca\xc3|ok\n\xa9x\n"), "t")


def test_line_count_and_a_missing_final_newline(tmp_path: Path) -> None:
    assert check_text(write(tmp_path, b"a\nb\n"), "t").truncated_line is None
    facts = check_text(write(tmp_path, b"a\nb\nc"), "t")
    assert (facts.lines, facts.truncated_line) == (3, 3)


def test_the_file_kind_is_detected_from_field_counts(tmp_path: Path) -> None:
    perf = write(tmp_path, (line("fhlmc_sflld_svcg.csv", FREDDIE_SVCG, 32) + "\n").encode())
    assert (
        detect_kind(perf, "svcg.txt", file_kinds("freddie_sflld"), "freddie_sflld").name
        == "servicing"
    )


def test_a_file_of_another_layout_is_refused_naming_expected_and_found(tmp_path: Path) -> None:
    sflp_file = write(tmp_path, (sflp() + "\n").encode())
    with pytest.raises(TapeError) as err:
        detect_kind(sflp_file, "tape.txt", file_kinds("fannie_legacy"), "fannie_legacy")
    assert "does not match layout fannie_legacy: its lines have 108 '|'-separated fields" in str(
        err.value
    )
    assert (
        "fannie_legacy acquisition (25/26 fields) or fannie_legacy performance (31 fields)"
        in str(err.value)
    )


def test_right_field_count_but_wrong_dates_is_refused(tmp_path: Path) -> None:
    iso = write(tmp_path, "\n".join(sflp(ACT_PERIOD="2021-03") for _ in range(5)).encode())
    with pytest.raises(
        TapeError,
        match=r"field 'ACT_PERIOD' holds '2021-03' where a date \(%m%Y\) is expected \(5 of 5",
    ):
        detect_kind(iso, "tape.txt", file_kinds("fannie_sflp"), "fannie_sflp")


def test_a_delimited_header_must_name_every_mapped_column(tmp_path: Path) -> None:
    spec = DelimitedSpec(columns={
        "Loan": "loan_id", "Month": "period", "Rate": "orig_rate", "Amount": "orig_upb",
        "Term": "orig_term", "First": "first_pay_date",
    })  # fmt: skip
    path = write(tmp_path, b"Loan,Month,Rate,Amount,Term\nL1,2024-01-01,6,1,360\n")
    with pytest.raises(TapeError, match=r"header lacks mapped column\(s\) \['First'\]"):
        detect_delimited(path, "tape.csv", spec)


def test_a_file_of_blank_lines_is_named_as_such(tmp_path: Path) -> None:
    with pytest.raises(TapeError, match="no data lines"):
        detect_kind(
            write(tmp_path, b"\n\n\n"), "blank.txt", file_kinds("fannie_sflp"), "fannie_sflp"
        )
