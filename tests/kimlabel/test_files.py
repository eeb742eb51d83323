"""Files that are whole or absent (kimlabel.files)."""
import pytest

from kimlabel import replacing, write_atomic


def test_a_finished_block_replaces_the_file(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("old")
    with replacing(path) as tmp:
        assert tmp.parent == path.parent and tmp != path
        tmp.write_text("new")
        assert path.read_text() == "old"  # nothing changes until the block ends
    assert path.read_text() == "new" and not tmp.exists()


def test_an_interrupted_block_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with replacing(path) as tmp:
            tmp.write_text("half")
            raise KeyboardInterrupt
    assert path.read_text() == "old" and list(tmp_path.iterdir()) == [path]


def test_write_atomic(tmp_path):
    write_atomic(tmp_path / "a.json", "{}")
    assert (tmp_path / "a.json").read_text() == "{}"
