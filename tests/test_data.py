import gzip

import pytest

from course import data


def test_adult_train_keeps_the_original_quirks():
    train = data.load_adult("train")
    assert train.shape == (32561, 15)
    assert list(train.columns) == data.ADULT_COLUMNS
    assert set(train["income"]) == {">50K", "<=50K"}
    assert (train["workclass"] == "?").sum() == 1836
    assert train["age"].dtype.kind == "i"


def test_adult_test_labels_keep_their_trailing_dot():
    test = data.load_adult("test")
    assert test.shape == (16281, 15)
    assert test["income"].value_counts().to_dict() == {"<=50K.": 12435, ">50K.": 3846}


def test_loaders_return_independent_copies():
    first = data.load_adult("train")
    first.loc[0, "age"] = -1
    assert data.load_adult("train").loc[0, "age"] == 39


def test_unknown_split_is_refused():
    with pytest.raises(ValueError, match="'train' or 'test'"):
        data.load_adult("validation")


def test_german_credit_has_codes_and_target():
    german = data.load_german_credit()
    assert german.shape == (1000, 21)
    assert german["credit_risk"].value_counts().to_dict() == {1: 700, 2: 300}
    assert german.loc[0, "checking_status"] == "A11"


def test_course_written_text_sets_load_and_are_checked(damaged_datasets):
    assert data.load_support_tickets()["category"].nunique() == 6
    assert list(data.load_knowledge_base().columns) == ["id", "title", "text"]
    assert set(data.load_llm_responses().attrs) == {"task", "schema"}
    tickets = damaged_datasets / "support_tickets.csv"
    tickets.write_text(tickets.read_text().replace("billing", "biling", 1))
    with pytest.raises(data.DataIntegrityError, match=r"support_tickets\.csv fails its checksum"):
        data.load_support_tickets()


def test_readme_lists_every_checksum(repo):
    readme = (repo / "course" / "datasets" / "README.md").read_text()
    for digest in data._expected_hashes().values():
        assert digest in readme


@pytest.fixture
def damaged_datasets(tmp_path, monkeypatch):
    for name in ("SHA256SUMS", "adult.data.gz", "adult.test.gz", "german.data.gz",
                 "support_tickets.csv", "knowledge_base.csv", "llm_responses.json"):
        (tmp_path / name).write_bytes((data._DATASETS / name).read_bytes())
    monkeypatch.setattr(data, "_DATASETS", tmp_path)
    data._adult_frame.cache_clear()
    data._german_frame.cache_clear()
    yield tmp_path
    data._adult_frame.cache_clear()
    data._german_frame.cache_clear()


def test_a_tampered_file_names_itself_and_the_fix(damaged_datasets):
    original = gzip.decompress((damaged_datasets / "adult.test.gz").read_bytes())
    (damaged_datasets / "adult.test.gz").write_bytes(gzip.compress(original.replace(b">50K.", b"<=50K.", 1)))
    with pytest.raises(data.DataIntegrityError, match=r"adult\.test\.gz fails its checksum.*git checkout"):
        data.load_adult("test")


def test_a_missing_file_says_how_to_restore_it(damaged_datasets):
    (damaged_datasets / "german.data.gz").unlink()
    with pytest.raises(data.DataIntegrityError, match=r"german\.data\.gz is missing.*git checkout"):
        data.load_german_credit()


def test_a_truncated_archive_is_reported(damaged_datasets):
    archive = damaged_datasets / "adult.data.gz"
    archive.write_bytes(archive.read_bytes()[:1000])
    with pytest.raises(data.DataIntegrityError, match="not a readable gzip archive"):
        data.load_adult("train")


def test_hours_per_month_changes_only_that_column():
    features = data.load_adult("train").drop(columns="income")
    shifted = data.report_hours_per_month(features)
    assert shifted.loc[0, "hours_per_week"] == round(40 * 52 / 12)
    assert shifted.drop(columns="hours_per_week").equals(features.drop(columns="hours_per_week"))
    assert features.loc[0, "hours_per_week"] == 40


def test_ticket_phrasings_keep_near_twins_together_and_categories_apart():
    tickets = data.load_support_tickets()
    groups = data.ticket_phrasings(tickets["text"])
    assert len(groups) == len(tickets) and groups.dtype.kind == "i"
    assert 150 <= len(set(groups)) <= 250  # about 30 phrasings a category, two or three tickets each
    twins = tickets.index[tickets["text"].str.contains("VAT invoice for my last payment")]
    assert len(twins) == 2 and groups[twins[0]] == groups[twins[1]]
    assert tickets.groupby(groups)["category"].nunique().max() == 1
    assert list(data.ticket_phrasings(tickets["text"])) == list(groups)


def test_ticket_phrasings_ignore_greetings_but_not_the_request():
    groups = data.ticket_phrasings(["Hello support, my parcel never arrived and the tracking page is empty.",
                                    "Hi team, my parcel never arrived and the tracking page is empty. Thanks!",
                                    "Hi team, please delete my account and all the personal data you hold."])
    assert groups[0] == groups[1] != groups[2]
