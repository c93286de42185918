import gzip
import io
import tarfile
import zipfile

import pytest

from core.data.io import InputLimits, iter_archive, read_bytes, read_table, resolve_inside
from core.errors import CohortError
from tests.conftest import make_zip

SMALL = InputLimits(
    max_bytes=1 << 20, max_uncompressed_bytes=4 << 20, max_members=50, max_compression_ratio=100
)


def test_empty_and_binary_and_non_utf8():
    with pytest.raises(CohortError, match="file is empty"):
        read_table(b"", "a.csv")
    with pytest.raises(CohortError, match="binary file"):
        read_table(b"\x00\x01\x02garbage\xff" * 10, "a.csv")
    with pytest.raises(CohortError, match="not UTF-8 \\(byte 0xe9") as err:
        read_table("id,name\n1,ok\n2,Jos\u00e9\n".encode("latin-1"), "latin.csv")
    assert err.value.line == 3


def test_header_only_and_ragged_rows():
    with pytest.raises(CohortError, match="header but no data rows"):
        read_table(b"a,b\n", "a.csv")
    with pytest.raises(CohortError, match="not a well-formed table"):
        read_table(b"a,b\n1,2\n1,2,3,4\n", "a.csv")


def test_size_cap_is_enforced_before_parsing():
    with pytest.raises(CohortError, match="larger than the 1 MB limit"):
        read_bytes(io.BytesIO(b"x" * ((1 << 20) + 10)), "big.csv", SMALL)


def test_gzip_bomb_is_refused():
    bomb = gzip.compress(b"0" * (50 << 20))  # 50 MB of zeros in ~50 kB
    with pytest.raises(CohortError, match="decompression bomb"):
        read_table(bomb, "bomb.csv.gz", limits=SMALL)


def test_truncated_gzip_is_refused():
    data = gzip.compress(b"a,b\n" + b"1,2\n" * 10000)
    with pytest.raises(CohortError, match="truncated|corrupt"):
        read_table(data[: len(data) // 2], "cut.csv.gz")


def test_zip_bomb_is_refused():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("data.csv", b"0" * (20 << 20))
    with pytest.raises(CohortError, match="zip bomb"):
        list(iter_archive(buf.getvalue(), "bomb.zip", SMALL))


def test_path_traversal_members_are_skipped_not_written(tmp_path):
    data = make_zip({"../../etc/evil.txt": b"x", "/abs.txt": b"y", "ok/1.txt": b"z"})
    assert [n for n, _ in iter_archive(data, "t.zip")] == ["ok/1.txt"]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name in ("../evil.txt", "fine.txt"):
            info = tarfile.TarInfo(name)
            info.size = 1
            tf.addfile(info, io.BytesIO(b"a"))
        link = tarfile.TarInfo("link.txt")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tf.addfile(link)
    assert [n for n, _ in iter_archive(buf.getvalue(), "t.tar.gz")] == ["fine.txt"]
    assert not any(tmp_path.iterdir())


def test_truncated_archives():
    data = make_zip({"a.csv": b"a,b\n1,2\n" * 1000})
    with pytest.raises(CohortError, match="corrupt or truncated zip"):
        list(iter_archive(data[:-30], "cut.zip"))
    with pytest.raises(CohortError, match="not a zip, tar or tar.gz"):
        list(iter_archive(b"hello world" * 100, "x.tar"))


def test_parquet_and_zipped_csv_read_like_csv(tmp_path):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"id": ["a", "b"], "age": [54.0, None]})
    path = tmp_path / "t.parquet"
    frame.to_parquet(path)
    back = read_table(path)
    assert (
        back["id"].tolist() == ["a", "b"]
        and back["age"].iloc[0] == "54.0"
        and pd.isna(back["age"].iloc[1])
    )
    zipped = read_table(make_zip({"t.csv": b"id;age\na;54\n"}), "t.zip")
    assert zipped.columns.tolist() == ["id", "age"]
    with pytest.raises(CohortError, match="not a readable Parquet"):
        read_table(b"PAR1" + b"\x01" * 100, "bad.parquet")


def test_resolve_inside_refuses_escape(tmp_path):
    (tmp_path / "a.csv").write_text("x")
    assert resolve_inside(tmp_path, "a.csv") == (tmp_path / "a.csv").resolve()
    with pytest.raises(CohortError, match="outside the data folder"):
        resolve_inside(tmp_path, "../../etc/passwd")
