"""The CSV upload's edges, at the service: each refusal names its reason, limits
are inclusive, blank lines are skipped (and lines still counted), the file is the
owner's. Found by mutation testing: the API tests checked statuses only."""

from __future__ import annotations

import io

import pytest

from app.core.errors import Invalid
from app.core.settings import Settings
from app.db.arrays import load_dataset_arrays
from app.db.models import Dataset
from app.db.session import Database
from app.services.datasets import create_dataset_from_csv, get_dataset, separator


def upload(
    db: Database, settings: Settings, text: bytes, owner: str = "carol", label: str | None = None
) -> Dataset:
    return create_dataset_from_csv(
        db=db, owner=owner, settings=settings, name="d", file=io.BytesIO(text), label_column=label
    )


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (b"", "the CSV file is empty"),
        (b"\xff\xfe,y\n", "the CSV file is not UTF-8 text"),
        (b"a,y\n1,0\n\xff,1\n", "the CSV file is not UTF-8 text"),
        # a bad byte past the first chunk read
        (b"a,y\n" + b"1,0\n" * 100_000 + b"\xff,1\n", "the CSV file is not UTF-8 text"),
        (b"a" * 140_000 + b",y\n1,0\n", "the CSV file cannot be parsed: field larger than"),
        (b"y\n0\n1\n", "the CSV file needs a header with at least two columns"),
        (b"a,a,y\n1,2,0\n", "the CSV header repeats a column name"),
        (b"a,y\n1," + b"0" * 140_000, "the CSV file cannot be parsed: field larger than"),
        (b"a,y\n1,0\n\n2\n", "CSV line 4 has 1 cells, the header has 2 (separated by commas)"),
        (b"a,y\n1,0\n , \nx,1\n", "CSV line 4, column 'a': 'x' is not a number"),
        (b"a,y\n1,0\n", "the CSV file needs at least 2 data rows, got 1"),
    ],
)
def test_a_refused_csv_names_its_reason(
    settings: Settings, db: Database, text: bytes, reason: str
) -> None:
    with pytest.raises(Invalid) as refused:
        upload(db, settings, text)
    assert refused.value.detail.startswith(reason)


def test_limits_are_inclusive(settings: Settings, db: Database) -> None:
    limited = settings.model_copy(update={"max_csv_columns": 3, "max_features": 2})
    dataset = upload(db, limited, b"a,b,y\n1,2,0\n3,4,1\n")  # 3 columns, 2 features: at the limits
    assert dataset.n_features == 2
    tighter = settings.model_copy(update={"max_csv_columns": 4, "max_features": 2})
    with pytest.raises(Invalid) as refused:
        upload(db, tighter, b"a,b,c,y\n1,2,3,0\n3,4,5,1\n")
    assert refused.value.detail == "the CSV file has 3 features, more than 2"


def test_blank_lines_are_skipped_and_the_dataset_is_the_owners(
    settings: Settings, db: Database
) -> None:
    dataset = upload(db, settings, b"a,y\n1,0\n\n , \n2,1\n3,0\n", owner="dave")
    assert dataset.n_samples == 3
    assert get_dataset(db=db, owner="dave", dataset_id=dataset.id).owner == "dave"


def test_a_label_column_anywhere_leaves_the_features_in_order(
    settings: Settings, db: Database
) -> None:
    dataset = upload(db, settings, b"a,y,b,c\n1,0,2,3\n4,1,5,6\n", label="y")
    assert dataset.feature_names == ["a", "b", "c"]
    arrays = load_dataset_arrays(db=db, dataset_id=dataset.id)
    assert arrays.X.tolist() == [[1, 2, 3], [4, 5, 6]]
    assert arrays.Y.ravel().tolist() == [0, 1]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("a,b;c;d", ";"),
        ("a;b,c,d", ","),
        ('"x;y;z",b', ","),  # quoted stretches do not count
        ('"a";"b";"c"', ";"),
        ("a;b,c", ","),  # a tie goes to the comma
        ("a\tb;c", ";"),  # a tie without a comma: the first of the others
        ("abc", ","),
    ],
)
def test_the_separator_is_the_headers(header: str, expected: str) -> None:
    assert separator(header) == expected
