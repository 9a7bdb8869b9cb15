"""The CSV upload's edges, at the service: each refusal names its reason (and its
column and row), limits are inclusive, blank lines are skipped, the file is the
owner's. Found by mutation testing: the API tests checked statuses only."""

from __future__ import annotations

import io

import pytest

from app.core.errors import Invalid
from app.core.settings import Settings
from app.db.arrays import load_dataset_arrays
from app.db.models import Dataset
from app.db.session import Database
from app.services.datasets import create_dataset_from_file, get_dataset
from app.services.ingest import Choice
from app.services.ingest_formats import separator


def upload(
    db: Database, settings: Settings, text: bytes, owner: str = "carol", label: str | None = None
) -> Dataset:
    return create_dataset_from_file(
        db=db,
        owner=owner,
        settings=settings,
        name="d",
        file=io.BytesIO(text),
        choice=Choice(label_column=label),
    )


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (b"", "the file is empty"),
        (b"\xff\xfe,y\n", "the CSV file is not UTF-8 text"),
        (b"a,y\n1,0\n\xff,1\n", "the csv file is not UTF-8 text"),  # a label
        (b"a,y\n1,0\n1\xff,1\n", "the csv file is not UTF-8 text"),  # a feature
        # a bad byte past the first block read
        (b"a,y\n" + b"1.00000000,0\n" * 400_000 + b"0,\xff\n", "the csv file is not UTF-8 text"),
        (b"a" * 140_000 + b",y\n1,0\n", "the CSV file's header row cannot be parsed"),
        (b"a" * 1_000 + b",y\n1,0\n", "column 1's name has 1000 characters, more than 200"),
        (b"y\n0\n1\n", "the CSV file needs a header row naming at least two columns"),
        (b"a,a,y\n1,2,0\n", "the file names more than one column 'a': names must be unique"),
        (b"a,y\n1," + b"0" * 140_000 + b"\n2,1\n", "label column 'y': the label has 140000"),
        (b"a,y\n1,0\n\n2\n", "a row has 1 cells where the header has 2 (separated by commas)"),
        (b"a,y\n1,0\n,\nx,1\n", "column 'a', row 3: 'x' is not a number"),
        (b"a,y\n1,0\n , \n2,1\n", "column 'a', row 2: ' ' is not a number"),
        (b"a,y\n1,0\n", "the file needs at least 2 data rows, got 1"),
        (b"a,y\n1,0\n,1\n", "column 'a', row 2: a missing value"),
        (b"a,y\n1,0\n2,\n", "column 'y', row 2: a missing value"),
        (b"a,y\n1,0\n1e999,1\n", "column 'a', row 2: inf is not a finite number"),
    ],
)
def test_a_refused_csv_names_its_reason(
    settings: Settings, db: Database, text: bytes, reason: str
) -> None:
    with pytest.raises(Invalid) as refused:
        upload(db, settings, text)
    assert refused.value.detail.startswith(reason)


def test_limits_are_inclusive(settings: Settings, db: Database) -> None:
    limited = settings.model_copy(update={"max_upload_columns": 3, "max_features": 2})
    dataset = upload(db, limited, b"a,b,y\n1,2,0\n3,4,1\n")  # 3 columns, 2 features: at the limits
    assert dataset.n_features == 2
    tighter = settings.model_copy(update={"max_upload_columns": 4, "max_features": 2})
    with pytest.raises(Invalid) as refused:
        upload(db, tighter, b"a,b,c,y\n1,2,3,0\n3,4,5,1\n")
    assert refused.value.detail.startswith("3 feature columns, more than the limit 2")
    with pytest.raises(Invalid) as refused:
        upload(db, limited, b"a,b,c,y\n1,2,3,0\n3,4,5,1\n")
    assert refused.value.detail.startswith("the file has 4 columns, more than 3")


def test_blank_lines_are_skipped_and_the_dataset_is_the_owners(
    settings: Settings, db: Database
) -> None:
    dataset = upload(db, settings, b"a,y\n1,0\n\n,\n2,1\n,\r\n3,0\n", owner="dave")
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
