import pytest

from course.assignments import CourseLayoutError, exercises, notebook_path, read_notebook
from course.mutants import Mutant, apply_batch, batches, coverage_problems, load_mutants, mistake_coverage, mutants_path

TINY = "99-tiny"


def test_every_assignment_has_enough_mutants(repo):
    from course.assignments import assignment_ids

    for assignment in assignment_ids(repo):
        source = read_notebook(notebook_path(repo, "source", assignment))
        assert coverage_problems(load_mutants(mutants_path(repo, assignment)), exercises(source)) == []


def test_incomplete_entries_are_refused(tmp_path):
    path = tmp_path / "mutants.toml"
    path.write_text('[[mutant]]\nexercise = "x"\nname = "no-message"\nkind = "wrong"\ncode = "pass"\n')
    with pytest.raises(CourseLayoutError, match="no-message.*message a student should see"):
        load_mutants(path)
    path.write_text('[[mutant]]\nexercise = "x"\nname = "no-kind"\nkind = "wrong"\nmessage = "m"\nmistake = "typo"\ncode = "pass"\n')
    with pytest.raises(CourseLayoutError, match="no-kind.*its mistake, one of: edge-case"):
        load_mutants(path)
    path.write_text("[[mutant]\n")
    with pytest.raises(CourseLayoutError, match="not valid TOML"):
        load_mutants(path)
    with pytest.raises(CourseLayoutError, match="missing"):
        load_mutants(tmp_path / "absent.toml")


def test_coverage_names_what_is_missing(tiny_course):
    source = read_notebook(notebook_path(tiny_course, "source", TINY))
    only_one = [Mutant("add-numbers", "subtracts", "wrong", "def add(a, b):\n    return a - b", "x"),
                Mutant("unknown-exercise", "typo", "alternative", "pass")]
    problems = coverage_problems(only_one, exercises(source))
    assert any("'unknown-exercise', which the notebook does not have" in p for p in problems)
    assert any("'add-numbers' has 1 wrong and 0 alternative" in p for p in problems)


def test_batches_hold_one_mutant_per_exercise():
    mutants = [Mutant("a", f"a{i}", "wrong", "", "m") for i in range(3)] + [Mutant("b", "b0", "wrong", "", "m")]
    grouped = batches(mutants)
    assert [sorted(batch) for batch in grouped] == [["a", "b"], ["a"], ["a"]]
    assert [batch["a"].name for batch in grouped] == ["a0", "a1", "a2"]


def test_apply_batch_replaces_only_the_named_solution_cell(tiny_course):
    source = read_notebook(notebook_path(tiny_course, "source", TINY))
    mutant = load_mutants(mutants_path(tiny_course, TINY))[0]
    mutated = apply_batch(source, {"add-numbers": mutant})
    changed = [i for i, (a, b) in enumerate(zip(source.cells, mutated.cells)) if a.source != b.source]
    assert len(changed) == 1
    assert mutated.cells[changed[0]].source == mutant.code
    assert "BEGIN SOLUTION" in source.cells[changed[0]].source


def test_mistake_coverage_counts_distinct_kinds_per_exercise(tiny_course):
    source = read_notebook(notebook_path(tiny_course, "source", TINY))
    mutants = load_mutants(mutants_path(tiny_course, TINY))
    assert mistake_coverage(mutants, exercises(source)) == {"add-numbers": ["formula", "shortcut", "interface"]}
    twice = [*mutants, Mutant("add-numbers", "subtracts-again", "wrong", "pass", "m", "formula")]
    assert mistake_coverage(twice, exercises(source)) == {"add-numbers": ["formula", "shortcut", "interface"]}
