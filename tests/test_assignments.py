import pytest

from course.assignments import (CourseLayoutError, assignment_ids, exercises, find_root, nbgrader_meta, notebook_path, read_notebook,
                                resolve, solved_release)


def test_assignment_ids_follow_the_naming_rule(repo):
    ids = assignment_ids(repo)
    assert "01-what-is-ai-engineering" in ids
    for assignment in ids:
        assert notebook_path(repo, "source", assignment).is_file()
        assert notebook_path(repo, "release", assignment).is_file()


def test_resolve_accepts_numbers_and_ids(repo):
    assert resolve(repo, ["01"]) == ["01-what-is-ai-engineering"]
    assert resolve(repo, ["01-what-is-ai-engineering"]) == ["01-what-is-ai-engineering"]
    assert resolve(repo, None) == assignment_ids(repo)
    with pytest.raises(CourseLayoutError, match="no assignment '42'.*known: 01-"):
        resolve(repo, ["42"])


def test_find_root_walks_up_and_explains_when_it_cannot(repo, tmp_path):
    assert find_root(repo / "course" / "datasets") == repo
    with pytest.raises(CourseLayoutError, match="--root"):
        find_root(tmp_path)


def test_exercises_group_test_cells_under_their_solution(repo):
    notebook = read_notebook(notebook_path(repo, "source", "01-what-is-ai-engineering"))
    found = {exercise.grade_id: exercise for exercise in exercises(notebook)}
    assert list(found) == ["split-features-target", "rule-based-predict", "train-income-model",
                           "evaluate-predictions", "understanding-baseline", "accuracy-after-shift"]
    assert found["split-features-target"].test_ids == [
        "split-features-target-visible", "split-features-target-labels", "split-features-target-missing",
        "split-features-target-rows"]
    assert sum(exercise.points for exercise in found.values()) == 30


def test_broken_notebook_is_named(tmp_path):
    path = tmp_path / "broken.ipynb"
    path.write_text("{not json")
    with pytest.raises(CourseLayoutError, match="broken.ipynb cannot be read"):
        read_notebook(path)


def test_a_solved_release_is_the_release_with_the_answers_written_in(repo):
    release = read_notebook(notebook_path(repo, "release", "01-what-is-ai-engineering"))
    solved = solved_release(repo, "01-what-is-ai-engineering")
    assert len(solved.cells) == len(release.cells)
    answers = 0
    for before, after in zip(release.cells, solved.cells):
        if nbgrader_meta(before).get("solution"):
            answers += 1
            assert "NotImplementedError" not in after.source and "SOLUTION" not in after.source and after.source.strip()
        else:
            assert after.source == before.source and after.metadata == before.metadata
    assert answers >= 5
